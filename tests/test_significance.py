"""Tests of the paired bootstrap comparison of two systems."""

import numpy as np
import pytest

from speaker_metric_learning.scoring.metrics import (
    equal_error_rate,
    minimum_dcf,
    split_scores,
    trivial_cost,
)
from speaker_metric_learning.scoring.significance import (
    paired_bootstrap,
    stratified_weights,
    weighted_metrics,
)


def toy_trials(n_trials=3000, n_targets=800, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n_trials) < n_targets
    return rng, labels, rng.normal(size=n_trials) + 2.5 * labels


def test_weighted_metrics_equal_the_metrics_of_explicit_resamples():
    rng, labels, scores = toy_trials(n_trials=600, n_targets=150)
    scores = np.round(scores, 1)  # ties too
    indices = [rng.integers(0, 600, size=600) for _ in range(4)]
    weights = np.stack([np.bincount(i, minlength=600) for i in indices])
    eers, dcfs = weighted_metrics(scores, labels, weights, p_target=0.05)
    for row, index in enumerate(indices):
        positive, negative = split_scores(scores[index], labels[index])
        eer, _ = equal_error_rate(positive, negative)
        dcf, _ = minimum_dcf(positive, negative, p_target=0.05)
        assert eers[row] == pytest.approx(eer, abs=1e-6)
        assert dcfs[row] == pytest.approx(dcf / trivial_cost(0.05), abs=1e-6)


def test_stratified_weights_redraw_each_class_with_replacement():
    is_target = np.arange(1000) < 100
    weights = stratified_weights(is_target, 500, np.random.default_rng(1))
    assert (weights[:, is_target].sum(1) == 100).all()
    assert (weights[:, ~is_target].sum(1) == 900).all()
    # Each trial is drawn Binomial(n, 1/n) times: mean 1, P(0) ~ 1/e.
    assert weights.mean() == pytest.approx(1.0, abs=0.01)
    assert (weights == 0).mean() == pytest.approx(np.exp(-1), abs=0.01)


def test_same_ranking_gives_no_difference_and_p_one():
    _, labels, scores = toy_trials()
    test = paired_bootstrap([scores], [2 * scores + 1], labels, 100)
    for name in ("eer", "min_dcf"):
        assert test[name] == {
            "difference": 0.0,
            "ci": [0.0, 0.0],
            "p_value": 1.0,
        }


def test_difference_is_of_the_run_means():
    rng, labels, scores = toy_trials()
    runs_a = [scores, scores + rng.normal(size=len(scores))]
    runs_b = [scores + 2 * rng.normal(size=len(scores)) for _ in range(3)]

    def eer(s):
        return equal_error_rate(*split_scores(s, labels))[0]

    expected = np.mean([eer(s) for s in runs_b]) - np.mean(
        [eer(s) for s in runs_a]
    )
    test = paired_bootstrap(runs_a, runs_b, labels, n_replicates=200)
    assert test["eer"]["difference"] == pytest.approx(expected, abs=1e-6)
    low, high = test["eer"]["ci"]
    assert 0 < low < expected < high
    assert test["eer"]["p_value"] == pytest.approx(2 / 201)


def test_pairing_narrows_the_interval_of_a_small_consistent_difference():
    rng, labels, scores = toy_trials()
    other = scores + 0.1 * rng.normal(size=len(scores))
    paired = paired_bootstrap([scores], [other], labels, n_replicates=400)
    # Unpaired: each system resampled on its own.
    draws = [
        weighted_metrics(
            s, labels, stratified_weights(labels, 400, np.random.default_rng(k))
        )[0]
        for k, s in enumerate((scores, other))
    ]
    unpaired = np.percentile(draws[1] - draws[0], [2.5, 97.5])
    paired_width = paired["eer"]["ci"][1] - paired["eer"]["ci"][0]
    assert paired_width < 0.5 * (unpaired[1] - unpaired[0])


def test_runs_on_different_trials_are_refused():
    _, labels, scores = toy_trials()
    with pytest.raises(ValueError, match="same trials"):
        paired_bootstrap([scores], [scores[:-1]], labels)
    with pytest.raises(ValueError, match="at least one run"):
        paired_bootstrap([], [scores], labels)
