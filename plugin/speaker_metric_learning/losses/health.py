"""Training-health monitor: epoch summaries of the loss statistics and
warnings when embeddings collapse or a pair loss stops learning.

A Brain feeds it every training batch and checks it once per epoch::

    def compute_objectives(self, predictions, batch, stage):
        ...
        loss = self.modules.loss(embeddings, labels)
        if stage == sb.Stage.TRAIN:
            self.hparams.health.update(self.modules.loss, embeddings)
        return loss

    def on_stage_end(self, stage, stage_loss, epoch):
        if stage == sb.Stage.TRAIN:
            stats = {"loss": stage_loss, **self.hparams.health.check()}

``check()`` logs the warnings (``logging.warning``), returns the epoch
summary and starts a new epoch.

Authors
 * Speaker metric learning contributors 2025
"""

import logging
import math

import torch

from speaker_metric_learning.losses.base import flatten_embeddings
from speaker_metric_learning.losses.distances import cosine_similarity_matrix

logger = logging.getLogger(__name__)


class TrainingHealth:
    """Accumulates batch statistics over an epoch and detects failures.

    Warnings, at most one of each kind per epoch:

    - collapse: the mean cosine similarity between the embeddings of a batch
      (distinct items, averaged over the epoch) exceeds
      ``collapse_cosine``, or the embeddings have (near) zero norm: all
      embeddings point the same way and carry no speaker information;
    - inactive: the loss reports an ``active_fraction`` of 0 on every batch
      of the epoch: no pair or triplet violated the margin, so the loss gave
      no gradient;
    - non-finite: some embeddings were NaN or infinite.

    Arguments
    ---------
    collapse_cosine : float
        Mean pairwise cosine above which embeddings count as collapsed.
    min_norm : float
        Mean embedding norm below which embeddings count as collapsed.

    Example
    -------
    >>> from speaker_metric_learning.losses import TripletLoss
    >>> health = TrainingHealth()
    >>> loss = TripletLoss(margin=0.0)
    >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0]])
    >>> _ = loss(x, torch.tensor([0, 0, 1]))
    >>> health.update(loss, x)
    >>> [message[:31] for message in health.warnings()]
    ['no pair or triplet violated the']
    >>> summary = health.check()  # logs the warning, starts a new epoch
    >>> summary["active_fraction"], summary["batches"], health.batches
    (0.0, 1.0, 0)
    """

    def __init__(self, collapse_cosine=0.99, min_norm=1e-6):
        self.collapse_cosine = collapse_cosine
        self.min_norm = min_norm
        self.reset()

    def reset(self):
        """Forgets the batches seen so far (start of an epoch)."""
        self.batches = 0
        self.totals = {}
        self.counts = {}
        self.ever_active = False
        self.nonfinite_batches = 0

    @torch.no_grad()
    def update(self, loss_module, embeddings):
        """Adds one training batch.

        Arguments
        ---------
        loss_module : MetricLoss
            The loss, just after its forward (its ``statistics`` are read).
        embeddings : torch.Tensor
            The batch's embeddings, ``[batch, dim]`` or ``[batch, 1, dim]``.
        """
        embeddings = flatten_embeddings(embeddings)
        self.batches += 1
        if not torch.isfinite(embeddings).all():
            self.nonfinite_batches += 1
            return
        batch_statistics = dict(loss_module.statistics)
        batch_statistics["mean_pairwise_cosine"] = mean_pairwise_cosine(
            embeddings
        )
        for name, value in batch_statistics.items():
            if math.isnan(value):
                continue
            self.totals[name] = self.totals.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1
        if batch_statistics.get("active_fraction", 1.0) > 0:
            self.ever_active = True

    def summary(self):
        """Epoch means of every statistic, plus ``batches``.

        Returns
        -------
        dict
            Python floats; ``mean_pairwise_cosine`` is the mean over batches
            of the mean cosine between distinct embeddings.
        """
        means = {
            name: total / self.counts[name]
            for name, total in self.totals.items()
        }
        means["batches"] = float(self.batches)
        return means

    def warnings(self):
        """Descriptions of the problems seen this epoch (may be empty).

        Returns
        -------
        list of str
        """
        found = []
        summary = self.summary()
        if self.nonfinite_batches:
            found.append(
                f"{self.nonfinite_batches} of {self.batches} batches gave "
                "NaN or infinite embeddings: lower the learning rate or check "
                "the input audio"
            )
        cosine = summary.get("mean_pairwise_cosine", 0.0)
        norm = summary.get("embedding_norm", math.inf)
        if cosine > self.collapse_cosine or norm < self.min_norm:
            found.append(
                "embeddings collapsed: mean cosine between embeddings of a "
                f"batch is {cosine:.4f} and mean norm {norm:.3g}, so they "
                "barely tell speakers apart. Usual in the first epochs from "
                "a random start; if it lasts, try a lower learning rate or "
                "another margin"
            )
        if "active_fraction" in summary and not self.ever_active:
            found.append(
                "no pair or triplet violated the margin during the epoch: "
                "the loss gave no gradient (margin too small, miner too "
                "strict, or the task is already solved on training batches)"
            )
        return found

    def check(self):
        """Logs this epoch's warnings, returns its summary and resets.

        Returns
        -------
        dict
            The :meth:`summary` of the epoch that ends.
        """
        for message in self.warnings():
            logger.warning("Training health: %s", message)
        summary = self.summary()
        self.reset()
        return summary


def mean_pairwise_cosine(embeddings):
    """Mean cosine similarity between distinct embeddings of a batch.

    Arguments
    ---------
    embeddings : torch.Tensor
        ``[batch, dim]``.

    Returns
    -------
    float
        NaN for a batch of one.

    Example
    -------
    >>> mean_pairwise_cosine(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]]))
    0.3333333432674408
    """
    batch = len(embeddings)
    if batch < 2:
        return math.nan
    cosines = cosine_similarity_matrix(embeddings, embeddings)
    return float(
        (cosines.sum() - cosines.diagonal().sum()) / (batch**2 - batch)
    )
