"""A seeded synthetic multi-speaker corpus for speaker verification.

The default corpus of the recipe: it lets every part of the pipeline run
without downloading data. Each speaker is a procedurally defined voice
(source-filter synthesis): a fundamental frequency (F0) level, range, jitter
and declination; a vocal-tract length that scales the formants, plus
idiosyncratic vowel formants; formant bandwidths; glottal open quotient and
spectral tilt; breathiness; speaking rate. Each utterance says new random
content (syllables of vowels, fricatives, stops, nasals and approximants
grouped into phrases, with pitch accents) and passes through a new random
channel: band limits (high-pass at 50-300 Hz, low-pass at 3.4-16 kHz), a
tilt of about +-1 dB per octave and smooth ripples of a few dB, coloured
noise at 10-30 dB signal-to-noise ratio, and a level of -30 to -20 dBFS.
Content and channel change the long-term spectrum more than the speaker
does, so the task is not solvable from the long-term spectrum alone (the
mean log-mel baseline of ``benchmarks/logmel_baseline.py`` is near chance),
while short-time structure (pitch, formants, rate) identifies the speaker.

Layout written (the corpus layout of the recipe)::

    <root>/train/wav/spk0000/utt0000.wav ...   training speakers
    <root>/dev/wav/spk0040/utt0000.wav ...     other (test) speakers
    <root>/dev/trials.txt                      "1|0 enrol test" lines
    <root>/synthetic_corpus.json               generation parameters

Audio is 16-bit mono WAV. Generation is deterministic: the same parameters
give the same bytes. The corpus is cached: when the manifest
``synthetic_corpus.json`` matches the requested parameters nothing is done.
When the folder holds a corpus of this generator made with other parameters
(or by another generator version) it is regenerated and replaced; a folder
holding anything else is never touched (``FileExistsError``). The corpus is
written in a temporary sibling folder and moved into place at the end, so an
interrupted run never leaves a half-written corpus behind a valid manifest.

The synthesis shapes the glottal source, and adds noise, in the short-time
spectral domain, with transforms written here with numpy (``_stft``,
``_istft``: Hann windows, hop a quarter window, every sample under four
frames), which take 1.9-2.1 times less time than the legacy
``scipy.signal.stft``/``istft`` and 6.7-8.1 times less than
``scipy.signal.ShortTimeFFT`` with the same window, hop and frames (the
whole synthesis would be 1.01-1.09 and 1.5-1.7 times slower with them;
``benchmarks/handwritten_speedups.py`` in BENCHMARKS.md, "Hand-written
speed-ups"). They are kept because scipy's transforms round differently (by
up to 8.5e-6 on spectra of magnitude up to 53): about one 16-bit sample in
10,000 of every file would change, and with it the corpus and the default
run's EER.

Command line::

    python -m recipes.synthetic_corpus OUT_DIR [--seed 1234] [...]

One file: the generator is one seeded procedure, from the speaker's voice
through content, pitch, source, vocal tract and channel to the WAV files,
the trial list and the manifest, and ``GENERATOR_VERSION`` stamps all of
it: a change to any step changes the corpus and must increase that
version, which is easy to see when the whole procedure is in one file and
easy to miss when it is spread over several.

Authors
 * Speaker metric learning contributors 2025
"""

import argparse
import dataclasses
import itertools
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.ndimage import gaussian_filter1d
from scipy.signal import lfilter
from tqdm import tqdm

from speaker_metric_learning.command_line import exit_on

logger = logging.getLogger(__name__)

MANIFEST_NAME = "synthetic_corpus.json"
# Increase whenever the synthesis changes, so cached corpora are regenerated.
GENERATOR_VERSION = 1
# Shortest utterance (s) sure to contain a vowel.
MIN_DURATION = 0.3

# F1-F3 (Hz) of ten vowels for a reference vocal tract (tract_scale = 1).
VOWEL_FORMANTS = np.array(
    [
        [300, 2400, 3100],
        [420, 2050, 2750],
        [570, 1850, 2650],
        [720, 1750, 2600],
        [760, 1220, 2650],
        [600, 930, 2600],
        [460, 1150, 2500],
        [330, 950, 2450],
        [650, 1300, 2650],
        [500, 1450, 1850],
    ],
    dtype=float,
)
# F4 and F5 (Hz) of the reference vocal tract.
HIGH_FORMANTS = np.array([3500.0, 4500.0])

# Consonants: kind, voicing gain, noise gain, F1-F3 (Hz) while voiced,
# noise band centre and width (Hz), for the reference vocal tract. Gains are
# amplitudes: voicing relative to vowels (1), noise relative to unit-variance
# white noise, ~33 dB below the spectral peaks of vowels.
FRICATIVE, STOP, SONORANT = 0, 1, 2
CONSONANTS = (
    (FRICATIVE, 0.0, 8.0, (400, 1600, 2600), 6000, 3000),  # s
    (FRICATIVE, 0.0, 8.0, (400, 1800, 2600), 3000, 1600),  # sh
    (FRICATIVE, 0.0, 2.0, (400, 1400, 2500), 5000, 6000),  # f
    (FRICATIVE, 0.0, 2.5, (500, 1500, 2500), 1600, 2500),  # h
    (FRICATIVE, 0.20, 4.0, (250, 1600, 2600), 5500, 3000),  # z
    (STOP, 0.0, 6.0, (400, 1000, 2400), 900, 1500),  # p
    (STOP, 0.0, 6.0, (400, 1800, 2700), 4000, 3000),  # t
    (STOP, 0.0, 6.0, (400, 2000, 2500), 2000, 1200),  # k
    (STOP, 0.06, 3.0, (250, 1000, 2400), 900, 1500),  # b
    (STOP, 0.06, 3.0, (250, 1700, 2700), 3500, 3000),  # d
    (SONORANT, 0.35, 0.0, (260, 1100, 2300), 1000, 1000),  # m
    (SONORANT, 0.35, 0.0, (260, 1500, 2500), 1000, 1000),  # n
    (SONORANT, 0.55, 0.0, (360, 1300, 2700), 1000, 1000),  # l
    (SONORANT, 0.55, 0.0, (350, 1100, 1600), 1000, 1000),  # r
    (SONORANT, 0.55, 0.0, (300, 750, 2200), 1000, 1000),  # w
    (SONORANT, 0.55, 0.0, (280, 2200, 3000), 1000, 1000),  # j
)


@dataclasses.dataclass(frozen=True)
class SpeakerVoice:
    """The parameters defining one synthetic speaker.

    Arguments
    ---------
    f0_median : float
        Median fundamental frequency (Hz).
    f0_range : float
        Typical size of pitch accents and phrase resets (semitones).
    declination : float
        Pitch slope within a phrase (semitones per second, negative).
    jitter : float
        Relative standard deviation of cycle-to-cycle F0 perturbation.
    tract_scale : float
        Formant frequency scale (inverse relative vocal-tract length).
    formants : numpy.ndarray
        ``[10, 5]`` formants F1-F5 (Hz) of the speaker's ten vowels,
        tract scale and idiosyncratic deviations included.
    bandwidth_scale : float
        Multiplies every formant bandwidth.
    open_quotient : float
        Open fraction of the glottal cycle (a higher one sounds softer).
    spectral_tilt : float
        Extra source slope (dB per octave).
    breathiness : float
        Amplitude of aspiration noise relative to voicing.
    speaking_rate : float
        Syllable rate relative to an average speaker.

    Example
    -------
    >>> voice = SpeakerVoice.sample(np.random.default_rng(0))
    >>> voice.formants.shape
    (10, 5)
    >>> bool(80 <= voice.f0_median <= 260)
    True
    """

    f0_median: float
    f0_range: float
    declination: float
    jitter: float
    tract_scale: float
    formants: np.ndarray
    bandwidth_scale: float
    open_quotient: float
    spectral_tilt: float
    breathiness: float
    speaking_rate: float

    @classmethod
    def sample(cls, rng):
        """Draws a random voice.

        Arguments
        ---------
        rng : numpy.random.Generator
            Source of randomness.

        Returns
        -------
        SpeakerVoice
            A new voice.

        Example
        -------
        >>> a = SpeakerVoice.sample(np.random.default_rng(1))
        >>> b = SpeakerVoice.sample(np.random.default_rng(1))
        >>> a.f0_median == b.f0_median
        True
        """
        tract_scale = _log_uniform(rng, 0.86, 1.2)
        vowels = VOWEL_FORMANTS * np.exp(rng.normal(0, 0.05, (10, 3)))
        high = HIGH_FORMANTS * np.exp(rng.normal(0, 0.04, 2))
        formants = np.concatenate([vowels, np.tile(high, (10, 1))], axis=1)
        return cls(
            f0_median=_log_uniform(rng, 80.0, 260.0),
            f0_range=rng.uniform(1.5, 5.0),
            declination=rng.uniform(-3.0, -0.5),
            jitter=rng.uniform(0.005, 0.02),
            tract_scale=tract_scale,
            formants=np.sort(formants, axis=1) * tract_scale,
            bandwidth_scale=_log_uniform(rng, 0.7, 1.5),
            open_quotient=rng.uniform(0.45, 0.8),
            spectral_tilt=rng.uniform(-3.0, 3.0),
            breathiness=_log_uniform(rng, 0.03, 0.5),
            speaking_rate=rng.uniform(0.75, 1.35),
        )


def synthesize_utterance(voice, duration, rng, sample_rate=16000):
    """Synthesises one utterance of random content through a random channel.

    Arguments
    ---------
    voice : SpeakerVoice
        The speaker.
    duration : float
        Length of the utterance (seconds).
    rng : numpy.random.Generator
        Source of randomness for the content and the channel.
    sample_rate : int
        Sampling rate (Hz).

    Returns
    -------
    numpy.ndarray
        ``float32`` waveform of ``round(duration * sample_rate)`` samples in
        ``[-1, 1]``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> voice = SpeakerVoice.sample(rng)
    >>> wav = synthesize_utterance(voice, 0.5, rng)
    >>> wav.shape, wav.dtype
    ((8000,), dtype('float32'))
    >>> bool(np.abs(wav).max() <= 1.0)
    True
    """
    n_samples = round(duration * sample_rate)
    n_fft = 2 ** round(np.log2(0.032 * sample_rate))
    # Utterance-level variation of the speaker's own habits.
    rate = voice.speaking_rate * np.exp(rng.normal(0, 0.08))
    f0_shift = rng.normal(0, 0.8)
    segments = _sample_segments(voice, n_samples / sample_rate, rate, rng)

    frame_times = _frame_times(n_samples, n_fft, sample_rate)
    frames = _frame_parameters(segments, frame_times)
    semitones = f0_shift + _pitch_contour(voice, segments, frame_times, rng)
    f0 = voice.f0_median * 2 ** (semitones / 12)
    f0 = np.interp(np.arange(n_samples) / sample_rate, frame_times, f0)
    f0 *= 1 + voice.jitter * rng.standard_normal(n_samples)
    source = _glottal_source(f0, voice.open_quotient, sample_rate)

    # Real spectral envelopes [frames, bins] of the voiced source and of
    # white noise (frication and aspiration), channel included.
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate).astype(np.float32)
    bandwidths = voice.bandwidth_scale * (40 + 0.05 * frames["formants"])
    tract = _cascade_resonances(freqs, frames["formants"], bandwidths)
    channel = _channel_response(freqs, rng)
    tilt = 10 ** (voice.spectral_tilt * np.log2((freqs + 100) / 1100) / 20)
    aspiration = voice.breathiness * freqs / (freqs + 1000)
    voiced = frames["voicing"][:, None] * tract * channel
    frication = (
        frames["noise"][:, None]
        * channel
        * _band_pass(
            freqs,
            frames["noise_centre"][:, None],
            frames["noise_width"][:, None],
        )
    )
    # White noise has independent complex Gaussian short-time spectra, of
    # power sum(hann ** 2) = 3 n_fft / 8.
    shape = (len(frame_times), len(freqs))
    noise_spec = rng.standard_normal(shape, np.float32) * 1j
    noise_spec += rng.standard_normal(shape, np.float32)
    noise_spec *= np.float32(np.sqrt(3 * n_fft / 16))
    speech_spec = _stft(source.astype(np.float32), n_fft) * (voiced * tilt)
    speech_spec += noise_spec * (voiced * aspiration + frication)
    speech = _istft(speech_spec, n_fft, n_samples)

    snr_db = rng.uniform(10.0, 30.0)
    noise = lfilter(
        [1.0], [1.0, -rng.uniform(0.0, 0.95)], rng.standard_normal(n_samples)
    )
    noise *= np.sqrt(
        np.mean(speech**2) / np.mean(noise**2) / 10 ** (snr_db / 10)
    )
    wav = speech + noise
    wav *= 10 ** (rng.uniform(-30.0, -20.0) / 20) / np.sqrt(np.mean(wav**2))
    wav /= max(1.0, np.abs(wav).max() / 0.99)
    return wav.astype(np.float32)


def make_trials(utterances, n_trials=None, rng=None):
    """Builds a balanced verification trial list.

    Speakers are the first component of the utterance paths. Each unordered
    pair of utterances appears at most once, the first utterance (in sorted
    order) enrolled against the second.

    Arguments
    ---------
    utterances : list of str
        Utterance paths ``<spk>/<utt>.wav``.
    n_trials : int, optional
        Number of trials: half targets (same speaker), half non-targets,
        drawn without replacement. By default every same-speaker pair and as
        many different-speaker pairs.
    rng : numpy.random.Generator, optional
        Draws the pairs (default: seed 0).

    Returns
    -------
    list of tuple
        ``(label, enrol, test)`` sorted by enrol then test, label 1 for
        the same speaker.

    Raises
    ------
    ValueError
        If there are fewer target or non-target pairs than requested.

    Example
    -------
    >>> trials = make_trials(["a/1.wav", "a/2.wav", "b/1.wav"])
    >>> trials[0]
    (1, 'a/1.wav', 'a/2.wav')
    >>> len(trials), trials[1][0]
    (2, 0)
    """
    rng = np.random.default_rng(0) if rng is None else rng
    pairs = list(itertools.combinations(sorted(utterances), 2))
    same = np.array([a.split("/")[0] == b.split("/")[0] for a, b in pairs])
    targets = np.flatnonzero(same)
    nontargets = np.flatnonzero(~same)
    n_each = len(targets) if n_trials is None else n_trials // 2
    if n_each > min(len(targets), len(nontargets)):
        raise ValueError(
            f"Cannot draw {n_each} target and {n_each} non-target trials "
            f"from {len(targets)} target and {len(nontargets)} non-target "
            "pairs: ask for fewer trials or more utterances per speaker."
        )
    chosen = np.concatenate(
        [
            rng.choice(targets, n_each, replace=False),
            rng.choice(nontargets, n_each, replace=False),
        ]
    )
    return [(int(same[i]), *pairs[i]) for i in sorted(chosen)]


def generate_corpus(
    root,
    n_train_speakers=40,
    n_dev_speakers=20,
    utterances_per_speaker=10,
    min_duration=3.0,
    max_duration=6.0,
    sample_rate=16000,
    n_trials=None,
    seed=1234,
    progress=True,
):
    """Writes the synthetic corpus in ``root`` unless it is already there.

    Arguments
    ---------
    root : str or pathlib.Path
        Corpus folder (created; see the module docstring for the layout).
    n_train_speakers : int
        Number of training speakers (``spk0000`` ...).
    n_dev_speakers : int
        Number of test speakers, disjoint from the training ones.
    utterances_per_speaker : int
        Utterances of every speaker.
    min_duration, max_duration : float
        Utterance durations are uniform in this range (seconds); at
        least 0.3 s, so that every utterance contains a vowel.
    sample_rate : int
        Sampling rate (Hz).
    n_trials : int, optional
        Number of dev trials (see ``make_trials``); by default every
        same-speaker pair and as many different-speaker pairs.
    seed : int
        Seed of every random draw.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        The corpus folder.

    Raises
    ------
    FileExistsError
        If ``root`` exists and holds something other than a corpus of this
        generator.
    ValueError
        If a parameter is out of range.

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> root = generate_corpus(
    ...     tmp + "/corpus", n_train_speakers=2, n_dev_speakers=2,
    ...     utterances_per_speaker=2, min_duration=0.5, max_duration=0.5,
    ...     progress=False,
    ... )
    >>> sorted(p.name for p in (root / "dev" / "wav").iterdir())
    ['spk0002', 'spk0003']
    >>> lines = (root / "dev" / "trials.txt").read_text().splitlines()
    >>> sorted(line.split()[0] for line in lines)
    ['0', '0', '1', '1']
    >>> lines[0]
    '1 spk0002/utt0000.wav spk0002/utt0001.wav'
    """
    root = Path(root)
    parameters = {
        "n_train_speakers": n_train_speakers,
        "n_dev_speakers": n_dev_speakers,
        "utterances_per_speaker": utterances_per_speaker,
        "min_duration": min_duration,
        "max_duration": max_duration,
        "sample_rate": sample_rate,
        "n_trials": n_trials,
        "seed": seed,
    }
    _check_parameters(**parameters)
    manifest = {
        "generator": "recipes.synthetic_corpus",
        "version": GENERATOR_VERSION,
        "parameters": parameters,
    }
    if _read_manifest(root) == manifest:
        logger.info("Synthetic corpus %s is up to date, skipping", root)
        return root
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        _write_corpus(staging, progress=progress, **parameters)
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
        _replace_folder(root, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def main(argv=None):
    """Command line entry point: generates the corpus in a folder.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Example
    -------
    >>> import tempfile
    >>> main([tempfile.mkdtemp() + "/c", "--n_train_speakers", "1",
    ...       "--n_dev_speakers", "2", "--utterances_per_speaker", "2",
    ...       "--min_duration", "0.3", "--max_duration", "0.3"])
    """
    parser = argparse.ArgumentParser(
        description="Generate (or reuse) the synthetic speaker corpus."
    )
    parser.add_argument("root", help="output corpus folder")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--n_train_speakers", type=int, default=40)
    parser.add_argument("--n_dev_speakers", type=int, default=20)
    parser.add_argument("--utterances_per_speaker", type=int, default=10)
    parser.add_argument("--min_duration", type=float, default=3.0)
    parser.add_argument("--max_duration", type=float, default=6.0)
    parser.add_argument("--sample_rate", type=int, default=16000)
    parser.add_argument(
        "--n_trials",
        type=int,
        default=None,
        help="number of trials (default: every same-speaker pair and as many "
        "different-speaker pairs)",
    )
    args = parser.parse_args(argv)
    with exit_on(OSError, ValueError):
        generate_corpus(**vars(args))


def _log_uniform(rng, low, high):
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _rng(seed, *key):
    """An independent generator for each speaker / utterance / trial list."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _sample_segments(voice, duration, rate, rng):
    """Random content: phrases of syllables, as piecewise-constant targets.

    Returns a dict of per-segment arrays: ``start`` (s), ``formants``
    ``[n, 5]`` (Hz), ``voicing`` and ``noise`` gains, ``noise_centre`` and
    ``noise_width`` (Hz), ``accent`` (pitch accent size, semitones) and
    ``phrase`` (index of the phrase).
    """
    scale = voice.tract_scale
    rows = []
    phrase = 0
    silence = (np.zeros(5), 0.0, 0.0, 1000.0, 1000.0, 0.0)
    time = rng.uniform(0.05, 0.3) * min(1.0, duration)  # leading silence
    rows.append((0.0, *silence, phrase))
    while time < duration:
        for _ in range(rng.integers(3, 9)):
            vowel = voice.formants[rng.integers(len(voice.formants))]
            parts = []
            if rng.random() < 0.8:
                parts += _consonant(vowel, scale, rate, rng)
            accent = voice.f0_range * rng.uniform(0.4, 1.2)
            accent *= rng.random() < 0.4
            gain = 10 ** (rng.normal(0, 2) / 20)
            length = rng.uniform(0.09, 0.22) / rate
            parts.append((length, vowel, gain, 0.0, 1000.0, 1000.0, accent))
            if rng.random() < 0.35:
                parts += _consonant(vowel, scale, rate, rng)
            for length, *values in parts:
                rows.append((time, *values, phrase))
                time += length
        phrase += 1
        rows.append((time, *silence, phrase))
        time += rng.uniform(0.15, 0.45) / rate
    columns = list(zip(*rows, strict=True))
    names = (
        "start formants voicing noise noise_centre noise_width accent phrase"
    ).split()
    return dict(zip(names, map(np.array, columns), strict=True))


def _consonant(vowel, scale, rate, rng):
    """One or two segments ``(length, formants, voicing, noise, centre,
    width, accent)`` of a random consonant next to ``vowel``."""
    kind, voicing, noise, low, centre, width = CONSONANTS[
        rng.integers(len(CONSONANTS))
    ]
    formants = np.concatenate([np.array(low) * scale, vowel[3:]])
    band = (centre * scale, width * scale)
    if kind == STOP:
        closure = (rng.uniform(0.03, 0.07) / rate, formants, voicing, 0.0)
        burst = (rng.uniform(0.01, 0.025), formants, 0.0, noise)
        return [(*closure, *band, 0.0), (*burst, *band, 0.0)]
    length = rng.uniform(0.05, 0.12 if kind == FRICATIVE else 0.09) / rate
    return [(length, formants, voicing, noise, *band, 0.0)]


def _segment_index(segments, frame_times):
    """Index of the segment playing at each frame."""
    index = np.searchsorted(segments["start"], frame_times, side="right")
    return np.maximum(index - 1, 0)


def _frame_parameters(segments, frame_times):
    """Samples the segment targets at the frames, smoothing transitions."""
    index = _segment_index(segments, frame_times)
    hop = frame_times[1] - frame_times[0]
    frames = {}
    for name, sigma in (
        ("voicing", 0.006),
        ("noise", 0.004),
        ("noise_centre", 0.004),
        ("noise_width", 0.004),
    ):
        values = segments[name][index]
        frames[name] = gaussian_filter1d(values, sigma / hop).astype("f4")
    # Silent segments carry zero formants: take the neighbours' ones.
    formants = segments["formants"][index]
    voiced = formants[:, 0] > 0
    if voiced.any():
        for k in range(formants.shape[1]):
            formants[:, k] = np.interp(
                frame_times, frame_times[voiced], formants[voiced, k]
            )
    else:  # silence only: any non-zero formants avoid dividing 0 by 0
        formants[:] = HIGH_FORMANTS.mean()
    formants = gaussian_filter1d(formants, 0.015 / hop, axis=0)
    frames["formants"] = formants.astype(np.float32)
    return frames


def _pitch_contour(voice, segments, frame_times, rng):
    """Pitch (semitones around the median) at the frames: phrase resets with
    declination, accents on stressed vowels, and a slow random wander."""
    starts, phrases = segments["start"], segments["phrase"]
    _, first_segment = np.unique(phrases, return_index=True)
    index = _segment_index(segments, frame_times)
    elapsed = frame_times - starts[first_segment][phrases[index]]
    contour = 0.5 * voice.f0_range + voice.declination * elapsed
    accented = np.flatnonzero(segments["accent"] > 0)
    ends = np.append(starts[1:], np.inf)[accented]
    centres = (starts[accented] + np.minimum(ends, frame_times[-1])) / 2
    widths = np.clip((ends - starts[accented]) / 2, 0.02, 0.2)
    bumps = np.exp(-0.5 * ((frame_times[:, None] - centres) / widths) ** 2)
    contour += bumps @ segments["accent"][accented]
    hop = frame_times[1] - frame_times[0]
    wander = gaussian_filter1d(rng.standard_normal(len(frame_times)), 0.1 / hop)
    return contour + voice.f0_range * 3 * wander


def _glottal_source(f0, open_quotient, sample_rate):
    """Derivative of a Rosenberg glottal flow pulse train following ``f0``."""
    phase = np.linspace(0.0, 1.0, 1025)
    opening = 0.65 * open_quotient
    closing = np.clip((phase - opening) / (open_quotient - opening), 0, 1)
    pulse = np.where(
        phase < opening,
        0.5 * (1 - np.cos(np.pi * phase / opening)),
        np.cos(0.5 * np.pi * closing),
    )
    flow = np.interp(np.cumsum(f0 / sample_rate) % 1.0, phase, pulse)
    return np.diff(flow, prepend=0.0) * sample_rate / f0


def _cascade_resonances(freqs, formants, bandwidths):
    """Magnitude ``[frames, bins]`` of a cascade of second-order resonances
    with unit gain at 0 Hz, from formants and bandwidths ``[frames, k]``."""
    power = np.ones((len(formants), len(freqs)), dtype=freqs.dtype)
    for centre, width in zip(formants.T, bandwidths.T, strict=True):
        centre, width = centre[:, None] ** 2, width[:, None] ** 2
        power *= centre**2 / ((centre - freqs**2) ** 2 + freqs**2 * width)
    return np.sqrt(power)


def _band_pass(freqs, centre, bandwidth):
    """Magnitude of a second-order band-pass with unit gain at ``centre``."""
    return (freqs * bandwidth) / np.sqrt(
        (centre**2 - freqs**2) ** 2 + (freqs * bandwidth) ** 2
    )


def _channel_response(freqs, rng):
    """A random recording channel: band limits, tilt and smooth ripples."""
    nyquist = freqs[-1]
    position = np.log(np.maximum(freqs, 50) / 50) / np.log(nyquist / 50)
    orders = np.arange(1, 7)
    ripple_db = np.cos(
        np.pi * orders * position[:, None] + rng.uniform(0, 2 * np.pi, 6)
    ) @ (rng.normal(0, 3.0, 6) / orders**0.5)
    tilt_db = rng.normal(0, 1.0) * np.log2(np.maximum(freqs, 50) / 1000)
    low_cut = _log_uniform(rng, 50.0, 300.0)
    high_cut = _log_uniform(rng, 3400.0, 2 * nyquist)
    with np.errstate(divide="ignore"):
        high_pass = 1 / np.sqrt(1 + (low_cut / freqs) ** 4)
    low_pass = 1 / np.sqrt(1 + (freqs / high_cut) ** 8)
    gain = 10 ** ((ripple_db + tilt_db) / 20) * high_pass * low_pass
    return gain.astype(np.float32)


def _frame_times(n_samples, n_fft, sample_rate):
    """Centre times (s) of the frames of ``_stft``."""
    hop = n_fft // 4
    n_frames = (n_samples + n_fft - 1) // hop + 1
    return (np.arange(n_frames) * hop - n_fft / 2) / sample_rate


def _stft(signal, n_fft):
    """Short-time spectra ``[frames, bins]`` of Hann windows, hop
    ``n_fft / 4``. The signal is padded with ``n_fft`` zeros on both sides
    so that every sample is covered by four frames."""
    hop = n_fft // 4
    n_frames = (len(signal) + n_fft - 1) // hop + 1
    padded = np.pad(signal, (n_fft, (n_frames - 1) * hop - len(signal)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return np.fft.rfft(windows * _hann(n_fft), axis=1)


def _istft(spectra, n_fft, n_samples):
    """Inverse of ``_stft`` by weighted overlap-add."""
    hop = n_fft // 4
    frames = np.fft.irfft(spectra, n_fft, axis=1) * _hann(n_fft)
    signal = np.zeros((len(frames) + 3) * hop, dtype=frames.dtype)
    for offset in range(4):  # frames offset, offset + 4 ... do not overlap
        group = frames[offset::4].reshape(-1)
        signal[offset * hop : offset * hop + len(group)] += group
    # The squared Hann windows of four overlapping frames sum to 1.5.
    return signal[n_fft : n_fft + n_samples] / 1.5


def _hann(n_fft):
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    return window.astype(np.float32)


def _check_parameters(
    n_train_speakers,
    n_dev_speakers,
    utterances_per_speaker,
    min_duration,
    max_duration,
    sample_rate,
    n_trials,
    seed,
):
    problems = []
    if n_train_speakers < 0:
        problems.append("n_train_speakers must be >= 0")
    if n_dev_speakers < 2:
        problems.append("n_dev_speakers must be >= 2 (for non-target trials)")
    if utterances_per_speaker < 2:
        problems.append("utterances_per_speaker must be >= 2 (for targets)")
    if not MIN_DURATION <= min_duration <= max_duration:
        problems.append(
            f"need {MIN_DURATION} <= min_duration <= max_duration (seconds)"
        )
    if sample_rate < 8000:
        problems.append("sample_rate must be >= 8000")
    if n_trials is not None and n_trials < 2:
        problems.append("n_trials must be >= 2")
    if seed < 0:
        problems.append("seed must be >= 0")
    if problems:
        raise ValueError("Invalid synthetic corpus: " + "; ".join(problems))


def _read_manifest(root):
    try:
        return json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def _check_replaceable(root):
    """Refuses to overwrite a folder that is not one of our corpora."""
    if not root.exists():
        return
    if not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a folder.")
    entries = {entry.name for entry in root.iterdir()}
    ours = {MANIFEST_NAME, "train", "dev"}
    if entries and (MANIFEST_NAME not in entries or entries - ours):
        raise FileExistsError(
            f"{root} is not empty and is not a synthetic corpus of "
            f"{__name__} (found {sorted(entries)[:5]}): give a new or empty "
            "folder, or delete this one."
        )
    if entries:
        logger.warning(
            "Regenerating %s: its manifest does not match the request", root
        )


def _replace_folder(root, staging):
    """Moves ``staging`` to ``root``, removing the previous ``root``."""
    if root.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        os.replace(root, trash / root.name)
        os.replace(staging, root)
        shutil.rmtree(trash)
    else:
        os.replace(staging, root)


def _write_corpus(
    root,
    n_train_speakers,
    n_dev_speakers,
    utterances_per_speaker,
    min_duration,
    max_duration,
    sample_rate,
    n_trials,
    seed,
    progress,
):
    n_speakers = n_train_speakers + n_dev_speakers
    dev_utterances = []
    bar = tqdm(
        total=n_speakers * utterances_per_speaker,
        desc="Synthetic corpus",
        unit="utt",
        disable=not progress,
    )
    with bar:
        for speaker in range(n_speakers):
            split = "train" if speaker < n_train_speakers else "dev"
            folder = root / split / "wav" / f"spk{speaker:04d}"
            folder.mkdir(parents=True)
            voice = SpeakerVoice.sample(_rng(seed, 0, speaker))
            for utterance in range(utterances_per_speaker):
                rng = _rng(seed, 1, speaker, utterance)
                duration = rng.uniform(min_duration, max_duration)
                wav = synthesize_utterance(voice, duration, rng, sample_rate)
                path = folder / f"utt{utterance:04d}.wav"
                sf.write(path, wav, sample_rate, subtype="PCM_16")
                if split == "dev":
                    dev_utterances.append(f"{folder.name}/{path.name}")
                bar.update()
    trials = make_trials(dev_utterances, n_trials, _rng(seed, 2))
    lines = [f"{label} {enrol} {test}\n" for label, enrol, test in trials]
    (root / "dev" / "trials.txt").write_text("".join(lines))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
