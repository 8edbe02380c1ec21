"""Tests of speaker_metric_learning.scoring.metrics."""

import numpy as np
import pytest
import torch
from speechbrain.utils.metric_stats import EER, minDCF

from speaker_metric_learning.scoring.metrics import (
    equal_error_rate,
    minimum_dcf,
)


def _random_scores(rng, n_pos, n_neg, kind):
    """Score sets with many ties (integers, coarse grid) or none (normal)."""
    if kind == "integers":
        pos = rng.integers(0, 5, n_pos).astype(np.float32)
        neg = rng.integers(0, 5, n_neg).astype(np.float32)
    elif kind == "grid":
        pos = np.round(rng.normal(1.0, 1.0, n_pos), 1)
        neg = np.round(rng.normal(0.0, 1.0, n_neg), 1)
    else:
        pos = rng.normal(1.0, 1.0, n_pos).astype(np.float32)
        neg = rng.normal(0.0, 1.0, n_neg).astype(np.float32)
    return torch.from_numpy(pos), torch.from_numpy(neg)


@pytest.mark.parametrize("kind", ["integers", "grid", "normal"])
@pytest.mark.parametrize(
    "sizes", [(1, 1), (1, 7), (9, 2), (13, 31), (150, 450)]
)
def test_eer_and_min_dcf_equal_speechbrain(kind, sizes):
    rng = np.random.default_rng(sum(sizes))
    for _ in range(20 if sizes[0] < 100 else 2):
        pos, neg = _random_scores(rng, *sizes, kind)
        assert equal_error_rate(pos, neg) == EER(pos, neg)
        for p_target in (0.01, 0.05, 0.5):
            ours = minimum_dcf(pos, neg, p_target=p_target)
            assert ours == minDCF(pos, neg, p_target=p_target)
        assert minimum_dcf(pos, neg, 0.05, c_miss=3.0, c_fa=0.5) == minDCF(
            pos, neg, c_miss=3.0, c_fa=0.5, p_target=0.05
        )


def test_eer_equals_speechbrain_where_float32_rounding_matters():
    # Few targets, many non-targets, few distinct scores: the minimal float32
    # gap is often reached at several thresholds or rounded below its exact
    # value, which moves SpeechBrain's loop to a later threshold or midpoint.
    rng = np.random.default_rng(1)
    for _ in range(2000):
        pos, neg = _random_scores(
            rng, int(rng.integers(1, 12)), int(rng.integers(1, 40)), "integers"
        )
        assert equal_error_rate(pos, neg) == EER(pos, neg)


def test_perfect_separation():
    assert equal_error_rate([0.6, 0.7, 0.8], [0.4, 0.3]) == (0.0, 0.4)
    assert minimum_dcf([0.6, 0.7, 0.8], [0.4, 0.3]) == (0.0, 0.4)


def test_all_scores_tied():
    # The only threshold is 1: every target is missed, no false alarm.
    assert equal_error_rate([1.0, 1.0], [1.0, 1.0, 1.0]) == (0.5, 1.0)
    cost, threshold = minimum_dcf([1.0, 1.0], [1.0, 1.0, 1.0], p_target=0.01)
    assert cost == pytest.approx(0.01) and threshold == 1.0


def test_single_trial_of_each_class():
    # Target below non-target: at t=0.3 both trials are errors.
    assert equal_error_rate([0.3], [0.7]) == (1.0, 0.3)
    assert equal_error_rate([0.7], [0.3]) == (0.0, 0.3)
    cost, threshold = minimum_dcf([0.3], [0.7], p_target=0.25)
    # t=0.3: 0.25 * 1 + 0.75 * 1; t=0.7: 0.25 * 1 + 0 -> 0.25.
    assert cost == pytest.approx(0.25) and threshold == 0.7


def test_inputs_as_lists_arrays_and_tensors_agree():
    pos, neg = [0.9, 0.2, 0.5], [0.1, 0.6, 0.3, 0.2]
    expected = equal_error_rate(pos, neg)
    assert equal_error_rate(np.array(pos), np.array(neg)) == expected
    assert equal_error_rate(torch.tensor(pos).double(), neg) == expected


def test_normalized_min_dcf_divides_by_trivial_cost():
    pos, neg = [0.9, 0.2, 0.5], [0.1, 0.6, 0.3, 0.2]
    raw, threshold = minimum_dcf(pos, neg, p_target=0.05)
    norm, same_threshold = minimum_dcf(pos, neg, p_target=0.05, normalized=True)
    assert norm == pytest.approx(raw / 0.05) and same_threshold == threshold


@pytest.mark.parametrize(
    "pos, neg, message",
    [
        ([], [0.1], "positive_scores is empty"),
        ([0.1], [float("nan"), 0.2], r"negative_scores\[0\] is nan"),
        ([0.1, float("inf")], [0.2], r"positive_scores\[1\] is inf"),
    ],
)
def test_bad_scores_raise_clear_errors(pos, neg, message):
    with pytest.raises(ValueError, match=message):
        equal_error_rate(pos, neg)
