"""Checkpoints that a kill during a save or a deletion cannot corrupt.

SpeechBrain's ``Checkpointer`` writes a checkpoint folder ``CKPT+...`` by
creating its meta file ``CKPT.yaml`` first and the parameter files after
it, and any folder with a meta file counts as a checkpoint. A process
killed during a save (``kill -9``, out of memory, a pre-empted job) thus
leaves a folder that looks complete but lacks parameter files or holds a
truncated one; as the most recent checkpoint it is the one the next run
loads, and fails on. Deleting an old checkpoint has the same window:
``rmtree`` may remove parameter files before the meta file.

:class:`AtomicCheckpointer` closes both windows. The meta file is written
last, through a temporary file renamed into place (a rename is atomic), and
records the size and the sha256 of every parameter file; a folder is a
checkpoint only when its meta file exists and every file it lists has that
size and content. Folders left incomplete by an interrupted save or
deletion are thus never loaded (the previous checkpoint is), and are
removed at the next recovery; a folder whose files changed since the save
(edited or damaged, even without a change of size) is not loaded either,
but is kept, and a warning names it and the checkpoint used instead.

A save that fails (a full disk) removes its partial folder and ends in a
``CheckpointSaveError`` that names the folder and the cause.

Authors
 * speaker_metric_learning developers
"""

import datetime
import hashlib
import logging
import os
import pathlib
import shutil

import yaml
from speechbrain.utils.checkpoints import CKPT_PREFIX, METAFNAME, Checkpointer
from speechbrain.utils.distributed import if_main_process

logger = logging.getLogger(__name__)

#: Meta entry listing the checkpoint's files and their sizes in bytes.
FILES_KEY = "files"
#: Meta entry listing the checkpoint's files and their sha256 digests.
HASHES_KEY = "sha256"


class CheckpointSaveError(OSError):
    """Raised when a checkpoint cannot be written (e.g. the disk is full)."""


class AtomicCheckpointer(Checkpointer):
    """SpeechBrain's ``Checkpointer`` with all-or-nothing saves.

    Same arguments and use as ``speechbrain.utils.checkpoints.Checkpointer``
    (a drop-in replacement in a yaml file); see the module docstring.

    Example
    -------
    >>> import tempfile, torch
    >>> layer = torch.nn.Linear(2, 2)
    >>> checkpointer = AtomicCheckpointer(tempfile.mkdtemp(), {"layer": layer})
    >>> saved = checkpointer.save_checkpoint(meta={"epoch": 1})
    >>> sorted(path.name for path in saved.path.iterdir())
    ['CKPT.yaml', 'layer.ckpt']
    >>> list(saved.meta["files"])
    ['layer.ckpt']
    >>> (saved.path / "layer.ckpt").write_bytes(b"truncated")  # a kill
    9
    >>> print(checkpointer.find_checkpoint())
    None
    """

    def save_checkpoint(self, meta=None, end_of_epoch=True, **kwargs):
        """Saves a checkpoint; its meta file is written last, atomically.

        Arguments as for ``Checkpointer.save_checkpoint``.

        Returns
        -------
        speechbrain.utils.checkpoints.Checkpoint
            The saved checkpoint (None on processes other than the main one).
        """
        self._pending_meta = None
        try:
            checkpoint = super().save_checkpoint(
                meta or {}, end_of_epoch, **kwargs
            )
            if self._pending_meta is None:  # not the main process
                return checkpoint
            path, meta = self._pending_meta
            files = [
                file
                for file in checkpoint.paramfiles.values()
                if file.is_file()
            ]
            meta[FILES_KEY] = {file.name: file.stat().st_size for file in files}
            meta[HASHES_KEY] = {file.name: file_sha256(file) for file in files}
            partial = path.with_name(path.name + ".partial")
            written = Checkpointer._save_checkpoint_metafile(
                self, partial, meta, end_of_epoch
            )
            os.replace(partial, path)
        except (OSError, RuntimeError) as error:  # torch.save: RuntimeError
            folder = self._pending_meta and self._pending_meta[0].parent
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            raise CheckpointSaveError(
                f"cannot save a checkpoint in {self.checkpoints_dir} "
                f"({str(error).strip().splitlines()[0]}): if the disk is "
                "full, free some space and run the same command again; it "
                "resumes from the last checkpoint"
            ) from error
        finally:
            self._pending_meta = None
        return checkpoint._replace(meta=written)

    def _save_checkpoint_metafile(
        self, fpath, meta_to_include=None, end_of_epoch=True
    ):
        """Remembers the meta data: ``save_checkpoint`` writes it last."""
        self._pending_meta = (pathlib.Path(fpath), dict(meta_to_include or {}))
        return self._pending_meta[1]

    def _list_checkpoint_dirs(self):
        """The complete checkpoint folders only."""
        return [
            path
            for path in super()._list_checkpoint_dirs()
            if checkpoint_status(path) == "complete"
        ]

    def recover_if_possible(self, *args, **kwargs):
        """Removes the folders of interrupted saves or deletions, then
        recovers as ``Checkpointer.recover_if_possible`` does.

        Returns
        -------
        speechbrain.utils.checkpoints.Checkpoint
            The checkpoint loaded, or None.
        """
        if if_main_process():
            for folder in incomplete_checkpoint_folders(self.checkpoints_dir):
                logger.warning(
                    "Removing %s: a checkpoint save or deletion was "
                    "interrupted there (the previous checkpoint is used)",
                    folder,
                )
                shutil.rmtree(folder)
        checkpoint = super().recover_if_possible(*args, **kwargs)
        if if_main_process():
            warn_about_modified_checkpoints(self.checkpoints_dir, checkpoint)
        return checkpoint


def checkpoint_status(folder):
    """What a checkpoint folder holds.

    Arguments
    ---------
    folder : str or os.PathLike
        A ``CKPT+...`` folder.

    Returns
    -------
    str
        ``"complete"``: the meta file, and every file it lists with the
        recorded size and sha256 (checkpoints of SpeechBrain's own
        ``Checkpointer`` list no files: complete when their meta file can
        be read); ``"interrupted"``: no readable meta file (a save in
        progress writes it last) or a listed file is missing (a deletion in
        progress); ``"modified"``: a listed file has another size or
        content than when it was saved (edited or damaged since).

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> checkpoint_status(folder)
    'interrupted'
    >>> _ = (folder / "CKPT.yaml").write_text("files: {model.ckpt: 3}\\n")
    >>> _ = (folder / "model.ckpt").write_bytes(b"abc")
    >>> checkpoint_status(folder)
    'complete'
    >>> _ = (folder / "model.ckpt").write_bytes(b"abcd")
    >>> checkpoint_status(folder)
    'modified'
    >>> _inspect(folder)[1]
    'model.ckpt: 4 bytes, 3 when saved'
    """
    return _inspect(folder)[0]


def _inspect(folder):
    """``(status, what was modified or None)`` of a checkpoint folder."""
    folder = pathlib.Path(folder)
    try:
        with open(folder / METAFNAME, encoding="utf-8") as meta_file:
            meta = yaml.safe_load(meta_file)
        files = meta.get(FILES_KEY, {})
        hashes = meta.get(HASHES_KEY, {})
        sizes = {name: (folder / name).stat().st_size for name in files}
    except (OSError, yaml.YAMLError, AttributeError):
        return "interrupted", None
    for name, size in files.items():
        if sizes[name] != size:
            return "modified", (
                f"{name}: {sizes[name]} bytes, {size} when saved"
            )
    for name, digest in hashes.items():
        if file_sha256(folder / name) != digest:
            return "modified", f"{name}: another content than saved"
    return "complete", None


def file_sha256(path):
    """The sha256 hex digest of a file.

    Example
    -------
    >>> import tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "empty"
    >>> path.touch()
    >>> file_sha256(path)[:12]
    'e3b0c44298fc'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def warn_about_modified_checkpoints(checkpoints_dir, used):
    """Logs a warning for every checkpoint folder edited or damaged since
    its save, naming the checkpoint used instead.

    Arguments
    ---------
    checkpoints_dir : str or os.PathLike
        A checkpointer's folder.
    used : speechbrain.utils.checkpoints.Checkpoint or None
        The checkpoint loaded instead (None: none, a fresh start).

    Returns
    -------
    list of pathlib.Path
        The modified folders.

    Example
    -------
    >>> import tempfile
    >>> warn_about_modified_checkpoints(tempfile.mkdtemp(), None)
    []
    """
    folder = pathlib.Path(checkpoints_dir)
    changes = {
        path: _inspect(path)
        for path in sorted(folder.glob(CKPT_PREFIX + "+*"))
        if path.is_dir()
    }
    modified = [
        path for path, (status, _) in changes.items() if status == "modified"
    ]
    instead = (
        "no checkpoint is left: starting from scratch"
        if used is None
        else f"using {used.path.name} instead ({describe(used)})"
    )
    for path in modified:
        logger.warning(
            "Not using the checkpoint %s: it was changed since it was saved "
            "(%s), so it is damaged or edited; %s. The folder is left as it "
            "is: delete it once you no longer need it.",
            path,
            changes[path][1],
            instead,
        )
    return modified


def describe(checkpoint):
    """``epoch N, saved <time>`` of a checkpoint.

    Example
    -------
    >>> import tempfile
    >>> saved = AtomicCheckpointer(tempfile.mkdtemp()).save_checkpoint(
    ...     meta={"epoch": 3}
    ... )
    >>> describe(saved)[:16]
    'epoch 3, saved 2'
    """
    epoch = checkpoint.meta.get("epoch")
    saved = datetime.datetime.fromtimestamp(checkpoint.meta["unixtime"])
    prefix = "" if epoch is None else f"epoch {epoch}, "
    return f"{prefix}saved {saved:%Y-%m-%d %H:%M:%S}"


def incomplete_checkpoint_folders(checkpoints_dir):
    """Checkpoint folders left incomplete by an interrupted save or
    deletion (see :func:`checkpoint_status`).

    Arguments
    ---------
    checkpoints_dir : str or os.PathLike
        A checkpointer's folder.

    Returns
    -------
    list of pathlib.Path
        Sorted ``CKPT+...`` folders whose status is ``"interrupted"``.

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "CKPT+2025-01-01+00-00-00+00").mkdir()
    >>> [path.name for path in incomplete_checkpoint_folders(folder)]
    ['CKPT+2025-01-01+00-00-00+00']
    """
    folder = pathlib.Path(checkpoints_dir)
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_dir()
        and is_checkpoint_folder(path)
        and checkpoint_status(path) == "interrupted"
    )


def is_checkpoint_folder(path):
    """Whether a path is named as SpeechBrain names a checkpoint folder.

    Example
    -------
    >>> is_checkpoint_folder("run/save/CKPT+2025-01-01+00-00-00+00")
    True
    >>> is_checkpoint_folder("run/save")
    False
    """
    return pathlib.Path(path).name.startswith(CKPT_PREFIX + "+")


def checkpoints_in_saving_order(checkpoints_dir):
    """The complete checkpoints of a folder, oldest first.

    The order is that of the save times in the meta files, as SpeechBrain
    uses to find the most recent checkpoint, not that of the folder names:
    names hold the time to the second only, with a counter that restarts
    from 00 as soon as the folder of that name has been deleted, so two
    saves in the same second can sort the wrong way round.

    Arguments
    ---------
    checkpoints_dir : str or os.PathLike
        A checkpointer's folder (e.g. a run's ``save/``).

    Returns
    -------
    list of speechbrain.utils.checkpoints.Checkpoint
        The checkpoints whose folder status is ``"complete"``.

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> checkpointer = AtomicCheckpointer(folder)
    >>> first = checkpointer.save_checkpoint(name="b")
    >>> second = checkpointer.save_checkpoint(name="a")
    >>> [c.path.name for c in checkpoints_in_saving_order(folder)]
    ['CKPT+b', 'CKPT+a']
    """
    checkpoints = AtomicCheckpointer(checkpoints_dir).list_checkpoints()
    return sorted(checkpoints, key=lambda c: c.meta["unixtime"])
