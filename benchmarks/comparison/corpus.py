"""The audio of the comparison and where everything is written.

Owns ``Layout`` (the paths of one comparison: the output folder of the
runs, the corpus, the budget-independent shared folder), the decoded float
WAV copies of the corpus (``decode_corpus``), the seeded test-side
variants of the dev trials (``VARIANTS``: cuts to 2 s and 1 s, white noise
at 5 dB SNR; ``modify``, ``write_variants``) and their data CSV files.
"""

import dataclasses
import json
import pathlib
import zlib

import numpy as np
import soundfile

from speaker_metric_learning.layout import (
    audio_root,
    speaker_audio_files,
    utterance_id,
)
from speaker_metric_learning.scoring.trials import read_trials

SAMPLE_RATE = 16000


@dataclasses.dataclass(frozen=True)
class Variant:
    """A modification of the test side of every trial."""

    seconds: float = None  # cut to this length (random offset)
    snr_db: float = None  # add white noise at this SNR


VARIANTS = {
    "test 2 s": Variant(seconds=2.0),
    "test 1 s": Variant(seconds=1.0),
    "noise 5 dB": Variant(snr_db=5.0),
}


def variant_folder_name(name):
    """File-system name of a variant ("test 2 s" -> "test_2_s")."""
    return name.replace(" ", "_")


class Layout:
    """Paths of one comparison under the output folder."""

    def __init__(self, output, data, shared):
        self.output = pathlib.Path(output).resolve()
        self.data = pathlib.Path(data).resolve()
        self.shared = pathlib.Path(shared).resolve()
        self.audio = self.shared / "audio"
        self.trials = self.data / "dev" / "trials.txt"

    def decoded(self, part):
        """Decoded copy of ``train`` or ``dev``."""
        return self.audio / part

    def variant(self, name):
        """Folder of the test-side variant ``name``."""
        return self.audio / "variants" / variant_folder_name(name)

    def run(self, system, seed):
        """Output folder of one training run."""
        return self.output / system / str(seed)

    def reference(self, name):
        """Output folder of one reference point (budget-independent)."""
        return self.shared / "reference" / name


def runs_robustness_folder(folder, variant):
    """Results folder of one variant under a run or reference folder."""
    return pathlib.Path(folder) / "robustness" / variant_folder_name(variant)


def utterance_rng(seed, stream, utterance_id):
    """Generator of one utterance: a function of (seed, stream, id).

    Example
    -------
    >>> a = utterance_rng(1, 0, "spk/utt").integers(1000)
    >>> bool(a == utterance_rng(1, 0, "spk/utt").integers(1000))
    True
    """
    return np.random.default_rng(
        [seed, stream, zlib.crc32(utterance_id.encode())]
    )


def modify(waveform, variant, rng, sample_rate=SAMPLE_RATE):
    """Applies a ``Variant`` to a 1-D float waveform.

    Example
    -------
    >>> wav = np.ones(48000, dtype=np.float32)
    >>> modify(wav, Variant(seconds=1.0), np.random.default_rng(0)).shape
    (16000,)
    >>> noisy = modify(wav, Variant(snr_db=0.0), np.random.default_rng(0))
    >>> round(float(np.mean((noisy - wav) ** 2)), 6)  # noise power = signal
    1.0
    """
    if variant.seconds is not None:
        size = round(variant.seconds * sample_rate)
        if len(waveform) > size:
            start = int(rng.integers(0, len(waveform) - size + 1))
            waveform = waveform[start : start + size]
    if variant.snr_db is not None:
        noise = rng.standard_normal(len(waveform))
        signal_power = np.mean(np.square(waveform, dtype=np.float64))
        noise *= np.sqrt(
            signal_power / np.mean(noise**2) / 10 ** (variant.snr_db / 10)
        )
        waveform = (waveform + noise).astype(np.float32)
    return waveform


def audio_files(folder):
    """``{utterance id: path}`` of the audio files of a corpus split, by
    speaker and path (``speaker_metric_learning.layout``'s rules); empty
    for a folder not written yet."""
    if not pathlib.Path(folder).is_dir():
        return {}
    root = audio_root(folder)
    return {
        utterance_id(path.relative_to(root)): path
        for paths in speaker_audio_files(folder).values()
        for path in paths
    }


def audio_seconds(folder):
    """Total duration of the audio files of ``<folder>/wav``."""
    return sum(
        soundfile.info(path).duration for path in audio_files(folder).values()
    )


def decode_corpus(layout):
    """Float32 WAV copies of the train and dev audio (once)."""
    for part in ("train", "dev"):
        target = layout.decoded(part)
        done = target / "DONE"
        if done.exists():
            continue
        sources = audio_files(layout.data / part)
        if not sources:
            raise FileNotFoundError(
                f"no audio in {layout.data / part / 'wav'}: give --data, the "
                "corpus root holding train/wav and dev/wav"
            )
        print(f"decoding {len(sources)} files of {part} into {target}")
        for utterance, path in sources.items():
            samples, rate = soundfile.read(path, dtype="float32")
            out = target / "wav" / f"{utterance}.wav"
            out.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(out, samples, rate, subtype="FLOAT")
        done.write_text(f"{len(sources)} files from {layout.data / part}\n")


def write_variants(layout, seed):
    """The test-side variants of the dev trials, as audio folders (once)."""
    trials = read_trials(layout.trials)
    tests = sorted(set(trials.test.tolist()))
    dev = audio_files(layout.decoded("dev"))
    for stream, (name, variant) in enumerate(VARIANTS.items()):
        folder = layout.variant(name)
        done = folder / "DONE"
        settings = json.dumps({**dataclasses.asdict(variant), "seed": seed})
        if done.exists() and done.read_text() == settings:
            continue
        print(f"writing the '{name}' variant of {len(tests)} test utterances")
        for utterance in tests:
            samples, rate = soundfile.read(dev[utterance], dtype="float32")
            changed = modify(
                samples, variant, utterance_rng(seed, stream, utterance), rate
            )
            out = folder / "wav" / f"{utterance}.wav"
            out.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(out, changed, rate, subtype="FLOAT")
        done.write_text(settings)


def variant_csv(layout, variant):
    """Data CSV of a variant folder (written once, before any job)."""
    from recipes.folder_prepare import prepare_folder

    csv_file = layout.shared / "csv" / f"{variant_folder_name(variant)}.csv"
    if not csv_file.exists():
        prepare_folder(layout.variant(variant), csv_file, progress=False)
    return csv_file
