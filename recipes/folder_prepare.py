"""Data preparation for a folder of audio files organised by speaker.

Accepted layouts (``<ext>`` is wav, flac, ogg, opus or mp3; m4a, aac and mp4
are converted first, see below), as ``speaker_metric_learning.layout``
defines them::

    <root>/wav/<spk>/<utt>.<ext>
    <root>/<spk>/<utt>.<ext>
    <root>/wav/<spk>/<session>/<utt>.<ext>      (VoxCeleb1)
    <root>/aac/<spk>/<session>/<utt>.m4a        (VoxCeleb2 as distributed)

The audio root is ``<root>/wav`` (or ``<root>/aac``) when it exists, else
``<root>``. Every utterance is identified by its path relative to the audio
root without the extension (``spk0003/utt0007``,
``id10270/5r0dWxy17C8/00001``), and its speaker is the first folder of that
path. ``prepare_folder`` writes the CSV read by SpeechBrain's
``DynamicItemDataset`` (``ID,duration,wav,spk_id``, sorted by ID, absolute
paths). Durations come from the file headers, without decoding the audio:
plain PCM and float WAV headers and FLAC STREAMINFO blocks are parsed here
(``_audio_format``), ``soundfile.info`` reads the other formats and any
unusual WAV or FLAC file; folders of at least ``PARALLEL_MIN_FILES`` files
are read by several processes. The parser makes ``scan_folder`` 3.2-3.6
times faster per file than with ``soundfile.info`` for every file (4.6-5.8
times per WAV header, 8.7-19 per FLAC header, the same durations; 16-bit
files at 16 kHz, warm page cache, ``benchmarks/handwritten_speedups.py`` in
BENCHMARKS.md, "Hand-written speed-ups").

Accepted, with a note (each kind logged once with its count; every such
file listed with its note in ``<csv stem>_notes.txt`` beside the CSV):

* any sample rate: the recipe resamples when it reads (audio upsampled from
  8 kHz holds nothing above 4 kHz);
* several channels: mixed down to mono when read;
* utterances shorter than the training chunk (when ``chunk_seconds`` is
  given): the chunk repeats them;
* speakers with one utterance: trained on, but they make no target trial
  and stay whole in training under an utterance-held-out validation split.

Skipped (counted, logged, and listed with the reason in
``<csv stem>_skipped.txt``): files that cannot be decoded, files of zero
length or without samples, files not inside a speaker folder, broken links,
files whose path is not UTF-8 text (listed with the bad bytes as ``\xff``),
and files ffmpeg fails to convert.

Files soundfile cannot read that have an extension of
``speaker_metric_learning.layout.CONVERTED_EXTENSIONS`` (VoxCeleb2's
``.m4a``) are converted once to FLAC with ffmpeg, in ``converted_folder``;
the CSV then points to the FLAC copy. Without ffmpeg the preparation stops
and says how to install it.

A fingerprint of the inputs (sorted file list with sizes and modification
times) is stored in ``<csv name>.fingerprint`` beside the CSV; a rerun with
the same inputs does nothing. ``split_validation`` then cuts a validation
set off the CSV, by speakers (speaker-disjoint) or by utterances (held out
from every speaker), with the same rerun rule.

Trial lists are read by ``speaker_metric_learning.scoring.trials`` with the
same utterance ID convention (path without extension).

One file: preparing a speech folder, cutting its validation split and
listing a noise folder are three uses of one machinery kept here: the
listing of the audio files, the header reader, the skipped and notes
listings and the fingerprint that makes a rerun with the same inputs do
nothing. Split, that machinery would be a module of private helpers that
three modules import, and the rerun rule would be stated in several
places.

Authors
 * Speaker metric learning contributors 2025
"""

import collections
import csv
import dataclasses
import hashlib
import logging
import multiprocessing
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from recipes.audio_conversion import convert_to_flac
from speaker_metric_learning.data import DATA_CSV_COLUMNS
from speaker_metric_learning.layout import (
    AUDIO_EXTENSIONS,
    CONVERTED_EXTENSIONS,
    LAYOUTS,
    audio_root,
    utterance_id,
)

logger = logging.getLogger(__name__)

NOISE_CSV_HEADER = ("ID", "duration", "wav", "wav_format", "wav_opts")
# Scans of at least this many files show a progress bar.
PROGRESS_MIN_FILES = 1000
# Scans of at least this many files read headers in several processes.
PARALLEL_MIN_FILES = 20000
# Files whose headers one worker process reads per task.
FILES_PER_TASK = 4000
# WAV format tags whose frame count is the data size over the block size:
# integer PCM and IEEE float.
PLAIN_WAV_FORMATS = (1, 3)
VALIDATION_SPLITS = ("speaker", "utterance")


@dataclasses.dataclass(frozen=True, slots=True)
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


def scan_folder(folder, progress=True, converted_folder=None, workers=None):
    """Lists the utterances of an audio folder, reading only file headers.

    Arguments
    ---------
    folder : str or os.PathLike
        Folder in one of the layouts of the module docstring.
    progress : bool
        Show a progress bar on scans of many files.
    converted_folder : str or os.PathLike, optional
        Where files soundfile cannot read (m4a) are converted to FLAC;
        required only when there are such files.
    workers : int, optional
        Processes reading headers on large folders (default: CPU count).

    Returns
    -------
    utterances : list of Utterance
        The readable utterances, sorted by ID.
    skipped : list of tuple
        ``(path, reason)`` of every skipped file, sorted by path.

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist, or files need converting and ffmpeg
        is not installed.
    ValueError
        If it contains no readable audio file inside a speaker folder, or
        files need converting and no ``converted_folder`` is given.

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
    files, misnamed = _list_audio_files(root)
    converted = _convert(root, files, converted_folder, progress, workers)
    utterances, skipped, _ = _scan(root, files, progress, converted, workers)
    return utterances, sorted(misnamed + skipped)


def prepare_folder(
    folder,
    save_csv,
    progress=True,
    converted_folder=None,
    chunk_seconds=None,
    workers=None,
):
    """Writes the data CSV of an audio folder, unless it is up to date.

    Arguments
    ---------
    folder : str or os.PathLike
        Folder in one of the layouts of the module docstring.
    save_csv : str or os.PathLike
        The CSV to write (``ID,duration,wav,spk_id``, sorted by ID).
        ``<name>.fingerprint``, ``<stem>_skipped.txt`` and
        ``<stem>_notes.txt`` are written beside it.
    progress : bool
        Show a progress bar on scans of many files.
    converted_folder : str or os.PathLike, optional
        Where files soundfile cannot read (m4a) are converted to FLAC, in a
        subfolder named after the audio root; by default
        ``converted_audio`` beside the CSV.
    chunk_seconds : float, optional
        Length of the training chunks: shorter utterances get a note.
    workers : int, optional
        Processes reading headers (and ffmpeg processes) on large folders
        (default: CPU count).

    Returns
    -------
    pathlib.Path
        The CSV path.

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist, or files need converting and ffmpeg
        is not installed.
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
    if converted_folder is None:
        converted_folder = save_csv.parent / "converted_audio"
    fingerprint_file = save_csv.with_name(save_csv.name + ".fingerprint")
    files, misnamed = _list_audio_files(root)
    fingerprint = _fingerprint(
        root, files, converted_folder, chunk_seconds, misnamed
    )
    if (
        save_csv.is_file()
        and fingerprint_file.is_file()
        and fingerprint_file.read_text() == fingerprint
    ):
        logger.info("%s is up to date with %s, skipping", save_csv, root)
        return save_csv
    converted = _convert(root, files, converted_folder, progress, workers)
    utterances, skipped, formats = _scan(
        root, files, progress, converted, workers
    )
    skipped = sorted(misnamed + skipped)
    save_csv.parent.mkdir(parents=True, exist_ok=True)
    fingerprint_file.unlink(missing_ok=True)  # until the CSV is complete
    _write_rows(save_csv, (dataclasses.astuple(u) for u in utterances))
    skipped_file = save_csv.with_name(save_csv.stem + "_skipped.txt")
    _write_listing(skipped_file, skipped)
    if skipped:
        logger.warning(
            "Skipped %d of %d files of %s, listed in %s",
            len(skipped),
            len(skipped) + len(utterances),
            root,
            skipped_file,
        )
    notes_file = save_csv.with_name(save_csv.stem + "_notes.txt")
    _write_listing(notes_file, _notes(utterances, formats, chunk_seconds))
    fingerprint_file.write_text(fingerprint)
    logger.info(
        "Wrote %d utterances of %d speakers of %s to %s",
        len(utterances),
        len({u.spk_id for u in utterances}),
        root,
        save_csv,
    )
    return save_csv


def split_validation(
    csv_file, train_csv, valid_csv, fraction, by="speaker", seed=0
):
    """Cuts a validation set off a data CSV, unless already done.

    With ``by="speaker"`` a random ``fraction`` of the speakers (at least
    two) goes to validation with all their utterances: validation speakers
    are unseen in training, as in verification. With ``by="utterance"`` a
    ``fraction`` of the utterances of every speaker is held out (rounded,
    always leaving one in training; speakers with a single utterance stay
    whole in training). Rows keep their order. A fingerprint of the input
    and of the arguments, stored in ``<valid_csv name>.fingerprint``, makes
    a rerun with the same inputs do nothing.

    Arguments
    ---------
    csv_file : str or os.PathLike
        Data CSV (``ID,duration,wav,spk_id``).
    train_csv : str or os.PathLike
        Where the training rows go.
    valid_csv : str or os.PathLike
        Where the validation rows go.
    fraction : float
        Fraction of the speakers or of each speaker's utterances, in (0, 1).
    by : str
        ``"speaker"`` or ``"utterance"``.
    seed : int
        Seed of the random choice.

    Returns
    -------
    train_csv, valid_csv : pathlib.Path

    Raises
    ------
    ValueError
        For a fraction outside (0, 1), an unknown ``by``, or a split that
        leaves training or validation empty (or with fewer than two
        validation speakers).

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> rows = [f"s{s}/u{u},1.0,/a/s{s}/u{u}.wav,s{s}"
    ...         for s in range(4) for u in range(5)]
    >>> _ = (folder / "all.csv").write_text(
    ...     "ID,duration,wav,spk_id\\n" + "\\n".join(rows) + "\\n")
    >>> train, valid = split_validation(folder / "all.csv",
    ...     folder / "train.csv", folder / "valid.csv", 0.5, "speaker")
    >>> def speakers(path):
    ...     return {line.split(",")[3] for line in
    ...             path.read_text().splitlines()[1:]}
    >>> held_out, kept = speakers(valid), speakers(train)
    >>> len(held_out), len(kept), held_out & kept
    (2, 2, set())
    >>> train, valid = split_validation(folder / "all.csv",
    ...     folder / "train.csv", folder / "valid.csv", 0.2, "utterance")
    >>> len(valid.read_text().splitlines()) - 1  # one of 5 per speaker
    4
    """
    if not 0 < fraction < 1:
        raise ValueError(
            f"valid_fraction must be in (0, 1), got {fraction}: set 0 to "
            "train without validation"
        )
    if by not in VALIDATION_SPLITS:
        raise ValueError(
            f"valid_split must be one of {VALIDATION_SPLITS}, got {by!r}"
        )
    train_csv, valid_csv = Path(train_csv), Path(valid_csv)
    digest = hashlib.sha256(Path(csv_file).read_bytes())
    digest.update(f"\n{fraction}\t{by}\t{seed}".encode())
    fingerprint_file = valid_csv.with_name(valid_csv.name + ".fingerprint")
    if (
        train_csv.is_file()
        and valid_csv.is_file()
        and fingerprint_file.is_file()
        and fingerprint_file.read_text() == digest.hexdigest()
    ):
        logger.info("%s is up to date, skipping", valid_csv)
        return train_csv, valid_csv
    # imported here: it pulls in torch and SpeechBrain, which the scan of a
    # folder (and each of its worker processes) does without
    from speaker_metric_learning.data import check_data_csv

    check_data_csv(csv_file)
    with open(csv_file, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))[1:]
    speakers = np.array([row[3] for row in rows])
    rng = np.random.default_rng(seed)
    if by == "speaker":
        in_valid = _speakers_held_out(speakers, fraction, rng)
    else:
        in_valid = _utterances_held_out(speakers, fraction, rng)
    if in_valid.all() or not in_valid.any():
        raise ValueError(
            f"valid_fraction {fraction} by {by} leaves "
            f"{'training' if in_valid.all() else 'validation'} empty for "
            f"{csv_file}: change valid_fraction"
        )
    fingerprint_file.unlink(missing_ok=True)
    _write_rows(train_csv, [rows[i] for i in np.flatnonzero(~in_valid)])
    _write_rows(valid_csv, [rows[i] for i in np.flatnonzero(in_valid)])
    fingerprint_file.write_text(digest.hexdigest())
    logger.info(
        "Validation split by %s: %d utterances of %d speakers in %s, %d in %s",
        by,
        int(in_valid.sum()),
        len(set(speakers[in_valid])),
        valid_csv,
        int((~in_valid).sum()),
        train_csv,
    )
    return train_csv, valid_csv


def prepare_noise_folder(
    folder, save_csv, impulse_responses=False, sample_rate=16000
):
    """Lists the audio of a noise or impulse-response folder for
    augmentation, unless the list is up to date.

    Writes SpeechBrain's extended CSV (``ID,duration,wav,wav_format,
    wav_opts``) read by ``speaker_metric_learning.augment`` and SpeechBrain's
    ``AddNoise``/``AddReverb``, from a folder in any layout (MUSAN,
    RIRS_NOISES, ...). Every audio file under the folder is listed; bad
    files are skipped and listed with the reason in ``<stem>_skipped.txt``.
    Impulse responses are read by SpeechBrain without resampling nor
    mixing down, so with ``impulse_responses`` files that are not mono at
    ``sample_rate`` are skipped too (noise of any rate and channel count is
    resampled and mixed down when read).

    Arguments
    ---------
    folder : str or os.PathLike
        Folder of noise recordings or room impulse responses.
    save_csv : str or os.PathLike
        The CSV to write.
    impulse_responses : bool
        The folder holds impulse responses (mono at ``sample_rate``).
    sample_rate : int
        Sample rate of training audio.

    Returns
    -------
    pathlib.Path
        The CSV path.

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist.
    ValueError
        If it holds no usable audio file.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> root = Path(tempfile.mkdtemp())
    >>> sf.write(root / "room.wav", np.r_[1.0, np.zeros(799)], 16000)
    >>> sf.write(root / "stereo.wav", np.zeros((800, 2)), 16000)
    >>> rows = prepare_noise_folder(root, root / "rirs.csv", True).read_text()
    >>> print(rows.strip())
    ID,duration,wav,wav_format,wav_opts
    room,0.05,.../room.wav,wav,
    >>> (root / "rirs_skipped.txt").read_text().split("\\t")[1]
    '2 channels: impulse responses must be mono\\n'
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Noise or impulse response folder {folder} does not exist."
        )
    root, save_csv = folder.resolve(), Path(save_csv)
    files, skipped = _list_audio_files(root)
    fingerprint_file = save_csv.with_name(save_csv.name + ".fingerprint")
    fingerprint = _fingerprint(
        root, files, impulse_responses, sample_rate, skipped
    )
    if (
        save_csv.is_file()
        and fingerprint_file.is_file()
        and fingerprint_file.read_text() == fingerprint
    ):
        return save_csv
    rows = []
    for relative, size, _ in tqdm(
        files,
        desc=f"Scanning {root}",
        unit="file",
        disable=len(files) < PROGRESS_MIN_FILES,
    ):
        required_rate = sample_rate if impulse_responses else None
        row, reason = _noise_row(root, relative, size, required_rate)
        if row is None:
            skipped.append((os.path.join(root, relative), reason))
        else:
            rows.append(row)
    skipped_file = save_csv.with_name(save_csv.stem + "_skipped.txt")
    save_csv.parent.mkdir(parents=True, exist_ok=True)
    _write_listing(skipped_file, skipped)
    if skipped:
        logger.warning(
            "Skipped %d of %d files of %s, listed in %s",
            len(skipped),
            len(files) + len(skipped),
            root,
            skipped_file,
        )
    if not rows:
        raise ValueError(
            f"No usable audio file in {root} ({len(skipped)} skipped, "
            f"listed in {skipped_file})."
        )
    fingerprint_file.unlink(missing_ok=True)
    with open(save_csv, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(NOISE_CSV_HEADER)
        writer.writerows(rows)
    fingerprint_file.write_text(fingerprint)
    logger.info("Listed %d audio files of %s in %s", len(rows), root, save_csv)
    return save_csv


def _noise_row(root, relative, size, required_rate=None):
    """``(row, None)`` for a usable noise file, else ``(None, reason)``.
    With ``required_rate`` (impulse responses), only mono files at that
    rate are usable."""
    extension = os.path.splitext(relative)[1].lower()
    if size is None:
        return None, "cannot be opened (broken link?)"
    if size == 0:
        return None, "empty file"
    if extension in CONVERTED_EXTENSIONS:
        return None, f"{extension[1:]} is not read: convert it to wav or flac"
    path = os.path.join(root, relative)
    try:
        frames, rate, channels = _audio_format(path)
    except (sf.SoundFileError, OSError) as error:
        return None, f"unreadable: {error}"
    if frames == 0:
        return None, "no audio samples"
    if required_rate is not None and channels > 1:
        return None, f"{channels} channels: impulse responses must be mono"
    if required_rate is not None and rate != required_rate:
        return None, f"{rate} Hz: impulse responses must be {required_rate} Hz"
    file_format = "ogg" if extension in (".ogg", ".opus") else extension[1:]
    row = (utterance_id(relative), frames / rate, path, file_format, "")
    return row, None


def _speakers_held_out(speakers, fraction, rng):
    """Mask of the rows of a random ``fraction`` of the speakers."""
    names = np.unique(speakers)
    count = int(round(fraction * len(names)))
    if count < 2 or count >= len(names):
        raise ValueError(
            f"valid_fraction {fraction} of {len(names)} speakers gives "
            f"{count} validation speakers: at least 2 (for non-target "
            "pairs) and fewer than all are needed"
        )
    chosen = rng.permutation(names)[:count]
    return np.isin(speakers, chosen)


def _utterances_held_out(speakers, fraction, rng):
    """Mask of a random ``fraction`` of each speaker's rows, leaving one."""
    in_valid = np.zeros(len(speakers), dtype=bool)
    order = np.argsort(speakers, kind="stable")
    starts = np.flatnonzero(
        np.r_[True, speakers[order][1:] != speakers[order][:-1]]
    )
    for rows in np.split(order, starts[1:]):
        count = min(int(round(fraction * len(rows))), len(rows) - 1)
        in_valid[rng.permutation(rows)[:count]] = True
    return in_valid


def _write_rows(path, rows):
    """Writes the CSV header and the rows to ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(DATA_CSV_COLUMNS)
        writer.writerows(rows)


def _write_listing(path, entries):
    """Writes ``path<TAB>text`` lines."""
    Path(path).write_text(
        "".join(f"{name}\t{text}\n" for name, text in entries),
        encoding="utf-8",
    )


def _list_audio_files(root):
    """Sorted ``(relative path, size, mtime_ns)`` of the audio files under
    ``root`` (symbolic links followed; size and time are None for a broken
    link), and the sorted ``(path, reason)`` of the audio files whose path
    is not UTF-8 text (skipped: a CSV file cannot hold it). Paths are
    strings: pathlib costs more than the file system on million-file
    trees."""
    extensions = AUDIO_EXTENSIONS + CONVERTED_EXTENSIONS
    start = len(os.path.join(root, ""))
    files, misnamed, folders = [], [], [str(root)]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir():
                    folders.append(entry.path)
                elif not entry.name.lower().endswith(extensions):
                    continue
                elif not _is_utf8(entry.path):
                    misnamed.append(
                        (
                            os.fsencode(entry.path).decode(
                                "utf-8", "backslashreplace"
                            ),
                            "the path is not UTF-8 text: rename the file "
                            "(or its folder)",
                        )
                    )
                else:
                    try:
                        stat = entry.stat()
                    except OSError:
                        files.append((entry.path[start:], None, None))
                    else:
                        files.append(
                            (entry.path[start:], stat.st_size, stat.st_mtime_ns)
                        )
    return sorted(files), sorted(misnamed)


def _is_utf8(path):
    """Whether a file system path (undecodable bytes escaped as surrogates)
    is UTF-8 text."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _convert(root, files, converted_folder, progress, workers):
    """FLAC copies (or failure reasons) of the files soundfile cannot read:
    ``{relative path: converted path or reason}``."""
    sources = [
        root / relative
        for relative, size, _ in files
        if size and relative.lower().endswith(CONVERTED_EXTENSIONS)
    ]
    if not sources:
        return {}
    if converted_folder is None:
        raise ValueError(
            f"{len(sources)} files of {root} (e.g. {sources[0]}) need "
            "converting to FLAC: give converted_folder"
        )
    key = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    target_root = Path(converted_folder).resolve() / f"{root.name}-{key}"
    converted = convert_to_flac(sources, root, target_root, workers, progress)
    return {
        os.path.relpath(source, root): target
        for source, target in converted.items()
    }


def _scan(root, files, progress, converted=None, workers=None):
    """``scan_folder`` on the listed ``(relative path, size, mtime)`` files;
    also returns the ``(sample_rate, channels)`` of every utterance."""
    converted = converted or {}

    def job(relative, size):
        """``(relative path, size, audio path, conversion failure)``."""
        target = converted.get(relative)
        if isinstance(target, str):  # why the conversion failed
            return relative, size, None, target
        audio = os.path.join(root, relative) if target is None else target
        return relative, size, str(audio), None

    tasks = (
        (
            str(root),
            [
                job(relative, size)
                for relative, size, _ in files[start : start + FILES_PER_TASK]
            ],
        )
        for start in range(0, len(files), FILES_PER_TASK)
    )
    bar = tqdm(
        total=len(files),
        desc=f"Scanning {root}",
        unit="file",
        disable=not progress or len(files) < PROGRESS_MIN_FILES,
    )
    workers = min(
        workers or len(os.sched_getaffinity(0)),
        -(-len(files) // FILES_PER_TASK),
    )
    results = []
    with bar:
        if workers > 1 and len(files) >= PARALLEL_MIN_FILES:
            context = multiprocessing.get_context("spawn")
            # imap hands out the tasks as the workers take them, so the
            # list of jobs is never built whole
            with context.Pool(workers) as pool:
                for part in pool.imap(_read_headers_task, tasks):
                    results += part
                    bar.update(len(part))
        else:
            for task in tasks:
                results += _read_headers_task(task)
                bar.update(len(task[1]))
    utterances, skipped, formats = [], [], []
    for utterance, reason, audio_format in results:
        if utterance is None:
            skipped.append(reason)
        else:
            utterances.append(utterance)
            formats.append(audio_format)
    if not utterances:
        raise ValueError(
            f"No readable audio file in {root} ({len(skipped)} skipped): "
            f"expected {LAYOUTS}."
        )
    order = sorted(range(len(utterances)), key=lambda i: utterances[i].id)
    return (
        [utterances[i] for i in order],
        skipped,
        [formats[i] for i in order],
    )


def _read_headers_task(task):
    """``_read_header`` on the ``(root, jobs)`` of a task, each job
    ``(relative path, size, audio, failure)``: ``(Utterance, None, (rate,
    channels))`` or ``(None, (path, reason), None)`` for each."""
    root, jobs = task
    results = []
    for relative, size, audio, failure in jobs:
        utterance, reason, audio_format = _read_header(
            relative, size, audio, failure
        )
        if reason is not None:
            reason = (os.path.join(root, relative), reason)
        results.append((utterance, reason, audio_format))
    return results


def _read_header(relative, size, audio, failure=None):
    """``(Utterance, None, (rate, channels))`` for a usable file, else
    ``(None, reason, None)``. ``audio`` is the file to read (the file at
    ``relative`` or its converted copy); ``failure`` why its conversion
    failed, if it did."""
    speaker = relative.split(os.sep, 1)[0]
    if speaker == relative:
        return None, "not inside a speaker folder", None
    if size is None:
        return None, "cannot be opened (broken link?)", None
    if size == 0:
        return None, "empty file", None
    if failure is not None:
        return None, failure, None
    try:
        frames, rate, channels = _audio_format(audio)
    except (sf.SoundFileError, OSError) as error:
        return None, f"unreadable: {error}", None
    if frames == 0:
        return None, "no audio samples", None
    utterance = Utterance(
        id=utterance_id(relative),
        duration=frames / rate,
        wav=audio,
        spk_id=speaker,
    )
    return utterance, None, (rate, channels)


def _audio_format(path):
    """``(frames, sample_rate, channels)`` of an audio file."""
    with open(path, "rb") as file:
        head = file.read(4096)
        size = file.seek(0, os.SEEK_END)
    parsed = _wav_format(head, size) or _flac_format(head)
    if parsed is not None:
        return parsed
    info = sf.info(path)
    return info.frames, info.samplerate, info.channels


def _wav_format(head, size):
    """``(frames, rate, channels)`` from the start of a plain PCM or float
    WAV file of ``size`` bytes, or None for anything else."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    position, fmt = 12, None
    while position + 8 <= len(head):
        name = head[position : position + 4]
        (length,) = struct.unpack_from("<I", head, position + 4)
        body = position + 8
        if name == b"fmt " and length >= 16 and body + 16 <= len(head):
            tag, channels, rate, _, block = struct.unpack_from(
                "<HHIIH", head, body
            )
            fmt = (tag, channels, rate, block)
        elif name == b"data":
            if fmt is None or fmt[0] not in PLAIN_WAV_FORMATS:
                return None
            tag, channels, rate, block = fmt
            if not (channels and rate and block):
                return None
            return min(length, size - body) // block, rate, channels
        position = body + length + (length & 1)
    return None


def _flac_format(head):
    """``(frames, rate, channels)`` from the STREAMINFO block at the start of
    a FLAC file, or None (also when the frame count is not stored)."""
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        return None
    fields = int.from_bytes(head[18:26], "big")
    rate = fields >> 44
    channels = ((fields >> 41) & 0x7) + 1
    frames = fields & ((1 << 36) - 1)
    if frames == 0 or rate == 0:
        return None
    return frames, rate, channels


def _notes(utterances, formats, chunk_seconds):
    """``(path, note)`` of the accepted files with a caveat, each kind
    logged once with its count."""
    notes = collections.defaultdict(list)
    for utterance, (rate, channels) in zip(utterances, formats, strict=True):
        if rate != 16000:
            notes["sample rate other than 16 kHz (resampled when read)"].append(
                (utterance.wav, f"sample rate {rate} Hz, resampled when read")
            )
        if channels > 1:
            notes["several channels (mixed down to mono when read)"].append(
                (utterance.wav, f"{channels} channels, mixed down when read")
            )
        if chunk_seconds and utterance.duration < chunk_seconds:
            notes[
                f"shorter than the {chunk_seconds} s chunk (repeated to fill "
                "it)"
            ].append(
                (
                    utterance.wav,
                    f"{utterance.duration:.3f} s, shorter than the "
                    f"{chunk_seconds} s chunk: repeated to fill it",
                )
            )
    per_speaker = collections.Counter(u.spk_id for u in utterances)
    for utterance in utterances:
        if per_speaker[utterance.spk_id] == 1:
            notes[
                "the only utterance of their speaker (no target trial)"
            ].append(
                (utterance.wav, f"only utterance of speaker {utterance.spk_id}")
            )
    for kind, entries in notes.items():
        logger.warning(
            "%d files: %s, e.g. %s", len(entries), kind, entries[0][0]
        )
    return sorted(entry for entries in notes.values() for entry in entries)


def _fingerprint(
    root, files, converted_folder=None, chunk_seconds=None, misnamed=()
):
    """A digest of the audio root, of every file's path, size and time (and
    of the paths of the ``misnamed`` files), and of the preparation
    options."""
    digest = hashlib.sha256(str(root).encode())
    digest.update(f"\n{converted_folder}\t{chunk_seconds}".encode())
    digest.update(
        "".join(
            f"\n{relative}\t{size}\t{mtime}" for relative, size, mtime in files
        ).encode()
    )
    digest.update("".join(f"\n{path}" for path, _ in misnamed).encode())
    return digest.hexdigest()
