"""A run's network loaded two ways gives the same evaluation embeddings.

The comparison's evaluation (``benchmarks/comparison/evaluation.py``)
loaded a run's network with SpeechBrain's checkpointer of the run's own
hyperparameters; it now loads it with ``model_io.load_model`` (the
definition an export writes, the run's latest intact checkpoint). This
script embeds the run's evaluation utterances (``save/eval.csv``) with
both, with the run's evaluation settings, and prints whether the
embeddings are bitwise equal.

Usage (from the repository root)::

    PYTHONPATH=plugin:. python benchmarks/loading_paths.py RUN_FOLDER
"""

import argparse

import torch

from speaker_metric_learning.data import evaluation_dataset
from speaker_metric_learning.hyperparams import load_hparams
from speaker_metric_learning.layout import HYPERPARAMS_FILE, SAVE_FOLDER
from speaker_metric_learning.model_io import load_model
from speaker_metric_learning.scoring.embeddings import extract_embeddings
from speaker_metric_learning.scoring.evaluation import evaluation_settings


def main(argv=None):
    """Prints the comparison of the two loading paths for one run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a train.py output folder")
    run = parser.parse_args(argv).run
    hparams = load_hparams(f"{run}/{HYPERPARAMS_FILE}")
    if hparams["checkpointer"].recover_if_possible() is None:
        parser.error(f"{run} has no checkpoint")
    models = {
        "checkpointer": hparams["embedding_model"].eval(),
        "load_model": load_model(run).mods.embedding_model,
    }
    data = evaluation_dataset(
        f"{run}/{SAVE_FOLDER}/eval.csv", hparams["sample_rate"]
    )
    (ids_a, a), (ids_b, b) = (
        extract_embeddings(
            model, data, progress=False, **evaluation_settings(hparams)
        )
        for model in models.values()
    )
    print(
        f"{len(ids_a)} utterances; same ids: {list(ids_a) == list(ids_b)}; "
        f"bitwise equal embeddings: {torch.equal(a, b)}"
    )


if __name__ == "__main__":
    main()
