"""Tests of the seeded synthetic corpus generator (recipes.synthetic_corpus)."""

import dataclasses
import itertools
import json

import numpy as np
import pytest
import soundfile as sf

from recipes import synthetic_corpus
from recipes.synthetic_corpus import (
    MANIFEST_NAME,
    SpeakerVoice,
    generate_corpus,
    main,
    make_trials,
    synthesize_utterance,
)

TINY = {
    "n_train_speakers": 3,
    "n_dev_speakers": 3,
    "utterances_per_speaker": 2,
    "min_duration": 0.8,
    "max_duration": 1.2,
    "seed": 7,
    "progress": False,
}


def corpus_bytes(root):
    """Relative path -> bytes of every file of a corpus."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def read_trial_lines(root):
    lines = (root / "dev" / "trials.txt").read_text().splitlines()
    return [
        (int(label), enrol, test)
        for label, enrol, test in map(str.split, lines)
    ]


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    return generate_corpus(tmp_path_factory.mktemp("tiny") / "corpus", **TINY)


def test_layout_and_audio_format(tiny_corpus):
    train = sorted(p.name for p in (tiny_corpus / "train" / "wav").iterdir())
    dev = sorted(p.name for p in (tiny_corpus / "dev" / "wav").iterdir())
    assert train == ["spk0000", "spk0001", "spk0002"]
    assert dev == ["spk0003", "spk0004", "spk0005"]
    wavs = sorted(tiny_corpus.rglob("*.wav"))
    assert len(wavs) == 6 * 2
    for path in wavs:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (
            16000,
            1,
            "PCM_16",
        )
        # Durations are uniform in [0.8, 1.2] s, rounded to a sample.
        assert 0.8 * 16000 - 0.5 <= info.frames <= 1.2 * 16000 + 0.5
        wav, _ = sf.read(str(path))
        assert np.abs(wav).max() > 0.01  # not silent
    durations = {sf.info(str(path)).frames for path in wavs}
    assert len(durations) > 1  # durations vary
    manifest = json.loads((tiny_corpus / MANIFEST_NAME).read_text())
    assert manifest["parameters"]["seed"] == 7
    assert manifest["parameters"]["n_dev_speakers"] == 3


def test_trials_labels_match_speakers_and_are_balanced(tiny_corpus):
    trials = read_trial_lines(tiny_corpus)
    dev_wav = tiny_corpus / "dev" / "wav"
    for label, enrol, test in trials:
        assert (dev_wav / enrol).is_file() and (dev_wav / test).is_file()
        assert label == int(enrol.split("/")[0] == test.split("/")[0])
        assert enrol < test
    labels = [label for label, _, _ in trials]
    # 3 speakers x 1 same-speaker pair each, and as many non-targets.
    assert labels.count(1) == 3 and labels.count(0) == 3
    assert len({(enrol, test) for _, enrol, test in trials}) == 6


def test_same_seed_same_bytes_other_seed_differs(tiny_corpus, tmp_path):
    again = generate_corpus(tmp_path / "again", **TINY)
    assert corpus_bytes(again) == corpus_bytes(tiny_corpus)
    other = generate_corpus(tmp_path / "other", **{**TINY, "seed": 8})
    reference, changed = corpus_bytes(tiny_corpus), corpus_bytes(other)
    wavs = [name for name in reference if name.endswith(".wav")]
    assert all(reference[name] != changed.get(name) for name in wavs)


def test_cached_corpus_is_not_regenerated(tiny_corpus, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the corpus was regenerated")

    monkeypatch.setattr(synthetic_corpus, "synthesize_utterance", fail)
    assert generate_corpus(tiny_corpus, **TINY) == tiny_corpus


def test_other_parameters_replace_our_corpus(tmp_path):
    root = generate_corpus(tmp_path / "corpus", **TINY)
    generate_corpus(root, **{**TINY, "n_train_speakers": 1})
    assert sorted(p.name for p in (root / "train" / "wav").iterdir()) == [
        "spk0000"
    ]
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["parameters"]["n_train_speakers"] == 1
    # No staging or trash folder is left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]


def test_foreign_folder_is_never_touched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a synthetic corpus"):
        generate_corpus(tmp_path, **TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic_corpus, "synthesize_utterance", crash)
    with pytest.raises(KeyboardInterrupt):
        generate_corpus(tmp_path / "corpus", **TINY)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "override, message",
    [
        ({"n_dev_speakers": 1}, "n_dev_speakers"),
        ({"utterances_per_speaker": 1}, "utterances_per_speaker"),
        ({"min_duration": 2.0, "max_duration": 1.0}, "min_duration"),
        ({"min_duration": 0.1}, "0.3 <= min_duration"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_parameters(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        generate_corpus(tmp_path / "corpus", **{**TINY, **override})
    assert not (tmp_path / "corpus").exists()


def test_make_trials_against_brute_force():
    utterances = [f"s{s}/u{u}.wav" for s in range(4) for u in range(3)]
    trials = make_trials(utterances, rng=np.random.default_rng(3))
    all_pairs = list(itertools.combinations(sorted(utterances), 2))
    targets = [p for p in all_pairs if p[0][:2] == p[1][:2]]
    assert [(e, t) for label, e, t in trials if label == 1] == targets
    nontargets = [(e, t) for label, e, t in trials if label == 0]
    assert len(nontargets) == len(targets) == 4 * 3
    assert all(e[:2] != t[:2] for e, t in nontargets)
    assert len(set(nontargets)) == len(nontargets)
    assert trials == sorted(trials, key=lambda trial: trial[1:])


def test_make_trials_count_and_errors():
    utterances = [f"s{s}/u{u}.wav" for s in range(3) for u in range(2)]
    trials = make_trials(utterances, n_trials=4)
    assert sorted(label for label, _, _ in trials) == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="Cannot draw 4 target"):
        make_trials(utterances, n_trials=8)


def estimate_f0(wav, sample_rate=16000):
    """Median F0 (Hz) of the strongest periodic frames, by autocorrelation
    (computed directly, independently of the generator's code)."""
    size = 640
    estimates = []
    for start in range(0, len(wav) - size, 160):
        frame = wav[start : start + size] - wav[start : start + size].mean()
        corr = np.correlate(frame, frame, mode="full")[size - 1 :]
        lags = np.arange(40, 267)  # 400 Hz ... 60 Hz
        lag = lags[np.argmax(corr[lags])]
        if corr[lag] > 0.7 * corr[0]:
            estimates.append(sample_rate / lag)
    return np.median(estimates)


@pytest.mark.parametrize("f0", [90.0, 220.0])
def test_synthesized_pitch_follows_the_voice(f0):
    base = SpeakerVoice.sample(np.random.default_rng(0))
    voice = dataclasses.replace(base, f0_median=f0, f0_range=2.0)
    wav = synthesize_utterance(voice, 2.0, np.random.default_rng(1))
    assert wav.shape == (32000,) and wav.dtype == np.float32
    assert np.isfinite(wav).all() and np.abs(wav).max() <= 1.0
    # Contour offsets stay within a few semitones of the median F0.
    semitones = 12 * np.log2(estimate_f0(wav.astype(float)) / f0)
    assert abs(semitones) < 4


def test_short_time_transform_reconstructs():
    signal = np.random.default_rng(0).standard_normal(3001).astype("f4")
    spectra = synthetic_corpus._stft(signal, 64)
    times = synthetic_corpus._frame_times(len(signal), 64, 1000)
    assert len(times) == len(spectra)
    assert times[1] - times[0] == pytest.approx(16 / 1000)
    rebuilt = synthetic_corpus._istft(spectra, 64, len(signal))
    np.testing.assert_allclose(rebuilt, signal, atol=1e-5)


def test_command_line(tmp_path):
    main(
        [
            str(tmp_path / "cli"),
            "--n_train_speakers",
            "1",
            "--n_dev_speakers",
            "2",
            "--utterances_per_speaker",
            "2",
            "--min_duration",
            "0.5",
            "--max_duration",
            "0.5",
            "--seed",
            "5",
        ]
    )
    manifest = json.loads((tmp_path / "cli" / MANIFEST_NAME).read_text())
    assert manifest["parameters"]["seed"] == 5
    assert len(read_trial_lines(tmp_path / "cli")) == 4
