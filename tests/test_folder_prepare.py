"""Tests of the audio folder preparation (recipes.folder_prepare)."""

import csv
import logging
import os

import numpy as np
import pytest
import soundfile as sf

from recipes import folder_prepare
from recipes.folder_prepare import (
    audio_root,
    prepare_folder,
    scan_folder,
    utterance_id,
)
from recipes.synthetic_corpus import generate_corpus
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
