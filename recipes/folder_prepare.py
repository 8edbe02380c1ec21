"""Data preparation for a folder of audio files organised by speaker.

Accepted layouts (``<ext>`` is wav, flac, opus or ogg)::

    <root>/wav/<spk>/<utt>.<ext>
    <root>/<spk>/<utt>.<ext>
    <root>/wav/<spk>/<session>/<utt>.<ext>      (VoxCeleb)

The audio root is ``<root>/wav`` when it exists, else ``<root>``. Every
utterance is identified by its path relative to the audio root without the
extension (``spk0003/utt0007``, ``id10270/5r0dWxy17C8/00001``), and its
speaker is the first folder of that path. ``prepare_folder`` writes the CSV
read by SpeechBrain's ``DynamicItemDataset`` (``ID,duration,wav,spk_id``,
sorted by ID, absolute paths). Durations come from the file headers
(``soundfile.info``), without decoding the audio.

Files that soundfile cannot read, files of zero length and files not inside
a speaker folder are skipped: they are counted, logged, and listed with the
reason in ``<csv stem>_skipped.txt`` beside the CSV. A fingerprint of the
inputs (sorted file list with sizes and modification times) is stored in
``<csv name>.fingerprint`` beside the CSV; a rerun with the same inputs
does nothing.

Trial lists are read by ``speaker_metric_learning.scoring.trials`` with the
same utterance ID convention (path without extension).

Authors
 * Speaker metric learning contributors 2025
"""

import csv
import dataclasses
import hashlib
import logging
import os
from pathlib import Path, PurePosixPath

import soundfile as sf
from tqdm import tqdm

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".opus", ".ogg")
CSV_HEADER = ("ID", "duration", "wav", "spk_id")
LAYOUTS = (
    "<root>/wav/<spk>/<utt>.<ext>, <root>/<spk>/<utt>.<ext> or "
    "<root>/wav/<spk>/<session>/<utt>.<ext>, with <ext> in "
    + ", ".join(ext[1:] for ext in AUDIO_EXTENSIONS)
)
# Scans of at least this many files show a progress bar.
PROGRESS_MIN_FILES = 1000


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One row of the data CSV.

    Arguments
    ---------
    id : str
        Path relative to the audio root without extension.
    duration : float
        Length in seconds.
    wav : str
        Absolute path of the audio file.
    spk_id : str
        Speaker (the first folder of ``id``).

    Example
    -------
    >>> Utterance("spk1/utt1", 2.5, "/data/wav/spk1/utt1.wav", "spk1").spk_id
    'spk1'
    """

    id: str
    duration: float
    wav: str
    spk_id: str


def utterance_id(relative_path):
    """The utterance ID of a path relative to the audio root.

    Arguments
    ---------
    relative_path : str or os.PathLike
        Path such as ``spk0041/utt0002.wav``.

    Returns
    -------
    str
        The path without extension, ``/`` separated.

    Example
    -------
    >>> utterance_id("id10270/5r0dWxy17C8/00001.wav")
    'id10270/5r0dWxy17C8/00001'
    """
    path = PurePosixPath(Path(relative_path).as_posix())
    return str(path.with_suffix(""))


def audio_root(folder):
    """The folder utterance IDs are relative to: ``folder/wav`` if it exists.

    Arguments
    ---------
    folder : str or os.PathLike
        A corpus split (``<root>``) or its audio folder.

    Returns
    -------
    pathlib.Path
        The absolute audio root.

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> audio_root(folder) == folder.resolve()
    True
    >>> (folder / "wav").mkdir()
    >>> audio_root(folder).name
    'wav'
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Audio folder {folder} does not exist: expected {LAYOUTS}."
        )
    wav_folder = folder / "wav"
    return (wav_folder if wav_folder.is_dir() else folder).resolve()


def scan_folder(folder, progress=True):
    """Lists the utterances of an audio folder, reading only file headers.

    Arguments
    ---------
    folder : str or os.PathLike
        Folder in one of the layouts of the module docstring.
    progress : bool
        Show a progress bar on scans of many files.

    Returns
    -------
    utterances : list of Utterance
        The readable utterances, sorted by ID.
    skipped : list of tuple
        ``(path, reason)`` of every skipped file, sorted by path.

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist.
    ValueError
        If it contains no readable audio file inside a speaker folder.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "wav" / "spk1").mkdir(parents=True)
    >>> sf.write(root / "wav/spk1/a.wav", np.zeros(8000), 16000)
    >>> (root / "wav/spk1/b.wav").write_bytes(b"")
    0
    >>> utterances, skipped = scan_folder(root)
    >>> [(u.id, u.duration, u.spk_id) for u in utterances]
    [('spk1/a', 0.5, 'spk1')]
    >>> [(Path(path).name, reason) for path, reason in skipped]
    [('b.wav', 'empty file')]
    """
    root = audio_root(folder)
    return _scan(root, _list_audio_files(root), progress)


def prepare_folder(folder, save_csv, progress=True):
    """Writes the data CSV of an audio folder, unless it is up to date.

    Arguments
    ---------
    folder : str or os.PathLike
        Folder in one of the layouts of the module docstring.
    save_csv : str or os.PathLike
        The CSV to write (``ID,duration,wav,spk_id``, sorted by ID).
        ``<name>.fingerprint`` and ``<stem>_skipped.txt`` are written
        beside it.
    progress : bool
        Show a progress bar on scans of many files.

    Returns
    -------
    pathlib.Path
        The CSV path.

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist.
    ValueError
        If it contains no readable audio file inside a speaker folder.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "spk1").mkdir()
    >>> sf.write(root / "spk1/a.flac", np.zeros(4000), 16000)
    >>> csv_file = prepare_folder(root, root / "data.csv")
    >>> print(csv_file.read_text().splitlines()[0])
    ID,duration,wav,spk_id
    >>> csv_file.read_text().splitlines()[1].split(",")[:2]
    ['spk1/a', '0.25']
    """
    save_csv = Path(save_csv)
    root = audio_root(folder)
    fingerprint_file = save_csv.with_name(save_csv.name + ".fingerprint")
    files = _list_audio_files(root)
    fingerprint = _fingerprint(root, files)
    if (
        save_csv.is_file()
        and fingerprint_file.is_file()
        and fingerprint_file.read_text() == fingerprint
    ):
        logger.info("%s is up to date with %s, skipping", save_csv, root)
        return save_csv
    utterances, skipped = _scan(root, files, progress)
    save_csv.parent.mkdir(parents=True, exist_ok=True)
    fingerprint_file.unlink(missing_ok=True)  # until the CSV is complete
    with open(save_csv, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_HEADER)
        for utterance in utterances:
            writer.writerow(dataclasses.astuple(utterance))
    skipped_file = save_csv.with_name(save_csv.stem + "_skipped.txt")
    skipped_file.write_text(
        "".join(f"{path}\t{reason}\n" for path, reason in skipped),
        encoding="utf-8",
    )
    if skipped:
        logger.warning(
            "Skipped %d of %d files of %s, listed in %s",
            len(skipped),
            len(skipped) + len(utterances),
            root,
            skipped_file,
        )
    fingerprint_file.write_text(fingerprint)
    logger.info(
        "Wrote %d utterances of %s to %s", len(utterances), root, save_csv
    )
    return save_csv


def _list_audio_files(root):
    """Sorted ``(path, size, mtime_ns)`` of the audio files under ``root``
    (symbolic links followed; size and time are None for a broken link)."""
    files = []
    for directory, _, names in os.walk(root, followlinks=True):
        for name in names:
            if name.lower().endswith(AUDIO_EXTENSIONS):
                path = Path(directory) / name
                try:
                    stat = path.stat()
                except OSError:
                    files.append((path, None, None))
                else:
                    files.append((path, stat.st_size, stat.st_mtime_ns))
    files.sort()
    return files


def _scan(root, files, progress):
    """``scan_folder`` on the listed ``(path, size, mtime)`` files."""
    utterances, skipped = [], []
    bar = tqdm(
        files,
        desc=f"Scanning {root}",
        unit="file",
        disable=not progress or len(files) < PROGRESS_MIN_FILES,
    )
    for path, size, _ in bar:
        utterance, reason = _read_header(root, path, size)
        if utterance is None:
            skipped.append((str(path), reason))
        else:
            utterances.append(utterance)
    if not utterances:
        raise ValueError(
            f"No readable audio file in {root} ({len(skipped)} skipped): "
            f"expected {LAYOUTS}."
        )
    utterances.sort(key=lambda utterance: utterance.id)
    return utterances, skipped


def _read_header(root, path, size):
    """``(Utterance, None)`` for a usable file, else ``(None, reason)``."""
    relative = path.relative_to(root)
    if len(relative.parts) < 2:
        return None, "not inside a speaker folder"
    if size is None:
        return None, "cannot be opened (broken link?)"
    if size == 0:
        return None, "empty file"
    try:
        info = sf.info(str(path))
    except sf.SoundFileError as error:
        return None, f"unreadable: {error}"
    if info.frames == 0:
        return None, "no audio samples"
    utterance = Utterance(
        id=utterance_id(relative),
        duration=info.frames / info.samplerate,
        wav=str(path),
        spk_id=relative.parts[0],
    )
    return utterance, None


def _fingerprint(root, files):
    """A digest of the audio root and of every file's path, size and time."""
    digest = hashlib.sha256(str(root).encode())
    for path, size, mtime in files:
        digest.update(f"\n{path.relative_to(root)}\t{size}\t{mtime}".encode())
    return digest.hexdigest()
