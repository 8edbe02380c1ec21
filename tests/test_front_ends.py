"""Tests of the SincTDNN front-ends and of their compression."""

import math

import pytest
import torch

from speaker_metric_learning.front_ends import (
    Compression,
    SincConvFrontEnd,
    SincFilterbankFrontEnd,
)
from speaker_metric_learning.sincnet import SincNet

SAMPLE_RATE = 16000


def tone(frequency_hz, seconds=1.0):
    """A unit-amplitude sine, ``[1, 1, samples]``."""
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return torch.sin(2 * math.pi * frequency_hz * t)[None, None]


def test_log_compression_is_monotone_with_a_floor_and_abs_is_abs():
    x = torch.tensor([-1000.0, -1.0, 0.0, 0.001, 1.0, 1000.0])
    compressed = Compression("log", gain=100.0)(x)
    assert torch.equal(compressed, torch.log1p(100 * x.abs()))
    assert (compressed[2:].diff() > 0).all()  # monotone in |x|
    assert compressed[3] < 0.1  # below 1 / gain: nearly linear, near 0
    assert compressed[-1] / compressed[4] < 3  # 1000x the input, < 3x out
    assert torch.equal(Compression("abs")(x), x.abs())
    with pytest.raises(ValueError, match="compression must be one of"):
        Compression("sqrt")
    with pytest.raises(ValueError, match="gain must be positive"):
        Compression("log", gain=0.0)


def test_filterbank_band_energies_peak_in_the_band_of_a_tone():
    sincnet = SincNet(n_filters=40, stride=10)
    front_end = SincFilterbankFrontEnd(sincnet, compression=Compression("abs"))
    low, high = sincnet.low_hz.detach(), sincnet.high_hz.detach()
    for frequency in (300.0, 1000.0, 3000.0):
        band = int(((low <= frequency) & (frequency < high)).nonzero()[0, 0])
        energies = front_end.compression(
            front_end.pool(sincnet(tone(frequency)).square())
        )
        per_band = energies[0].mean(dim=-1)
        assert int(per_band.argmax()) == band
        # a sine of amplitude 1 has power 1/2; the pass-band gain of a
        # filter is sr / (2 band), so its energy is about 0.5 gain ** 2
        gain = SAMPLE_RATE / (2 * (high[band] - low[band]))
        assert 0.3 < per_band[band] / (0.5 * gain**2) < 1.2


def test_filterbank_removes_only_the_mean_unless_asked_for_the_variance():
    torch.manual_seed(0)
    waveform = torch.randn(1, 1, SAMPLE_RATE)
    centred = SincFilterbankFrontEnd(SincNet(n_filters=16, stride=10))
    x, _ = centred(waveform)
    torch.testing.assert_close(
        x.mean(dim=-1), torch.zeros(1, 16), atol=1e-5, rtol=0
    )
    assert x.std(dim=-1).min() > 0.1  # kept, varies by band
    assert x.std(dim=-1).max() / x.std(dim=-1).min() > 1.5
    scaled = SincFilterbankFrontEnd(
        SincNet(n_filters=16, stride=10), std_norm=True
    )
    y, _ = scaled(waveform)
    torch.testing.assert_close(
        y.std(dim=-1, correction=0), torch.ones(1, 16), atol=1e-3, rtol=0
    )


@pytest.mark.parametrize("std_norm", [False, True])
def test_filterbank_frames_of_a_padded_utterance_equal_it_alone(std_norm):
    front_end = SincFilterbankFrontEnd(
        SincNet(n_filters=8, stride=10), std_norm=std_norm
    )
    torch.manual_seed(1)
    waveforms = torch.randn(2, 1, 16000)
    alone, alone_counts = front_end(waveforms[1:, :, :9000])
    batch, counts = front_end(waveforms, torch.tensor([16000.0, 9000.0]))
    n_valid = int(counts[1])
    assert n_valid == alone.shape[-1] == front_end.n_frames(9000)
    assert alone_counts is None
    torch.testing.assert_close(batch[1:, :, :n_valid], alone, atol=1e-4, rtol=0)


def test_filterbank_refuses_windows_that_are_not_whole_strides():
    with pytest.raises(ValueError, match="whole multiples of the SincNet"):
        SincFilterbankFrontEnd(SincNet(n_filters=8, stride=7))
    front_end = SincFilterbankFrontEnd(
        SincNet(n_filters=8, stride=5), window=0.02, hop=0.005
    )
    assert (front_end.pool.kernel_size, front_end.pool.stride) == (
        (64,),
        (16,),
    )


def test_sinc_conv_front_end_counts_frames_through_every_stage():
    front_end = SincConvFrontEnd(SincNet(n_filters=8, stride=5), [6, 4])
    # 16000 -> (16000 - 251) // 5 + 1 = 3150 -> 1050 -> 1046 -> 348 -> 344
    # -> 114
    assert front_end.n_frames(16000) == 114
    assert front_end.min_samples(1) == 251 + 5 * (3 * (4 + 3 * (4 + 3)) - 1)
    x, counts = front_end(torch.randn(1, 1, 16000), torch.tensor([16000.0]))
    assert x.shape == (1, 4, 114) and counts.tolist() == [114]
    assert front_end.out_channels == 4
