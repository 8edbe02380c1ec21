"""Hand-written speed-ups against the library calls they stand in for.

Each hand-written fast path costs maintenance; this script measures what
it buys, side by side with the library call, and checks whether the
library call would give the same numbers (the default run's EER must stay
bitwise identical, so a call that changes outputs cannot replace ours
whatever its speed).

Measured (every comparison interleaved, the order reversed every other
repetition; medians of the times and of the per-repetition ratios):

* durations from file headers: ``recipes.folder_prepare._audio_format``
  (the WAV and FLAC header parser of the data preparation) against
  ``soundfile.info(path).duration``, on a few hundred 1-5 s, 16 kHz,
  16-bit mono WAV and FLAC files written by soundfile (page cache warm),
  per file and inside ``scan_folder`` (listing, headers and rows of the
  whole folder; soundfile.info swapped in for the parser); durations,
  rates and channels are compared on these files and on a few files of
  other formats (24-bit, float, stereo, 8 kHz);
* the synthetic corpus's ``_stft``/``_istft`` (``recipes.synthetic_corpus``)
  against ``scipy.signal.ShortTimeFFT`` and the legacy
  ``scipy.signal.stft``/``istft`` with the same window, hop and frames,
  on the signals of the default corpus's first utterances; reported: the
  ratio, the part of the whole utterance synthesis spent in them, the
  maximum absolute difference of the spectra and of the resynthesised
  signals, and how many 16-bit samples of those utterances' WAV files
  would change with scipy's transforms in the synthesis;
* the polyphase SincNet (``speaker_metric_learning.sincnet``) against the
  direct strided ``conv1d`` of the same filters: agreement only (outputs
  and gradients, bitwise); its speed is measured by
  ``benchmarks/sincnet_speed.py`` (BENCHMARKS.md, "SincNet and SincTDNN
  speed").

Not re-measured here: the trial-list parser
(``speaker_metric_learning.scoring.trials``) against the line-by-line
reference parser of ``tests/test_trial_parsing.py``, which
``benchmarks/metrics_speed.py`` measures on VoxCeleb1-E (BENCHMARKS.md,
"Trial parsing: the parser kept, against a line-by-line reference").

The machine's load average is printed before and after: on a shared
machine read the ratios, not the times.

Usage (from the repository root)::

    PYTHONPATH=plugin:. python benchmarks/handwritten_speedups.py

Authors
 * Speaker metric learning contributors 2025
"""

import argparse
import io
import os
import statistics
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import scipy.signal
import soundfile as sf
from sincnet_speed import interleaved_medians as interleaved

from recipes import folder_prepare, synthetic_corpus

SAMPLE_RATE = 16000
PARTS = ("headers", "stft", "sincnet")


def report(title, times, reference, per=1, unit="ms"):
    """Prints a table of median times and median per-repetition ratios.

    Arguments
    ---------
    title : str
        First column heading.
    times : dict
        Name -> list of seconds (the same repetitions for every name).
    reference : str
        Name of the row the ratios divide by.
    per : int
        Items per run: the times are divided by it (per-file times).
    unit : str
        ``"ms"`` or ``"us"``.

    Example
    -------
    >>> report("demo", {"a": [1.0, 2.0, 3.0], "b": [2.0, 4.0, 7.0]}, "a")
    <BLANKLINE>
    | demo | median ms | ratio to a |
    |---|---:|---:|
    | a | 2000.0 | 1.00 |
    | b | 4000.0 | 2.00 |
    """
    scale = {"ms": 1e3, "us": 1e6}[unit]
    print(f"\n| {title} | median {unit} | ratio to {reference} |")
    print("|---|---:|---:|")
    for name, seconds in times.items():
        ratios = [a / b for a, b in zip(seconds, times[reference], strict=True)]
        median = scale * statistics.median(seconds) / per
        print(f"| {name} | {median:.1f} | {statistics.median(ratios):.2f} |")


def library_format(path):
    """``(frames, rate, channels)`` of an audio file by ``soundfile.info``.

    Example
    -------
    >>> path = Path(tempfile.mkdtemp()) / "a.wav"
    >>> sf.write(path, np.zeros(800), 16000)
    >>> library_format(path)
    (800, 16000, 1)
    """
    info = sf.info(path)
    return info.frames, info.samplerate, info.channels


def write_audio_folder(root, n_files, rng):
    """Writes ``n_files`` WAV and ``n_files`` FLAC files (16 kHz, 16-bit
    mono noise of 1-5 s) as ``root/spk<k>/<name>.<ext>``; returns their
    paths by extension."""
    paths = {"wav": [], "flac": []}
    for index in range(n_files):
        samples = rng.standard_normal(int(rng.integers(1, 6) * SAMPLE_RATE))
        samples = (0.1 * samples + 0.01 * rng.standard_normal()).clip(-1, 1)
        folder = root / f"spk{index % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for extension, paths_of in paths.items():
            path = folder / f"utt{index:04d}.{extension}"
            sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16")
            paths_of.append(str(path))
    return paths


def write_other_formats(root, rng):
    """A few WAV and FLAC files of other sample formats, rates and channel
    counts; returns their paths."""
    formats = [
        ("wav", "PCM_24", SAMPLE_RATE, 1),
        ("wav", "PCM_32", SAMPLE_RATE, 1),
        ("wav", "FLOAT", SAMPLE_RATE, 1),
        ("wav", "PCM_16", SAMPLE_RATE, 2),
        ("wav", "PCM_16", 8000, 1),
        ("wav", "PCM_U8", SAMPLE_RATE, 1),
        ("flac", "PCM_24", SAMPLE_RATE, 1),
        ("flac", "PCM_16", SAMPLE_RATE, 2),
        ("flac", "PCM_16", 8000, 1),
    ]
    paths = []
    for index, (extension, subtype, rate, channels) in enumerate(formats):
        samples = 0.1 * rng.standard_normal((int(1.3 * rate), channels))
        path = root / f"other{index}_{subtype}_{rate}_{channels}.{extension}"
        sf.write(path, samples, rate, subtype=subtype)
        paths.append(str(path))
    return paths


def measure_headers(n_files, repetitions, rng):
    """Header parser against soundfile.info: agreement and speed."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        paths = write_audio_folder(root / "corpus", n_files, rng)
        others = write_other_formats(root, rng)
        print(f"\n{n_files} WAV + {n_files} FLAC files (16 kHz, 16-bit mono,")
        print("1-5 s) and", len(others), "files of other formats:")
        for name, files in (*paths.items(), ("other formats", others)):
            ours = [folder_prepare._audio_format(path) for path in files]
            library = [library_format(path) for path in files]
            durations = [frames / rate for frames, rate, _ in ours]
            same = durations == [sf.info(path).duration for path in files]
            print(
                f"- {name}: (frames, rate, channels) equal on "
                f"{sum(a == b for a, b in zip(ours, library, strict=True))}"
                f" of {len(files)} files; durations "
                f"{'identical' if same else 'DIFFERENT'}"
            )
        for extension, files in paths.items():

            def parse(files=files):
                for path in files:
                    folder_prepare._audio_format(path)

            def info(files=files):
                for path in files:
                    library_format(path)

            times = interleaved(
                {"ours (header parser)": parse, "soundfile.info": info},
                repetitions,
            )
            report(
                f"{extension.upper()} duration, per file",
                times,
                "ours (header parser)",
                per=len(files),
                unit="us",
            )

        def scan():
            folder_prepare.scan_folder(root / "corpus", progress=False)

        def scan_with_info():
            with mock.patch.object(
                folder_prepare, "_audio_format", library_format
            ):
                scan()

        times = interleaved(
            {"ours (header parser)": scan, "soundfile.info": scan_with_info},
            repetitions,
        )
        report(
            f"scan_folder, {2 * n_files} files, per file",
            times,
            "ours (header parser)",
            per=2 * n_files,
            unit="us",
        )


def scipy_stft(signal, n_fft):
    """``_stft`` by ``scipy.signal.ShortTimeFFT``: the same frames (the
    slices of the zero-padded signal from the third one on).

    Example
    -------
    >>> signal = np.random.default_rng(0).standard_normal(3000)
    >>> ours = synthetic_corpus._stft(signal.astype(np.float32), 256)
    >>> bool(np.allclose(scipy_stft(signal, 256), ours, atol=1e-4))
    True
    """
    hop = n_fft // 4
    n_frames = (len(signal) + n_fft - 1) // hop + 1
    padded = np.pad(signal, (n_fft, (n_frames - 1) * hop - len(signal)))
    return _short_time_fft(n_fft).stft(padded, p0=2, p1=n_frames + 2).T


def scipy_istft(spectra, n_fft, n_samples):
    """``_istft`` by ``scipy.signal.ShortTimeFFT`` (its first frame lies
    wholly before the signal: ShortTimeFFT starts at the next one).

    Example
    -------
    >>> signal = np.random.default_rng(0).standard_normal(3000)
    >>> spectra = synthetic_corpus._stft(signal.astype(np.float32), 256)
    >>> bool(np.allclose(scipy_istft(spectra, 256, 3000), signal, atol=1e-5))
    True
    """
    return _short_time_fft(n_fft).istft(spectra[1:].T, k1=n_samples)


def legacy_stft(signal, n_fft):
    """``_stft`` by the legacy ``scipy.signal.stft`` on the padded signal,
    unscaled."""
    hop = n_fft // 4
    n_frames = (len(signal) + n_fft - 1) // hop + 1
    padded = np.pad(signal, (n_fft, (n_frames - 1) * hop - len(signal)))
    window = synthetic_corpus._hann(n_fft)
    _, _, spectra = scipy.signal.stft(
        padded,
        window=window,
        nperseg=n_fft,
        noverlap=n_fft - hop,
        detrend=False,
        boundary=None,
        padded=False,
        scaling="spectrum",
    )
    return spectra.T * window.sum()


def legacy_istft(spectra, n_fft, n_samples):
    """``_istft`` by the legacy ``scipy.signal.istft`` (no boundary: the
    padding is cut off as ``_istft`` cuts it)."""
    window = synthetic_corpus._hann(n_fft)
    with warnings.catch_warnings():
        # "NOLA condition failed": the first sample of the padding lies
        # under one window only, whose first value is 0; it is cut off
        warnings.simplefilter("ignore", UserWarning)
        _, signal = scipy.signal.istft(
            spectra.T / window.sum(),
            window=window,
            nperseg=n_fft,
            noverlap=n_fft - n_fft // 4,
            boundary=False,
            scaling="spectrum",
        )
    return signal[n_fft : n_fft + n_samples]


def _short_time_fft(n_fft):
    """ShortTimeFFT of ``_stft``'s Hann window and hop, unscaled."""
    return scipy.signal.ShortTimeFFT(
        synthetic_corpus._hann(n_fft),
        n_fft // 4,
        fs=SAMPLE_RATE,
        fft_mode="onesided",
        mfft=n_fft,
        scale_to=None,
        phase_shift=None,
    )


def corpus_utterances(n_utterances, seed=1234):
    """``(voice, duration, rng seed key)`` of the first utterances of the
    default corpus's first speaker, as ``_write_corpus`` draws them."""
    voice = synthetic_corpus.SpeakerVoice.sample(
        synthetic_corpus._rng(seed, 0, 0)
    )
    utterances = []
    for utterance in range(n_utterances):
        duration = synthetic_corpus._rng(seed, 1, 0, utterance).uniform(3, 6)
        utterances.append((voice, duration, (seed, 1, 0, utterance)))
    return utterances


def synthesize(voice, key, stft=None, istft=None):
    """The 16-bit samples of the WAV file of one utterance of the corpus,
    optionally with other STFT functions in the synthesis."""
    rng = synthetic_corpus._rng(*key)
    duration = rng.uniform(3.0, 6.0)
    patches = []
    if stft is not None:
        patches = [
            mock.patch.object(synthetic_corpus, "_stft", stft),
            mock.patch.object(synthetic_corpus, "_istft", istft),
        ]
    for patch in patches:
        patch.start()
    try:
        wav = synthetic_corpus.synthesize_utterance(voice, duration, rng)
    finally:
        for patch in patches:
            patch.stop()
    buffer = io.BytesIO()
    sf.write(buffer, wav, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    buffer.seek(0)
    return sf.read(buffer, dtype="int16")[0]


def measure_stft(n_utterances, repetitions):
    """The corpus's STFT pair against scipy's: agreement and speed."""
    n_fft = 2 ** round(np.log2(0.032 * SAMPLE_RATE))
    utterances = corpus_utterances(n_utterances)
    signals = [
        np.random.default_rng(index)
        .standard_normal(round(duration * SAMPLE_RATE))
        .astype(np.float32)
        for index, (_, duration, _) in enumerate(utterances)
    ]
    seconds = sum(len(signal) for signal in signals) / SAMPLE_RATE
    print(
        f"\n{n_utterances} signals of the default corpus's first "
        f"utterances' lengths ({seconds:.1f} s), n_fft {n_fft}, hop "
        f"{n_fft // 4}:"
    )
    pairs = {
        "scipy ShortTimeFFT": (scipy_stft, scipy_istft),
        "legacy scipy.signal.stft/istft": (legacy_stft, legacy_istft),
    }
    for name, (stft, istft) in pairs.items():
        spectrum_error = signal_error = 0.0
        for signal in signals:
            ours = synthetic_corpus._stft(signal, n_fft)
            theirs = stft(signal, n_fft)
            spectrum_error = max(spectrum_error, np.abs(theirs - ours).max())
            resynthesis = synthetic_corpus._istft(ours, n_fft, len(signal))
            error = np.abs(istft(ours, n_fft, len(signal)) - resynthesis)
            signal_error = max(signal_error, error.max())
        print(
            f"- {name}: max |difference| {spectrum_error:.2g} (spectra, "
            f"|values| up to {np.abs(ours).max():.0f}), {signal_error:.2g} "
            "(resynthesis of the same spectra)"
        )

    def in_float32(stft, istft):
        def float32_stft(signal, n_fft):
            return stft(signal, n_fft).astype(np.complex64)

        def float32_istft(spectra, n_fft, n_samples):
            return istft(spectra, n_fft, n_samples).astype(np.float32)

        return float32_stft, float32_istft

    for name, (stft, istft) in pairs.items():
        changed = total = files = 0
        for voice, _, key in utterances:
            ours = synthesize(voice, key)
            theirs = synthesize(voice, key, *in_float32(stft, istft))
            changed += int((ours != theirs).sum())
            total += len(ours)
            files += bool((ours != theirs).any())
        print(
            f"- synthesis with {name}: {changed} of {total} 16-bit samples "
            f"differ, in {files} of {len(utterances)} WAV files"
        )

    def run(stft, istft):
        def transforms():
            for signal in signals:
                istft(stft(signal, n_fft), n_fft, len(signal))

        return transforms

    def synthesis(*pair):
        def synthesize_all():
            for voice, _, key in utterances:
                synthesize(voice, key, *pair)

        return synthesize_all

    ours = "ours (_stft + _istft)"
    cases = {
        ours: run(synthetic_corpus._stft, synthetic_corpus._istft),
        **{name: run(*pair) for name, pair in pairs.items()},
    }
    report(
        f"STFT + inverse, {n_utterances} signals",
        interleaved(cases, repetitions),
        ours,
    )
    cases = {
        ours: synthesis(),
        **{
            f"with {name}": synthesis(*in_float32(*pair))
            for name, pair in pairs.items()
        },
    }
    report(
        f"synthesize_utterance, {n_utterances} utterances",
        interleaved(cases, repetitions),
        ours,
    )


def check_sincnet(threads):
    """The polyphase SincNet against a direct strided conv1d of the same
    filters: are outputs and gradients bitwise equal?"""
    import torch
    import torch.nn.functional as F

    from speaker_metric_learning.sincnet import SincNet

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    print(f"\nSincNet, polyphase against direct strided conv1d ({threads}")
    print("threads; random cut-offs; fixed random output gradient):")
    for n_filters, stride in ((24, 10), (80, 5)):
        sincnet = SincNet(n_filters=n_filters, stride=stride)
        with torch.no_grad():
            for parameter in sincnet.parameters():
                parameter.add_(
                    10 * torch.randn(parameter.shape, generator=generator)
                )
        for batch, n_samples in ((32, 32000), (5, 40003), (1, 251)):
            waveforms = torch.randn(batch, n_samples, generator=generator)
            waveforms.requires_grad_()
            ours = sincnet(waveforms)
            direct = F.conv1d(
                waveforms[:, None], sincnet.filters()[:, None], stride=stride
            )
            gradient = torch.randn(ours.shape, generator=generator)
            inputs = [waveforms, *sincnet.parameters()]
            ours_grad = torch.autograd.grad(ours, inputs, gradient)
            direct_grad = torch.autograd.grad(direct, inputs, gradient)
            difference = (ours - direct).abs().max().item()
            outputs = (
                "equal" if difference == 0 else f"differ by {difference:.2g}"
            )
            equal = [
                torch.equal(a, b)
                for a, b in zip(ours_grad, direct_grad, strict=True)
            ]
            print(
                f"- {n_filters} filters, stride {stride}, batch {batch} x "
                f"{n_samples}: outputs "
                f"{outputs}"
                f"; cut-off gradients {'equal' if all(equal[1:]) else 'DIFFER'}"
                f"; waveform gradient {'equal' if equal[0] else 'differs'}"
            )


def main(argv=None):
    """Runs the measurements and prints their tables.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=PARTS)
    parser.add_argument("--files", type=int, default=200, help="per format")
    parser.add_argument("--utterances", type=int, default=8)
    parser.add_argument("--repetitions", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2, help="SincNet")
    args = parser.parse_args(argv)
    print(
        "load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    )
    if "headers" in args.parts:
        measure_headers(args.files, args.repetitions, np.random.default_rng(0))
    if "stft" in args.parts:
        measure_stft(args.utterances, args.repetitions)
    if "sincnet" in args.parts:
        check_sincnet(args.threads)
    print(
        "\nload average at end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    )


if __name__ == "__main__":
    main()
