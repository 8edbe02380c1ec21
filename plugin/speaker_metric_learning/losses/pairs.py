"""Pair losses: contrastive and triplet, on one distance matrix per batch.

Both losses compute the batch's distance matrix once
(:func:`~speaker_metric_learning.losses.distances.distance_matrix`), let a
miner (:mod:`~speaker_metric_learning.losses.mining`, all pairs/triplets by
default) select what enters the loss, and report in ``statistics``:

- ``active_fraction``: fraction of the selected pairs or triplets with a
  non-zero loss (0 when nothing was selected);
- ``mean_positive_distance`` / ``mean_negative_distance``: mean distance
  over every same-speaker / different-speaker pair of the batch (NaN when
  the batch has none);
- ``margin``: the margin used, and ``embedding_norm``.

``margin`` is a plain attribute read at each forward, so a schedule (see
:class:`LinearMarginWarmup`) may assign it during training. Margins are in
the units of the distance: cosine distance lies in [0, 2].

Authors
 * Speaker metric learning contributors 2025
"""

import torch
import torch.nn.functional as F

from speaker_metric_learning.losses.base import MetricLoss
from speaker_metric_learning.losses.distances import (
    check_distance,
    distance_matrix,
)
from speaker_metric_learning.losses.mining import make_miner, same_label_pairs


class PairLoss(MetricLoss):
    """Base class of the pair losses: distances, mining and statistics.

    Subclasses implement ``loss_from_distances(distances, labels)``
    returning ``(loss, statistics)``.

    Validation (the EER that ``SpeakerBrain`` reports) and evaluation
    (``train.py``, ``scoring score-model``) score trials by cosine
    similarity whatever ``distance`` is: with ``"euclidean"`` the embeddings
    are scored in another geometry than the one they were trained in, and
    ``train.py`` warns.

    Arguments
    ---------
    margin : float
        Non-negative margin, in distance units.
    distance : str
        ``"cosine"`` (one minus cosine similarity) or ``"euclidean"``.
    miner : Miner or str, optional
        Selects pairs or triplets: a miner, or its name (``"all"``,
        ``"hard"``, ``"semihard"``: see :func:`make_miner`); defaults to
        :class:`AllMiner`.

    Example
    -------
    >>> class MeanDistance(PairLoss):
    ...     def loss_from_distances(self, distances, labels):
    ...         return distances.mean(), {}
    >>> loss = MeanDistance(margin=0.2, distance="euclidean")
    >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    >>> loss(x, torch.tensor([0, 0, 1]))  # 2 * (5 + 1 + sqrt(18)) / 9
    tensor(2.2761)
    >>> loss.statistics["mean_positive_distance"]
    5.0
    """

    def __init__(self, margin=0.4, distance="cosine", miner=None):
        super().__init__()
        check_distance(distance)
        if margin < 0:
            raise ValueError(f"margin must be non-negative, got {margin}")
        self.margin = margin
        self.distance = distance
        self.miner = make_miner(miner)

    def compute_loss(self, embeddings, labels):
        """Distance matrix, subclass loss and distance statistics.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[batch, dim]``.
        labels : torch.Tensor
            ``[batch]`` integer labels.

        Returns
        -------
        loss : torch.Tensor
            The scalar loss.
        statistics : dict
            Subclass statistics plus mean distances and margin.
        """
        if len(labels) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least two embeddings per "
                "batch to form pairs"
            )
        distances = distance_matrix(embeddings, self.distance)
        loss, statistics = self.loss_from_distances(distances, labels)
        positive, negative = same_label_pairs(labels)
        detached = distances.detach()
        statistics["mean_positive_distance"] = detached[positive].mean()
        statistics["mean_negative_distance"] = detached[negative].mean()
        statistics["margin"] = self.margin
        return loss, statistics

    def loss_from_distances(self, distances, labels):
        """Returns ``(loss, statistics)``; subclasses must override it.

        Arguments
        ---------
        distances : torch.Tensor
            ``[batch, batch]``.
        labels : torch.Tensor
            ``[batch]``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement loss_from_distances"
        )


def mean_or_zero(values, count, anchor):
    """``values.sum() / count``, or a zero still attached to the graph.

    A batch where the miner selects nothing must still give a loss that
    ``backward()`` accepts, with zero gradients.

    Arguments
    ---------
    values : torch.Tensor
        Terms to sum.
    count : int
        Divisor.
    anchor : torch.Tensor
        Tensor of the graph (e.g. the distance matrix) giving the zero.

    Returns
    -------
    torch.Tensor
        Scalar.

    Example
    -------
    >>> d = torch.ones(2, 2, requires_grad=True)
    >>> mean_or_zero(torch.tensor([]), 0, d)
    tensor(0., grad_fn=<MulBackward0>)
    >>> mean_or_zero(torch.tensor([1.0, 2.0]), 4, d)
    tensor(0.7500)
    """
    if count == 0:
        return anchor.sum() * 0.0
    return values.sum() / count


def activity(terms):
    """Number and fraction of non-zero loss terms (fraction 0 if none).

    Arguments
    ---------
    terms : torch.Tensor
        ``[n]`` non-negative loss terms.

    Returns
    -------
    n_active : int
        Number of non-zero terms.
    fraction : float
        ``n_active / n``, or 0 when ``n`` is 0.

    Example
    -------
    >>> activity(torch.tensor([0.0, 0.3, 0.0, 1.0]))
    (2, 0.5)
    >>> activity(torch.tensor([]))
    (0, 0.0)
    """
    n_active = int((terms.detach() > 0).sum())
    return n_active, n_active / max(len(terms), 1)


class PairContrastiveLoss(PairLoss):
    """Contrastive loss over the pairs of a batch (Hadsell et al., 2006).

    For each selected pair at distance ``d``, the term is ``d^2 / 2`` for
    same-speaker pairs and ``max(0, margin - d)^2 / 2`` for
    different-speaker pairs; the loss is the mean over all selected pairs
    (positives and negatives together, as in the reference code). The
    default miner selects every pair of the batch. ``statistics`` adds
    ``active_fraction`` and ``pairs`` (number of selected ordered pairs).

    Arguments
    ---------
    margin : float
        Distance beyond which negatives stop contributing.
    distance : str
        ``"cosine"`` or ``"euclidean"``.
    miner : Miner or str, optional
        A miner or its name (``"hard"``, ``"semihard"``); defaults to
        :class:`AllMiner`.

    Example
    -------
    >>> loss = PairContrastiveLoss(margin=0.4)
    >>> x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    >>> # d(0,1) = d(1,2) = 1 - 1/sqrt2 = 0.2929, d(0,2) = 1
    >>> # pairs: positive (0,1): 0.2929^2 / 2 = 0.0429; negatives (0,2): 0,
    >>> # (1,2): (0.4 - 0.2929)^2 / 2 = 0.0057; mean over 3 pairs
    >>> loss(x, torch.tensor([0, 0, 1]))
    tensor(0.0162)
    >>> round(loss.statistics["active_fraction"], 4)
    0.6667
    """

    def loss_from_distances(self, distances, labels):
        """Mean contrastive term over the selected pairs.

        Arguments
        ---------
        distances : torch.Tensor
            ``[batch, batch]``.
        labels : torch.Tensor
            ``[batch]``.

        Returns
        -------
        loss : torch.Tensor
            Scalar.
        statistics : dict
            ``active_fraction`` and ``pairs``.
        """
        positive, negative = self.miner.pairs(distances, labels, self.margin)
        positive_terms = distances[positive] ** 2 / 2
        negative_terms = F.relu(self.margin - distances[negative]) ** 2 / 2
        terms = torch.cat([positive_terms, negative_terms])
        loss = mean_or_zero(terms, len(terms), distances)
        _, fraction = activity(terms)
        return loss, {"active_fraction": fraction, "pairs": len(terms)}


class TripletLoss(PairLoss):
    """Triplet margin loss over the triplets of a batch.

    For each selected triplet, the term is
    ``max(0, d(a, p) - d(a, n) + margin)``. The default miner selects every
    triplet (anchor and positive of one speaker, both orders; negative of
    another). The batch must hold at least two items of some speaker and
    two speakers. ``statistics`` adds ``active_fraction`` and ``triplets``
    (number of selected triplets).

    Arguments
    ---------
    margin : float
        Margin between positive and negative distances.
    distance : str
        ``"cosine"`` or ``"euclidean"``.
    miner : Miner or str, optional
        A miner or its name (``"hard"``, ``"semihard"``); defaults to
        :class:`AllMiner`.
    average_over : str
        ``"all"`` (default, as the reference code): mean over the selected
        triplets; ``"active"``: mean over those with a non-zero term (as
        pytorch-metric-learning), which keeps the gradient from fading as
        triplets get satisfied.

    Example
    -------
    >>> loss = TripletLoss(margin=0.4)
    >>> x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    >>> # d(0,1) = 0.2929, d(0,2) = 1, d(1,2) = 0.2929
    >>> # (0, 1, 2): 0.2929 - 1 + 0.4 < 0 -> 0
    >>> # (1, 0, 2): 0.2929 - 0.2929 + 0.4 = 0.4; mean over 2 triplets
    >>> loss(x, torch.tensor([0, 0, 1]))
    tensor(0.2000)
    >>> loss.statistics["active_fraction"], loss.statistics["triplets"]
    (0.5, 2.0)
    """

    def __init__(
        self, margin=0.4, distance="cosine", miner=None, average_over="all"
    ):
        super().__init__(margin=margin, distance=distance, miner=miner)
        if average_over not in ("all", "active"):
            raise ValueError(
                f"average_over must be 'all' or 'active', got {average_over!r}"
            )
        self.average_over = average_over

    def loss_from_distances(self, distances, labels):
        """Mean hinge over the selected triplets.

        Arguments
        ---------
        distances : torch.Tensor
            ``[batch, batch]``.
        labels : torch.Tensor
            ``[batch]``.

        Returns
        -------
        loss : torch.Tensor
            Scalar.
        statistics : dict
            ``active_fraction`` and ``triplets``.

        Raises
        ------
        ValueError
            If the batch holds no valid triplet at all.
        """
        positive, negative = same_label_pairs(labels)
        if not positive.any() or not negative.any():
            raise ValueError(
                "TripletLoss needs a batch with two items of one speaker and "
                "at least two speakers; sample batches with "
                "SpeakerBalancedBatchSampler and chunks_per_speaker >= 2"
            )
        anchors, positives, negatives = self.miner.triplets(
            distances, labels, self.margin
        )
        hinges = F.relu(
            distances[anchors, positives]
            - distances[anchors, negatives]
            + self.margin
        )
        n_active, fraction = activity(hinges)
        count = n_active if self.average_over == "active" else len(hinges)
        loss = mean_or_zero(hinges, count, distances)
        return loss, {"active_fraction": fraction, "triplets": len(hinges)}
