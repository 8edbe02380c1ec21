"""SincTDNN speaker embedding model and length-aware normalisation/pooling.

``SincTDNN`` is the network of Coria et al. (2020): a SincNet front-end on
the raw waveform followed by an x-vector TDNN, statistics pooling and a
linear embedding layer (about 4.3 M parameters).

Batches of padded waveforms come with SpeechBrain relative lengths. Every
length-dependent operation here (instance normalisation of the waveform and
of the front-end features, statistics pooling) uses only the valid samples
or frames, and the valid length is carried through every convolution and
pooling layer, so an utterance gets the same embedding alone or padded in a
batch (up to float rounding). No layer pads, so padding never leaks into
valid frames.

Authors
 * speaker_metric_learning developers
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from speaker_metric_learning.sincnet import SincNet, waveform_batch


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
    weights = mask.to(x.dtype)
    counts = weights.sum(dim=1, keepdim=True)
    weights = (weights / counts).unsqueeze(-1)  # sums to 1 over time
    mean = torch.bmm(x, weights)
    centred = x - mean
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
    padding take PyTorch's fused instance norm.

    Arguments
    ---------
    num_features : int
        Number of channels.
    eps : float
        Added to the variance.
    affine : bool
        Learn a per-channel scale and shift.

    Example
    -------
    >>> norm = MaskedInstanceNorm1d(3)
    >>> x = torch.randn(2, 3, 10)
    >>> out = norm(x, torch.tensor([1.0, 0.6]))
    >>> torch.allclose(out[1:, :, :6], norm(x[1:, :, :6]), atol=1e-6)
    True
    """

    def __init__(self, num_features, eps=1e-5, affine=False):
        super().__init__(num_features, eps=eps, affine=affine)

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
        if mask is None:
            return super().forward(x)
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


def _scaled(channels, scale):
    """Channel count multiplied by ``scale``, rounded, at least 1."""
    return max(1, round(channels * scale))


def _geometry(layer):
    """(span, stride, padding) of a Conv1d, MaxPool1d or SincNet layer."""

    def first(value):
        return value[0] if isinstance(value, tuple) else value

    span = first(getattr(layer, "dilation", 1)) * (first(layer.kernel_size) - 1)
    return span + 1, first(layer.stride), first(getattr(layer, "padding", 0))


def _frames_after(layer, n_frames):
    """Output length of ``layer`` for inputs of ``n_frames`` (None: None)."""
    if n_frames is None:
        return None
    span, stride, padding = _geometry(layer)
    return (n_frames + 2 * padding - span) // stride + 1


def _frames_before(layer, n_frames):
    """Shortest input length for which ``layer`` outputs ``n_frames``."""
    span, stride, padding = _geometry(layer)
    return (n_frames - 1) * stride + span - 2 * padding


def _relative(counts, x):
    """Relative lengths of ``counts`` valid frames in ``x`` (None: None)."""
    if counts is None:
        return None
    return counts.clamp(min=1) / x.shape[-1]


class SincTDNN(nn.Module):
    """SincNet front-end + x-vector TDNN speaker embedding network.

    Layers (reference sizes, ``scale=1``)::

        InstanceNorm1d(1) on the waveform
        SincNet(80, kernel 251, stride 5) -> abs -> MaxPool1d(3)
            -> InstanceNorm1d(80, affine) -> LeakyReLU(0.2)
        Conv1d(80 -> 60, 5) -> MaxPool1d(3) -> InstanceNorm1d(60, affine)
            -> LeakyReLU(0.2), twice (second 60 -> 60)
        TDNN, weight-normalised Conv1d + ReLU: 512 k5, 512 k3 dilation 2,
            512 k3 dilation 3, 512 k1, 1500 k1
        statistics pooling (mean, unbiased std) -> 3000
        Linear(3000 -> 512): the embedding, before any activation

    A 3 s chunk at 16 kHz gives 351 frames after the front-end. ``scale``
    multiplies every hidden channel count (sinc filters, convolutions, TDNN)
    uniformly, rounded, to fit small compute budgets: the TDNN cost falls
    roughly as ``scale ** 2``, the SincNet cost as ``scale``. The embedding
    size is not scaled.

    Arguments
    ---------
    sample_rate : int
        Waveform sampling rate in Hz.
    sinc_filters : int
        Number of SincNet filters.
    sinc_kernel_size : int
        SincNet filter length (odd).
    sinc_stride : int
        SincNet hop in samples.
    conv_channels : sequence of int
        Output channels of the front-end convolutions.
    conv_kernel_size : int
        Kernel size of the front-end convolutions.
    pool_size : int
        Kernel and stride of the front-end max pooling.
    negative_slope : float
        Slope of the front-end LeakyReLU.
    tdnn_channels : sequence of int
        Output channels of the TDNN layers.
    tdnn_kernel_sizes : sequence of int
        Kernel sizes of the TDNN layers.
    tdnn_dilations : sequence of int
        Dilations of the TDNN layers.
    embedding_dim : int
        Embedding size.
    scale : float
        Multiplier of all hidden channel counts.

    Example
    -------
    >>> model = SincTDNN(scale=0.25).eval()
    >>> wavs = torch.randn(2, 48000)
    >>> model(wavs).shape
    torch.Size([2, 1, 512])
    >>> model.n_frames(48000)
    351
    >>> alone = model(wavs[1:, :32000])
    >>> padded = model(wavs, lengths=torch.tensor([1.0, 2 / 3]))[1:]
    >>> torch.allclose(alone, padded, atol=1e-4)
    True
    """

    def __init__(
        self,
        sample_rate=16000,
        sinc_filters=80,
        sinc_kernel_size=251,
        sinc_stride=5,
        conv_channels=(60, 60),
        conv_kernel_size=5,
        pool_size=3,
        negative_slope=0.2,
        tdnn_channels=(512, 512, 512, 512, 1500),
        tdnn_kernel_sizes=(5, 3, 3, 1, 1),
        tdnn_dilations=(1, 2, 3, 1, 1),
        embedding_dim=512,
        scale=1.0,
    ):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if (
            not len(tdnn_channels)
            == len(tdnn_kernel_sizes)
            == len(tdnn_dilations)
        ):
            raise ValueError(
                "tdnn_channels, tdnn_kernel_sizes and tdnn_dilations must "
                "have the same length"
            )
        self.negative_slope = negative_slope
        self.waveform_norm = MaskedInstanceNorm1d(1)
        self.sincnet = SincNet(
            n_filters=_scaled(sinc_filters, scale),
            kernel_size=sinc_kernel_size,
            stride=sinc_stride,
            sample_rate=sample_rate,
        )
        self.pool = nn.MaxPool1d(pool_size)
        channels = [self.sincnet.n_filters]
        channels += [_scaled(c, scale) for c in conv_channels]
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, c_out, conv_kernel_size)
            for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
        )
        self.front_end_norms = nn.ModuleList(
            MaskedInstanceNorm1d(c, affine=True) for c in channels
        )
        tdnn_sizes = [channels[-1]]
        tdnn_sizes += [_scaled(c, scale) for c in tdnn_channels]
        self.tdnn = nn.ModuleList(
            weight_norm(nn.Conv1d(c_in, c_out, kernel, dilation=dilation))
            for c_in, c_out, kernel, dilation in zip(
                tdnn_sizes[:-1],
                tdnn_sizes[1:],
                tdnn_kernel_sizes,
                tdnn_dilations,
                strict=True,
            )
        )
        self.pooling = MaskedStatisticsPooling()
        self.embedding = nn.Linear(2 * tdnn_sizes[-1], embedding_dim)

    def _front_end_filters(self):
        """SincNet then the convolutions: each -> pool -> norm -> LeakyReLU."""
        return [self.sincnet, *self.convs]

    def n_frames(self, n_samples):
        """Frames entering the TDNN for ``n_samples`` waveform samples.

        Arguments
        ---------
        n_samples : int or torch.Tensor
            Waveform length(s).

        Returns
        -------
        int or torch.Tensor
            Front-end output length(s).

        Example
        -------
        >>> SincTDNN(scale=0.1).n_frames(torch.tensor([16000, 48000]))
        tensor([114, 351])
        """
        for layer in self._front_end_filters():
            n_samples = _frames_after(
                self.pool, _frames_after(layer, n_samples)
            )
        return n_samples

    @property
    def min_samples(self):
        """Shortest waveform (in samples) giving one TDNN output frame."""
        n_frames = 1
        for layer in reversed(self.tdnn):
            n_frames = _frames_before(layer, n_frames)
        for layer in reversed(self._front_end_filters()):
            n_frames = _frames_before(
                layer, _frames_before(self.pool, n_frames)
            )
        return n_frames

    def forward(self, wavs, lengths=None):
        """Computes embeddings of a batch of (padded) waveforms.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[batch, time]`` waveforms (``[batch, 1, time]`` and
            ``[batch, time, 1]`` also accepted).
        lengths : torch.Tensor, optional
            ``[batch]`` relative lengths in (0, 1]; None means unpadded.
            An utterance too short for one output frame (see
            ``min_samples``) gets statistics of frames that include padding.

        Returns
        -------
        torch.Tensor
            ``[batch, 1, embedding_dim]`` embeddings.
        """
        x = waveform_batch(wavs)
        if x.shape[-1] < self.min_samples:
            raise ValueError(
                f"waveforms of {x.shape[-1]} samples are too short for "
                f"SincTDNN: it needs at least {self.min_samples} samples "
                f"({self.min_samples / self.sincnet.sample_rate:.3f} s)"
            )
        counts = None
        if lengths is not None:
            counts = torch.round(lengths * x.shape[-1])
        x = self.waveform_norm(x, _relative(counts, x))
        for layer, norm in zip(
            self._front_end_filters(), self.front_end_norms, strict=True
        ):
            x = layer(x)
            if layer is self.sincnet:
                x = x.abs()
            x = self.pool(x)
            counts = _frames_after(self.pool, _frames_after(layer, counts))
            x = F.leaky_relu(norm(x, _relative(counts, x)), self.negative_slope)
        for layer in self.tdnn:
            x = F.relu(layer(x))
            counts = _frames_after(layer, counts)
        stats = self.pooling(x.transpose(1, 2), _relative(counts, x))
        return self.embedding(stats)


def scaled_channels(channels, scale, multiple_of=1):
    """Channel counts multiplied by ``scale``, for ``--model_scale`` in yaml.

    Each count is rounded to the nearest multiple of ``multiple_of`` (at
    least one multiple), e.g. 8 for the Res2Net blocks of ECAPA-TDNN whose
    channels split into 8 groups.

    Arguments
    ---------
    channels : int or sequence of int
        Reference channel count(s).
    scale : float
        Multiplier, positive.
    multiple_of : int
        Every result is a multiple of this.

    Returns
    -------
    int or list of int
        Scaled count(s), an int for an int.

    Example
    -------
    >>> scaled_channels([512, 1500], 0.125)
    [64, 188]
    >>> scaled_channels(1536, 0.1, multiple_of=8), scaled_channels(3, 0.01)
    (152, 1)
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if isinstance(channels, int):
        return multiple_of * _scaled(channels / multiple_of, scale)
    return [scaled_channels(c, scale, multiple_of) for c in channels]


def _replace_noisy_pooling(module):
    """Swaps every SpeechBrain ``StatisticsPooling`` under ``module`` for a
    ``MaskedStatisticsPooling``; returns how many were swapped."""
    from speechbrain.nnet.pooling import StatisticsPooling

    swapped = 0
    for name, child in module.named_children():
        if isinstance(child, StatisticsPooling):
            if not (child.return_mean and child.return_std):
                raise ValueError(
                    "StatisticsPooling with only the mean or only the std "
                    "cannot be replaced by MaskedStatisticsPooling"
                )
            module._modules[name] = MaskedStatisticsPooling()
            swapped += 1
        else:
            swapped += _replace_noisy_pooling(child)
    return swapped


class FbankEmbeddingModel(nn.Module):
    """A SpeechBrain feature-based encoder behind the package contract.

    ``forward(wavs [batch, time], lengths) -> [batch, 1, dim]`` like
    ``SincTDNN``: the waveforms go through ``features`` (e.g. SpeechBrain's
    ``Fbank``, ``[batch, frames, n_mels]``), ``normalization`` (e.g.
    ``InputNormalization(norm_type="sentence", std_norm=False)``, called
    with the relative lengths) and ``encoder`` (e.g.
    ``speechbrain.lobes.models.Xvector.Xvector`` or
    ``speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN``, called with the
    features and the relative lengths). The relative lengths of the
    waveforms are those of the feature frames, as SpeechBrain's recipes
    assume.

    SpeechBrain's ``StatisticsPooling`` (inside ``Xvector``) adds Gaussian
    noise to the pooled means at every call, evaluation included; every such
    layer of ``encoder`` is replaced by ``MaskedStatisticsPooling`` (no
    noise, same output layout), so that embeddings are deterministic.

    Arguments
    ---------
    features : torch.nn.Module
        ``[batch, time]`` waveforms to ``[batch, frames, features]``.
    normalization : torch.nn.Module
        ``(features, lengths)`` to normalised features, same shape.
    encoder : torch.nn.Module
        ``(features, lengths)`` to ``[batch, 1, dim]`` embeddings.

    Example
    -------
    >>> from speechbrain.lobes.features import Fbank
    >>> from speechbrain.lobes.models.Xvector import Xvector
    >>> from speechbrain.processing.features import InputNormalization
    >>> model = FbankEmbeddingModel(
    ...     Fbank(n_mels=24),
    ...     InputNormalization(norm_type="sentence", std_norm=False),
    ...     Xvector(in_channels=24, tdnn_channels=[8, 8, 8, 8, 24]),
    ... ).eval()
    >>> wavs = torch.randn(2, 16000)
    >>> embeddings = model(wavs, torch.tensor([1.0, 0.5]))
    >>> embeddings.shape
    torch.Size([2, 1, 512])
    >>> torch.equal(embeddings, model(wavs, torch.tensor([1.0, 0.5])))
    True
    """

    def __init__(self, features, normalization, encoder):
        super().__init__()
        self.features = features
        self.normalization = normalization
        self.encoder = encoder
        _replace_noisy_pooling(encoder)

    def forward(self, wavs, lengths=None):
        """Computes embeddings of a batch of (padded) waveforms.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[batch, time]`` waveforms (``[batch, 1, time]`` and
            ``[batch, time, 1]`` also accepted).
        lengths : torch.Tensor, optional
            ``[batch]`` relative lengths in (0, 1]; None means unpadded.

        Returns
        -------
        torch.Tensor
            ``[batch, 1, dim]`` embeddings.
        """
        wavs = waveform_batch(wavs).squeeze(1)
        if lengths is None:
            lengths = torch.ones(len(wavs), device=wavs.device)
        features = self.normalization(self.features(wavs), lengths)
        return self.encoder(features, lengths)
