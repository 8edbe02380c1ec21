"""Training-free speaker verification baselines on one or more corpora.

Each utterance is summarised without any training, trials are scored and the
equal error rate (EER) of each summary is printed, corpora side by side:

* mean log-mel: per-utterance mean of 40 log-mel energies (25 ms / 10 ms,
  SpeechBrain ``Fbank``), cosine scoring. It sees only the long-term
  spectrum, so it measures how much of a corpus is solvable from the
  long-term spectrum (channel and speaker mixed).
* mean+std log-mel: the same with the per-band standard deviation appended.
* median log-F0: median of an autocorrelation pitch track over the voiced
  frames, scored by minus the absolute difference. One speaker trait that
  no channel colouring changes.

Usage (from the repository root)::

    PYTHONPATH=plugin:. python benchmarks/logmel_baseline.py \\
        --synthetic benchmarks/results/synthetic_corpus \\
        --corpus /work/shared/data/speechocean762

``--synthetic DIR`` generates (once, cached) the default synthetic corpus in
DIR; ``--corpus DIR`` reads an existing corpus (``DIR/dev/wav`` and
``DIR/dev/trials.txt``); ``--eval_folder DIR --trials FILE`` any audio folder
and trial list. Without arguments the default synthetic corpus is used.

Authors
 * Speaker metric learning contributors 2025
"""

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from speechbrain.lobes.features import Fbank
from tqdm import tqdm

from recipes.folder_prepare import scan_folder
from recipes.synthetic_corpus import generate_corpus
from speaker_metric_learning.scoring.metrics import equal_error_rate
from speaker_metric_learning.scoring.trials import read_trials

SAMPLE_RATE = 16000
DEFAULT_SYNTHETIC = Path("benchmarks/results/synthetic_corpus")


def cosine(a, b):
    """Cosine similarity of two vectors.

    Example
    -------
    >>> round(cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])) ** 2, 6)
    0.5
    """
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def negative_distance(a, b):
    """Minus the Euclidean distance of two vectors.

    Example
    -------
    >>> negative_distance(np.array([0.0, 3.0]), np.array([4.0, 0.0]))
    -5.0
    """
    return -float(np.linalg.norm(a - b))


def median_log_f0(wav, fmin=60.0, fmax=400.0, min_peak=0.6):
    """Median log2-F0 of the voiced frames (40 ms, hop 10 ms), by
    normalised autocorrelation; all frames if none looks voiced.

    Example
    -------
    >>> time = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    >>> wav = np.sign(np.sin(2 * np.pi * 125.0 * time))
    >>> float(2 ** median_log_f0(wav)[0])
    125.0
    """
    size, hop = int(0.04 * SAMPLE_RATE), int(0.01 * SAMPLE_RATE)
    frames = np.lib.stride_tricks.sliding_window_view(wav, size)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(frames, 2 * size, axis=1)) ** 2
    autocorrelation = np.fft.irfft(power, axis=1)[:, :size]
    energy = autocorrelation[:, 0]
    lags = np.arange(int(SAMPLE_RATE / fmax), int(SAMPLE_RATE / fmin) + 1)
    best = np.argmax(autocorrelation[:, lags], axis=1)
    peak = autocorrelation[np.arange(len(frames)), lags[best]]
    voiced = (peak > min_peak * np.maximum(energy, 1e-12)) & (
        energy > 1e-3 * energy.max()
    )
    chosen = lags[best][voiced] if voiced.any() else lags[best]
    return np.array([np.median(np.log2(SAMPLE_RATE / chosen))])


SYSTEMS = {
    "mean log-mel (40), cosine": ("log-mel", lambda m: m.mean(0), cosine),
    "mean+std log-mel (80), cosine": (
        "log-mel",
        lambda m: np.concatenate([m.mean(0), m.std(0)]),
        cosine,
    ),
    "median log-F0, -|difference|": (
        "wav",
        median_log_f0,
        negative_distance,
    ),
}


def evaluate(eval_folder, trials_file):
    """EER (%) of every system on one trial list; also the trial counts."""
    trials = read_trials(trials_file)
    paths = {u.id: u.wav for u in scan_folder(eval_folder)[0]}
    needed = sorted(trials.utterances)
    missing = [utt for utt in needed if utt not in paths]
    if missing:
        raise ValueError(
            f"{len(missing)} utterances of {trials_file} are not in "
            f"{eval_folder}, e.g. {missing[0]}."
        )
    fbank = Fbank(n_mels=40)
    features = {name: {} for name in SYSTEMS}
    for utt in tqdm(needed, desc=f"Features {eval_folder}", unit="utt"):
        wav, rate = sf.read(paths[utt], dtype="float32", always_2d=True)
        if rate != SAMPLE_RATE:
            raise ValueError(f"{paths[utt]}: {rate} Hz, {SAMPLE_RATE} needed.")
        wav = wav.mean(axis=1)
        with torch.no_grad():
            log_mel = fbank(torch.from_numpy(wav)[None])[0].numpy()
        inputs = {"wav": wav, "log-mel": log_mel}
        for name, (source, summarise, _) in SYSTEMS.items():
            features[name][utt] = summarise(inputs[source])
    labels = trials.labels
    pairs = [
        (trials.utterances[e], trials.utterances[t])
        for e, t in zip(trials.enrol_index, trials.test_index, strict=True)
    ]
    eers = {}
    for name, (_, _, score) in SYSTEMS.items():
        table = features[name]
        scores = np.array([score(table[e], table[t]) for e, t in pairs])
        eers[name] = 100 * equal_error_rate(scores[labels], scores[~labels])[0]
    return eers, len(trials), int(labels.sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--synthetic", type=Path, help="default synthetic corpus folder"
    )
    parser.add_argument(
        "--corpus", type=Path, action="append", default=[], help="corpus root"
    )
    parser.add_argument("--eval_folder", type=Path)
    parser.add_argument("--trials", type=Path)
    args = parser.parse_args()
    if (args.eval_folder is None) != (args.trials is None):
        parser.error("--eval_folder and --trials go together")
    torch.set_num_threads(1)

    evaluations = []
    synthetic = args.synthetic
    if synthetic is None and not args.corpus and args.eval_folder is None:
        synthetic = DEFAULT_SYNTHETIC
    if synthetic is not None:
        start = time.perf_counter()
        generate_corpus(synthetic)
        print(f"Synthetic corpus ready in {time.perf_counter() - start:.1f} s")
        args.corpus.insert(0, synthetic)
    for root in args.corpus:
        dev = root / "dev"
        evaluations.append((root.name, dev / "wav", dev / "trials.txt"))
    if args.eval_folder is not None:
        evaluations.append(
            (args.eval_folder.name, args.eval_folder, args.trials)
        )

    columns, results = [], []
    for name, folder, trials_file in evaluations:
        eers, n_trials, n_targets = evaluate(folder, trials_file)
        columns.append(f"{name} ({n_trials} trials, {n_targets} targets)")
        results.append(eers)
    print("\n| EER (%) | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for system in SYSTEMS:
        row = " | ".join(f"{eers[system]:.2f}" for eers in results)
        print(f"| {system} | {row} |")


if __name__ == "__main__":
    main()
