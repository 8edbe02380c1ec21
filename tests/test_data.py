"""Tests of audio reading, random chunking and the dataset pipelines."""

import numpy as np
import pytest
import soundfile
import torch
from speechbrain.dataio.encoder import CategoricalEncoder

from speaker_metric_learning.data import (
    AudioReadError,
    RandomChunker,
    check_data_csv,
    evaluation_dataset,
    read_audio,
    training_dataset,
)


@pytest.fixture
def ramp(tmp_path):
    """A 1 s file whose sample i holds i / 16000 (easy to locate)."""
    path = tmp_path / "ramp.wav"
    soundfile.write(path, np.arange(16000) / 16000.0, 16000, subtype="FLOAT")
    return str(path)


def test_read_audio_reads_the_requested_frames(ramp):
    part = read_audio(ramp, 16000, start=0.25, duration=0.5)
    assert part.shape == (8000,)
    assert part[0].item() == pytest.approx(0.25, abs=1e-6)


def test_read_audio_mixes_stereo_and_resamples(tmp_path):
    path = tmp_path / "stereo.wav"
    stereo = np.stack([np.ones(8000), -np.ones(8000) * 0.5], axis=1)
    soundfile.write(path, stereo, 8000, subtype="FLOAT")
    mono = read_audio(str(path), 16000)
    assert mono.shape == (16000,)
    assert mono[4000:12000].mean().item() == pytest.approx(0.25, abs=1e-3)


@pytest.mark.parametrize(
    "content, message",
    [(np.array([0.0, np.nan, 0.0]), "NaN"), (np.zeros(0), "no samples")],
)
def test_read_audio_rejects_unusable_files(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    soundfile.write(path, content, 16000, subtype="FLOAT")
    with pytest.raises(AudioReadError, match=message):
        read_audio(str(path))


def test_read_audio_names_undecodable_file(tmp_path):
    path = tmp_path / "junk.wav"
    path.write_bytes(b"not audio at all")
    with pytest.raises(AudioReadError, match="junk.wav"):
        read_audio(str(path))


def test_chunker_is_deterministic_per_epoch_and_varies_across(ramp):
    chunker = RandomChunker(0.25, seed=1)
    offsets = []
    for epoch in range(4):
        chunker.set_epoch(epoch)
        chunk = chunker("u", ramp, 1.0)
        assert torch.equal(chunk, chunker("u", ramp, 1.0))
        start = chunker.offset("u", 1.0)
        assert 0.0 <= start <= 0.75
        # the chunk starts where the offset says (ramp value = time)
        assert chunk[0].item() == pytest.approx(start, abs=1 / 16000)
        offsets.append(start)
    assert len(set(offsets)) == 4
    assert RandomChunker(0.25, seed=2).offset("u", 1.0) != offsets[0]


def test_chunker_wraps_short_utterances(ramp):
    chunk = RandomChunker(2.5)("u", ramp, 1.0)
    assert chunk.shape == (40000,)
    assert torch.equal(chunk[:16000], chunk[16000:32000])


def write_csv(folder, rows):
    path = folder / "data.csv"
    lines = ["ID,duration,wav,spk_id"]
    lines += [f"{uid},{dur},{wav},{spk}" for uid, dur, wav, spk in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_datasets_give_chunks_labels_and_whole_utterances(tmp_path, ramp):
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(4000), 16000)
    csv = write_csv(
        tmp_path,
        [("b/1", 1.0, ramp, "b"), ("a/1", 0.25, str(short), "a")],
    )
    encoder = CategoricalEncoder()
    train = training_dataset(csv, RandomChunker(0.5), encoder)
    items = {item["id"]: item for item in train}
    assert {uid: it["sig"].shape[0] for uid, it in items.items()} == {
        "b/1": 8000,
        "a/1": 8000,
    }
    assert sorted(int(it["spk_id_encoded"]) for it in items.values()) == [0, 1]
    evaluation = evaluation_dataset(csv)
    # sorted by duration, whole utterances
    assert [item["id"] for item in evaluation] == ["a/1", "b/1"]
    assert [item["sig"].shape[0] for item in evaluation] == [4000, 16000]


def segment_csv(folder, ramp, rows):
    """A CSV in SpeechBrain's VoxCeleb layout (the file's duration, then the
    segment in samples) with ``(ID, start, stop, speaker)`` rows."""
    path = folder / "segments.csv"
    lines = ["ID,duration,wav,start,stop,spk_id"]
    lines += [f"{uid},1.0,{ramp},{a},{b},{spk}" for uid, a, b, spk in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_training_chunks_stay_inside_their_segments(tmp_path, ramp):
    rows = [("s1--a_0", 0, 4000, "s1"), ("s2--a_1", 8000, 16000, "s2")]
    csv_path = segment_csv(tmp_path, ramp, rows)
    chunker = RandomChunker(0.2)
    data = training_dataset(csv_path, chunker, CategoricalEncoder())
    for epoch in range(5):
        chunker.set_epoch(epoch)
        for (_, start, stop, _), item in zip(rows, data, strict=True):
            chunk = item["sig"]
            assert chunk.shape == (3200,)
            # ramp value = time: the chunk lies in [start, stop)
            assert chunk[0].item() >= start / 16000 - 1e-6
            assert chunk.max().item() < stop / 16000


def test_evaluation_reads_segments_and_whole_files(tmp_path, ramp):
    csv_path = segment_csv(tmp_path, ramp, [("s1/x", 4000, 12000, "s1")])
    (item,) = evaluation_dataset(csv_path)
    assert item["sig"].shape == (8000,)
    assert item["sig"][0].item() == pytest.approx(0.25, abs=1e-6)
    whole = tmp_path / "whole.csv"
    whole.write_text(f"ID,duration,wav,spk_id\ns1/y,0.5,{ramp},s1\n")
    (item,) = evaluation_dataset(str(whole))
    assert item["sig"].shape == (16000,)  # to the end, whatever duration says


@pytest.mark.parametrize("start, stop", [("8", "8"), ("-1", "5"), ("a", "9")])
def test_bad_segments_are_refused_with_the_line(tmp_path, ramp, start, stop):
    csv_path = segment_csv(tmp_path, ramp, [("s1/x", start, stop, "s1")])
    with pytest.raises(ValueError, match="line 2: start .* sample indices"):
        check_data_csv(csv_path)
