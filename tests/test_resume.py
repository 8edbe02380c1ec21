"""An interrupted training run resumes from SpeechBrain's intra-epoch
checkpoint exactly where it stopped: same epoch, step, sampler position,
chunks and optimizer state, hence the same parameters as a run that was
never interrupted."""

import pytest
import torch
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.dataio.encoder import CategoricalEncoder
from tiny import final_state
from tiny import resume_arguments as arguments

import train
from recipes import folder_prepare
from speaker_metric_learning.brain import SpeakerBrain
from speaker_metric_learning.data import RandomChunker, training_dataset
from speaker_metric_learning.sampling import SpeakerBalancedBatchSampler


class Interrupted(Exception):
    """Stands for the process being killed."""


def run(monkeypatch, argv, stop_before_call=None):
    """Runs train.main; returns the (epoch, step) of every training batch
    run, stopping with Interrupted before batch number ``stop_before_call``.
    """
    trained = []
    fit_batch = SpeakerBrain.fit_batch

    def counting_fit_batch(brain, batch):
        if len(trained) + 1 == stop_before_call:
            raise Interrupted
        trained.append((brain.hparams.epoch_counter.current, brain.step))
        return fit_batch(brain, batch)

    with monkeypatch.context() as patch:
        patch.setattr(SpeakerBrain, "fit_batch", counting_fit_batch)
        if stop_before_call is None:
            train.main(argv)
        else:
            with pytest.raises(Interrupted):
                train.main(argv)
    return trained


def test_interrupted_run_resumes_to_the_same_parameters(
    corpus, tmp_path, monkeypatch
):
    num_workers = 0  # workers: test_saved_loader_position_with_workers
    whole = tmp_path / "whole"
    steps = run(monkeypatch, arguments(corpus, whole, num_workers))
    assert steps == [(e, s) for e in (1, 2) for s in range(1, 5)]

    # killed while running epoch 2, step 4: the last checkpoint is the
    # intra-epoch one after step 2 (ckpt_interval_steps=2), so step 3 is
    # lost and done again
    cut = tmp_path / "cut"
    before = run(monkeypatch, arguments(corpus, cut, num_workers), 8)
    assert before[-1] == (2, 3)
    after = run(monkeypatch, arguments(corpus, cut, num_workers))
    assert after == [(2, 3), (2, 4)]

    state, brain = final_state(whole)
    resumed_state, resumed_brain = final_state(cut)
    assert resumed_brain == brain  # step count, optimizer steps, mean loss
    for name in ("embedding_model", "loss"):
        for key, value in state[name].items():
            assert torch.equal(value, resumed_state[name][key]), (name, key)
    for key, value in state["optimizer"]["state"].items():
        for moment in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(
                value[moment], resumed_state["optimizer"]["state"][key][moment]
            )
    epochs = (cut / "train_log.txt").read_text().splitlines()
    assert [line.split(",")[0] for line in epochs] == ["epoch: 1", "epoch: 2"]


def test_saved_loader_position_with_workers(corpus, tmp_path):
    """SpeechBrain's saved DataLoader position skips the batches already
    trained, with worker processes, our batch sampler and seeded chunks."""
    data_csv = folder_prepare.prepare_folder(
        corpus / "train", tmp_path / "train.csv"
    )
    chunker = RandomChunker(chunk_seconds=0.5, seed=3)
    dataset = training_dataset(data_csv, chunker, CategoricalEncoder())
    labels = [dataset.data[uid]["spk_id"] for uid in dataset.data_ids]

    def loader():
        sampler = SpeakerBalancedBatchSampler(
            labels, 2, 2, seed=5, batches_per_epoch=4
        )
        sampler.set_epoch(3)
        chunker.set_epoch(3)
        return make_dataloader(dataset, batch_sampler=sampler, num_workers=2)

    whole = [(batch.id, batch.sig.data) for batch in loader()]
    interrupted = loader()
    iterator = iter(interrupted)
    next(iterator), next(iterator)
    interrupted._speechbrain_save(tmp_path / "position")
    del iterator
    resumed = loader()
    resumed._speechbrain_load(tmp_path / "position", end_of_epoch=False)
    rest = [(batch.id, batch.sig.data) for batch in resumed]
    assert len(whole) == 4 and len(rest) == 2
    assert [ids for ids, _ in rest] == [ids for ids, _ in whole[2:]]
    assert [ids for ids, _ in rest] != [ids for ids, _ in whole[:2]]
    for (_, signal), (_, expected) in zip(rest, whole[2:], strict=True):
        assert torch.equal(signal, expected)
