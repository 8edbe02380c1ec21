"""Augmentation: noise mixed at the configured SNR, reverberation by the
impulse response, noise segments read from long files."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from recipes.folder_prepare import prepare_noise_folder
from speaker_metric_learning.augment import NoiseSegments, waveform_augmenter

RATE = 16000


@pytest.fixture
def noise_csv(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "musan" / "noise" / "free-sound"
    folder.mkdir(parents=True)
    sf.write(folder / "hiss.wav", 0.3 * rng.standard_normal(3 * RATE), RATE)
    sf.write(folder / "hum.flac", 0.2 * rng.standard_normal(RATE // 2), RATE)
    return prepare_noise_folder(tmp_path / "musan", tmp_path / "noise.csv")


def speech_like(batch, seconds=1.0):
    time = torch.arange(int(seconds * RATE)) / RATE
    tones = torch.stack(
        [
            0.5 * torch.sin(2 * math.pi * (150 + 40 * b) * time)
            for b in range(batch)
        ]
    )
    return tones * (1 + torch.sin(2 * math.pi * 3 * time))


@pytest.mark.parametrize("snr", [10.0, 20.0])
def test_noise_is_added_at_the_requested_snr(noise_csv, snr):
    torch.manual_seed(0)
    clean = speech_like(4)
    augment = waveform_augmenter(noise_csv=noise_csv, snr_low=snr, snr_high=snr)
    noisy, lengths = augment(clean, torch.ones(4))
    assert noisy.shape == clean.shape and torch.equal(lengths, torch.ones(4))
    # SpeechBrain scales the clean part by 1 - a and adds noise of RMS
    # a * RMS(clean), with a = 1 / (10^(snr/20) + 1)
    a = 1 / (10 ** (snr / 20) + 1)
    noise = noisy - (1 - a) * clean
    rms = lambda x: x.pow(2).mean(dim=1).sqrt()  # noqa: E731
    measured = 20 * torch.log10(rms((1 - a) * clean) / rms(noise))
    assert torch.allclose(measured, torch.full((4,), snr), atol=0.01)


def test_snr_range_is_covered(noise_csv):
    torch.manual_seed(1)
    augment = waveform_augmenter(noise_csv=noise_csv, snr_low=10, snr_high=20)
    clean = speech_like(64, seconds=0.25)
    noisy, _ = augment(clean, torch.ones(64))
    # recover each waveform's SNR from the scale of its clean part
    scale = (noisy * clean).sum(1) / clean.pow(2).sum(1)  # ~ 1 - a
    snr = 20 * torch.log10(scale / (1 - scale))
    assert snr.min() >= 9.5 and snr.max() <= 20.5
    assert snr.max() - snr.min() > 5


def test_noise_segments_are_read_from_inside_long_files(tmp_path):
    ramp = np.arange(10 * RATE, dtype=np.float32) / (10 * RATE)
    sf.write(tmp_path / "ramp.wav", ramp, RATE, subtype="FLOAT")
    (tmp_path / "noise.csv").write_text(
        "ID,duration,wav,wav_format,wav_opts\n"
        f"ramp,10.0,{tmp_path / 'ramp.wav'},wav,\n"
    )
    torch.manual_seed(3)
    segments = NoiseSegments(tmp_path / "noise.csv")(torch.zeros(16, RATE))
    starts = segments[:, 0] * 10 * RATE
    # each row is one contiguous second of the ramp, at a random offset
    expected = starts[:, None] / (10 * RATE) + torch.arange(RATE) / (10 * RATE)
    assert torch.allclose(segments, expected, atol=1e-6)
    assert starts.min() >= 0 and starts.max() <= 9 * RATE
    assert len(set(starts.round().tolist())) == 16


def test_reverberation_convolves_with_the_impulse_response(tmp_path):
    response = np.zeros(800)
    response[[0, 160]] = [1.0, 0.5]  # direct sound and one echo 10 ms later
    sf.write(tmp_path / "room.wav", response, RATE, subtype="FLOAT")
    rir_csv = prepare_noise_folder(
        tmp_path, tmp_path / "rirs.csv", impulse_responses=True
    )
    clean = speech_like(2)
    reverberant, _ = waveform_augmenter(rir_csv=rir_csv)(clean, torch.ones(2))
    # SpeechBrain convolves circularly (FFT of the waveform's length, the
    # echo of the last 10 ms wraps to the start), then rescales to the clean
    # waveform's mean absolute amplitude
    expected = clean + 0.5 * torch.roll(clean, 160, dims=1)
    expected *= clean.abs().mean(1, keepdim=True) / expected.abs().mean(
        1, keepdim=True
    )
    assert torch.allclose(reverberant, expected, atol=1e-4)


def test_no_folder_no_augmentation_and_bad_ranges_refused(noise_csv):
    assert waveform_augmenter() is None
    with pytest.raises(ValueError, match="snr_low 20 > snr_high 10"):
        waveform_augmenter(noise_csv=noise_csv, snr_low=20, snr_high=10)
    with pytest.raises(ValueError, match="augment_prob"):
        waveform_augmenter(noise_csv=noise_csv, augment_prob=1.5)
