"""Classification losses: softmax, center, congenerous cosine and AAM.

Each loss owns its class weights (and centres) as ``nn.Parameter``, so that
putting the loss among a Brain's ``modules`` hands them to the optimizer and
the checkpointer. All four compute a cross-entropy over class logits; they
differ in how the logits are formed:

- :class:`SoftmaxLoss`: a linear layer without bias;
- :class:`CenterLoss`: the same, plus a pull of each embedding towards a
  learned centre of its class;
- :class:`CongenerousCosineLoss`: scaled cosine between the embedding and
  each class weight;
- :class:`AdditiveAngularMarginLoss`: the same, with the target angle
  increased by a margin.

Authors
 * Speaker metric learning contributors 2025
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from speaker_metric_learning.losses.base import MetricLoss
from speaker_metric_learning.losses.distances import cosine_similarity_matrix


class ClassificationLoss(MetricLoss):
    """Cross-entropy over class logits, with learned class weights.

    Subclasses implement ``logits(embeddings, labels)`` returning the logits
    that enter the cross-entropy and the scores that predict the class (they
    differ when a margin penalises the target class during training).
    Statistics: ``accuracy`` (fraction of the batch whose highest score is
    the target class) and ``embedding_norm``.

    Arguments
    ---------
    embedding_dim : int
        Size of the embeddings.
    n_classes : int
        Number of training speakers.

    Example
    -------
    >>> class Dot(ClassificationLoss):
    ...     def logits(self, embeddings, labels):
    ...         scores = embeddings @ self.weight.t()
    ...         return scores, scores
    >>> loss = Dot(embedding_dim=2, n_classes=3)
    >>> loss.weight.shape
    torch.Size([3, 2])
    >>> loss(torch.randn(4, 2), torch.tensor([0, 1, 2, 3]))
    Traceback (most recent call last):
    ...
    ValueError: labels must be class indices in [0, 3), got values in [0, 3]
    """

    def __init__(self, embedding_dim, n_classes):
        super().__init__()
        if embedding_dim < 1 or n_classes < 2:
            raise ValueError(
                "need embedding_dim >= 1 and n_classes >= 2, got "
                f"embedding_dim={embedding_dim}, n_classes={n_classes}"
            )
        self.embedding_dim = embedding_dim
        self.n_classes = n_classes
        self.weight = nn.Parameter(init_class_weights(n_classes, embedding_dim))

    def compute_loss(self, embeddings, labels):
        """Cross-entropy of the logits and batch accuracy.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[batch, embedding_dim]``.
        labels : torch.Tensor
            ``[batch]`` class indices.

        Returns
        -------
        loss : torch.Tensor
            Mean cross-entropy over the batch.
        statistics : dict
            ``accuracy``.
        """
        self.check_labels(embeddings, labels)
        logits, scores = self.logits(embeddings, labels)
        loss = F.cross_entropy(logits, labels)
        accuracy = (scores.detach().argmax(dim=1) == labels).double().mean()
        return loss, {"accuracy": accuracy}

    def check_labels(self, embeddings, labels):
        """Raises a clear ValueError on a wrong dimension or label.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[batch, dim]``.
        labels : torch.Tensor
            ``[batch]``.
        """
        if embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"{type(self).__name__} expects embeddings of size "
                f"{self.embedding_dim}, got {embeddings.shape[1]}"
            )
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= self.n_classes:
            raise ValueError(
                f"labels must be class indices in [0, {self.n_classes}), "
                f"got values in [{low}, {high}]"
            )

    def logits(self, embeddings, labels):
        """Returns ``(logits, scores)``; subclasses must override it.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[batch, dim]``.
        labels : torch.Tensor
            ``[batch]``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement logits"
        )


def init_class_weights(n_classes, embedding_dim):
    """Class weights drawn like the weights of ``nn.Linear``.

    Arguments
    ---------
    n_classes : int
        Number of rows.
    embedding_dim : int
        Number of columns.

    Returns
    -------
    torch.Tensor
        ``[n_classes, embedding_dim]``, uniform in
        ``[-1 / sqrt(embedding_dim), 1 / sqrt(embedding_dim)]``.

    Example
    -------
    >>> w = init_class_weights(3, 4)
    >>> w.shape, bool(w.abs().max() <= 0.5)
    (torch.Size([3, 4]), True)
    """
    bound = 1.0 / math.sqrt(embedding_dim)
    return torch.empty(n_classes, embedding_dim).uniform_(-bound, bound)


class SoftmaxLoss(ClassificationLoss):
    """Linear classifier without bias followed by the cross-entropy.

    Arguments
    ---------
    embedding_dim : int
        Size of the embeddings.
    n_classes : int
        Number of training speakers.

    Example
    -------
    >>> loss = SoftmaxLoss(embedding_dim=2, n_classes=2)
    >>> with torch.no_grad():
    ...     _ = loss.weight.copy_(torch.eye(2))
    >>> x = torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]]])
    >>> loss(x, torch.tensor([[0], [0]]))  # (log(1+e^-2) + log(1+e)) / 2
    tensor(0.7201, grad_fn=<NllLossBackward0>)
    >>> loss.statistics["accuracy"]
    0.5
    """

    def logits(self, embeddings, labels):
        """Dot products with the class weights.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[batch, embedding_dim]``.
        labels : torch.Tensor
            ``[batch]`` (unused: no margin).

        Returns
        -------
        logits : torch.Tensor
            ``[batch, n_classes]``.
        scores : torch.Tensor
            The same logits.
        """
        logits = F.linear(embeddings, self.weight)
        return logits, logits


class CongenerousCosineLoss(ClassificationLoss):
    """Cross-entropy over scaled cosines to learned class centroids (CoCo).

    Both the embeddings and the centroids (``weight``) are L2-normalised;
    the logit of class ``c`` is ``scale * cos(x, w_c)``.

    Arguments
    ---------
    embedding_dim : int
        Size of the embeddings.
    n_classes : int
        Number of training speakers.
    scale : float
        The factor alpha applied to the cosines.

    Example
    -------
    >>> loss = CongenerousCosineLoss(2, 2, scale=1.0)
    >>> with torch.no_grad():
    ...     _ = loss.weight.copy_(torch.eye(2))
    >>> x = torch.tensor([[5.0, 0.0]])  # cosines 1 and 0
    >>> loss(x, torch.tensor([0]))  # log(1 + e^-1)
    tensor(0.3133, grad_fn=<NllLossBackward0>)
    """

    def __init__(self, embedding_dim, n_classes, scale=6.25):
        super().__init__(embedding_dim, n_classes)
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale = scale

    def logits(self, embeddings, labels):
        """Scaled cosines to the class centroids.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[batch, embedding_dim]``.
        labels : torch.Tensor
            ``[batch]`` (unused: no margin).

        Returns
        -------
        logits : torch.Tensor
            ``[batch, n_classes]``.
        scores : torch.Tensor
            The same logits.
        """
        logits = self.scale * cosine_similarity_matrix(embeddings, self.weight)
        return logits, logits


class AdditiveAngularMarginLoss(ClassificationLoss):
    """Additive angular margin softmax (AAM, ArcFace).

    With ``theta`` the angle between an embedding and its class weight, the
    target logit is ``scale * cos(theta + margin)`` and the other logits are
    ``scale * cos(theta_c)``.

    ``cos(theta + margin)`` stops decreasing once ``theta + margin`` passes
    pi, which would reward pushing an embedding away from its class. There,
    i.e. for ``theta > pi - margin``, the target cosine is instead
    ``cos(theta) - (1 - cos(margin))``: the plain cosine lowered by the
    penalty the margin imposes at ``theta = pi - margin``. The target logit
    thus stays continuous and decreasing in ``theta`` with a non-zero
    gradient.

    ``margin`` is a plain attribute in radians, read at each forward, so a
    schedule (see :class:`LinearMarginWarmup`) may assign it during training.
    Accuracy in ``statistics`` uses the cosines without margin, the way the
    embeddings are scored; ``statistics["margin"]`` records the margin used.

    Arguments
    ---------
    embedding_dim : int
        Size of the embeddings.
    n_classes : int
        Number of training speakers.
    margin : float
        Additive angular margin in radians, in [0, pi / 2].
    scale : float
        The factor s applied to the cosines.

    Example
    -------
    >>> loss = AdditiveAngularMarginLoss(2, 2, margin=math.pi / 2, scale=1.0)
    >>> with torch.no_grad():
    ...     _ = loss.weight.copy_(torch.eye(2))
    >>> x = torch.tensor([[1.0, 0.0]])  # theta = 0, target cos(pi / 2) = 0
    >>> loss(x, torch.tensor([0]))  # log(2)
    tensor(0.6931, grad_fn=<NllLossBackward0>)
    >>> loss.statistics["accuracy"], loss.statistics["margin"]
    (1.0, 1.5707963267948966)
    """

    def __init__(self, embedding_dim, n_classes, margin=0.05, scale=10.0):
        super().__init__(embedding_dim, n_classes)
        if not 0.0 <= margin <= math.pi / 2:
            raise ValueError(
                f"margin must be in [0, pi / 2] radians, got {margin}"
            )
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.margin = margin
        self.scale = scale

    def compute_loss(self, embeddings, labels):
        """Cross-entropy with the margin; records the margin used.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[batch, embedding_dim]``.
        labels : torch.Tensor
            ``[batch]`` class indices.

        Returns
        -------
        loss : torch.Tensor
            Mean cross-entropy over the batch.
        statistics : dict
            ``accuracy`` and ``margin``.
        """
        loss, statistics = super().compute_loss(embeddings, labels)
        statistics["margin"] = self.margin
        return loss, statistics

    def logits(self, embeddings, labels):
        """Scaled cosines, with the margin added to the target angle.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[batch, embedding_dim]``.
        labels : torch.Tensor
            ``[batch]`` class indices.

        Returns
        -------
        logits : torch.Tensor
            ``[batch, n_classes]`` with the margin on the target class.
        scores : torch.Tensor
            ``[batch, n_classes]`` scaled cosines without margin.
        """
        cosines = cosine_similarity_matrix(embeddings, self.weight)
        target = cosines.gather(1, labels.unsqueeze(1))
        sines = (1.0 - target**2).clamp(min=1e-12).sqrt()
        cos_m, sin_m = math.cos(self.margin), math.sin(self.margin)
        with_margin = torch.where(
            target >= -cos_m,
            target * cos_m - sines * sin_m,
            target - (1.0 - cos_m),
        )
        is_target = F.one_hot(labels, self.n_classes).bool()
        logits = torch.where(is_target, with_margin, cosines)
        return self.scale * logits, self.scale * cosines


class CenterLoss(SoftmaxLoss):
    """Softmax cross-entropy plus a pull towards learned class centres.

    The loss is ``CE + center_weight * mean_i (1 - cos(x_i, c_{y_i}))^2 / 2``
    where the centres ``c`` are parameters learned with the network and the
    cross-entropy is that of :class:`SoftmaxLoss`. ``statistics`` adds
    ``cross_entropy`` and ``center_term`` (the mean before weighting).

    Arguments
    ---------
    embedding_dim : int
        Size of the embeddings.
    n_classes : int
        Number of training speakers.
    center_weight : float
        The factor lambda of the centre term.

    Example
    -------
    >>> loss = CenterLoss(2, 2, center_weight=1.0)
    >>> with torch.no_grad():
    ...     _ = loss.weight.zero_()
    ...     _ = loss.centers.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    >>> x = torch.tensor([[1.0, 0.0]])  # CE log(2), cos to centre 0 is 0
    >>> loss(x, torch.tensor([0]))  # log(2) + (1 - 0)^2 / 2
    tensor(1.1931, grad_fn=<AddBackward0>)
    >>> loss.statistics["center_term"]
    0.5
    """

    def __init__(self, embedding_dim, n_classes, center_weight=1.0):
        super().__init__(embedding_dim, n_classes)
        if center_weight < 0:
            raise ValueError(
                f"center_weight must be non-negative, got {center_weight}"
            )
        self.center_weight = center_weight
        self.centers = nn.Parameter(
            init_class_weights(n_classes, embedding_dim)
        )

    def compute_loss(self, embeddings, labels):
        """Cross-entropy plus the weighted centre term.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[batch, embedding_dim]``.
        labels : torch.Tensor
            ``[batch]`` class indices.

        Returns
        -------
        loss : torch.Tensor
            The scalar loss.
        statistics : dict
            ``accuracy``, ``cross_entropy`` and ``center_term``.
        """
        cross_entropy, statistics = super().compute_loss(embeddings, labels)
        target_cosines = F.cosine_similarity(
            embeddings, self.centers[labels], dim=1, eps=1e-12
        )
        center_term = ((1.0 - target_cosines) ** 2 / 2).mean()
        statistics["cross_entropy"] = cross_entropy.detach()
        statistics["center_term"] = center_term.detach()
        return cross_entropy + self.center_weight * center_term, statistics
