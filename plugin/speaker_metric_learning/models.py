"""Speaker embedding models: SincTDNN and SpeechBrain's Fbank encoders.

``SincTDNN`` is the network of Coria et al. (2020): a SincNet front-end on
the raw waveform followed by an x-vector TDNN, statistics pooling and a
linear embedding layer. Its default differs from the paper's in measured
options (BENCHMARKS.md, "SincTDNN ablation"): log band energies of the
SincNet filters instead of the paper's convolution block, a
batch-normalised TDNN, stride 10; ``architecture="paper"`` gives the
paper's network. ``FbankEmbeddingModel`` puts SpeechBrain's feature-based
encoders (x-vector, ECAPA-TDNN) behind the same interface.

Both take padded batches with SpeechBrain relative lengths and give an
utterance the same embedding alone or padded in a batch (``layers``).

Authors
 * speaker_metric_learning developers
"""

import torch
from torch import nn

from speaker_metric_learning.front_ends import (
    Compression,
    SincConvFrontEnd,
    SincFilterbankFrontEnd,
)
from speaker_metric_learning.layers import (
    MaskedInstanceNorm1d,
    MaskedStatisticsPooling,
    TDNNLayer,
    frames_after,
    frames_before,
    relative_lengths,
)
from speaker_metric_learning.sincnet import SincNet, waveform_batch


def _scaled(channels, scale):
    """Channel count multiplied by ``scale``, rounded, at least 1."""
    return max(1, round(channels * scale))


ARCHITECTURES = {
    "default": {
        "front_end": "filterbank",
        "sinc_filters": 24,
        "tdnn_norm": "batch",
        "compression": "log",
        "sinc_stride": 10,
        "sinc_frequency_unit": 1000.0,
        "front_end_scale": 1.0,
        "filterbank_std_norm": False,
    },
    "paper": {
        "front_end": "sincnet",
        "sinc_filters": 80,
        "tdnn_norm": "weight",
        "compression": "abs",
        "sinc_stride": 5,
        "sinc_frequency_unit": 1.0,
        "front_end_scale": None,  # follows scale
        "filterbank_std_norm": False,
    },
}
"""Option values of the named SincTDNN architectures (see SincTDNN)."""

FRONT_ENDS = ("filterbank", "sincnet")


class SincTDNN(nn.Module):
    """SincNet front-end + x-vector TDNN speaker embedding network.

    Layers of the default architecture (reference sizes, ``scale=1``)::

        InstanceNorm1d(1) on the waveform
        SincNet(24 filters, kernel 251, stride 10)
        band energies: mean of squares over 25 ms every 10 ms
            -> log(1 + 100 e) -> per-utterance mean removed (affine)
        TDNN, Conv1d -> LeakyReLU -> BatchNorm1d: 512 k5, 512 k3 dilation 2,
            512 k3 dilation 3, 512 k1, 1500 k1
        statistics pooling (mean, unbiased std) -> 3000
        Linear(3000 -> 512): the embedding, before any activation

    ``architecture="paper"`` is the network of Coria et al. (2020) exactly
    (4.3 M parameters): after SincNet (stride 5, cut-offs learned in Hz)
    the SincNet block of ``SincConvFrontEnd`` (``|x|``, max pooling,
    instance norm, LeakyReLU, two more convolution stages; 118 frames per
    second), and a TDNN of weight-normalised Conv1d + ReLU without batch
    norm; ``scale`` then shrinks the front-end too. The options below left
    at None take the architecture's value (``ARCHITECTURES``); given
    explicitly, they override it. The paper's network barely leaves its
    collapsed start at CPU budgets; what each option changes is measured in
    BENCHMARKS.md (SincTDNN ablation).

    A 3 s chunk at 16 kHz gives 296 frames with the default front-end (351
    with the paper's). ``scale`` multiplies the TDNN channel counts (rounded)
    to fit small compute budgets (cost about ``scale ** 2``);
    ``front_end_scale`` the number of sinc filters and the convolution
    channels of the ``"sincnet"`` front-end. The embedding size is not
    scaled.

    Arguments
    ---------
    sample_rate : int
        Waveform sampling rate in Hz.
    front_end : str, optional
        ``"filterbank"`` (``SincFilterbankFrontEnd``) or ``"sincnet"``
        (``SincConvFrontEnd``).
    sinc_filters : int, optional
        Number of SincNet filters (before ``front_end_scale``): 24 in the
        default architecture (as many as the Fbank x-vector's bands; 80
        learn no better and cost more, BENCHMARKS.md), 80 in the paper's.
    sinc_kernel_size : int
        SincNet filter length (odd).
    sinc_stride : int, optional
        SincNet hop in samples.
    sinc_frequency_unit : float, optional
        Hz per unit of the learnable cut-off offsets (see ``SincNet``): 1000
        in the default architecture, 1 (Hz) in the paper's.
    compression : str, optional
        ``"abs"`` or ``"log"`` (see ``Compression``): of the filter
        outputs (``"sincnet"``) or of the band energies (``"filterbank"``).
    compression_gain : float
        Gain inside the log compression.
    filterbank_std_norm : bool, optional
        The ``"filterbank"`` front-end also divides each band by its
        standard deviation over the utterance (default: only the mean is
        removed, as SpeechBrain's sentence normalisation of ``Fbank``).
    conv_channels : sequence of int
        Output channels of the ``"sincnet"`` front-end's convolutions.
    conv_kernel_size : int
        Their kernel size.
    pool_size : int
        Kernel and stride of the ``"sincnet"`` front-end's max pooling.
    negative_slope : float
        Slope of the ``"sincnet"`` front-end's LeakyReLUs.
    tdnn_channels : sequence of int
        Output channels of the TDNN layers.
    tdnn_kernel_sizes : sequence of int
        Kernel sizes of the TDNN layers.
    tdnn_dilations : sequence of int
        Dilations of the TDNN layers.
    tdnn_norm : str, optional
        ``"batch"`` or ``"weight"`` (see ``TDNNLayer``).
    embedding_dim : int
        Embedding size.
    scale : float
        Multiplier of the TDNN channel counts.
    front_end_scale : float, optional
        Multiplier of the front-end channel counts; None: the
        architecture's (the paper's: ``scale``).
    architecture : str
        ``"default"`` or ``"paper"``.

    Example
    -------
    >>> model = SincTDNN(scale=0.25).eval()
    >>> wavs = torch.randn(2, 48000)
    >>> model(wavs).shape
    torch.Size([2, 1, 512])
    >>> model.n_frames(48000), model.sincnet.n_filters
    (296, 24)
    >>> alone = model(wavs[1:, :32000])
    >>> padded = model(wavs, lengths=torch.tensor([1.0, 2 / 3]))[1:]
    >>> torch.allclose(alone, padded, atol=1e-4)
    True
    >>> paper = SincTDNN(scale=0.25, architecture="paper")
    >>> paper.n_frames(48000), paper.sincnet.n_filters
    (351, 20)
    """

    def __init__(
        self,
        sample_rate=16000,
        front_end=None,
        sinc_filters=None,
        sinc_kernel_size=251,
        sinc_stride=None,
        sinc_frequency_unit=None,
        compression=None,
        compression_gain=100.0,
        filterbank_std_norm=None,
        conv_channels=(60, 60),
        conv_kernel_size=5,
        pool_size=3,
        negative_slope=0.2,
        tdnn_channels=(512, 512, 512, 512, 1500),
        tdnn_kernel_sizes=(5, 3, 3, 1, 1),
        tdnn_dilations=(1, 2, 3, 1, 1),
        tdnn_norm=None,
        embedding_dim=512,
        scale=1.0,
        front_end_scale=None,
        architecture="default",
    ):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {tuple(ARCHITECTURES)}, got "
                f"{architecture!r}"
            )
        given = {
            "front_end": front_end,
            "sinc_filters": sinc_filters,
            "tdnn_norm": tdnn_norm,
            "compression": compression,
            "sinc_stride": sinc_stride,
            "sinc_frequency_unit": sinc_frequency_unit,
            "front_end_scale": front_end_scale,
            "filterbank_std_norm": filterbank_std_norm,
        }
        options = {
            name: ARCHITECTURES[architecture][name] if value is None else value
            for name, value in given.items()
        }
        if options["front_end_scale"] is None:
            options["front_end_scale"] = scale
        if scale <= 0 or options["front_end_scale"] <= 0:
            raise ValueError(
                f"scale ({scale}) and front_end_scale "
                f"({options['front_end_scale']}) must be positive"
            )
        if options["front_end"] not in FRONT_ENDS:
            raise ValueError(
                f"front_end must be one of {FRONT_ENDS}, got "
                f"{options['front_end']!r}"
            )
        if (
            not len(tdnn_channels)
            == len(tdnn_kernel_sizes)
            == len(tdnn_dilations)
        ):
            raise ValueError(
                "tdnn_channels, tdnn_kernel_sizes and tdnn_dilations must "
                "have the same length"
            )
        self.options = options
        self.waveform_norm = MaskedInstanceNorm1d(1)
        sincnet = SincNet(
            n_filters=_scaled(
                options["sinc_filters"], options["front_end_scale"]
            ),
            kernel_size=sinc_kernel_size,
            stride=options["sinc_stride"],
            sample_rate=sample_rate,
            frequency_unit=options["sinc_frequency_unit"],
        )
        compressor = Compression(options["compression"], compression_gain)
        if options["front_end"] == "sincnet":
            self.front_end = SincConvFrontEnd(
                sincnet,
                [_scaled(c, options["front_end_scale"]) for c in conv_channels],
                conv_kernel_size,
                pool_size,
                negative_slope,
                compressor,
            )
        else:
            self.front_end = SincFilterbankFrontEnd(
                sincnet,
                compression=compressor,
                std_norm=options["filterbank_std_norm"],
            )
        tdnn_sizes = [self.front_end.out_channels]
        tdnn_sizes += [_scaled(c, scale) for c in tdnn_channels]
        self.tdnn = nn.ModuleList(
            TDNNLayer(c_in, c_out, kernel, dilation, options["tdnn_norm"])
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

    @property
    def sincnet(self):
        """The front-end's SincNet filter bank."""
        return self.front_end.sincnet

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
        tensor([ 96, 296])
        """
        return self.front_end.n_frames(n_samples)

    @property
    def min_samples(self):
        """Shortest waveform (in samples) giving one TDNN output frame."""
        n_frames = 1
        for layer in reversed(self.tdnn):
            n_frames = frames_before(layer.conv, n_frames)
        return self.front_end.min_samples(n_frames)

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
        x = self.waveform_norm(x, relative_lengths(counts, x))
        x, counts = self.front_end(x, counts)
        for layer in self.tdnn:
            x = layer(x)
            counts = frames_after(layer.conv, counts)
        stats = self.pooling(x.transpose(1, 2), relative_lengths(counts, x))
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
