"""A checkpoint save or deletion interrupted at any point (an exception, a
truncated file, kill -9) leaves the previous checkpoint usable."""

import os
import random
import signal
import time

import pytest
import torch
from speechbrain.utils.checkpoints import (
    Checkpointer,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)

from speaker_metric_learning.checkpoints import (
    AtomicCheckpointer,
    CheckpointSaveError,
    checkpoint_status,
    file_sha256,
    incomplete_checkpoint_folders,
)

BLOB_BYTES = 2**20
PIECE_BYTES = 2**16


class Interrupted(Exception):
    """Stands for the process being killed."""


@register_checkpoint_hooks
class Blob:
    """A recoverable whose file is ``BLOB_BYTES`` copies of one byte value,
    written in pieces, each after ``delay`` seconds (a slow disk: a kill
    lands inside the write); loading checks that the file is whole and
    uniform."""

    def __init__(self, value=0, fail_after=None, delay=0.0):
        self.value = value
        self.fail_after = fail_after
        self.delay = delay

    @mark_as_saver
    def save(self, path):
        piece = bytes([self.value % 256]) * PIECE_BYTES
        with open(path, "wb") as file:
            for written in range(0, BLOB_BYTES, len(piece)):
                if self.fail_after is not None and written >= self.fail_after:
                    raise Interrupted
                time.sleep(self.delay)
                file.write(piece)

    @mark_as_loader
    def load(self, path, end_of_epoch=True):
        data = open(path, "rb").read()
        if len(data) != BLOB_BYTES or len(set(data)) != 1:
            raise ValueError(f"{path} is damaged")
        self.value = data[0]


@register_checkpoint_hooks
class FullDisk(Blob):
    """A recoverable whose save fails as on a full disk."""

    @mark_as_saver
    def save(self, path):
        with open(path, "wb") as file:
            file.write(b"partial")
        raise OSError(28, "No space left on device")


def checkpointer(folder, kind=AtomicCheckpointer, **blobs):
    return kind(folder, recoverables=blobs or {"a": Blob(), "b": Blob()})


def interrupted_save(folder, kind, fail_in):
    """Saves epoch 1, then is interrupted while saving epoch 2."""
    checkpointer(folder, kind, a=Blob(1), b=Blob(1)).save_checkpoint(
        meta={"epoch": 1}
    )
    blobs = {"a": Blob(2), "b": Blob(2)}
    blobs[fail_in].fail_after = BLOB_BYTES // 2
    with pytest.raises(Interrupted):
        checkpointer(folder, kind, **blobs).save_checkpoint(meta={"epoch": 2})


@pytest.mark.parametrize("fail_in", ["a", "b"])
def test_save_interrupted_in_a_file_leaves_the_previous_checkpoint(
    tmp_path, fail_in
):
    # SpeechBrain's own Checkpointer then loads the broken folder ...
    interrupted_save(tmp_path / "plain", Checkpointer, fail_in)
    plain = checkpointer(tmp_path / "plain", Checkpointer)
    assert plain.find_checkpoint().meta["epoch"] == 2
    with pytest.raises((ValueError, RuntimeError, FileNotFoundError)):
        plain.recover_if_possible()

    # ... the atomic one loads the previous checkpoint and removes it
    interrupted_save(tmp_path / "atomic", AtomicCheckpointer, fail_in)
    (broken,) = incomplete_checkpoint_folders(tmp_path / "atomic")
    resumed = {"a": Blob(), "b": Blob()}
    saver = checkpointer(tmp_path / "atomic", **resumed)
    assert saver.recover_if_possible().meta["epoch"] == 1
    assert [blob.value for blob in resumed.values()] == [1, 1]
    assert not broken.exists()


def test_truncated_or_missing_file_is_no_checkpoint(tmp_path, caplog):
    saver = checkpointer(tmp_path, a=Blob(1), b=Blob(1))
    older = saver.save_checkpoint(meta={"epoch": 1})
    saver.recoverables["a"].value = 2
    newer = saver.save_checkpoint(meta={"epoch": 2})
    assert checkpoint_status(newer.path) == "complete"
    with open(newer.path / "a.ckpt", "r+b") as file:
        file.truncate(BLOB_BYTES - 1)
    # changed since the save: not loaded, but not deleted either
    assert checkpoint_status(newer.path) == "modified"
    assert saver.find_checkpoint().path == older.path
    assert saver.recover_if_possible().path == older.path
    assert newer.path.exists()
    assert f"Not using the checkpoint {newer.path}" in caplog.text
    assert f"a.ckpt: {BLOB_BYTES - 1} bytes, {BLOB_BYTES} when" in caplog.text
    assert f"using {older.path.name} instead (epoch 1, saved" in caplog.text
    (newer.path / "a.ckpt").unlink()  # an interrupted deletion
    assert incomplete_checkpoint_folders(tmp_path) == [newer.path]
    saver.recover_if_possible()
    assert not newer.path.exists()


def test_a_file_changed_without_changing_its_size_is_no_checkpoint(
    tmp_path, caplog
):
    saver = checkpointer(tmp_path, a=Blob(1), b=Blob(1))
    older = saver.save_checkpoint(meta={"epoch": 1})
    saver.recoverables["a"].value = 2
    newer = saver.save_checkpoint(meta={"epoch": 2})
    with open(newer.path / "b.ckpt", "r+b") as file:
        file.seek(12345)
        file.write(b"\x07")  # one byte, same size
    assert checkpoint_status(newer.path) == "modified"
    resumed = {"a": Blob(), "b": Blob()}
    loaded = checkpointer(tmp_path, **resumed).recover_if_possible()
    assert loaded.path == older.path and resumed["a"].value == 1
    assert "b.ckpt: another content than saved" in caplog.text
    assert f"using {older.path.name} instead (epoch 1" in caplog.text


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path):
    saver = checkpointer(tmp_path, a=Blob(1), b=Blob(1))
    older = saver.save_checkpoint(meta={"epoch": 1})

    saver.recoverables["b"] = FullDisk()
    with pytest.raises(CheckpointSaveError) as raised:
        saver.save_checkpoint(meta={"epoch": 2})
    message = str(raised.value)
    assert "No space left on device" in message and "\n" not in message
    assert "run the same command again" in message
    assert [path.name for path in tmp_path.iterdir()] == [older.path.name]
    assert saver.find_checkpoint().meta["epoch"] == 1


def test_saved_meta_matches_speechbrain_meta(tmp_path):
    model = torch.nn.Linear(3, 2)
    saved = AtomicCheckpointer(tmp_path, {"model": model}).save_checkpoint(
        meta={"loss": 0.5}, end_of_epoch=False
    )
    (listed,) = Checkpointer(tmp_path).list_checkpoints()
    assert listed.meta == saved.meta
    assert saved.meta["loss"] == 0.5 and saved.meta["end-of-epoch"] is False
    assert saved.meta["files"] == {
        "model.ckpt": (saved.path / "model.ckpt").stat().st_size
    }
    assert saved.meta["sha256"] == {
        "model.ckpt": file_sha256(saved.path / "model.ckpt")
    }
    assert not list(saved.path.glob("*.partial"))


def save_forever(folder, start):
    """Saves checkpoints k = start, start + 1, ... of two blobs of value k
    and keeps only the last one, until killed."""
    blobs = {"a": Blob(start, delay=0.004), "b": Blob(start, delay=0.004)}
    saver = checkpointer(folder, **blobs)
    value = start
    while True:
        for blob in blobs.values():
            blob.value = value
        saver.save_and_keep_only(meta={"value": value}, num_to_keep=1)
        value += 1


def test_kill_9_at_random_points_of_saves_and_deletions(tmp_path):
    rng = random.Random(20250)
    last, interrupted = 0, 0
    for _ in range(6):
        child = os.fork()
        if child == 0:  # the child saves until it is killed
            try:
                save_forever(tmp_path, last + 1)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.3, 0.8))
        os.kill(child, signal.SIGKILL)
        _, status = os.waitpid(child, 0)
        assert os.WIFSIGNALED(status)
        interrupted += bool(incomplete_checkpoint_folders(tmp_path))
        blobs = {"a": Blob(), "b": Blob()}
        recovered = checkpointer(tmp_path, **blobs).recover_if_possible()
        # a whole checkpoint, both files of the same save, never older
        value = recovered.meta["value"]
        assert [blob.value for blob in blobs.values()] == [value % 256] * 2
        assert value >= last
        last = value
        assert incomplete_checkpoint_folders(tmp_path) == []
    # the kills did land inside saves or deletions
    assert interrupted >= 1
