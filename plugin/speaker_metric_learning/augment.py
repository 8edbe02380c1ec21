"""Training-time waveform augmentation: additive noise and reverberation.

Built from SpeechBrain's augmentation modules: ``AddNoise`` mixes noise at
a signal-to-noise ratio drawn uniformly in ``[snr_low, snr_high]`` dB for
every waveform (Coria et al. mixed MUSAN background noise at 10-20 dB),
``AddReverb`` convolves the batch with a random room impulse response, and
``Augmenter`` applies them in that order (reverberation, then noise).

Noise comes from :class:`NoiseSegments`, given to ``AddNoise`` as its
``noise_funct``: a random segment of a random noise file for every
waveform, of exactly the waveform's length, reading only those frames. Long
recordings (MUSAN's music and speech last minutes) are thus neither
decoded whole at every batch, as ``AddNoise`` does with its own CSV loader,
nor cut into copies on disk. Files shorter than the waveform are repeated.

Noise and impulse-response lists are CSV files in SpeechBrain's extended
format (``ID,duration,wav,wav_format,wav_opts``), which
``recipes.folder_prepare.prepare_noise_folder`` writes from folders. Random
choices use ``torch``'s (and, for the batch-level ``augment_prob``,
Python's) global generators, seeded by the recipe.

Authors
 * Speaker metric learning contributors 2025
"""

import csv

import torch
from speechbrain.augment.augmenter import Augmenter
from speechbrain.augment.time_domain import AddNoise, AddReverb

from speaker_metric_learning.data import read_audio


class NoiseSegments:
    """Draws random noise segments as long as the waveforms to corrupt.

    Arguments
    ---------
    csv_file : str
        CSV with (at least) the columns ``duration`` (seconds) and ``wav``.
    sample_rate : int
        Sample rate of the waveforms (noise of other rates is resampled).

    Example
    -------
    >>> import tempfile, os, numpy as np, soundfile
    >>> folder = tempfile.mkdtemp()
    >>> soundfile.write(f"{folder}/hum.wav", np.ones(8000) * 0.5, 16000)
    >>> with open(f"{folder}/noise.csv", "w") as f:
    ...     _ = f.write("ID,duration,wav,wav_format,wav_opts\\n")
    ...     _ = f.write(f"hum,0.5,{folder}/hum.wav,wav,\\n")
    >>> noise = NoiseSegments(f"{folder}/noise.csv")(torch.zeros(3, 20000))
    >>> noise.shape, bool((noise == 0.5).all())  # 0.5 s repeated to 1.25 s
    (torch.Size([3, 20000]), True)
    """

    def __init__(self, csv_file, sample_rate=16000):
        with open(csv_file, newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
        if not rows:
            raise ValueError(f"noise list {csv_file} is empty")
        self.paths = [row["wav"] for row in rows]
        self.durations = [float(row["duration"]) for row in rows]
        self.sample_rate = int(sample_rate)

    def __call__(self, waveforms):
        """Noise of the shape of ``waveforms`` ``[batch, time]``."""
        length = waveforms.shape[1]
        seconds = length / self.sample_rate
        noises = []
        for _ in range(waveforms.shape[0]):
            index = int(torch.randint(len(self.paths), ()))
            slack = max(self.durations[index] - seconds, 0.0)
            start = float(torch.rand(())) * slack
            noise = read_audio(
                self.paths[index], self.sample_rate, start, seconds
            )
            repeats = -(-length // noise.shape[0])
            noises.append(noise.repeat(repeats)[:length])
        return torch.stack(noises).to(waveforms.device, waveforms.dtype)


def waveform_augmenter(
    noise_csv=None,
    rir_csv=None,
    snr_low=10.0,
    snr_high=20.0,
    sample_rate=16000,
    augment_prob=1.0,
):
    """SpeechBrain ``Augmenter`` adding reverberation and/or noise.

    Arguments
    ---------
    noise_csv : str, optional
        Noise list (extended CSV); no additive noise without it.
    rir_csv : str, optional
        Impulse response list (extended CSV, mono files at
        ``sample_rate``); no reverberation without it.
    snr_low : float
        Lowest signal-to-noise ratio, in dB.
    snr_high : float
        Highest signal-to-noise ratio, in dB.
    sample_rate : int
        Sample rate of the waveforms.
    augment_prob : float
        Probability that a batch is augmented at all.

    Returns
    -------
    speechbrain.augment.augmenter.Augmenter or None
        Called as ``augmenter(wavs, lengths) -> (wavs, lengths)``, keeping
        the batch size; None when neither list is given.

    Raises
    ------
    ValueError
        If ``snr_low > snr_high`` or ``augment_prob`` is not in [0, 1].

    Example
    -------
    >>> import tempfile, numpy as np, soundfile
    >>> folder = tempfile.mkdtemp()
    >>> soundfile.write(f"{folder}/n.wav", np.random.randn(16000), 16000)
    >>> with open(f"{folder}/noise.csv", "w") as f:
    ...     _ = f.write("ID,duration,wav,wav_format,wav_opts\\n")
    ...     _ = f.write(f"n,1.0,{folder}/n.wav,wav,\\n")
    >>> augment = waveform_augmenter(f"{folder}/noise.csv", snr_low=0,
    ...                              snr_high=0)
    >>> clean = torch.sin(torch.arange(8000.0)).repeat(2, 1)
    >>> noisy, lengths = augment(clean, torch.ones(2))
    >>> noisy.shape, bool((noisy - clean).abs().mean() > 0.1)
    (torch.Size([2, 8000]), True)
    >>> waveform_augmenter() is None
    True
    """
    if snr_low > snr_high:
        raise ValueError(f"snr_low {snr_low} > snr_high {snr_high}")
    if not 0.0 <= augment_prob <= 1.0:
        raise ValueError(f"augment_prob must be in [0, 1], got {augment_prob}")
    augmentations = []
    if rir_csv is not None:
        augmentations.append(
            AddReverb(
                rir_csv,
                reverb_sample_rate=sample_rate,
                clean_sample_rate=sample_rate,
            )
        )
    if noise_csv is not None:
        augmentations.append(
            AddNoise(
                snr_low=snr_low,
                snr_high=snr_high,
                noise_funct=NoiseSegments(noise_csv, sample_rate),
            )
        )
    if not augmentations:
        return None
    return Augmenter(
        concat_original=False,
        min_augmentations=len(augmentations),
        max_augmentations=len(augmentations),
        augment_prob=augment_prob,
        augmentations=augmentations,
    )
