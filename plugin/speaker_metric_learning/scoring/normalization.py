"""Score normalisation with a cohort: s-norm and adaptive s-norm (AS-norm).

Every utterance is compared once with every cohort embedding (for instance
the mean embedding of each training speaker); the mean and standard deviation
of its cohort scores -- all of them for s-norm, its ``top_k`` largest for
adaptive s-norm -- are computed once per utterance, then each trial score
``s`` of enrolment ``e`` and test ``t`` becomes

    ``(s - mean_e) / std_e / 2 + (s - mean_t) / std_t / 2``.

Standard deviations are population ones (divided by the number of scores).
Cosine similarity is used throughout, as for the trial scores themselves.
"""

import numpy as np
import torch

from speaker_metric_learning.scoring.cosine import embedding_matrix, pair_scores


def speaker_centroids(embeddings, speakers):
    """Mean of the L2-normalised embeddings of each speaker.

    Arguments
    ---------
    embeddings : torch.Tensor or numpy.ndarray
        [N, D] (or [N, 1, D]) embeddings.
    speakers : sequence
        Speaker id of each embedding.

    Returns
    -------
    speaker_ids : list
        Distinct speaker ids, sorted.
    centroids : torch.Tensor
        [S, D] float32 mean normalised embedding of each speaker.

    Example
    -------
    >>> ids, centroids = speaker_centroids(
    ...     torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]]), ["b", "a", "a"]
    ... )
    >>> ids, centroids.tolist()
    (['a', 'b'], [[0.0, 1.0], [1.0, 0.0]])
    """
    matrix = torch.as_tensor(np.asarray(embeddings)).float()
    matrix = torch.nn.functional.normalize(matrix.reshape(len(speakers), -1))
    speaker_ids, index = np.unique(np.asarray(speakers), return_inverse=True)
    index = torch.from_numpy(index.reshape(-1))
    sums = torch.zeros(len(speaker_ids), matrix.shape[1])
    sums.index_add_(0, index, matrix)
    counts = torch.bincount(index, minlength=len(speaker_ids))
    return speaker_ids.tolist(), sums / counts[:, None]


def cohort_statistics(embeddings, cohort, top_k=None, chunk_size=4096):
    """Mean and standard deviation of each embedding's cohort scores.

    Arguments
    ---------
    embeddings : torch.Tensor
        [N, D] embeddings (normalised here).
    cohort : torch.Tensor or numpy.ndarray
        [K, D] cohort embeddings (normalised here).
    top_k : int, optional
        Keep only the ``top_k`` largest cohort scores of each embedding
        (adaptive s-norm); all of them when None (s-norm).
    chunk_size : int
        Embeddings scored against the cohort at once.

    Returns
    -------
    mean : torch.Tensor
        [N] mean cohort score.
    std : torch.Tensor
        [N] population standard deviation of the cohort scores.

    Example
    -------
    >>> mean, std = cohort_statistics(
    ...     torch.tensor([[1.0, 0.0]]),
    ...     torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]),
    ...     top_k=2,
    ... )
    >>> mean.tolist(), std.tolist()
    ([0.5], [0.5])
    """
    embeddings = torch.nn.functional.normalize(
        torch.as_tensor(np.asarray(embeddings)).float(), dim=1
    )
    cohort = torch.nn.functional.normalize(
        torch.as_tensor(np.asarray(cohort))
        .float()
        .reshape(-1, embeddings.shape[1]),
        dim=1,
    )
    if top_k is not None and not 0 < top_k <= len(cohort):
        raise ValueError(
            f"top_k={top_k} but the cohort has {len(cohort)} embeddings: "
            "choose 1 <= top_k <= cohort size (or None for plain s-norm)."
        )
    means, stds = [], []
    for start in range(0, len(embeddings), chunk_size):
        scores = embeddings[start : start + chunk_size] @ cohort.T
        if top_k is not None:
            scores = torch.topk(scores, top_k, dim=1, sorted=False).values
        std, mean = torch.std_mean(scores, dim=1, correction=0)
        means.append(mean)
        stds.append(std)
    return torch.cat(means), torch.cat(stds)


def symmetric_normalization(scores, enrol_stats, test_stats):
    """S-norm of trial scores given each side's cohort statistics.

    Arguments
    ---------
    scores : array-like
        [T] raw trial scores.
    enrol_stats : tuple of array-like
        ``(mean, std)`` [T] of each trial's enrolment utterance.
    test_stats : tuple of array-like
        ``(mean, std)`` [T] of each trial's test utterance.

    Returns
    -------
    numpy.ndarray
        [T] normalised scores.

    Example
    -------
    >>> symmetric_normalization([0.5], ([0.1], [0.2]), ([0.3], [0.4])).tolist()
    [1.25]
    """
    scores = np.asarray(scores, dtype=np.float64)
    total = np.zeros_like(scores)
    for mean, std in (enrol_stats, test_stats):
        mean = np.asarray(mean, dtype=np.float64)
        std = np.maximum(np.asarray(std, dtype=np.float64), 1e-12)
        total += (scores - mean) / std
    return total / 2


def normalized_cosine_scores(
    trials, embeddings, cohort, top_k=None, chunk_size=4096
):
    """Cosine scores of a trial list, s-normalised (or AS-normalised).

    Arguments
    ---------
    trials : speaker_metric_learning.scoring.trials.TrialList
        The trials.
    embeddings : dict or tuple
        ``{utterance_id: vector}`` or ``(ids, matrix)``.
    cohort : torch.Tensor or numpy.ndarray
        [K, D] cohort embeddings, e.g. from ``speaker_centroids``.
    top_k : int, optional
        Adaptive s-norm with the ``top_k`` closest cohort embeddings of each
        utterance; plain s-norm when None.
    chunk_size : int
        Utterances scored against the cohort at once.

    Returns
    -------
    raw : numpy.ndarray
        [T] float32 cosine scores.
    normalized : numpy.ndarray
        [T] float64 normalised scores.

    Example
    -------
    >>> from speaker_metric_learning.scoring.trials import TrialList
    >>> trials = TrialList.from_lines(["1 a b"])
    >>> vectors = {"a": [1.0, 0.0], "b": [1.0, 1.0]}
    >>> cohort = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    >>> raw, normalized = normalized_cosine_scores(trials, vectors, cohort)
    >>> round(float(normalized[0]), 4)
    0.7866
    """
    matrix = embedding_matrix(embeddings, trials.utterances, trials)
    raw = pair_scores(matrix, trials.enrol_index, trials.test_index)
    mean, std = cohort_statistics(matrix, cohort, top_k, chunk_size)
    mean, std = mean.numpy(), std.numpy()
    normalized = symmetric_normalization(
        raw,
        (mean[trials.enrol_index], std[trials.enrol_index]),
        (mean[trials.test_index], std[trials.test_index]),
    )
    return raw, normalized
