"""Conversion with ffmpeg of audio files that soundfile cannot read.

VoxCeleb2 is distributed as AAC in ``.m4a`` files, which libsndfile (hence
``soundfile``, the recipe's only audio reader) does not decode. They are
converted once to 16-bit FLAC with the ``ffmpeg`` command-line tool, in a
separate folder that mirrors the source tree (the corpus itself is never
written to); a file whose FLAC copy is newer than itself is not converted
again. Sample rate and channels are kept: the recipe resamples and mixes
down when it reads.

Without ``ffmpeg`` on the ``PATH`` the conversion stops with one message
saying how to install it or how to convert the files by hand.

Authors
 * Speaker metric learning contributors 2025
"""

import concurrent.futures
import logging
import os
import shutil
import subprocess
from pathlib import Path

from tqdm import tqdm

from speaker_metric_learning.layout import CONVERTED_EXTENSIONS

logger = logging.getLogger(__name__)

#: The extension of the converted copies.
CONVERTED_SUFFIX = ".flac"


def converted_path(source, root, target_root):
    """Where the FLAC copy of ``source`` (a file under ``root``) goes.

    Arguments
    ---------
    source : pathlib.Path
        File to convert.
    root : pathlib.Path
        Root of the source tree.
    target_root : pathlib.Path
        Root of the converted tree.

    Returns
    -------
    pathlib.Path

    Example
    -------
    >>> converted_path(Path("/d/aac/id1/s/1.m4a"), Path("/d/aac"), Path("/c"))
    PosixPath('/c/id1/s/1.flac')
    """
    relative = Path(source).relative_to(root)
    return Path(target_root) / relative.with_suffix(CONVERTED_SUFFIX)


def ffmpeg_command():
    """Path of the ``ffmpeg`` executable, or a clear error without it.

    Returns
    -------
    str

    Raises
    ------
    FileNotFoundError
        If ``ffmpeg`` is not on the ``PATH``.

    Example
    -------
    >>> from unittest import mock
    >>> with mock.patch("shutil.which", return_value=None):
    ...     ffmpeg_command()
    Traceback (most recent call last):
    ...
    FileNotFoundError: ffmpeg is needed to read m4a/aac/mp4 files, and was \
not found on the PATH. Install it ...
    """
    command = shutil.which("ffmpeg")
    if command is None:
        raise FileNotFoundError(
            "ffmpeg is needed to read "
            + "/".join(ext[1:] for ext in CONVERTED_EXTENSIONS)
            + " files, and was not found on the PATH. Install it (Debian/"
            "Ubuntu: apt-get install ffmpeg; conda: conda install -c "
            "conda-forge ffmpeg; macOS: brew install ffmpeg) and rerun, or "
            "convert the files yourself into the same folder layout, e.g. "
            "ffmpeg -i 00001.m4a -c:a flac 00001.flac"
        )
    return command


def convert_to_flac(sources, root, target_root, workers=None, progress=True):
    """Converts audio files to FLAC with ffmpeg, skipping up-to-date copies.

    Arguments
    ---------
    sources : list of pathlib.Path
        Files under ``root`` to convert.
    root : pathlib.Path
        Root of the source tree.
    target_root : pathlib.Path
        Root of the converted tree (created as needed).
    workers : int, optional
        Number of ffmpeg processes run at once (default: CPU count).
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        Source path to its FLAC path, or to a ``str`` saying why the file
        could not be converted.

    Raises
    ------
    FileNotFoundError
        If files need converting and ``ffmpeg`` is not installed.

    Example
    -------
    >>> convert_to_flac([], Path("/data"), Path("/converted"))
    {}
    """
    results, jobs = {}, []
    for source in sources:
        target = converted_path(source, root, target_root)
        results[source] = target
        if not _up_to_date(source, target):
            jobs.append((source, target))
    if not jobs:
        return results
    command = ffmpeg_command()
    workers = workers or len(os.sched_getaffinity(0))
    logger.info(
        "Converting %d files of %s to FLAC in %s", len(jobs), root, target_root
    )
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        outcomes = pool.map(lambda job: _convert(command, *job), jobs)
        bar = tqdm(
            outcomes,
            total=len(jobs),
            desc="Converting to FLAC",
            unit="file",
            disable=not progress,
        )
        for (source, _), failure in zip(jobs, bar, strict=True):
            if failure is not None:
                results[source] = failure
    return results


def _up_to_date(source, target):
    try:
        return target.stat().st_mtime_ns >= source.stat().st_mtime_ns
    except OSError:
        return False


def _convert(command, source, target):
    """Runs ffmpeg on one file; returns None or the reason of a failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    process = subprocess.run(
        [
            command,
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(source),
            "-vn",
            "-c:a",
            "flac",
            "-sample_fmt",
            "s16",
            "-f",
            "flac",
            str(partial),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if process.returncode != 0:
        partial.unlink(missing_ok=True)
        message = (process.stderr.strip().splitlines() or ["no message"])[-1]
        return f"ffmpeg cannot convert it: {message}"
    os.replace(partial, target)
    return None
