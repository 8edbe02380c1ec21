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
records the size of every parameter file; a folder is a checkpoint only
when its meta file exists and every file it lists has that size. Folders
left incomplete by an interrupted save or deletion are thus never loaded
(the previous checkpoint is), and are removed at the next recovery; a
folder whose files changed size since the save (edited or damaged) is not
loaded either, but is kept, with a warning.

Authors
 * speaker_metric_learning developers
"""

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
        checkpoint = super().save_checkpoint(meta or {}, end_of_epoch, **kwargs)
        if self._pending_meta is None:  # not the main process
            return checkpoint
        path, meta = self._pending_meta
        self._pending_meta = None
        meta[FILES_KEY] = {
            file.name: file.stat().st_size
            for file in checkpoint.paramfiles.values()
            if file.is_file()
        }
        partial = path.with_name(path.name + ".partial")
        written = Checkpointer._save_checkpoint_metafile(
            self, partial, meta, end_of_epoch
        )
        os.replace(partial, path)
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
            for folder in sorted(self.checkpoints_dir.glob(CKPT_PREFIX + "+*")):
                if checkpoint_status(folder) == "modified":
                    logger.warning(
                        "Ignoring %s: its files differ in size from those "
                        "saved (edited or damaged since); it is left as is",
                        folder,
                    )
        return super().recover_if_possible(*args, **kwargs)


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
        recorded size (checkpoints of SpeechBrain's own ``Checkpointer``
        list no files: complete when their meta file can be read);
        ``"interrupted"``: no readable meta file (a save in progress writes
        it last) or a listed file is missing (a deletion in progress);
        ``"modified"``: a listed file has another size than when it was
        saved (edited or damaged since).

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
    """
    folder = pathlib.Path(folder)
    try:
        with open(folder / METAFNAME, encoding="utf-8") as meta_file:
            files = yaml.safe_load(meta_file).get(FILES_KEY, {})
        sizes = {name: (folder / name).stat().st_size for name in files}
    except (OSError, yaml.YAMLError, AttributeError):
        return "interrupted"
    if any(sizes[name] != size for name, size in files.items()):
        return "modified"
    return "complete"


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
        and path.name.startswith(CKPT_PREFIX + "+")
        and checkpoint_status(path) == "interrupted"
    )


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
