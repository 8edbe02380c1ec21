"""Tests of speaker_metric_learning.scoring.normalization."""

import math

import numpy as np
import pytest
import torch

from speaker_metric_learning.scoring.normalization import (
    cohort_statistics,
    normalized_cosine_scores,
    speaker_centroids,
)
from speaker_metric_learning.scoring.trials import TrialList

COHORT = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])


def test_s_norm_by_hand():
    # a = (1, 0): cohort scores 1, 0, -1: mean 0, std sqrt(2/3).
    # b = (1, 1)/sqrt(2): scores r, r, -r with r = 1/sqrt(2): mean r/3,
    # deviations 2r/3, 2r/3, -4r/3: std 2/3. Raw score r.
    trials = TrialList.from_lines(["1 a b"])
    vectors = {"a": [1.0, 0.0], "b": [1.0, 1.0]}
    raw, normalized = normalized_cosine_scores(trials, vectors, COHORT)
    r = 1 / math.sqrt(2)
    expected = (r / math.sqrt(2 / 3) + (r - r / 3) / (2 / 3)) / 2
    assert raw[0] == pytest.approx(r)
    assert normalized[0] == pytest.approx(expected, rel=1e-6)


def test_adaptive_s_norm_by_hand():
    # a = (1, 0): top-2 cohort scores 1, 0: mean 0.5, std 0.5.
    # b = (0.6, 0.8): scores 0.6, 0.8, -0.6, top-2 0.8, 0.6: mean 0.7,
    # std 0.1. Raw score 0.6.
    trials = TrialList.from_lines(["1 a b"])
    vectors = {"a": [1.0, 0.0], "b": [0.6, 0.8]}
    _, normalized = normalized_cosine_scores(trials, vectors, COHORT, top_k=2)
    expected = ((0.6 - 0.5) / 0.5 + (0.6 - 0.7) / 0.1) / 2
    assert normalized[0] == pytest.approx(expected, rel=1e-5)


def _naive_normalized_scores(trials, vectors, cohort, top_k):
    """One trial at a time, with numpy."""
    cohort = cohort / np.linalg.norm(cohort, axis=1, keepdims=True)

    def unit(vector):
        return vector / np.linalg.norm(vector)

    def stats(vector):
        scores = np.sort(cohort @ unit(vector))[::-1][:top_k]
        return scores.mean(), scores.std()

    normalized = []
    for enrol, test in zip(trials.enrol, trials.test, strict=True):
        score = unit(vectors[enrol]) @ unit(vectors[test])
        (mean_e, std_e), (mean_t, std_t) = (
            stats(vectors[enrol]),
            stats(vectors[test]),
        )
        normalized.append(
            ((score - mean_e) / std_e + (score - mean_t) / std_t) / 2
        )
    return np.array(normalized)


@pytest.mark.parametrize("top_k", [None, 5, 20])
def test_vectorised_normalization_equals_one_trial_at_a_time(top_k):
    rng = np.random.default_rng(0)
    utterances = [f"u{i}" for i in range(12)]
    vectors = {u: rng.normal(size=6) for u in utterances}
    pairs = rng.integers(0, len(utterances), size=(40, 2))
    lines = [  # one label per pair: a trial listed twice keeps its label
        f"{(enrol + test) % 2} {utterances[enrol]} {utterances[test]}"
        for enrol, test in pairs.tolist()
    ]
    trials = TrialList.from_lines(lines)
    cohort = rng.normal(size=(20, 6))
    _, normalized = normalized_cosine_scores(
        trials, vectors, cohort, top_k=top_k, chunk_size=5
    )
    expected = _naive_normalized_scores(trials, vectors, cohort, top_k)
    assert normalized == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_full_top_k_is_plain_s_norm():
    rng = np.random.default_rng(1)
    embeddings, cohort = rng.normal(size=(7, 4)), rng.normal(size=(9, 4))
    plain = cohort_statistics(embeddings, cohort)
    adaptive = cohort_statistics(embeddings, cohort, top_k=9)
    for a, b in zip(plain, adaptive, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_top_k_larger_than_cohort_is_refused():
    with pytest.raises(ValueError, match="top_k=4 but the cohort has 3"):
        cohort_statistics(torch.ones(1, 2), COHORT, top_k=4)


def test_speaker_centroids_average_normalised_embeddings():
    embeddings = torch.tensor([[3.0, 4.0], [0.0, 2.0], [5.0, 0.0]])
    ids, centroids = speaker_centroids(embeddings, ["s1", "s1", "s2"])
    assert ids == ["s1", "s2"]
    expected = torch.tensor([[0.3, 0.9], [1.0, 0.0]])
    assert torch.allclose(centroids, expected)
