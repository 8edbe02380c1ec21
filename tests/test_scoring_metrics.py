"""Tests of speaker_metric_learning.scoring.metrics."""

import itertools
import math

import numpy as np
import pytest
import torch
from speechbrain.utils.metric_stats import EER, minDCF

from speaker_metric_learning.scoring.metrics import (
    ScoreSweep,
    bootstrap_intervals,
    cllr,
    detection_cost,
    equal_error_rate,
    min_cllr,
    minimum_dcf,
    split_scores,
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


def test_detection_cost_at_a_fixed_threshold():
    # threshold 0.5: two of three targets missed (0.2 and 0.5 are not above
    # it), one of four false alarms (0.6).
    pos, neg = [0.9, 0.2, 0.5], [0.1, 0.6, 0.3, 0.2]
    expected = 0.1 * (2 / 3) + 0.9 * (1 / 4)
    assert detection_cost(pos, neg, 0.5, p_target=0.1) == pytest.approx(
        expected
    )
    assert detection_cost(
        pos, neg, 0.5, p_target=0.1, normalized=True
    ) == pytest.approx(expected / 0.1)


def test_cllr_and_min_cllr_of_a_perfectly_calibrated_system():
    # Score log(3) holds 3 of 4 targets and 1 of 4 non-targets: its
    # likelihood ratio is (3/4) / (1/4) = 3, so the scores are calibrated
    # log-likelihood ratios and no monotone map can lower their cost.
    high, low = math.log(3), -math.log(3)
    pos, neg = [high, high, high, low], [high, low, low, low]
    expected = (3 * math.log2(4 / 3) + math.log2(4)) / 4
    assert cllr(pos, neg) == pytest.approx(expected)
    assert min_cllr(pos, neg) == pytest.approx(expected)
    # Shifting or scaling decalibrates without changing discrimination.
    shifted = [2 * s + 1 for s in pos], [2 * s + 1 for s in neg]
    assert cllr(*shifted) > expected
    assert min_cllr(*shifted) == pytest.approx(expected)


def _brute_force_min_cllr(positive, negative):
    """Minimum over monotone block partitions of distinct scores."""
    targets, nontargets = ScoreSweep.from_scores(
        positive, negative
    ).target_counts()
    n_groups = len(targets)
    best = math.inf
    for cuts in itertools.product([False, True], repeat=n_groups - 1):
        bounds = [0] + [i + 1 for i, cut in enumerate(cuts) if cut]
        bounds.append(n_groups)
        blocks = [
            (targets[a:b].sum(), nontargets[a:b].sum())
            for a, b in itertools.pairwise(bounds)
        ]
        ratios = [t / (t + f) for t, f in blocks]
        if any(r2 < r1 for r1, r2 in itertools.pairwise(ratios)):
            continue
        with np.errstate(divide="ignore"):
            llrs = [
                np.log(t / len(positive)) - np.log(f / len(negative))
                for t, f in blocks
            ]
        pos_llr = np.repeat(llrs, [t for t, _ in blocks])
        neg_llr = np.repeat(llrs, [f for _, f in blocks])
        cost = np.mean(np.logaddexp(0, -pos_llr)) + np.mean(
            np.logaddexp(0, neg_llr)
        )
        best = min(best, cost / (2 * math.log(2)))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_min_cllr_equals_brute_force_and_is_below_cllr(seed):
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, 6, int(rng.integers(1, 9))) * 0.5 + 0.5
    neg = rng.integers(0, 6, int(rng.integers(1, 9))) * 0.5
    assert min_cllr(pos, neg) == pytest.approx(_brute_force_min_cllr(pos, neg))
    assert min_cllr(pos, neg) <= cllr(pos, neg) + 1e-12


def _labelled_scores(rng, n_trials, speaker_spread=0.0, n_speakers=20):
    labels = np.arange(n_trials) % 4 == 0
    speakers = rng.integers(0, n_speakers, n_trials)
    offsets = rng.normal(0.0, speaker_spread, n_speakers)[speakers]
    scores = rng.normal(size=n_trials) + 2.0 * labels + offsets * labels
    return scores, labels, speakers


def test_bootstrap_interval_covers_full_set_value_and_shrinks():
    rng = np.random.default_rng(0)
    widths = []
    for n_trials in (1000, 16000):
        scores, labels, _ = _labelled_scores(rng, n_trials)
        ci = bootstrap_intervals(scores, labels, n_replicates=200, seed=1)
        pos, neg = split_scores(scores, labels)
        assert ci["eer"][0] < equal_error_rate(pos, neg)[0] < ci["eer"][1]
        for p_target, (low, high) in ci["min_dcf"].items():
            assert low <= minimum_dcf(pos, neg, p_target)[0] <= high
        widths.append(ci["eer"][1] - ci["eer"][0])
    # Width shrinks like 1 / sqrt(n): 16 times more trials, about 4 times.
    assert widths[1] < widths[0] / 2


def test_speaker_bootstrap_is_wider_when_speakers_shift_scores():
    rng = np.random.default_rng(0)
    scores, labels, speakers = _labelled_scores(rng, 4000, speaker_spread=1.5)
    by_trial = bootstrap_intervals(scores, labels, n_replicates=200)
    by_speaker = bootstrap_intervals(
        scores, labels, n_replicates=200, speakers=speakers
    )
    trial_width = by_trial["eer"][1] - by_trial["eer"][0]
    speaker_width = by_speaker["eer"][1] - by_speaker["eer"][0]
    assert speaker_width > 1.5 * trial_width


def test_bootstrap_is_reproducible_and_checks_its_inputs():
    scores, labels = [0.1, 0.9, 0.4, 0.6], [0, 1, 0, 1]
    first = bootstrap_intervals(scores, labels, n_replicates=50, seed=3)
    assert first == bootstrap_intervals(scores, labels, n_replicates=50, seed=3)
    with pytest.raises(ValueError, match="both target and non-target"):
        bootstrap_intervals(scores, [1, 1, 1, 1])
    with pytest.raises(ValueError, match="labels\\[2\\] is 2"):
        bootstrap_intervals(scores, [0, 1, 2, 1])
    with pytest.raises(ValueError, match="3 speaker ids for 4 trials"):
        bootstrap_intervals(scores, labels, speakers=["a", "b", "c"])
