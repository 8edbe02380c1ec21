"""Multi-process training with torchrun on CPU (gloo): the global batch is
shared by the processes, so a 2-process run takes the same optimizer steps
as a single process and ends with the same parameters."""

import functools
import os
import pathlib
import subprocess
import sys

import pytest
import torch
import yaml

import train
from recipes.synthetic_corpus import generate_corpus
from speaker_metric_learning.hyperparams import load_hparams
from speaker_metric_learning.sampling import SpeakerBalancedBatchSampler

ROOT = pathlib.Path(__file__).parents[1]
TORCHRUN = pathlib.Path(sys.executable).with_name("torchrun")


def fake_process_group(monkeypatch, world, rank):
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: world)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: rank)


def test_processes_share_every_batch_of_a_single_process(monkeypatch):
    # 11 speakers with 1 to 4 utterances; 3 passes per epoch, whose last
    # batches straddle passes
    labels = [spk for spk in range(11) for _ in range(1 + spk % 4)]
    hparams = {
        "speakers_per_batch": 4,
        "batch_sampler": functools.partial(
            SpeakerBalancedBatchSampler,
            speakers_per_batch=4,
            chunks_per_speaker=2,
            batches_per_epoch=5,
            seed=7,
        ),
    }
    single = train.distributed_batch_sampler(hparams, labels)
    shares = []
    for rank in (0, 1):
        with monkeypatch.context() as patch:
            fake_process_group(patch, world=2, rank=rank)
            shares.append(train.distributed_batch_sampler(hparams, labels))
    for epoch in (1, 2):
        for sampler in (single, *shares):
            sampler.set_epoch(epoch)
        batches = list(single)
        first, second = list(shares[0]), list(shares[1])
        assert len(batches) == len(first) == len(second) == 5
        assert len(shares[0]) == len(single) == 5
        for batch, mine, theirs in zip(batches, first, second, strict=True):
            assert mine + theirs == batch
            assert len(mine) == 4  # 2 speakers x 2 chunks each
            assert not {labels[i] for i in mine} & {labels[i] for i in theirs}


def test_speakers_per_batch_must_be_shared_evenly(monkeypatch):
    fake_process_group(monkeypatch, world=3, rank=0)
    hparams = {"speakers_per_batch": 4, "batch_sampler": None}
    with pytest.raises(ValueError, match="multiple of the process count"):
        train.distributed_batch_sampler(hparams, [0, 1, 2, 3])


def tiny_run(corpus, output, architecture="paper"):
    return [
        "hparams/aam.yaml",
        f"--output_folder={output}",
        f"--architecture={architecture}",
        f"--data_folder={corpus / 'train'}",
        "--model_scale=0.125",
        "--chunk_seconds=1.0",
        "--speakers_per_batch=4",
        "--chunks_per_speaker=2",
        "--batches_per_epoch=2",
        "--number_of_epochs=1",
        "--num_workers=0",
        "--ckpt_interval_minutes=0",
    ]


def checkpoint(output, name):
    (folder,) = (output / "save").glob("CKPT+*")
    if name == "brain":  # SpeechBrain's counters, as YAML
        return yaml.safe_load((folder / "brain.ckpt").read_text())
    return torch.load(folder / f"{name}.ckpt")


def two_process_corpus(tmp_path):
    """A tiny generated corpus: 8 training speakers x 3 utterances."""
    return generate_corpus(
        tmp_path / "corpus",
        n_train_speakers=8,
        n_dev_speakers=2,
        utterances_per_speaker=3,
        min_duration=1.0,
        max_duration=1.5,
        progress=False,
    )


def run_two_processes(arguments):
    """``torchrun --nproc_per_node=2 train.py ARGUMENTS`` on the CPU."""
    environment = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'plugin'}{os.pathsep}{ROOT}",
        "OMP_NUM_THREADS": "1",
    }
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "train.py"]
    process = subprocess.run(
        [*command, *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")
def test_torchrun_two_cpu_processes_match_one_process(tmp_path):
    corpus = two_process_corpus(tmp_path)
    run_two_processes(tiny_run(corpus, tmp_path / "two"))
    torch.set_num_threads(1)
    train.main(tiny_run(corpus, tmp_path / "one"))

    for output in ("one", "two"):
        brain = checkpoint(tmp_path / output, "brain")
        assert brain["optimizer_step"] == 2 and brain["step"] == 2
        log = (tmp_path / output / "train_log.txt").read_text()
        assert log.startswith("epoch: 1,") and "train batches: 2.00" in log
    # The paper's network has no batch norm: under DDP each process
    # normalises its own half of the batch (no SyncBatchNorm on CPU/gloo),
    # so only a network without batch norm gives one process's result.
    initial = load_hparams(
        ROOT / "hparams" / "aam.yaml",
        {"n_train_speakers": 8, "model_scale": 0.125, "architecture": "paper"},
    )
    # Per tensor, the distance between the two runs is float rounding of
    # the gradient all-reduce, far below what the two Adam steps moved.
    # Biases of the convolutions followed by instance normalisation have
    # zero gradient: Adam moves them by rounding noise only (~1e-4), the
    # same size as their difference, so they are left out.
    compared = []
    for module in ("embedding_model", "loss"):
        one = checkpoint(tmp_path / "one", module)
        two = checkpoint(tmp_path / "two", module)
        for name, start in initial[module].named_parameters():
            moved = (one[name] - start.detach()).norm()
            if moved < 1e-3:
                assert name.startswith("front_end.convs.")
                assert name.endswith(".bias")
                continue
            assert (one[name] - two[name]).norm() < 1e-3 * moved, name
            compared.append(name)
    assert len(compared) == 28 and "weight" in compared  # AAM class weights


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")
def test_torchrun_trains_the_batch_normalised_default_on_two_processes(
    tmp_path,
):
    corpus = two_process_corpus(tmp_path)
    output = tmp_path / "two"
    run_two_processes(tiny_run(corpus, output, architecture="default"))
    assert checkpoint(output, "brain")["optimizer_step"] == 2
    weights = checkpoint(output, "embedding_model")
    assert any(".norm.running_mean" in name for name in weights)
    assert all(torch.isfinite(tensor).all() for tensor in weights.values())
