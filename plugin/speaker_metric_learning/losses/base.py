"""The contract shared by every training loss of the package.

Every loss is an ``nn.Module`` called as ``loss(embeddings, labels)`` and
returning a scalar tensor. Embeddings are ``[batch, dim]`` or SpeechBrain's
``[batch, 1, dim]``; labels are ``[batch]`` or ``[batch, 1]`` integers. The
base class checks and flattens the inputs, calls the subclass's
``compute_loss`` and stores the batch's ``statistics`` (python floats, for
logging) after each forward.

Authors
 * Speaker metric learning contributors 2025
"""

import torch
from torch import nn


def flatten_embeddings(embeddings):
    """Checks embeddings and returns them as ``[batch, dim]``.

    Arguments
    ---------
    embeddings : torch.Tensor
        Floating point tensor ``[batch, dim]`` or ``[batch, 1, dim]``.

    Returns
    -------
    torch.Tensor
        ``[batch, dim]``.

    Raises
    ------
    ValueError
        If the shape or the dtype does not follow the contract.

    Example
    -------
    >>> flatten_embeddings(torch.zeros(4, 1, 3)).shape
    torch.Size([4, 3])
    """
    if not isinstance(embeddings, torch.Tensor):
        raise ValueError("embeddings must be a torch tensor")
    if embeddings.dim() == 3 and embeddings.shape[1] == 1:
        embeddings = embeddings.squeeze(1)
    if embeddings.dim() != 2:
        raise ValueError(
            "embeddings must be [batch, dim] or [batch, 1, dim], got shape "
            f"{list(embeddings.shape)}"
        )
    if not embeddings.is_floating_point():
        raise ValueError(
            f"embeddings must be floating point, got {embeddings.dtype}"
        )
    return embeddings


def flatten_batch(embeddings, labels):
    """Checks a batch and returns it as ``[batch, dim]`` and ``[batch]``.

    Arguments
    ---------
    embeddings : torch.Tensor
        Floating point tensor ``[batch, dim]`` or ``[batch, 1, dim]``.
    labels : torch.Tensor
        Integer tensor ``[batch]`` or ``[batch, 1]``.

    Returns
    -------
    embeddings : torch.Tensor
        The embeddings as ``[batch, dim]``.
    labels : torch.Tensor
        The labels as ``[batch]``.

    Raises
    ------
    ValueError
        If a shape or a dtype does not follow the contract.

    Example
    -------
    >>> x, y = flatten_batch(torch.zeros(4, 1, 3), torch.zeros(4, 1).long())
    >>> x.shape, y.shape
    (torch.Size([4, 3]), torch.Size([4]))
    >>> flatten_batch(torch.zeros(4, 3), torch.zeros(5).long())
    Traceback (most recent call last):
    ...
    ValueError: embeddings and labels disagree on the batch size: 4 != 5
    """
    if not isinstance(labels, torch.Tensor):
        raise ValueError("labels must be a torch tensor")
    embeddings = flatten_embeddings(embeddings)
    if labels.dim() == 2 and labels.shape[1] == 1:
        labels = labels.squeeze(1)
    if labels.dim() != 1:
        raise ValueError(
            "labels must be [batch] or [batch, 1], got shape "
            f"{list(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"labels must be integer class indices, got {labels.dtype}"
        )
    if embeddings.shape[0] != labels.shape[0]:
        raise ValueError(
            "embeddings and labels disagree on the batch size: "
            f"{embeddings.shape[0]} != {labels.shape[0]}"
        )
    if embeddings.shape[0] == 0:
        raise ValueError("the batch is empty")
    return embeddings, labels.long()


class MetricLoss(nn.Module):
    """Base class of the losses: input checks and batch statistics.

    Subclasses implement ``compute_loss(embeddings, labels)`` on flattened
    inputs and return ``(loss, statistics)``; the base class adds the mean
    embedding L2 norm (``embedding_norm``) to the statistics and stores them
    as python floats in ``self.statistics``.

    Example
    -------
    >>> class MeanNorm(MetricLoss):
    ...     def compute_loss(self, embeddings, labels):
    ...         return embeddings.norm(dim=1).mean(), {}
    >>> loss = MeanNorm()
    >>> loss(torch.tensor([[[3.0, 4.0]]]), torch.tensor([[0]]))
    tensor(5.)
    >>> loss.statistics
    {'embedding_norm': 5.0}
    """

    def __init__(self):
        super().__init__()
        self.statistics = {}

    def forward(self, embeddings, labels):
        """Computes the loss of a batch and updates ``statistics``.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[batch, dim]`` or ``[batch, 1, dim]``.
        labels : torch.Tensor
            ``[batch]`` or ``[batch, 1]`` integer speaker indices.

        Returns
        -------
        torch.Tensor
            The scalar loss.
        """
        embeddings, labels = flatten_batch(embeddings, labels)
        loss, statistics = self.compute_loss(embeddings, labels)
        statistics["embedding_norm"] = embeddings.detach().norm(dim=1).mean()
        self.statistics = {
            name: float(value) for name, value in statistics.items()
        }
        return loss

    def compute_loss(self, embeddings, labels):
        """Returns ``(loss, statistics)``; subclasses must override it.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[batch, dim]``.
        labels : torch.Tensor
            ``[batch]`` int64.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement compute_loss"
        )
