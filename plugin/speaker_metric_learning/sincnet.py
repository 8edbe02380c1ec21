"""SincNet: a learnable band-pass filter bank on raw waveforms.

Each of the filters is a Hamming-windowed ideal band-pass filter described by
two numbers only, its low and high cut-off frequencies (Ravanelli and
Bengio, "Speaker Recognition from Raw Waveform with SincNet", SLT 2018).
The layer here follows the configuration used by Coria et al. (2020):
80 filters of 251 taps, stride 5, cut-offs initialised on the mel scale.

The filter bank is rebuilt from its ``2 x n_filters`` parameters at every
forward pass (vectorised, well under a millisecond) and applied with a
single ``conv1d``. The strided convolution is computed in polyphase form
(the waveform reshaped to ``stride`` interleaved channels, the kernels to
``stride`` short phases; the same products and sums), with a backward of
its own (``_PhaseConvolution``) that computes the gradients with
contiguous kernels. Measured on the front-end layer (80 filters, 251
taps, stride 5, batch 32 x 3 s, 2 threads, quiet machine;
``benchmarks/sincnet_speed.py`` in BENCHMARKS.md, "SincNet and SincTDNN
speed"), its forward takes 0.72 and its forward + backward 0.81 of the time
of a plain strided ``Conv1d``, against about 1.0 for the same filters
through a direct strided ``conv1d``; without the backward of its own,
forward + backward took 1.21 (an earlier run). The direct ``conv1d`` gives
the same outputs and cut-off gradients bit for bit on training-size
batches but not on every input (``benchmarks/handwritten_speedups.py``),
so it is not swapped in.

Running the module prints a PNG of the learned filters of a checkpoint::

    python -m speaker_metric_learning.sincnet CHECKPOINT -o filters.png

One file: the layer and the tools that read its filters back (their summed
frequency response, the filter plot, loading the layer from a checkpoint,
the command line) depend on the same parameterisation (cut-offs, their
frequency unit and minimum values, the window) and change with it.

Authors
 * speaker_metric_learning developers
"""

import argparse
import math
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from speaker_metric_learning.command_line import exit_on
from speaker_metric_learning.layout import WEIGHTS_FILE


def hz_to_mel(hz):
    """Converts frequencies from Hz to mel (O'Shaughnessy's formula).

    Arguments
    ---------
    hz : float or torch.Tensor
        Frequencies in Hz.

    Returns
    -------
    float or torch.Tensor
        ``2595 * log10(1 + hz / 700)``.

    Example
    -------
    >>> round(hz_to_mel(700.0), 2)  # 2595 * log10(2)
    781.17
    """
    if isinstance(hz, torch.Tensor):
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_to_hz(mel):
    """Converts frequencies from mel to Hz (inverse of `hz_to_mel`).

    Arguments
    ---------
    mel : float or torch.Tensor
        Frequencies in mel.

    Returns
    -------
    float or torch.Tensor
        ``700 * (10 ** (mel / 2595) - 1)``.

    Example
    -------
    >>> round(mel_to_hz(hz_to_mel(1234.5)), 6)
    1234.5
    """
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def waveform_batch(waveforms):
    """Returns waveforms shaped ``[batch, 1, time]`` for 1-d convolutions.

    Arguments
    ---------
    waveforms : torch.Tensor
        ``[batch, time]``, ``[batch, 1, time]`` or ``[batch, time, 1]``.

    Returns
    -------
    torch.Tensor
        A ``[batch, 1, time]`` view of the input.

    Raises
    ------
    ValueError
        For any other shape.

    Example
    -------
    >>> waveform_batch(torch.zeros(2, 100)).shape
    torch.Size([2, 1, 100])
    >>> waveform_batch(torch.zeros(2, 100, 1)).shape
    torch.Size([2, 1, 100])
    """
    if waveforms.ndim == 2:
        return waveforms.unsqueeze(1)
    if waveforms.ndim == 3 and waveforms.shape[1] == 1:
        return waveforms
    if waveforms.ndim == 3 and waveforms.shape[2] == 1:
        return waveforms.transpose(1, 2)
    raise ValueError(
        "expected mono waveforms shaped [batch, time], [batch, 1, time] or "
        f"[batch, time, 1], got shape {list(waveforms.shape)}"
    )


class _PhaseConvolution(torch.autograd.Function):
    """``conv1d(phases, kernels)`` with a layout chosen per direction.

    The polyphase kernels are a transposed view (taps outer, phases inner),
    the layout in which oneDNN's forward is fastest; its weight gradient in
    that layout is about 1.5 times slower than in the contiguous one, so the
    backward computes the gradients with contiguous kernels.
    """

    @staticmethod
    def forward(ctx, phases, kernels):
        """Stride-1 convolution of ``phases`` by ``kernels``."""
        ctx.save_for_backward(phases, kernels)
        return F.conv1d(phases, kernels)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        """Gradients with respect to the phases and the kernels."""
        phases, kernels = ctx.saved_tensors
        grad_phases = grad_kernels = None
        if ctx.needs_input_grad[0]:
            grad_phases = torch.nn.grad.conv1d_input(
                phases.shape, kernels.contiguous(), grad_output
            )
        if ctx.needs_input_grad[1]:
            grad_kernels = torch.nn.grad.conv1d_weight(
                phases, kernels.shape, grad_output
            )
        return grad_phases, grad_kernels


class SincNet(nn.Module):
    """Band-pass sinc filter bank with learnable cut-off frequencies.

    Filter ``k`` passes ``[low_hz[k], high_hz[k]]``. Its taps, for
    ``n = -(kernel_size - 1) / 2 ... (kernel_size - 1) / 2``, are::

        cos(2 pi center_hz[k] n / sr) * sinc(band_hz[k] n / sr) * hamming[n]

    which is the ideal band-pass response ``(sin(w_high n) - sin(w_low n)) /
    (pi n)`` divided by its central value ``2 band_hz / sr``: the centre tap
    is 1 and the passband gain ``sr / (2 band_hz)``. The filters are exactly
    symmetric (half computed, then mirrored).

    The parameters are offsets, as in the reference implementation, counted
    in units of ``frequency_unit`` Hz::

        low_hz  = min(min_low_hz + unit |low_offset|, sr / 2 - min_band_hz)
        high_hz = min(low_hz + min_band_hz + unit |band_offset|, sr / 2)

    so whatever values an optimizer gives them, ``low_hz >= min_low_hz``,
    ``high_hz - low_hz >= min_band_hz`` and ``high_hz <= sr / 2`` (the upper
    clamp on ``low_hz`` is an addition: it keeps a filter pushed past Nyquist
    a valid band). While a high cut-off sits at Nyquist (the last filter,
    initially) its bandwidth offset gets no gradient.

    The offsets start at ``n_filters + 1`` mel-spaced edges between
    ``init_low_hz`` and ``init_high_hz``: ``unit low_offset = edge[k]``,
    ``unit band_offset = edge[k + 1] - edge[k]``; the default
    ``init_high_hz`` makes the last filter end exactly at Nyquist.

    The unit sets how fast the cut-offs learn: an Adam step moves a
    parameter by about the learning rate whatever its gradient's size, so a
    cut-off moves by up to ``lr * frequency_unit`` Hz per step. In Hz
    (``frequency_unit=1``, as in the implementation Coria et al. used) that
    is 1e-3 Hz per step at lr 1e-3, and the filters stay where they started
    (0.03 Hz after 200 steps on real speech); in units of a 16 kHz sampling
    rate (the original SincNet's normalised frequencies) they wander by
    about 200 Hz in 200 steps (and learned worse in a one-seed probe); the
    default unit, 1 kHz, moves them by about 20 Hz and learns best
    (BENCHMARKS.md, SincTDNN ablation). The unit is stored with the weights
    (a buffer), so a saved bank always loads with the cut-offs it had.

    Arguments
    ---------
    n_filters : int
        Number of band-pass filters (output channels).
    kernel_size : int
        Taps per filter; must be odd.
    stride : int
        Hop between output frames, in samples.
    sample_rate : int
        Sampling rate of the input waveforms, in Hz.
    min_low_hz : float
        Smallest low cut-off frequency.
    min_band_hz : float
        Smallest bandwidth.
    init_low_hz : float
        First mel-spaced edge of the initialisation.
    init_high_hz : float, optional
        Last mel-spaced edge; default ``sample_rate / 2 - min_low_hz -
        min_band_hz``.
    frequency_unit : float
        Hz per unit of the learnable offsets (1.0: in Hz).

    Example
    -------
    >>> sincnet = SincNet()
    >>> features = sincnet(torch.randn(2, 48000))
    >>> features.shape
    torch.Size([2, 80, 9550])
    >>> sincnet.output_length(48000)
    9550
    >>> sincnet.filters().shape
    torch.Size([80, 251])
    >>> sincnet.low_hz.detach()[0].round(), sincnet.high_hz.detach()[-1]
    (tensor(80.), tensor(8000.))
    >>> in_hz = SincNet(frequency_unit=1.0)
    >>> torch.allclose(in_hz.high_hz, sincnet.high_hz)
    True
    >>> round(float(in_hz.low_offset[1] / sincnet.low_offset[1]))
    1000
    """

    def __init__(
        self,
        n_filters=80,
        kernel_size=251,
        stride=5,
        sample_rate=16000,
        min_low_hz=50.0,
        min_band_hz=50.0,
        init_low_hz=30.0,
        init_high_hz=None,
        frequency_unit=1000.0,
    ):
        super().__init__()
        nyquist = sample_rate / 2
        if init_high_hz is None:
            init_high_hz = nyquist - min_low_hz - min_band_hz
        if n_filters < 1 or stride < 1:
            raise ValueError(
                f"n_filters ({n_filters}) and stride ({stride}) must be >= 1"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be a positive odd number, got {kernel_size}"
            )
        if min_low_hz < 0 or min_band_hz <= 0:
            raise ValueError(
                f"min_low_hz ({min_low_hz}) must be >= 0 and min_band_hz "
                f"({min_band_hz}) > 0"
            )
        if not frequency_unit > 0:
            raise ValueError(
                f"frequency_unit must be positive, got {frequency_unit}"
            )
        if min_low_hz + min_band_hz >= nyquist:
            raise ValueError(
                f"min_low_hz + min_band_hz ({min_low_hz + min_band_hz} Hz) "
                f"leaves no band below Nyquist ({nyquist} Hz)"
            )
        if not 0 <= init_low_hz < init_high_hz:
            raise ValueError(
                f"need 0 <= init_low_hz < init_high_hz, got {init_low_hz} "
                f"and {init_high_hz}"
            )
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.stride = stride
        self.sample_rate = sample_rate
        self.min_low_hz = float(min_low_hz)
        self.min_band_hz = float(min_band_hz)

        mels = torch.linspace(
            hz_to_mel(init_low_hz),
            hz_to_mel(init_high_hz),
            n_filters + 1,
            dtype=torch.float64,
        )
        edges = mel_to_hz(mels) / frequency_unit
        self.low_offset = nn.Parameter(edges[:-1].float())
        self.band_offset = nn.Parameter(edges.diff().float())
        self.register_buffer(
            "frequency_unit", torch.tensor(float(frequency_unit))
        )

        # Right half of the kernel, centre tap included (n = 0 ... half).
        half = kernel_size // 2
        window = torch.hamming_window(kernel_size, periodic=False)
        self.register_buffer("half_window", window[half:], persistent=False)
        self.register_buffer(
            "half_taps", torch.arange(half + 1.0), persistent=False
        )

    @property
    def low_hz(self):
        """Low cut-off frequencies in Hz, ``[n_filters]``."""
        return torch.clamp(
            self.min_low_hz + self.frequency_unit * self.low_offset.abs(),
            max=self.sample_rate / 2 - self.min_band_hz,
        )

    @property
    def high_hz(self):
        """High cut-off frequencies in Hz, ``[n_filters]``."""
        return torch.clamp(
            self.low_hz
            + self.min_band_hz
            + self.frequency_unit * self.band_offset.abs(),
            max=self.sample_rate / 2,
        )

    @property
    def band_hz(self):
        """Bandwidths in Hz, ``[n_filters]``."""
        return self.high_hz - self.low_hz

    @property
    def center_hz(self):
        """Centre frequencies in Hz, ``[n_filters]``."""
        return (self.low_hz + self.high_hz) / 2

    def filters(self):
        """Builds the filter bank from the current cut-off frequencies.

        Returns
        -------
        torch.Tensor
            ``[n_filters, kernel_size]`` symmetric kernels, centre tap 1.

        Example
        -------
        >>> kernels = SincNet(n_filters=4, kernel_size=11).filters()
        >>> kernels.shape
        torch.Size([4, 11])
        >>> bool((kernels == kernels.flip(1)).all()), kernels[:, 5].tolist()
        (True, [1.0, 1.0, 1.0, 1.0])
        """
        low, high = self.low_hz, self.high_hz
        cycles_per_sample = self.half_taps / self.sample_rate
        centre = torch.outer((low + high) / 2, cycles_per_sample)
        band = torch.outer(high - low, cycles_per_sample)
        right = torch.cos(2 * math.pi * centre) * torch.sinc(band)
        right = right * self.half_window
        return torch.cat([right[:, 1:].flip(1), right], dim=1)

    def output_length(self, n_samples):
        """Number of output frames for inputs of ``n_samples`` samples.

        Arguments
        ---------
        n_samples : int or torch.Tensor
            Input length(s) in samples.

        Returns
        -------
        int or torch.Tensor
            ``(n_samples - kernel_size) // stride + 1`` (no padding).

        Example
        -------
        >>> SincNet().output_length(torch.tensor([251, 255, 256, 48000]))
        tensor([   1,    1,    2, 9550])
        """
        return (n_samples - self.kernel_size) // self.stride + 1

    def forward(self, waveforms):
        """Filters waveforms with the band-pass filter bank.

        Arguments
        ---------
        waveforms : torch.Tensor
            ``[batch, time]`` (or ``[batch, 1, time]``, ``[batch, time, 1]``)
            with ``time >= kernel_size``.

        Returns
        -------
        torch.Tensor
            ``[batch, n_filters, output_length(time)]``.
        """
        waveforms = waveform_batch(waveforms)
        n_samples = waveforms.shape[-1]
        if n_samples < self.kernel_size:
            raise ValueError(
                f"waveforms of {n_samples} samples are shorter than the "
                f"SincNet kernel ({self.kernel_size} samples)"
            )
        return self._polyphase_conv(waveforms, self.filters())

    def _polyphase_conv(self, waveforms, kernels):
        """Strided convolution as a stride-1 convolution over the phases.

        ``out[t] = sum_k w[k] x[stride t + k]``; writing ``k = stride q + p``
        gives ``sum_p sum_q w[stride q + p] x[stride (t + q) + p]``: channel
        ``p`` of the input holds samples ``p, p + stride, ...`` and phase
        ``p`` of the kernel its taps ``p, p + stride, ...`` (zero-padded to a
        multiple of ``stride``, with the waveform zero-padded to match).
        """
        batch, _, n_samples = waveforms.shape
        n_phase_taps = -(-self.kernel_size // self.stride)
        n_steps = self.output_length(n_samples) + n_phase_taps - 1
        n_used = n_steps * self.stride
        waveforms = F.pad(waveforms[:, 0], (0, max(0, n_used - n_samples)))
        phases = waveforms[:, :n_used].reshape(batch, n_steps, self.stride)
        kernels = F.pad(
            kernels, (0, n_phase_taps * self.stride - kernels.shape[1])
        )
        kernels = kernels.reshape(self.n_filters, n_phase_taps, self.stride)
        return _PhaseConvolution.apply(
            phases.transpose(1, 2).contiguous(), kernels.transpose(1, 2)
        )

    def extra_repr(self):
        """Summarises the configuration for ``print(module)``."""
        return (
            f"n_filters={self.n_filters}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, sample_rate={self.sample_rate}, "
            f"min_low_hz={self.min_low_hz}, min_band_hz={self.min_band_hz}"
        )


def summed_frequency_response(sincnet, n_fft=4096):
    """Sum over filters of their peak-normalised magnitude responses.

    Arguments
    ---------
    sincnet : SincNet
        The filter bank.
    n_fft : int
        FFT size (the kernels are zero-padded to it).

    Returns
    -------
    frequencies : torch.Tensor
        ``[n_fft // 2 + 1]`` frequencies in Hz.
    response : torch.Tensor
        ``[n_fft // 2 + 1]`` summed responses (each filter counts 1 at its
        peak).

    Example
    -------
    >>> frequencies, response = summed_frequency_response(SincNet(), 512)
    >>> frequencies.shape, response.shape
    (torch.Size([257]), torch.Size([257]))
    """
    with torch.no_grad():
        magnitudes = torch.fft.rfft(sincnet.filters(), n=n_fft).abs()
    magnitudes = magnitudes / magnitudes.amax(dim=1, keepdim=True)
    frequencies = torch.fft.rfftfreq(n_fft, d=1 / sincnet.sample_rate)
    return frequencies, magnitudes.sum(dim=0)


def plot_filters(sincnet, path, initial=None):
    """Plots learned filters against their initialisation, to a PNG file.

    Three panels: how far each filter's centre frequency moved from its
    initial value, the bandwidths per filter (learned and initial), and the
    summed frequency response of each bank.

    Arguments
    ---------
    sincnet : SincNet
        The learned filter bank.
    path : str
        Output PNG file.
    initial : SincNet, optional
        The reference bank; default a new ``SincNet`` of the same
        configuration (its mel-scale initialisation).

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "filters.png")
    >>> plot_filters(SincNet(n_filters=8), path)
    >>> open(path, "rb").read(4) == b"\\x89PNG"
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if initial is None:
        initial = SincNet(
            n_filters=sincnet.n_filters,
            kernel_size=sincnet.kernel_size,
            stride=sincnet.stride,
            sample_rate=sincnet.sample_rate,
            min_low_hz=sincnet.min_low_hz,
            min_band_hz=sincnet.min_band_hz,
        )
    figure = Figure(figsize=(8, 10), layout="constrained")
    FigureCanvasAgg(figure)
    centre_axes, band_axes, response_axes = figure.subplots(3, 1)
    banks = (("initial (mel)", initial, "--"), ("learned", sincnet, "-"))
    with torch.no_grad():
        initial_centre = initial.center_hz.numpy()
    for label, bank, style in banks:
        with torch.no_grad():
            centre, band = bank.center_hz.numpy(), bank.band_hz.numpy()
        centre_axes.plot(centre - initial_centre, style, label=label)
        band_axes.plot(band, style, label=label)
        frequencies, response = summed_frequency_response(bank)
        response_axes.plot(frequencies.numpy(), response.numpy(), style)
    centre_axes.set(ylabel="centre frequency - initial (Hz)", xlabel="filter")
    band_axes.set(ylabel="bandwidth (Hz)", xlabel="filter")
    response_axes.set(
        xlabel="frequency (Hz)",
        ylabel="summed normalised |H(f)|",
        title="summed frequency response",
    )
    centre_axes.legend()
    figure.savefig(path)


def load_sincnet(source, kernel_size=251, stride=5, sample_rate=16000):
    """Loads the SincNet of a saved ``SincTDNN`` (or ``SincNet``) state dict.

    Arguments
    ---------
    source : str or os.PathLike
        A state dict file, an exported model folder, a ``train.py`` output
        folder (its latest checkpoint) or one of its checkpoint folders
        (``speaker_metric_learning.model_io.weights_file``). The SincNet
        entries are the keys ending in ``low_offset``, ``band_offset`` and
        ``frequency_unit`` (any prefix).
    kernel_size, stride, sample_rate : int
        Configuration not stored in the state dict.

    Returns
    -------
    SincNet
        With the saved cut-off frequencies.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
    >>> torch.save({"sincnet." + k: v for k, v in
    ...             SincNet(n_filters=8).state_dict().items()}, path)
    >>> load_sincnet(path).n_filters
    8
    """
    # Imported here: model I/O loads SpeechBrain's inference modules, which
    # the layer itself does not need.
    from speaker_metric_learning.model_io import read_state_dict, weights_file

    path = weights_file(source)
    state = read_state_dict(path)
    tensors = {}
    for name in ("low_offset", "band_offset", "frequency_unit"):
        keys = [key for key in state if key.endswith("." + name) or key == name]
        if len(keys) != 1:
            raise ValueError(
                f"{path} is not a state dict with one SincNet: found "
                f"{len(keys)} keys ending in '{name}'"
            )
        tensors[name] = state[keys[0]]
    sincnet = SincNet(
        n_filters=len(tensors["low_offset"]),
        kernel_size=kernel_size,
        stride=stride,
        sample_rate=sample_rate,
        frequency_unit=float(tensors["frequency_unit"]),
    )
    sincnet.load_state_dict(tensors)
    return sincnet


def main(argv=None):
    """Command line: plots the SincNet filters of a checkpoint to PNG.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``); see ``--help``.

    Example
    -------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> torch.save(SincNet(n_filters=8).state_dict(),
    ...            os.path.join(folder, "embedding_model.ckpt"))
    >>> main([folder, "-o", os.path.join(folder, "filters.png")])
    >>> os.path.isfile(os.path.join(folder, "filters.png"))
    True
    """
    parser = argparse.ArgumentParser(
        prog="python -m speaker_metric_learning.sincnet",
        description="Plot learned SincNet filters against their mel "
        "initialisation.",
    )
    parser.add_argument(
        "checkpoint",
        help="state dict file, exported model folder, train.py run folder "
        f"(latest checkpoint) or checkpoint folder with {WEIGHTS_FILE}",
    )
    parser.add_argument("-o", "--output", required=True, help="PNG file")
    parser.add_argument("--kernel_size", type=int, default=251)
    parser.add_argument("--sample_rate", type=int, default=16000)
    args = parser.parse_args(argv)
    with exit_on(FileNotFoundError, ValueError):
        sincnet = load_sincnet(
            args.checkpoint,
            kernel_size=args.kernel_size,
            sample_rate=args.sample_rate,
        )
    plot_filters(sincnet, args.output)


if __name__ == "__main__":
    main(sys.argv[1:])
