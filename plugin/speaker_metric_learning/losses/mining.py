"""Valid pairs and triplets of a batch, and the miners that select them.

:func:`same_label_pairs` and :func:`all_triplets` enumerate, from the labels
alone, every pair and every (anchor, positive, negative) triplet a batch
offers. A miner then keeps some of them by looking at the batch's distance
matrix, without gradient:

- :class:`AllMiner` keeps everything (the reference setting);
- :class:`HardNegativeMiner` keeps triplets whose negative is no farther
  from the anchor than the positive;
- :class:`SemiHardNegativeMiner` keeps triplets whose negative is farther
  than the positive, but within the margin.

Miners select triplets; a pair loss receives the pairs those triplets
contain (see :meth:`Miner.pairs`), except :class:`AllMiner`, which returns
every pair, including negatives between speakers with a single item.

A pair loss takes a miner object or one of the names of :data:`MINERS`
(see :func:`make_miner`), which is what the ``mining`` option of
``hparams/triplet.yaml`` and ``hparams/contrastive.yaml`` passes.

Authors
 * Speaker metric learning contributors 2025
"""

import torch


def same_label_pairs(labels):
    """Masks of the ordered positive and negative pairs of a batch.

    Arguments
    ---------
    labels : torch.Tensor
        ``[batch]`` integer labels.

    Returns
    -------
    positive : torch.Tensor
        ``[batch, batch]`` bool, True where ``i != j`` share a label.
    negative : torch.Tensor
        ``[batch, batch]`` bool, True where the labels differ.

    Example
    -------
    >>> positive, negative = same_label_pairs(torch.tensor([0, 0, 1]))
    >>> positive.int()
    tensor([[0, 1, 0],
            [1, 0, 0],
            [0, 0, 0]], dtype=torch.int32)
    >>> negative.int()
    tensor([[0, 0, 1],
            [0, 0, 1],
            [1, 1, 0]], dtype=torch.int32)
    """
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    diagonal = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~diagonal, ~same


def all_triplets(labels):
    """Every (anchor, positive, negative) triplet of a batch.

    Anchor and positive are two different items of one speaker; the
    negative is an item of another speaker. Both orders of an
    anchor-positive pair are included.

    Arguments
    ---------
    labels : torch.Tensor
        ``[batch]`` integer labels.

    Returns
    -------
    anchors, positives, negatives : torch.Tensor
        Three ``[n_triplets]`` int64 index tensors.

    Example
    -------
    >>> anchors, positives, negatives = all_triplets(torch.tensor([0, 0, 1]))
    >>> torch.stack([anchors, positives, negatives], dim=1)
    tensor([[0, 1, 2],
            [1, 0, 2]])
    """
    positive, negative = same_label_pairs(labels)
    anchors, positives = positive.nonzero(as_tuple=True)
    pair, negatives = negative[anchors].nonzero(as_tuple=True)
    return anchors[pair], positives[pair], negatives


class Miner:
    """Base class of the miners: keeps triplets by a rule on distances.

    Subclasses implement ``keep(positive_distances, negative_distances,
    margin)``, returning a bool mask over the triplets. The mining runs
    without gradient.

    Example
    -------
    >>> class FarPositives(Miner):
    ...     def keep(self, positive_distances, negative_distances, margin):
    ...         return positive_distances > margin
    >>> distances = torch.tensor([[0.0, 0.9, 0.2], [0.9, 0.0, 0.5],
    ...                           [0.2, 0.5, 0.0]])
    >>> FarPositives().triplets(distances, torch.tensor([0, 0, 1]), 0.5)
    (tensor([0, 1]), tensor([1, 0]), tensor([2, 2]))
    """

    @torch.no_grad()
    def triplets(self, distances, labels, margin):
        """Selects triplets of the batch.

        Arguments
        ---------
        distances : torch.Tensor
            ``[batch, batch]`` distance matrix.
        labels : torch.Tensor
            ``[batch]`` integer labels.
        margin : float
            The margin of the loss (used by semi-hard mining).

        Returns
        -------
        anchors, positives, negatives : torch.Tensor
            Three ``[n_kept]`` int64 index tensors.
        """
        anchors, positives, negatives = all_triplets(labels)
        kept = self.keep(
            distances[anchors, positives], distances[anchors, negatives], margin
        )
        return anchors[kept], positives[kept], negatives[kept]

    @torch.no_grad()
    def pairs(self, distances, labels, margin):
        """Selects the ordered pairs contained in the selected triplets.

        Arguments
        ---------
        distances : torch.Tensor
            ``[batch, batch]`` distance matrix.
        labels : torch.Tensor
            ``[batch]`` integer labels.
        margin : float
            The margin of the loss.

        Returns
        -------
        positive : torch.Tensor
            ``[batch, batch]`` bool mask of the kept positive pairs.
        negative : torch.Tensor
            ``[batch, batch]`` bool mask of the kept negative pairs.
        """
        anchors, positives, negatives = self.triplets(distances, labels, margin)
        positive = torch.zeros_like(distances, dtype=torch.bool)
        negative = torch.zeros_like(distances, dtype=torch.bool)
        positive[anchors, positives] = True
        negative[anchors, negatives] = True
        return positive, negative

    def keep(self, positive_distances, negative_distances, margin):
        """Returns the bool mask of the triplets to keep; to override.

        Arguments
        ---------
        positive_distances : torch.Tensor
            ``[n_triplets]`` anchor-positive distances.
        negative_distances : torch.Tensor
            ``[n_triplets]`` anchor-negative distances.
        margin : float
            The margin of the loss.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement keep")


class AllMiner(Miner):
    """Keeps every valid pair and triplet of the batch.

    Example
    -------
    >>> distances = torch.zeros(3, 3)
    >>> labels = torch.tensor([0, 1, 2])  # one item per speaker
    >>> len(AllMiner().triplets(distances, labels, 0.4)[0])
    0
    >>> positive, negative = AllMiner().pairs(distances, labels, 0.4)
    >>> int(positive.sum()), int(negative.sum())
    (0, 6)
    """

    def keep(self, positive_distances, negative_distances, margin):
        """Keeps all triplets.

        Arguments
        ---------
        positive_distances : torch.Tensor
            ``[n_triplets]`` anchor-positive distances.
        negative_distances : torch.Tensor
            ``[n_triplets]`` anchor-negative distances.
        margin : float
            Unused.

        Returns
        -------
        torch.Tensor
            All True.
        """
        return torch.ones_like(positive_distances, dtype=torch.bool)

    @torch.no_grad()
    def pairs(self, distances, labels, margin):
        """Every ordered pair of distinct items.

        Arguments
        ---------
        distances : torch.Tensor
            ``[batch, batch]`` distance matrix (unused).
        labels : torch.Tensor
            ``[batch]`` integer labels.
        margin : float
            Unused.

        Returns
        -------
        positive : torch.Tensor
            ``[batch, batch]`` bool mask of the positive pairs.
        negative : torch.Tensor
            ``[batch, batch]`` bool mask of the negative pairs.
        """
        return same_label_pairs(labels)


class HardNegativeMiner(Miner):
    """Keeps triplets whose negative is as close to the anchor as the positive.

    A triplet is hard when ``d(anchor, negative) <= d(anchor, positive)``.

    Example
    -------
    >>> distances = torch.tensor([[0.0, 0.3, 0.2], [0.3, 0.0, 0.5],
    ...                           [0.2, 0.5, 0.0]])
    >>> HardNegativeMiner().triplets(distances, torch.tensor([0, 0, 1]), 0.4)
    (tensor([0]), tensor([1]), tensor([2]))
    """

    def keep(self, positive_distances, negative_distances, margin):
        """Keeps ``d(a, n) <= d(a, p)``.

        Arguments
        ---------
        positive_distances : torch.Tensor
            ``[n_triplets]`` anchor-positive distances.
        negative_distances : torch.Tensor
            ``[n_triplets]`` anchor-negative distances.
        margin : float
            Unused.

        Returns
        -------
        torch.Tensor
            Bool mask.
        """
        return negative_distances <= positive_distances


class SemiHardNegativeMiner(Miner):
    """Keeps triplets whose negative lies beyond the positive, within margin.

    A triplet is semi-hard when
    ``d(a, p) < d(a, n) <= d(a, p) + margin``, where ``margin`` is the
    loss's current margin.

    Example
    -------
    >>> distances = torch.tensor([[0.0, 0.3, 0.5], [0.3, 0.0, 0.9],
    ...                           [0.5, 0.9, 0.0]])
    >>> SemiHardNegativeMiner().triplets(
    ...     distances, torch.tensor([0, 0, 1]), 0.4
    ... )
    (tensor([0]), tensor([1]), tensor([2]))
    """

    def keep(self, positive_distances, negative_distances, margin):
        """Keeps ``d(a, p) < d(a, n) <= d(a, p) + margin``.

        Arguments
        ---------
        positive_distances : torch.Tensor
            ``[n_triplets]`` anchor-positive distances.
        negative_distances : torch.Tensor
            ``[n_triplets]`` anchor-negative distances.
        margin : float
            The loss's margin.

        Returns
        -------
        torch.Tensor
            Bool mask.
        """
        gap = negative_distances - positive_distances
        return (gap > 0) & (gap <= margin)


#: The miners a pair loss can be given by name (``mining`` in the recipes).
MINERS = {
    "all": AllMiner,
    "hard": HardNegativeMiner,
    "semihard": SemiHardNegativeMiner,
}


def make_miner(miner):
    """The miner of a pair loss, from a miner, a name or None.

    Arguments
    ---------
    miner : Miner or str or None
        A miner object (returned as it is), a name of :data:`MINERS`, or
        None for :class:`AllMiner`.

    Returns
    -------
    Miner
        The miner.

    Raises
    ------
    ValueError
        If the name is not one of :data:`MINERS`.

    Example
    -------
    >>> type(make_miner(None)).__name__, type(make_miner("semihard")).__name__
    ('AllMiner', 'SemiHardNegativeMiner')
    >>> make_miner("hardest")
    Traceback (most recent call last):
    ...
    ValueError: unknown miner 'hardest': use null, 'all', 'hard' or 'semihard'
    """
    if miner is None:
        return AllMiner()
    if isinstance(miner, Miner):
        return miner
    if not isinstance(miner, str) or miner not in MINERS:
        *first, last = (repr(name) for name in MINERS)
        raise ValueError(
            f"unknown miner {miner!r}: use null, {', '.join(first)} or {last}"
        )
    return MINERS[miner]()
