"""Tests of the audio folder preparation (recipes.folder_prepare)."""

import csv
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from recipes import folder_prepare
from recipes.folder_prepare import (
    prepare_folder,
    prepare_noise_folder,
    scan_folder,
    split_validation,
)
from recipes.synthetic_corpus import generate_corpus
from speaker_metric_learning.layout import audio_root, utterance_id
from speaker_metric_learning.scoring.trials import read_trials

RATE = 16000


def write_audio(path, n_frames, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    signal = 0.1 * np.sin(np.arange(n_frames) / 5.0)
    sf.write(str(path), signal, RATE, **kwargs)


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.reader(file))


@pytest.fixture
def folder(tmp_path):
    """``<root>/wav/<spk>/<utt>.<ext>`` with one file of each extension."""
    root = tmp_path / "split"
    write_audio(root / "wav/spkB/u1.wav", 8000)
    write_audio(root / "wav/spkA/u2.flac", 4000)
    write_audio(root / "wav/spkA/u1.opus", 16000, format="OGG", subtype="OPUS")
    write_audio(root / "wav/spkB/u0.ogg", 12000, format="OGG", subtype="VORBIS")
    (root / "wav/spkA/notes.txt").write_text("not audio")
    return root


def test_csv_content(folder, tmp_path):
    csv_file = prepare_folder(folder, tmp_path / "out" / "data.csv")
    rows = read_csv(csv_file)
    assert rows[0] == ["ID", "duration", "wav", "spk_id"]
    wav_root = (folder / "wav").resolve()
    assert rows[1:] == [
        ["spkA/u1", "1.0", str(wav_root / "spkA/u1.opus"), "spkA"],
        ["spkA/u2", "0.25", str(wav_root / "spkA/u2.flac"), "spkA"],
        ["spkB/u0", "0.75", str(wav_root / "spkB/u0.ogg"), "spkB"],
        ["spkB/u1", "0.5", str(wav_root / "spkB/u1.wav"), "spkB"],
    ]
    skipped_file = tmp_path / "out" / "data_skipped.txt"
    assert skipped_file.read_text() == ""


def test_symbolic_links_are_followed(folder, tmp_path):
    (tmp_path / "linked" / "wav").mkdir(parents=True)
    (tmp_path / "linked" / "wav" / "spkL").symlink_to(folder / "wav" / "spkA")
    utterances, _ = scan_folder(tmp_path / "linked")
    assert [u.id for u in utterances] == ["spkL/u1", "spkL/u2"]


def test_layout_without_wav_folder(tmp_path):
    write_audio(tmp_path / "spk1" / "a.wav", 1600)
    write_audio(tmp_path / "spk2" / "b.wav", 3200)
    utterances, skipped = scan_folder(tmp_path)
    assert [(u.id, u.duration, u.spk_id) for u in utterances] == [
        ("spk1/a", 0.1, "spk1"),
        ("spk2/b", 0.2, "spk2"),
    ]
    assert skipped == []


def test_voxceleb_layout(tmp_path):
    write_audio(tmp_path / "wav/id10270/5r0dWxy17C8/00001.wav", 1600)
    write_audio(tmp_path / "wav/id10270/5r0dWxy17C8/00002.wav", 1600)
    write_audio(tmp_path / "wav/id10271/1gtz-CUIygI/00001.wav", 1600)
    utterances, _ = scan_folder(tmp_path)
    assert [(u.id, u.spk_id) for u in utterances] == [
        ("id10270/5r0dWxy17C8/00001", "id10270"),
        ("id10270/5r0dWxy17C8/00002", "id10270"),
        ("id10271/1gtz-CUIygI/00001", "id10271"),
    ]


def test_bad_files_are_skipped_counted_and_listed(folder, tmp_path, caplog):
    bad = folder / "wav" / "spkC"
    bad.mkdir()
    (bad / "empty.wav").write_bytes(b"")
    (bad / "garbage.flac").write_bytes(b"not a flac file at all" * 10)
    sf.write(str(bad / "no_samples.wav"), np.zeros(0), RATE)
    write_audio(folder / "wav" / "loose.wav", 800)
    (bad / "dangling.wav").symlink_to(bad / "missing.wav")
    with caplog.at_level(logging.WARNING, logger=folder_prepare.__name__):
        csv_file = prepare_folder(folder, tmp_path / "data.csv")
    assert [row[0] for row in read_csv(csv_file)[1:]] == [
        "spkA/u1",
        "spkA/u2",
        "spkB/u0",
        "spkB/u1",
    ]
    lines = (tmp_path / "data_skipped.txt").read_text().splitlines()
    reasons = {
        os.path.basename(line.split("\t")[0]): line.split("\t")[1]
        for line in lines
    }
    assert set(reasons) == {
        "empty.wav",
        "garbage.flac",
        "no_samples.wav",
        "loose.wav",
        "dangling.wav",
    }
    assert reasons["empty.wav"] == "empty file"
    assert reasons["garbage.flac"].startswith("unreadable")
    assert reasons["no_samples.wav"] == "no audio samples"
    assert reasons["loose.wav"] == "not inside a speaker folder"
    assert reasons["dangling.wav"].startswith("cannot be opened")
    assert "Skipped 5 of 9 files" in caplog.text


def test_file_names_that_are_not_utf8_are_skipped_and_listed(
    folder, tmp_path, caplog
):
    # a Latin-1 file name, and a file inside a Latin-1 folder name
    root = os.fsencode(folder / "wav")
    write_audio(folder / "wav/spkA/cafe.wav", 800)
    write_audio(folder / "wav/spek/u1.wav", 800)
    os.rename(root + b"/spkA/cafe.wav", root + b"/spkA/caf\xe9.wav")
    os.rename(root + b"/spek", root + b"/sp\xeak")
    with caplog.at_level(logging.WARNING, logger=folder_prepare.__name__):
        csv_file = prepare_folder(folder, tmp_path / "data.csv")
    assert len(read_csv(csv_file)) == 1 + 4  # the four good files
    lines = (tmp_path / "data_skipped.txt").read_text().splitlines()
    assert [line.split("\t")[0][len(str(folder)) :] for line in lines] == [
        "/wav/sp\\xeak/u1.wav",
        "/wav/spkA/caf\\xe9.wav",
    ]
    assert all("not UTF-8 text: rename" in line for line in lines)
    assert "Skipped 2 of 6 files" in caplog.text
    utterances, skipped = scan_folder(folder, progress=False)
    assert len(utterances) == 4 and len(skipped) == 2
    noise_csv = prepare_noise_folder(folder / "wav", tmp_path / "noise.csv")
    assert len(read_csv(noise_csv)) == 1 + 4
    assert len((tmp_path / "noise_skipped.txt").read_text().splitlines()) == 2


def test_rerun_is_skipped_until_inputs_change(folder, tmp_path, monkeypatch):
    csv_file = prepare_folder(folder, tmp_path / "data.csv")
    first = csv_file.read_text()

    def fail(*args):
        raise AssertionError("the folder was scanned again")

    with monkeypatch.context() as patch:
        patch.setattr(folder_prepare, "_scan", fail)
        assert prepare_folder(folder, csv_file) == csv_file
    assert csv_file.read_text() == first

    write_audio(folder / "wav/spkC/new.wav", 1600)
    prepare_folder(folder, csv_file)
    assert [row[0] for row in read_csv(csv_file)[1:]][-1] == "spkC/new"

    # A rewritten file (same name, other size) is noticed too.
    write_audio(folder / "wav/spkC/new.wav", 3200)
    prepare_folder(folder, csv_file)
    assert read_csv(csv_file)[-1][1] == "0.2"


def test_missing_csv_is_rewritten(folder, tmp_path):
    csv_file = prepare_folder(folder, tmp_path / "data.csv")
    expected = csv_file.read_text()
    csv_file.unlink()
    assert prepare_folder(folder, csv_file).read_text() == expected


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*expected <root>"):
        prepare_folder(tmp_path / "nowhere", tmp_path / "data.csv")
    assert not (tmp_path / "data.csv").exists()


def test_folder_without_audio(tmp_path):
    (tmp_path / "wav" / "spk1").mkdir(parents=True)
    (tmp_path / "wav" / "spk1" / "readme.txt").write_text("nothing here")
    with pytest.raises(ValueError, match=r"No readable audio file in .*wav"):
        prepare_folder(tmp_path, tmp_path / "data.csv")
    (tmp_path / "wav" / "spk1" / "empty.wav").write_bytes(b"")
    with pytest.raises(ValueError, match=r"\(1 skipped\): expected"):
        scan_folder(tmp_path)


def test_audio_root_and_ids(tmp_path):
    assert audio_root(tmp_path) == tmp_path.resolve()
    (tmp_path / "wav").mkdir()
    assert audio_root(tmp_path) == (tmp_path / "wav").resolve()
    assert utterance_id("spk1/a.b.wav") == "spk1/a.b"
    assert utterance_id("spk1/sess/00001") == "spk1/sess/00001"


def test_generated_corpus_trials_match_prepared_ids(tmp_path):
    root = generate_corpus(
        tmp_path / "corpus",
        n_train_speakers=1,
        n_dev_speakers=3,
        utterances_per_speaker=2,
        min_duration=0.5,
        max_duration=0.5,
        progress=False,
    )
    csv_file = prepare_folder(root / "dev", tmp_path / "dev.csv")
    rows = read_csv(csv_file)[1:]
    assert len(rows) == 6
    assert all(float(duration) == 0.5 for _, duration, _, _ in rows)
    speakers = {uid: spk for uid, _, _, spk in rows}
    trials = read_trials(root / "dev" / "trials.txt")
    assert len(trials) == 6
    assert set(trials.utterances) <= set(speakers)
    for label, enrol, test in zip(
        trials.labels, trials.enrol_index, trials.test_index, strict=True
    ):
        same = (
            speakers[trials.utterances[enrol]]
            == speakers[trials.utterances[test]]
        )
        assert label == same


def test_durations_from_headers_match_soundfile(tmp_path):
    """The WAV/FLAC header parser agrees with soundfile on every format."""
    rng = np.random.default_rng(0)
    formats = [
        ("WAV", subtype)
        for subtype in ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")
    ]
    formats += [("WAV", "ULAW"), ("WAV", "MS_ADPCM"), ("WAVEX", "PCM_16")]
    formats += [("RF64", "PCM_16"), ("FLAC", "PCM_16"), ("FLAC", "PCM_24")]
    paths = []
    for index, (container, subtype) in enumerate(formats):
        for rate, channels in ((8000, 1), (16000, 2), (44100, 1)):
            n_frames = int(rng.integers(100, 5000))
            extension = "flac" if container == "FLAC" else "wav"
            path = tmp_path / f"spk{index}" / f"{rate}_{channels}.{extension}"
            path.parent.mkdir(exist_ok=True)
            signal = 0.1 * rng.standard_normal((n_frames, channels))
            sf.write(path, signal, rate, subtype=subtype, format=container)
            paths.append(path)
    # a WAV with an odd-sized LIST chunk before its data, and a truncated one
    header = (tmp_path / "spk0" / "8000_1.wav").read_bytes()
    data_at = header.index(b"data")
    listed = (
        header[:data_at]
        + b"LIST"
        + (3).to_bytes(4, "little")
        + b"abc\0"
        + header[data_at:]
    )
    listed = listed[:4] + (len(listed) - 8).to_bytes(4, "little") + listed[8:]
    (tmp_path / "spk0" / "listed.wav").write_bytes(listed)
    (tmp_path / "spk0" / "truncated.wav").write_bytes(header[:-101])
    paths += [
        tmp_path / "spk0" / "listed.wav",
        tmp_path / "spk0" / "truncated.wav",
    ]
    utterances, skipped = scan_folder(tmp_path)
    assert skipped == []
    durations = {Path(u.wav): u.duration for u in utterances}
    for path in paths:
        info = sf.info(str(path))
        assert durations[path.resolve()] == info.frames / info.samplerate, path


def test_large_folders_are_scanned_in_parallel_with_the_same_result(
    folder, tmp_path, monkeypatch
):
    for index in range(7):
        write_audio(folder / "wav" / f"spk{index % 3}" / f"x{index}.wav", 800)
    (folder / "wav" / "spkA" / "bad.wav").write_bytes(b"RIFF garbage")
    serial = scan_folder(folder, workers=1)
    monkeypatch.setattr(folder_prepare, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(folder_prepare, "FILES_PER_TASK", 3)
    parallel = scan_folder(folder, workers=2)
    assert parallel == serial
    assert len(serial[0]) == 11 and len(serial[1]) == 1


def write_rows(path, counts):
    """A data CSV with ``counts[s]`` utterances of speaker ``s``."""
    lines = ["ID,duration,wav,spk_id"]
    for speaker, count in enumerate(counts):
        for index in range(count):
            uid = f"s{speaker}/u{index}"
            lines.append(f"{uid},1.0,/audio/{uid}.wav,s{speaker}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_utterance_split_holds_out_a_fraction_of_every_speaker(tmp_path):
    data = write_rows(tmp_path / "data.csv", [1, 2, 5, 10, 21])
    train_csv, valid_csv = split_validation(
        data, tmp_path / "train.csv", tmp_path / "valid.csv", 0.2, "utterance"
    )
    train, valid = read_csv(train_csv)[1:], read_csv(valid_csv)[1:]
    held = {f"s{s}": 0 for s in range(5)}
    for row in valid:
        held[row[3]] += 1
    # round(0.2 n), leaving at least one utterance in training
    assert held == {"s0": 0, "s1": 0, "s2": 1, "s3": 2, "s4": 4}
    assert {row[3] for row in train} == set(held)
    assert sorted(map(tuple, train + valid)) == sorted(
        map(tuple, read_csv(data)[1:])
    )


def test_split_is_reproducible_and_redone_only_when_inputs_change(
    tmp_path, monkeypatch
):
    data = write_rows(tmp_path / "data.csv", [3] * 10)
    outputs = (tmp_path / "train.csv", tmp_path / "valid.csv")
    split_validation(data, *outputs, 0.3, "speaker", seed=1)
    first = outputs[1].read_text()
    assert len({row[3] for row in read_csv(outputs[1])[1:]}) == 3

    def fail(*args):
        raise AssertionError("split again")

    with monkeypatch.context() as patch:
        patch.setattr(folder_prepare, "_speakers_held_out", fail)
        split_validation(data, *outputs, 0.3, "speaker", seed=1)
    split_validation(data, *outputs, 0.3, "speaker", seed=2)
    assert outputs[1].read_text() != first
    split_validation(data, *outputs, 0.3, "speaker", seed=1)
    assert outputs[1].read_text() == first


@pytest.mark.parametrize(
    "counts, fraction, by, message",
    [
        ([3] * 4, 0.0, "speaker", r"must be in \(0, 1\)"),
        ([3] * 4, 0.2, "speaker", "gives 1 validation speakers"),
        ([3] * 4, 0.5, "session", "valid_split must be one of"),
        ([1] * 4, 0.3, "utterance", "leaves validation empty"),
    ],
)
def test_impossible_splits_are_refused(tmp_path, counts, fraction, by, message):
    data = write_rows(tmp_path / "data.csv", counts)
    with pytest.raises(ValueError, match=message):
        split_validation(
            data, tmp_path / "t.csv", tmp_path / "v.csv", fraction, by
        )
    assert not (tmp_path / "v.csv").exists()


def test_noise_folder_lists_usable_files_and_skips_the_others(tmp_path):
    root = tmp_path / "RIRS_NOISES" / "simulated_rirs" / "smallroom"
    write_audio(root / "Room001" / "Room001-00001.wav", 1600)
    sf.write(root / "Room001" / "narrow.wav", np.zeros(800), 8000)
    (root / "Room002").mkdir()
    sf.write(root / "Room002" / "stereo.flac", np.zeros((800, 2)), RATE)
    (root / "Room002" / "empty.wav").write_bytes(b"")
    (root / "Room002" / "clip.m4a").write_bytes(b"\0" * 64)
    csv_file = prepare_noise_folder(
        tmp_path / "RIRS_NOISES", tmp_path / "rirs.csv", impulse_responses=True
    )
    rows = read_csv(csv_file)
    assert rows[0] == ["ID", "duration", "wav", "wav_format", "wav_opts"]
    assert [row[:2] for row in rows[1:]] == [
        ["simulated_rirs/smallroom/Room001/Room001-00001", "0.1"]
    ]
    reasons = {
        Path(line.split("\t")[0]).name: line.split("\t")[1]
        for line in (tmp_path / "rirs_skipped.txt").read_text().splitlines()
    }
    assert reasons == {
        "narrow.wav": "8000 Hz: impulse responses must be 16000 Hz",
        "stereo.flac": "2 channels: impulse responses must be mono",
        "empty.wav": "empty file",
        "clip.m4a": "m4a is not read: convert it to wav or flac",
    }
    # as noise (resampled and mixed down when read) the first two are kept
    noise = prepare_noise_folder(tmp_path / "RIRS_NOISES", tmp_path / "n.csv")
    assert len(read_csv(noise)) - 1 == 3
