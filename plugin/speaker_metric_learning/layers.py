"""Length-aware layers shared by the embedding models.

Batches of padded waveforms come with SpeechBrain relative lengths. Every
length-dependent operation here (instance normalisation, statistics
pooling) uses only the valid samples or frames, and the frame-geometry
helpers carry the valid length through every convolution and pooling
layer, so that an utterance gets the same embedding alone or padded in a
batch (up to float rounding). No layer pads, so padding never leaks into
valid frames.

Authors
 * speaker_metric_learning developers
"""

from collections import OrderedDict

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

TDNN_NORMS = ("batch", "weight")


def valid_frame_mask(lengths, n_frames):
    """Boolean mask of the valid frames of a padded batch.

    Arguments
    ---------
    lengths : torch.Tensor
        ``[batch]`` relative lengths in (0, 1] (SpeechBrain convention: the
        valid frames of item ``i`` are the first ``round(lengths[i] *
        n_frames)``, at least one).
    n_frames : int
        Padded length of the batch.

    Returns
    -------
    torch.Tensor
        ``[batch, n_frames]`` bool, True on valid frames.

    Example
    -------
    >>> valid_frame_mask(torch.tensor([1.0, 0.5]), 4)
    tensor([[ True,  True,  True,  True],
            [ True,  True, False, False]])
    """
    counts = torch.round(lengths * n_frames).clamp(min=1)
    frames = torch.arange(n_frames, device=lengths.device)
    return frames < counts.unsqueeze(1)


def _masked_centred(x, mask):
    """Frame counts, averaging weights, mean and ``x - mean`` over the
    masked last dimension of ``x`` [batch, channels, time]."""
    weights = mask.to(x.dtype)
    counts = weights.sum(dim=1, keepdim=True)
    weights = (weights / counts).unsqueeze(-1)  # sums to 1 over time
    mean = torch.bmm(x, weights)
    return counts, weights, mean, x - mean


def _masked_moments(x, mask, correction):
    """Mean, centred input and variance over the masked last dimension.

    Arguments
    ---------
    x : torch.Tensor
        ``[batch, channels, time]`` (any strides).
    mask : torch.Tensor
        ``[batch, time]`` bool, True on the frames to use.
    correction : int
        Subtracted from the frame count in the variance denominator (0:
        biased, 1: unbiased; a denominator below 1 counts as 1).

    Returns
    -------
    mean, centred, variance : torch.Tensor
        ``[batch, channels, 1]``, ``x - mean`` and ``[batch, channels, 1]``.
    """
    counts, weights, mean, centred = _masked_centred(x, mask)
    variance = torch.bmm(centred.square(), weights)
    if correction:
        denominators = (counts - correction).clamp(min=1)
        variance = variance * (counts / denominators).unsqueeze(-1)
    return mean, centred, variance


def _partial_mask(lengths, n_frames):
    """Valid-frame mask, or None when every frame of the batch is valid."""
    if lengths is None:
        return None
    mask = valid_frame_mask(lengths, n_frames)
    return None if mask.all() else mask


class MaskedInstanceNorm1d(nn.InstanceNorm1d):
    """Instance normalisation over the valid frames of each sequence.

    Same parameters and state dict as ``torch.nn.InstanceNorm1d`` (no running
    statistics); with ``lengths``, the mean and biased variance of each
    sequence come from its valid frames only. Padded frames are normalised
    with the same statistics (their values are meaningless). Batches without
    padding take PyTorch's fused instance norm. With ``std_norm=False`` only
    the mean is removed (then the affine scale and shift apply).

    Arguments
    ---------
    num_features : int
        Number of channels.
    eps : float
        Added to the variance.
    affine : bool
        Learn a per-channel scale and shift.
    std_norm : bool
        Divide by the standard deviation too.

    Example
    -------
    >>> norm = MaskedInstanceNorm1d(3)
    >>> x = torch.randn(2, 3, 10)
    >>> out = norm(x, torch.tensor([1.0, 0.6]))
    >>> torch.allclose(out[1:, :, :6], norm(x[1:, :, :6]), atol=1e-6)
    True
    >>> centred = MaskedInstanceNorm1d(3, std_norm=False)(x)
    >>> torch.allclose(centred, x - x.mean(dim=-1, keepdim=True))
    True
    """

    def __init__(self, num_features, eps=1e-5, affine=False, std_norm=True):
        super().__init__(num_features, eps=eps, affine=affine)
        self.std_norm = std_norm

    def forward(self, x, lengths=None):
        """Normalises ``x`` [batch, channels, time] per sequence and channel.

        Arguments
        ---------
        x : torch.Tensor
            ``[batch, channels, time]``.
        lengths : torch.Tensor, optional
            ``[batch]`` relative lengths; None means all frames are valid.

        Returns
        -------
        torch.Tensor
            Normalised ``x``, same shape.
        """
        mask = _partial_mask(lengths, x.shape[-1])
        if mask is None and self.std_norm:
            return super().forward(x)
        if mask is None:
            mask = torch.ones_like(x[:, 0], dtype=torch.bool)
        if not self.std_norm:  # the mean only: no variance to compute
            centred = _masked_centred(x, mask)[-1]
            if not self.affine:
                return centred
            scale = self.weight.unsqueeze(-1)
        else:
            _, centred, variance = _masked_moments(x, mask, correction=0)
            scale = torch.rsqrt(variance + self.eps)
            if not self.affine:
                return centred * scale
            scale = scale * self.weight.unsqueeze(-1)
        return torch.addcmul(self.bias.unsqueeze(-1), centred, scale)


class MaskedStatisticsPooling(nn.Module):
    """Mean and unbiased standard deviation over the valid frames.

    A deterministic, vectorised replacement for SpeechBrain's
    ``StatisticsPooling`` (same input and output layout, no added noise, no
    loop over utterances). The variance is clamped at ``eps`` before the
    square root, so constant inputs and single-frame utterances give a finite
    value (``sqrt(eps)``) and zero gradient rather than NaN.

    Arguments
    ---------
    eps : float
        Smallest variance.

    Example
    -------
    >>> pooling = MaskedStatisticsPooling()
    >>> x = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    >>> pooling(x, torch.tensor([2 / 3, 1.0]))  # the 100 is padding
    tensor([[[2.0000, 1.4142]],
    <BLANKLINE>
            [[4.0000, 2.0000]]])
    """

    def __init__(self, eps=1e-10):
        super().__init__()
        self.eps = eps

    def forward(self, x, lengths=None):
        """Pools ``x`` [batch, time, channels] into [batch, 1, 2 * channels].

        Arguments
        ---------
        x : torch.Tensor
            ``[batch, time, channels]`` frame features.
        lengths : torch.Tensor, optional
            ``[batch]`` relative lengths; None means all frames are valid.

        Returns
        -------
        torch.Tensor
            ``[batch, 1, 2 * channels]``: means, then standard deviations.
        """
        mask = _partial_mask(lengths, x.shape[1])
        if mask is None:
            correction = 1 if x.shape[1] > 1 else 0  # one frame: variance 0
            variance, mean = torch.var_mean(
                x, dim=1, keepdim=True, correction=correction
            )
        else:
            mean, _, variance = _masked_moments(
                x.transpose(1, 2), mask, correction=1
            )
            mean, variance = mean.transpose(1, 2), variance.transpose(1, 2)
        std = variance.clamp(min=self.eps).sqrt()
        return torch.cat([mean, std], dim=-1)


def _geometry(layer):
    """(span, stride, padding) of a Conv1d, MaxPool1d or SincNet layer."""

    def first(value):
        return value[0] if isinstance(value, tuple) else value

    if isinstance(layer, nn.Identity):
        return 1, 1, 0
    span = first(getattr(layer, "dilation", 1)) * (first(layer.kernel_size) - 1)
    return span + 1, first(layer.stride), first(getattr(layer, "padding", 0))


def frames_after(layer, n_frames):
    """Output length of ``layer`` for inputs of ``n_frames`` (None: None).

    Arguments
    ---------
    layer : torch.nn.Module
        A ``Conv1d``, ``MaxPool1d``, ``AvgPool1d``, ``SincNet`` or
        ``Identity``.
    n_frames : int or torch.Tensor or None
        Input length(s).

    Returns
    -------
    int or torch.Tensor or None
        Output length(s).

    Example
    -------
    >>> frames_after(nn.Conv1d(1, 1, 5, dilation=2), 20)
    12
    >>> frames_after(nn.MaxPool1d(3), torch.tensor([9, 10, 11]))
    tensor([3, 3, 3])
    """
    if n_frames is None:
        return None
    span, stride, padding = _geometry(layer)
    return (n_frames + 2 * padding - span) // stride + 1


def frames_before(layer, n_frames):
    """Shortest input length for which ``layer`` outputs ``n_frames``.

    Arguments
    ---------
    layer : torch.nn.Module
        As for `frames_after`.
    n_frames : int
        Output length.

    Returns
    -------
    int
        Input length.

    Example
    -------
    >>> frames_before(nn.Conv1d(1, 1, 5, dilation=2), 12)
    20
    """
    span, stride, padding = _geometry(layer)
    return (n_frames - 1) * stride + span - 2 * padding


def relative_lengths(counts, x):
    """Relative lengths of ``counts`` valid frames in ``x`` (None: None).

    Arguments
    ---------
    counts : torch.Tensor or None
        ``[batch]`` valid frame counts (at least one is kept).
    x : torch.Tensor
        ``[batch, channels, frames]``.

    Returns
    -------
    torch.Tensor or None
        ``[batch]`` relative lengths.

    Example
    -------
    >>> relative_lengths(torch.tensor([4.0, 0.0]), torch.zeros(2, 3, 8))
    tensor([0.5000, 0.1250])
    """
    if counts is None:
        return None
    return counts.clamp(min=1) / x.shape[-1]


class TDNNLayer(nn.Sequential):
    """One x-vector TDNN layer: a dilated Conv1d and its non-linearity.

    ``norm="batch"``: Conv1d -> LeakyReLU -> BatchNorm1d, the layer of
    SpeechBrain's ``Xvector`` and of pyannote-audio 2.x's SincNet x-vector.
    ``norm="weight"``: weight-normalised Conv1d -> ReLU, the layer of Coria
    et al. (2020). No padding: the output is ``span - 1`` frames shorter.

    Arguments
    ---------
    in_channels, out_channels, kernel_size, dilation : int
        As for ``torch.nn.Conv1d``.
    norm : str
        ``"batch"`` or ``"weight"``.

    Example
    -------
    >>> layer = TDNNLayer(4, 8, kernel_size=3, dilation=2, norm="batch")
    >>> layer(torch.randn(2, 4, 10)).shape
    torch.Size([2, 8, 6])
    >>> layer.conv.kernel_size, layer.conv.dilation
    ((3,), (2,))
    """

    def __init__(self, in_channels, out_channels, kernel_size, dilation, norm):
        if norm not in TDNN_NORMS:
            raise ValueError(
                f"tdnn_norm must be one of {TDNN_NORMS}, got {norm!r}"
            )
        conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, dilation=dilation
        )
        if norm == "weight":
            super().__init__(
                OrderedDict(conv=weight_norm(conv), activation=nn.ReLU())
            )
        else:
            super().__init__(
                OrderedDict(
                    conv=conv,
                    activation=nn.LeakyReLU(),
                    norm=nn.BatchNorm1d(out_channels),
                )
            )
