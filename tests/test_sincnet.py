"""Tests of the SincNet filter bank: responses, constraints, gradients, CLI."""

import math
import os

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from speaker_metric_learning.models import SincTDNN
from speaker_metric_learning.sincnet import (
    SincNet,
    load_sincnet,
    main,
    plot_filters,
    summed_frequency_response,
    waveform_batch,
)

SAMPLE_RATE = 16000
KERNEL_SIZE = 251
# Hamming window: main lobe half-width 2 / K cycles per sample; windowed-sinc
# design (Oppenheim & Schafer, table 7.2): transition width 3.3 / K centred
# on each cut-off, peak approximation error 0.0022 (-53 dB) outside it.
MAIN_LOBE_HALF_WIDTH_HZ = 2 * SAMPLE_RATE / KERNEL_SIZE  # 127.5 Hz
TRANSITION_HALF_WIDTH_HZ = 1.65 * SAMPLE_RATE / KERNEL_SIZE  # 105.2 Hz
HAMMING_ERROR = 0.0022


def frequency_response(kernels, n_fft=2**16):
    """|FFT| of zero-padded kernels [F, K] and the frequencies in Hz."""
    magnitudes = np.abs(np.fft.rfft(kernels, n=n_fft, axis=1))
    return np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE), magnitudes


def dtft_magnitude(kernel, frequency_hz):
    """|H(f)| of a kernel centred on its middle tap, evaluated exactly."""
    taps = np.arange(len(kernel)) - len(kernel) // 2
    return abs(
        np.sum(kernel * np.exp(-2j * np.pi * frequency_hz * taps / SAMPLE_RATE))
    )


def with_bands(low_hz, high_hz):
    """A double-precision SincNet whose filters pass the given bands."""
    sincnet = SincNet(n_filters=len(low_hz), frequency_unit=1.0).double()
    low = torch.tensor(low_hz, dtype=torch.float64)
    high = torch.tensor(high_hz, dtype=torch.float64)
    with torch.no_grad():
        sincnet.low_offset.copy_(low - sincnet.min_low_hz)
        sincnet.band_offset.copy_(high - low - sincnet.min_band_hz)
    return sincnet


def test_initialisation_is_mel_spaced_between_30_and_7900_hz():
    sincnet = SincNet()
    edges_mel = np.linspace(
        2595 * np.log10(1 + 30 / 700), 2595 * np.log10(1 + 7900 / 700), 81
    )
    edges_hz = 700 * (10 ** (edges_mel / 2595) - 1)
    low = sincnet.low_hz.detach().double().numpy()
    high = sincnet.high_hz.detach().double().numpy()
    # Offsets above the minimums, as in the reference implementation.
    np.testing.assert_allclose(low, edges_hz[:-1] + 50, rtol=1e-6)
    np.testing.assert_allclose(high, edges_hz[1:] + 100, rtol=1e-6)
    assert low[0] == pytest.approx(80) and high[-1] == 8000


def test_initial_filters_pass_their_bands():
    # For each filter the -3 dB band of its measured response (contiguous
    # region around the peak) must start and end within the Hamming main
    # lobe half-width of the nominal cut-offs: the response is the ideal
    # band convolved with the window spectrum, whose main lobe spreads each
    # edge by at most that much; side lobes are far below -3 dB.
    sincnet = SincNet().double()
    frequencies, magnitudes = frequency_response(
        sincnet.filters().detach().numpy()
    )
    low = sincnet.low_hz.detach().numpy()
    high = sincnet.high_hz.detach().numpy()
    for k, magnitude in enumerate(magnitudes):
        peak = magnitude.argmax()
        below = np.flatnonzero(magnitude < magnitude[peak] / math.sqrt(2))
        first = below[below < peak].max() + 1
        after = below[below > peak]
        last = after.min() - 1 if len(after) else len(magnitude) - 1
        # 1e-3 Hz: float32 offsets in units of the sampling rate
        assert low[k] - 1e-3 <= frequencies[peak] <= high[k] + 1e-3
        assert abs(frequencies[first] - low[k]) <= MAIN_LOBE_HALF_WIDTH_HZ
        assert abs(frequencies[last] - high[k]) <= MAIN_LOBE_HALF_WIDTH_HZ


def test_wide_filters_have_unit_normalised_passband_and_half_gain_edges():
    low_hz, high_hz = [100.0, 500.0, 3000.0], [1000.0, 2500.0, 7000.0]
    sincnet = with_bands(low_hz, high_hz)
    kernels = sincnet.filters().detach().numpy()
    frequencies, magnitudes = frequency_response(kernels)
    for kernel, magnitude, low, high in zip(
        kernels, magnitudes, low_hz, high_hz, strict=True
    ):
        gain = SAMPLE_RATE / (2 * (high - low))  # centre tap 1
        response = magnitude / gain
        passband = (frequencies >= low + TRANSITION_HALF_WIDTH_HZ) & (
            frequencies <= high - TRANSITION_HALF_WIDTH_HZ
        )
        stopband = (frequencies <= low - TRANSITION_HALF_WIDTH_HZ) | (
            frequencies >= high + TRANSITION_HALF_WIDTH_HZ
        )
        # Two edges of the band and two of its negative-frequency image.
        assert np.abs(response[passband] - 1).max() <= 4 * HAMMING_ERROR
        assert response[stopband].max() <= 4 * HAMMING_ERROR
        for edge in (low, high):
            half = dtft_magnitude(kernel, edge) / gain
            assert half == pytest.approx(0.5, abs=3 * HAMMING_ERROR)


def test_filters_equal_scipy_firwin_hamming_design():
    sincnet = SincNet(n_filters=20).double()
    kernels = sincnet.filters().detach().numpy()
    centre = KERNEL_SIZE // 2
    low = sincnet.low_hz.detach().numpy()
    high = sincnet.high_hz.detach().numpy()
    for kernel, low_hz, high_hz in zip(kernels[:-1], low, high, strict=False):
        reference = scipy.signal.firwin(
            KERNEL_SIZE,
            [low_hz, high_hz],
            window="hamming",
            pass_zero=False,
            scale=False,
            fs=SAMPLE_RATE,
        )
        np.testing.assert_allclose(
            kernel, reference / reference[centre], atol=1e-6
        )
    assert np.array_equal(kernels, kernels[:, ::-1])
    assert np.all(kernels[:, centre] == 1)


def test_cut_offs_stay_valid_after_a_step_pushing_them_out_of_range():
    sincnet = SincNet(frequency_unit=1.0)
    direction = torch.randn(2, 80, generator=torch.Generator().manual_seed(0))
    offsets = torch.stack([sincnet.low_offset, sincnet.band_offset])
    (3e4 * direction * offsets).sum().backward()
    with torch.no_grad():  # one plain SGD step, learning rate 1
        for parameter in sincnet.parameters():
            parameter -= parameter.grad
    # Raw offsets now negative or past Nyquist ...
    assert (sincnet.low_offset < 0).any()
    assert (sincnet.band_offset < -50).any()
    assert (sincnet.low_offset > SAMPLE_RATE / 2).any()
    # ... yet every band is valid.
    low, high = sincnet.low_hz.detach(), sincnet.high_hz.detach()
    assert (low >= 50).all()
    assert (high - low >= 50 - 1e-3).all()
    assert (high <= SAMPLE_RATE / 2).all()
    assert torch.isfinite(sincnet(torch.randn(1, 1000))).all()


def test_gradients_reach_both_parameter_vectors():
    sincnet = SincNet()
    sincnet(torch.randn(2, 2000)).square().mean().backward()
    assert torch.isfinite(sincnet.low_offset.grad).all()
    assert (sincnet.low_offset.grad != 0).all()
    # A high cut-off clamped at Nyquist (the last filter, initially) does
    # not depend on its bandwidth offset; every other one does.
    unclamped = (
        sincnet.low_hz
        + sincnet.min_band_hz
        + sincnet.frequency_unit * sincnet.band_offset.abs()
    ) < SAMPLE_RATE / 2
    assert unclamped[:-1].all() and not unclamped[-1]
    assert (sincnet.band_offset.grad[unclamped] != 0).all()
    assert (sincnet.band_offset.grad[~unclamped] == 0).all()


def test_gradients_match_finite_differences():
    sincnet = SincNet(
        n_filters=3, kernel_size=31, stride=3, frequency_unit=1.0
    ).double()

    def output(waveform, low_offset, band_offset):
        parameters = {
            "low_offset": low_offset,
            "band_offset": band_offset,
        }
        return torch.func.functional_call(sincnet, parameters, (waveform,))

    inputs = (
        torch.randn(2, 100, dtype=torch.float64),
        torch.tensor([200.0, 1000.0, 4000.0], dtype=torch.float64),
        torch.tensor([100.0, 700.0, 2000.0], dtype=torch.float64),
    )
    inputs = tuple(x.requires_grad_() for x in inputs)
    assert torch.autograd.gradcheck(output, inputs, fast_mode=True)


@pytest.mark.parametrize("stride", [5, 10, 20])
@pytest.mark.parametrize("waveform_gradient", [True, False])
def test_gradients_equal_those_of_a_strided_convolution(
    stride, waveform_gradient
):
    # without a waveform gradient (training on data) only the kernel
    # gradient is computed (the backward of _PhaseConvolution)
    sincnet = SincNet(stride=stride).double()
    waveform = torch.randn(3, 3000, dtype=torch.float64)
    waveform.requires_grad_(waveform_gradient)
    output_gradient = torch.randn(3, 80, sincnet.output_length(3000))
    sincnet(waveform).backward(output_gradient.double())
    parameters = [sincnet.low_offset, sincnet.band_offset]
    ours = [p.grad for p in parameters]
    if waveform_gradient:
        ours.append(waveform.grad)
        waveform.grad = None
    sincnet.zero_grad()
    direct = F.conv1d(
        waveform[:, None], sincnet.filters()[:, None], stride=stride
    )
    direct.backward(output_gradient.double())
    expected = [p.grad for p in parameters]
    if waveform_gradient:
        expected.append(waveform.grad)
    assert all(gradient.abs().sum() > 0 for gradient in ours)
    for gradient, reference in zip(ours, expected, strict=True):
        torch.testing.assert_close(gradient, reference)


@pytest.mark.parametrize("n_samples", [251, 255, 256, 1000, 4007, 48000])
def test_output_length_and_values_match_a_strided_convolution(n_samples):
    sincnet = SincNet().double()
    waveform = torch.randn(2, n_samples, dtype=torch.float64)
    output = sincnet(waveform)
    expected_frames = (n_samples - KERNEL_SIZE) // 5 + 1
    assert output.shape == (2, 80, expected_frames)
    assert sincnet.output_length(n_samples) == expected_frames
    direct = F.conv1d(waveform[:, None], sincnet.filters()[:, None], stride=5)
    torch.testing.assert_close(output, direct)


@pytest.mark.parametrize("stride", [1, 2, 7])
def test_other_strides_match_a_strided_convolution(stride):
    sincnet = SincNet(n_filters=4, kernel_size=21, stride=stride).double()
    waveform = torch.randn(3, 300, dtype=torch.float64)
    direct = F.conv1d(
        waveform[:, None], sincnet.filters()[:, None], stride=stride
    )
    torch.testing.assert_close(sincnet(waveform), direct)


def test_channel_layouts_give_the_same_output():
    sincnet = SincNet(n_filters=8)
    waveform = torch.randn(2, 600)
    output = sincnet(waveform)
    torch.testing.assert_close(sincnet(waveform[:, None]), output)
    torch.testing.assert_close(sincnet(waveform[:, :, None]), output)


@pytest.mark.parametrize("shape", [(600,), (2, 2, 600), (2, 600, 2)])
def test_bad_shapes_are_rejected(shape):
    with pytest.raises(ValueError, match="mono waveforms"):
        waveform_batch(torch.zeros(shape))


def test_too_short_input_and_bad_configuration_are_rejected():
    with pytest.raises(ValueError, match="shorter than the SincNet kernel"):
        SincNet()(torch.zeros(1, 250))
    with pytest.raises(ValueError, match="odd"):
        SincNet(kernel_size=250)
    with pytest.raises(ValueError, match="Nyquist"):
        SincNet(sample_rate=200)


def test_summed_response_counts_one_per_filter_at_its_peak():
    sincnet = SincNet(n_filters=10)
    frequencies, response = summed_frequency_response(sincnet, n_fft=1024)
    assert frequencies[-1] == SAMPLE_RATE / 2
    # Each normalised response peaks at 1 and the banks barely overlap.
    assert 1 <= response.max() <= 2
    assert response.sum() > 10


def test_cli_plots_the_filters_of_a_checkpoint_folder(tmp_path):
    model = SincTDNN(scale=0.1)
    with torch.no_grad():
        model.sincnet.low_offset.add_(123.0)
    folder = tmp_path / "CKPT+2024"
    folder.mkdir()
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    loaded = load_sincnet(str(folder))
    torch.testing.assert_close(loaded.low_hz, model.sincnet.low_hz)
    output = tmp_path / "filters.png"
    main([str(folder), "-o", str(output)])
    assert output.read_bytes()[:4] == b"\x89PNG"


def test_plot_accepts_an_explicit_initial_bank(tmp_path):
    path = os.path.join(tmp_path, "filters.png")
    plot_filters(SincNet(n_filters=4), path, initial=SincNet(n_filters=4))
    assert os.path.getsize(path) > 1000


def test_cli_reports_missing_files_and_foreign_state_dicts(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "-o", str(tmp_path / "x.png")])
    assert exit_info.value.code == 1
    assert "embedding_model.ckpt" in capsys.readouterr().err
    foreign = tmp_path / "other.ckpt"
    torch.save({"weight": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="low_offset"):
        load_sincnet(str(foreign))
