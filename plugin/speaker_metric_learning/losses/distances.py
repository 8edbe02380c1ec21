"""Similarity and distance matrices shared by all the losses.

The classification losses compare embeddings with class weights through
:func:`cosine_similarity_matrix`; the pair losses compare the embeddings of a
batch with each other through :func:`distance_matrix`, computed once per
batch.

Authors
 * Speaker metric learning contributors 2025
"""

import torch
import torch.nn.functional as F

DISTANCES = ("cosine", "euclidean")


def cosine_similarity_matrix(first, second, eps=1e-12):
    """Cosine similarity between every row of ``first`` and of ``second``.

    Arguments
    ---------
    first : torch.Tensor
        ``[n, dim]``.
    second : torch.Tensor
        ``[m, dim]``.
    eps : float
        Lower bound of the norms, so that zero vectors give zero similarity.

    Returns
    -------
    torch.Tensor
        ``[n, m]`` cosines in [-1, 1].

    Example
    -------
    >>> a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> b = torch.tensor([[3.0, 3.0]])
    >>> cosine_similarity_matrix(a, b)
    tensor([[0.7071],
            [0.7071]])
    """
    first = F.normalize(first, dim=1, eps=eps)
    second = F.normalize(second, dim=1, eps=eps)
    return first @ second.t()


def check_distance(distance):
    """Raises a clear ValueError unless ``distance`` is a known name.

    Arguments
    ---------
    distance : str
        ``"cosine"`` or ``"euclidean"``.

    Example
    -------
    >>> check_distance("cosine")
    >>> check_distance("manhattan")
    Traceback (most recent call last):
    ...
    ValueError: unknown distance 'manhattan': use 'cosine' or 'euclidean'
    """
    if distance not in DISTANCES:
        raise ValueError(
            f"unknown distance {distance!r}: use 'cosine' or 'euclidean'"
        )


def distance_matrix(embeddings, distance="cosine"):
    """Distances between every pair of embeddings of a batch.

    Arguments
    ---------
    embeddings : torch.Tensor
        ``[batch, dim]``.
    distance : str
        ``"cosine"``: one minus the cosine similarity, in [0, 2];
        ``"euclidean"``: L2 distance between the raw embeddings. Its
        gradient is taken as zero where two embeddings coincide.

    Returns
    -------
    torch.Tensor
        ``[batch, batch]`` symmetric distances.

    Example
    -------
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-2.0, 0.0]])
    >>> distance_matrix(x, "cosine")
    tensor([[0., 1., 2.],
            [1., 0., 1.],
            [2., 1., 0.]])
    >>> distance_matrix(x, "euclidean")[0]
    tensor([0.0000, 1.4142, 3.0000])
    """
    check_distance(distance)
    if distance == "cosine":
        return 1.0 - cosine_similarity_matrix(embeddings, embeddings)
    return torch.cdist(
        embeddings, embeddings, compute_mode="donot_use_mm_for_euclid_dist"
    )
