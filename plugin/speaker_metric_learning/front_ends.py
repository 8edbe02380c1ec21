"""Front-ends of SincTDNN: what turns a normalised waveform into frames.

Both start with a learnable ``SincNet`` filter bank and differ in what
follows it:

* ``SincConvFrontEnd``: the SincNet block of Coria et al. (2020) and of
  pyannote-audio: compressed filter outputs, max pooling, instance norm and
  LeakyReLU, then two more convolution stages of the same shape (about 118
  frames per second at stride 5, 59 at stride 10).
* ``SincFilterbankFrontEnd``: the energy of each band over 25 ms windows
  every 10 ms, log-compressed and normalised per utterance: a learnable
  filterbank, at the frame rate of SpeechBrain's ``Fbank``.

Each carries the valid length of padded batches through its layers (see
``layers``), so padding never changes an utterance's frames.

Authors
 * speaker_metric_learning developers
"""

import torch
import torch.nn.functional as F
from torch import nn

from speaker_metric_learning.layers import (
    MaskedInstanceNorm1d,
    frames_after,
    frames_before,
    relative_lengths,
)

COMPRESSIONS = ("log", "abs")


class Compression(nn.Module):
    """``|x|`` or ``log(1 + gain |x|)``, element-wise.

    Arguments
    ---------
    kind : str
        ``"abs"`` or ``"log"``.
    gain : float
        Gain inside the log: values below about ``1 / gain`` are compressed
        almost linearly, a floor under the log.

    Example
    -------
    >>> Compression("log", gain=100.0)(torch.tensor([-0.01, 0.0, 9.99]))
    tensor([0.6931, 0.0000, 6.9078])
    >>> Compression("abs")(torch.tensor([-2.0, 3.0]))
    tensor([2., 3.])
    """

    def __init__(self, kind, gain=100.0):
        super().__init__()
        if kind not in COMPRESSIONS:
            raise ValueError(
                f"compression must be one of {COMPRESSIONS}, got {kind!r}"
            )
        if not gain > 0:
            raise ValueError(f"compression_gain must be positive, got {gain}")
        self.kind = kind
        self.gain = gain

    def forward(self, x):
        """Compresses ``x`` (any shape)."""
        if self.kind == "abs":
            return x.abs()
        return torch.log1p(self.gain * x.abs())

    def extra_repr(self):
        """Summarises the configuration for ``print(module)``."""
        return self.kind if self.kind == "abs" else f"log, gain={self.gain}"


class SincConvFrontEnd(nn.Module):
    """The SincNet block: filters, then convolutions, each pooled.

    Stages::

        SincNet -> compression -> MaxPool1d -> InstanceNorm1d(affine)
            -> LeakyReLU
        Conv1d -> MaxPool1d -> InstanceNorm1d(affine) -> LeakyReLU, once
            per entry of conv_channels

    Arguments
    ---------
    sincnet : speaker_metric_learning.sincnet.SincNet
        The filter bank.
    conv_channels : sequence of int
        Output channels of the convolutions after it.
    conv_kernel_size : int
        Kernel size of those convolutions.
    pool_size : int
        Kernel and stride of every max pooling.
    negative_slope : float
        Slope of the LeakyReLUs.
    compression : Compression
        Applied to the filter outputs.

    Example
    -------
    >>> from speaker_metric_learning.sincnet import SincNet
    >>> front_end = SincConvFrontEnd(SincNet(n_filters=8), [6, 6])
    >>> x, counts = front_end(torch.randn(2, 1, 16000), None)
    >>> x.shape, counts, front_end.n_frames(16000), front_end.out_channels
    (torch.Size([2, 6, 114]), None, 114, 6)
    """

    def __init__(
        self,
        sincnet,
        conv_channels=(60, 60),
        conv_kernel_size=5,
        pool_size=3,
        negative_slope=0.2,
        compression=None,
    ):
        super().__init__()
        self.sincnet = sincnet
        self.compression = compression or Compression("abs")
        channels = [sincnet.n_filters, *conv_channels]
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, c_out, conv_kernel_size)
            for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
        )
        self.pool = nn.MaxPool1d(pool_size)
        self.norms = nn.ModuleList(
            MaskedInstanceNorm1d(c, affine=True) for c in channels
        )
        self.negative_slope = negative_slope
        self.out_channels = channels[-1]

    def _filters(self):
        return [self.sincnet, *self.convs]

    def n_frames(self, n_samples):
        """Output frames for ``n_samples`` waveform samples (or None)."""
        for layer in self._filters():
            n_samples = frames_after(self.pool, frames_after(layer, n_samples))
        return n_samples

    def min_samples(self, n_frames):
        """Shortest waveform giving ``n_frames`` output frames."""
        for layer in reversed(self._filters()):
            n_frames = frames_before(layer, frames_before(self.pool, n_frames))
        return n_frames

    def forward(self, x, counts=None):
        """Frames of normalised waveforms.

        Arguments
        ---------
        x : torch.Tensor
            ``[batch, 1, time]`` waveforms.
        counts : torch.Tensor, optional
            ``[batch]`` valid samples of each waveform; None: all valid.

        Returns
        -------
        x, counts : torch.Tensor
            ``[batch, out_channels, frames]`` and the valid frame counts
            (None for None).
        """
        for layer, norm in zip(self._filters(), self.norms, strict=True):
            x = layer(x)
            if layer is self.sincnet:
                x = self.compression(x)
            x = self.pool(x)
            counts = frames_after(self.pool, frames_after(layer, counts))
            x = norm(x, relative_lengths(counts, x))
            x = F.leaky_relu(x, self.negative_slope)
        return x, counts


class SincFilterbankFrontEnd(nn.Module):
    """Log band energies of a SincNet filter bank: a learnable filterbank.

    Stages::

        SincNet (stride s) -> square -> mean over `window` seconds every
            `hop` seconds -> compression -> per-utterance mean removed
            (affine; with std_norm, divided by the standard deviation too)

    With the default mel-spaced initialisation this starts close to a
    log-mel filterbank (rectangular, non-overlapping bands) at the frame
    rate of SpeechBrain's ``Fbank``; the filters' cut-offs stay learnable.
    The SincNet output is sampled every ``stride`` samples; the mean of
    its squares over a window still estimates the band's energy.

    Arguments
    ---------
    sincnet : speaker_metric_learning.sincnet.SincNet
        The filter bank; its stride must divide the window and the hop.
    window : float
        Energy window in seconds.
    hop : float
        Hop between frames in seconds.
    compression : Compression
        Applied to the band energies.
    std_norm : bool
        Also normalise each band's variance over the utterance. Removing
        the mean only, as SpeechBrain's sentence normalisation of ``Fbank``
        does, keeps how much each band varies, which learns much faster
        (BENCHMARKS.md, SincTDNN ablation).

    Example
    -------
    >>> from speaker_metric_learning.sincnet import SincNet
    >>> front_end = SincFilterbankFrontEnd(SincNet(n_filters=8, stride=10))
    >>> x, counts = front_end(torch.randn(2, 1, 16000), torch.tensor(
    ...     [16000.0, 8000.0]))
    >>> x.shape, counts.int().tolist(), front_end.n_frames(16000)
    (torch.Size([2, 8, 96]), [96, 46], 96)
    """

    def __init__(
        self, sincnet, window=0.025, hop=0.01, compression=None, std_norm=False
    ):
        super().__init__()
        sample_rate, stride = sincnet.sample_rate, sincnet.stride
        frames = [window * sample_rate / stride, hop * sample_rate / stride]
        if any(abs(f - round(f)) > 1e-6 or round(f) < 1 for f in frames):
            raise ValueError(
                f"band_energy_window ({window} s) and band_energy_hop ({hop} "
                f"s) must be whole multiples of the SincNet stride ({stride} "
                f"samples at {sample_rate} Hz)"
            )
        self.sincnet = sincnet
        self.pool = nn.AvgPool1d(round(frames[0]), round(frames[1]))
        self.compression = compression or Compression("log")
        self.norm = MaskedInstanceNorm1d(
            sincnet.n_filters, affine=True, std_norm=std_norm
        )
        self.out_channels = sincnet.n_filters

    def n_frames(self, n_samples):
        """Output frames for ``n_samples`` waveform samples (or None)."""
        return frames_after(self.pool, frames_after(self.sincnet, n_samples))

    def min_samples(self, n_frames):
        """Shortest waveform giving ``n_frames`` output frames."""
        return frames_before(self.sincnet, frames_before(self.pool, n_frames))

    def forward(self, x, counts=None):
        """Frames of normalised waveforms (see `SincConvFrontEnd.forward`)."""
        x = self.compression(self.pool(self.sincnet(x).square()))
        counts = self.n_frames(counts)
        return self.norm(x, relative_lengths(counts, x)), counts
