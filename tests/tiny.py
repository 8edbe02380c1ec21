"""The tiny training configuration the end-to-end tests share.

Plain values and functions (fixtures are in ``conftest.py``): the
``kill -9`` driver of ``test_kill_resume.py`` runs outside pytest and
imports them too.
"""

import functools
import pathlib

import torch

from recipes.synthetic_corpus import generate_corpus
from speaker_metric_learning.checkpoints import checkpoints_in_saving_order

ROOT = pathlib.Path(__file__).parents[1]
TINY_SCALE = 0.125
TINY_RUN = [
    f"--model_scale={TINY_SCALE}",
    "--chunk_seconds=1.0",
    "--speakers_per_batch=4",
    "--chunks_per_speaker=2",
    "--batches_per_epoch=2",
    "--number_of_epochs=2",
    "--num_workers=0",
    "--eval_batch_size=4",
]
#: Batches per epoch of the resumable run of ``resume_arguments``.
RESUME_BATCHES_PER_EPOCH = 4
tiny_corpus = functools.partial(
    generate_corpus,
    n_train_speakers=4,
    n_dev_speakers=3,
    utterances_per_speaker=3,
    min_duration=1.0,
    max_duration=1.5,
    progress=False,
)


def resume_arguments(corpus, output, num_workers):
    """A training run (no evaluation) with a checkpoint every 2 steps."""
    return [
        str(ROOT / "hparams" / "aam.yaml"),
        f"--output_folder={output}",
        f"--data_folder={corpus / 'train'}",
        "--model_scale=0.125",
        "--chunk_seconds=1.0",
        "--speakers_per_batch=2",
        "--chunks_per_speaker=2",
        f"--batches_per_epoch={RESUME_BATCHES_PER_EPOCH}",
        "--number_of_epochs=2",
        f"--num_workers={num_workers}",
        "--ckpt_interval_minutes=0",
        "--ckpt_interval_steps=2",
    ]


def final_state(output):
    """The state dicts of the last checkpoint of a run, and its brain
    record."""
    last = checkpoints_in_saving_order(output / "save")[-1].path
    return {
        name: torch.load(last / f"{name}.ckpt")
        for name in ("embedding_model", "loss", "optimizer")
    }, (last / "brain.ckpt").read_text()
