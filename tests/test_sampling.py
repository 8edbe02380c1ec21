"""Tests of the speaker-balanced P x K batch sampler."""

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

from speaker_metric_learning import sampling
from speaker_metric_learning.sampling import SpeakerBalancedBatchSampler


def make_labels(utterances_per_speaker):
    """Labels 'spk<i>' repeated, interleaved as a real CSV might be."""
    labels = []
    for round_ in range(max(utterances_per_speaker)):
        for speaker, count in enumerate(utterances_per_speaker):
            if round_ < count:
                labels.append(f"spk{speaker}")
    return labels


# 10 speakers with 1 to 7 utterances
LABELS = make_labels([5, 1, 7, 3, 4, 2, 6, 3, 5, 4])


def speakers_of(batch, labels=LABELS):
    return [labels[i] for i in batch]


@pytest.mark.parametrize("p, k", [(2, 2), (5, 3), (3, 1), (10, 4)])
def test_every_batch_has_p_distinct_speakers_with_k_items(p, k):
    sampler = SpeakerBalancedBatchSampler(LABELS, p, k, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 10 // p
    for batch in batches:
        counts = Counter(speakers_of(batch))
        assert len(counts) == p
        assert set(counts.values()) == {k}
        for speaker in counts:
            items = [i for i in batch if LABELS[i] == speaker]
            available = LABELS.count(speaker)
            if available >= k:  # no repetition when there are enough
                assert len(set(items)) == k
            else:  # all items, completed with replacement
                assert len(set(items)) == available


def test_a_pass_visits_every_speaker_once():
    sampler = SpeakerBalancedBatchSampler(LABELS, 5, 2, seed=0)
    seen = Counter(s for batch in sampler for s in set(speakers_of(batch)))
    assert seen == Counter({f"spk{i}": 1 for i in range(10)})


def test_incomplete_batch_dropped_or_kept():
    dropped = SpeakerBalancedBatchSampler(LABELS, 4, 2, seed=0)
    batches = list(dropped)
    assert len(batches) == len(dropped) == 2
    seen = [s for batch in batches for s in set(speakers_of(batch))]
    assert len(seen) == len(set(seen)) == 8
    kept = SpeakerBalancedBatchSampler(LABELS, 4, 2, seed=0, drop_last=False)
    batches = list(kept)
    assert len(batches) == len(kept) == 3
    assert [len(set(speakers_of(b))) for b in batches] == [4, 4, 2]
    assert {s for b in batches for s in speakers_of(b)} == set(LABELS)


def test_dropped_speakers_change_across_epochs():
    sampler = SpeakerBalancedBatchSampler(LABELS, 4, 2, seed=0)
    covered = set()
    for epoch in range(10):
        sampler.set_epoch(epoch)
        covered |= {s for batch in sampler for s in speakers_of(batch)}
    assert covered == set(LABELS)


def test_same_seed_and_epoch_same_batches():
    first = SpeakerBalancedBatchSampler(LABELS, 3, 2, seed=7)
    second = SpeakerBalancedBatchSampler(LABELS, 3, 2, seed=7)
    first.set_epoch(4)
    second.set_epoch(4)
    assert list(first) == list(second)
    assert list(first) == list(first)  # iterating does not advance state


def test_set_epoch_and_seed_change_the_order():
    sampler = SpeakerBalancedBatchSampler(LABELS, 3, 2, seed=7)
    epoch_0 = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != epoch_0
    other_seed = SpeakerBalancedBatchSampler(LABELS, 3, 2, seed=8)
    assert list(other_seed) != epoch_0


def test_batches_per_epoch_chains_passes():
    sampler = SpeakerBalancedBatchSampler(
        LABELS, 3, 2, seed=1, batches_per_epoch=7
    )
    batches = list(sampler)
    assert len(batches) == len(sampler) == 7
    for batch in batches:
        assert len(set(speakers_of(batch))) == 3
    # passes of 3 batches: the first 6 batches are two complete passes
    for first in (0, 3):
        speakers = [
            s for b in batches[first : first + 3] for s in set(speakers_of(b))
        ]
        assert len(speakers) == len(set(speakers)) == 9


@pytest.mark.parametrize(
    "drop_last, batches_per_epoch", [(True, 7), (False, 7), (True, 8)]
)
def test_two_ranks_get_disjoint_equal_shares(drop_last, batches_per_epoch):
    options = {
        "labels": LABELS,
        "speakers_per_batch": 3,
        "chunks_per_speaker": 2,
        "seed": 5,
        "drop_last": drop_last,
        "batches_per_epoch": batches_per_epoch,
    }
    single = SpeakerBalancedBatchSampler(**options, num_replicas=1, rank=0)
    ranks = [
        SpeakerBalancedBatchSampler(**options, num_replicas=2, rank=rank)
        for rank in (0, 1)
    ]
    for sampler in [single, *ranks]:
        sampler.set_epoch(3)
    shares = [list(sampler) for sampler in ranks]
    assert len(shares[0]) == len(shares[1]) == len(ranks[0]) == len(ranks[1])
    if drop_last:  # cut to a multiple of 2
        assert len(shares[0]) == batches_per_epoch // 2
    else:  # completed by repeating the first batches
        assert len(shares[0]) == -(-batches_per_epoch // 2)
    # rank r takes the global batches r, r + 2, r + 4, ...
    everything = list(single)
    padded = everything + everything
    total = 2 * len(shares[0])
    assert shares[0] == padded[0:total:2]
    assert shares[1] == padded[1:total:2]
    if drop_last:
        assert not {tuple(b) for b in shares[0]} & {tuple(b) for b in shares[1]}


def test_replicas_read_from_the_process_group(monkeypatch):
    monkeypatch.setattr(sampling.dist, "is_available", lambda: True)
    monkeypatch.setattr(sampling.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(sampling.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(sampling.dist, "get_rank", lambda: 1)
    sampler = SpeakerBalancedBatchSampler(LABELS, 2, 2, seed=0)
    assert (sampler.num_replicas, sampler.rank) == (2, 1)
    assert len(sampler) == len(list(sampler)) == 2


def test_works_as_dataloader_batch_sampler():
    dataset = torch.arange(len(LABELS))
    sampler = SpeakerBalancedBatchSampler(LABELS, 2, 3, seed=0)
    batches = list(DataLoader(dataset, batch_sampler=sampler))
    assert [b.tolist() for b in batches] == list(sampler)
    assert all(b.shape == (6,) for b in batches)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="only 10 speakers"):
        SpeakerBalancedBatchSampler(LABELS, 11, 2)
    with pytest.raises(ValueError, match="must be >= 1"):
        SpeakerBalancedBatchSampler(LABELS, 2, 0)
    with pytest.raises(ValueError, match="0 <= rank < num_replicas"):
        SpeakerBalancedBatchSampler(LABELS, 2, 2, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="cannot be shared by 3 replicas"):
        SpeakerBalancedBatchSampler(LABELS, 5, 2, num_replicas=3, rank=0)
    with pytest.raises(ValueError, match="labels is empty"):
        SpeakerBalancedBatchSampler([], 1, 1)


def test_batch_shares_of_two_processes_rebuild_every_batch():
    full = SpeakerBalancedBatchSampler(
        LABELS, speakers_per_batch=4, chunks_per_speaker=2, seed=3
    )
    shares = [sampling.BatchShare(full, rank, 2) for rank in (0, 1)]
    for share in shares:
        share.set_epoch(5)
    full.set_epoch(5)
    expected = list(full)
    halves = [list(share) for share in shares]
    assert [a + b for a, b in zip(*halves, strict=True)] == expected
    # a P x K batch lists each speaker's K items together, so each process
    # gets P / 2 whole speakers
    for batch in halves[0] + halves[1]:
        assert len(set(speakers_of(batch))) == 2
    assert len(shares[0]) == len(full)


def test_batch_share_rejects_a_batch_the_processes_cannot_split():
    with pytest.raises(ValueError, match="multiple of the process count"):
        list(sampling.BatchShare([[0, 1, 2]], rank=0, num_replicas=2))
