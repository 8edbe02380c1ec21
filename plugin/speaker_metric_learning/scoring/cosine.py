"""Cosine scoring of trial lists from embeddings.

The embeddings come as ``{utterance_id: vector}`` or ``(ids, matrix)``; the
trials as a ``speaker_metric_learning.scoring.trials.TrialList``, whose
utterances are indexed once, so every trial is scored by a row-wise dot
product of two gathered rows, in blocks, without copying the embedding
matrix. These functions are also importable from
``speaker_metric_learning.scoring.trials``, where they were first.
"""

import numpy as np
import torch

from speaker_metric_learning.scoring.metrics import equal_error_rate

#: Most pairs :func:`pairwise_eer` scores (all pairs of 2,000 embeddings);
#: beyond, it draws this many at random.
MAX_PAIRS = 2_000_000


def embedding_rows(embeddings, utterances, trials=None):
    """Finds the embedding of each utterance without copying the matrix.

    Arguments
    ---------
    embeddings : dict or tuple
        ``{utterance_id: vector}``, or ``(ids, matrix)`` with one row per id
        (tensor or array).
    utterances : list of str
        The utterance ids wanted, in order.
    trials : TrialList, optional
        When given, a missing utterance is reported with the trial-file line
        where it first appears.

    Returns
    -------
    matrix : numpy.ndarray
        float32 [rows, dim] embeddings (the given matrix when it is already a
        float32 array or CPU tensor).
    rows : numpy.ndarray
        Row of ``matrix`` holding each utterance.

    Raises
    ------
    ValueError
        If an utterance has no embedding.

    Example
    -------
    >>> matrix, rows = embedding_rows((["a", "b"], [[1, 2], [3, 4]]), ["b"])
    >>> rows.tolist(), matrix[rows].tolist()
    ([1], [[3.0, 4.0]])
    """
    if isinstance(embeddings, dict):
        ids = list(embeddings)
        matrix = np.stack(
            [_as_array(vector).reshape(-1) for vector in embeddings.values()]
        )
    else:
        ids, matrix = embeddings
        matrix = _as_array(matrix).reshape(len(ids), -1)
    if list(ids) == list(utterances):
        return matrix, np.arange(len(ids))
    row_of = {utterance: row for row, utterance in enumerate(ids)}
    rows = np.fromiter(
        (row_of.get(utterance, -1) for utterance in utterances),
        dtype=np.int64,
        count=len(utterances),
    )
    if (rows < 0).any():
        missing = utterances[int(np.flatnonzero(rows < 0)[0])]
        where = ""
        if trials is not None:
            where = f" ({trials.source}, line {trials.first_line(missing)})"
        raise ValueError(
            f"No embedding for utterance '{missing}'{where}: extract "
            "embeddings for every utterance of the trial list."
        )
    return matrix, rows


def _as_array(values):
    """float32 numpy view (or copy) of a tensor, array or nested list."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def embedding_matrix(embeddings, utterances, trials=None):
    """Returns the L2-normalised embeddings of ``utterances`` as a matrix.

    Arguments
    ---------
    embeddings : dict or tuple
        ``{utterance_id: vector}``, or ``(ids, matrix)`` with one row per id.
    utterances : list of str
        The utterance ids wanted, in order.
    trials : TrialList, optional
        Used to name the trial-file line of a missing utterance.

    Returns
    -------
    torch.Tensor
        float32 matrix [len(utterances), dim] with unit rows.

    Example
    -------
    >>> embedding_matrix({"a": [3.0, 4.0], "b": [1.0, 0.0]}, ["b", "a"])
    tensor([[1.0000, 0.0000],
            [0.6000, 0.8000]])
    """
    matrix, rows = embedding_rows(embeddings, utterances, trials)
    return torch.nn.functional.normalize(torch.from_numpy(matrix[rows]), dim=1)


def cosine_scores(trials, embeddings, chunk_size=1024):
    """Scores every trial by the cosine similarity of its two embeddings.

    The norm of each embedding is computed once; trials are scored by
    row-wise dot products of index-gathered rows (see ``pair_scores``),
    divided by the two norms. The embedding matrix is never copied.

    Arguments
    ---------
    trials : TrialList
        The trials.
    embeddings : dict or tuple
        ``{utterance_id: vector}`` or ``(ids, matrix)``.
    chunk_size : int
        Trials scored at once (see ``pair_scores``).

    Returns
    -------
    numpy.ndarray
        float32 score of each trial, in [-1, 1].

    Example
    -------
    >>> from speaker_metric_learning.scoring.trials import TrialList
    >>> trials = TrialList.from_lines(["1 a b", "0 a c"])
    >>> vectors = {"a": [1.0, 0.0], "b": [1.0, 1.0], "c": [0.0, 2.0]}
    >>> [round(score, 4) for score in cosine_scores(trials, vectors).tolist()]
    [0.7071, 0.0]
    """
    matrix, rows = embedding_rows(embeddings, trials.utterances, trials)
    enrol, test = rows[trials.enrol_index], rows[trials.test_index]
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    norms = np.maximum(norms, np.float32(1e-12))
    scores = pair_scores(matrix, enrol, test, chunk_size)
    scores /= norms[enrol]
    scores /= norms[test]
    return scores


def pair_scores(matrix, first, second, chunk_size=1024):
    """Row-wise dot products ``matrix[first[i]] . matrix[second[i]]``.

    Arguments
    ---------
    matrix : torch.Tensor or numpy.ndarray
        [rows, dim] matrix.
    first : array-like
        Row index of the first vector of each pair.
    second : array-like
        Row index of the second vector of each pair.
    chunk_size : int
        Pairs computed at once (small blocks of gathered rows stay in cache).

    Returns
    -------
    numpy.ndarray
        Dot product of each pair (dtype of ``matrix``).

    Example
    -------
    >>> pair_scores(torch.eye(2), [0, 0], [0, 1]).tolist()
    [1.0, 0.0]
    """
    matrix = np.asarray(matrix)
    first, second = np.asarray(first), np.asarray(second)
    scores = np.empty(len(first), dtype=matrix.dtype)
    for start in range(0, len(first), chunk_size):
        stop = start + chunk_size
        np.einsum(
            "ij,ij->i",
            matrix.take(first[start:stop], axis=0),
            matrix.take(second[start:stop], axis=0),
            out=scores[start:stop],
        )
    return scores


def pairwise_eer(embeddings, labels, max_pairs=MAX_PAIRS, seed=0):
    """Equal error rate of the cosine scores of pairs of embeddings.

    A pair is a target when its two labels are equal. Every pair is scored
    when there are at most ``max_pairs``, else ``max_pairs`` random pairs of
    distinct items (seeded).

    Arguments
    ---------
    embeddings : torch.Tensor
        Embeddings ``[n, dim]``.
    labels : torch.Tensor
        Speaker labels ``[n]``.
    max_pairs : int
        Most pairs scored.
    seed : int
        Seed of the pair draw.

    Returns
    -------
    float
        The EER in [0, 1], or NaN without target or non-target pairs.

    Example
    -------
    >>> embeddings = torch.tensor([[1.0, 0.1], [1.0, -0.1], [0.1, 1.0]])
    >>> pairwise_eer(embeddings, torch.tensor([0, 0, 1]))
    0.0
    >>> pairwise_eer(embeddings, torch.tensor([0, 1, 1]))  # least similar
    1.0
    """
    unit = torch.nn.functional.normalize(embeddings.float(), dim=1)
    n = len(unit)
    if n * (n - 1) // 2 <= max_pairs:
        first, second = torch.triu_indices(n, n, offset=1)
    else:
        generator = torch.Generator().manual_seed(seed)
        first = torch.randint(n, (max_pairs,), generator=generator)
        second = torch.randint(n - 1, (max_pairs,), generator=generator)
        second += second >= first  # never the item itself
    scores = torch.cat(
        [
            (unit[i] * unit[j]).sum(dim=1)
            for i, j in zip(
                first.split(65536), second.split(65536), strict=True
            )
        ]
    )
    target = labels[first] == labels[second]
    if target.all() or not target.any():
        return float("nan")
    eer, _ = equal_error_rate(scores[target], scores[~target])
    return float(eer)
