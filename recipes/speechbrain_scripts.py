"""SpeechBrain's VoxCeleb recipe scripts, taken from a copy of its repository.

The scripts (``train_speaker_embeddings.py``, ``voxceleb_prepare.py``, the
verification scripts) are in the speechbrain repository, not in the pip
package. :func:`extract_speechbrain_files` copies them out of a work tree,
or out of a git directory at the newest release tag not newer than the
installed speechbrain, for the tests and benchmarks that run them
unmodified; nothing of them is kept in this repository.

Authors
 * Speaker metric learning contributors 2025
"""

import os
import pathlib
import re
import shutil
import subprocess

import speechbrain

#: Where the tests and benchmarks look when ``$SPEECHBRAIN_REPO`` is unset.
DEFAULT_REPOSITORY = pathlib.Path("/work/.mirror/speechbrain+speechbrain/repo")
#: The folder of SpeechBrain's VoxCeleb speaker recognition recipe.
SPEAKER_REC = "recipes/VoxCeleb/SpeakerRec"


class NoSpeechBrainRepository(LookupError):
    """No copy of the speechbrain repository with the files asked for."""


def release(text):
    """``(1, 1, 2)`` of ``"v1.1.2"`` or ``"1.1.2"`` (None if not a release
    number).

    Arguments
    ---------
    text : str
        A tag or version string.

    Returns
    -------
    tuple of int or None

    Example
    -------
    >>> release("v1.1.0"), release("1.1.2"), release("1.1.2rc1")
    ((1, 1, 0), (1, 1, 2), None)
    """
    match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(part) for part in match.groups()) if match else None


def _git(repository, *arguments):
    return subprocess.run(
        ["git", "-C", str(repository), *arguments],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def repository_location():
    """``$SPEECHBRAIN_REPO``, else :data:`DEFAULT_REPOSITORY`.

    Returns
    -------
    pathlib.Path

    Example
    -------
    >>> isinstance(repository_location(), pathlib.Path)
    True
    """
    return pathlib.Path(os.environ.get("SPEECHBRAIN_REPO", DEFAULT_REPOSITORY))


def extract_speechbrain_files(paths, destination, repository=None):
    """Copies files of the speechbrain repository into one folder.

    A work tree holding every file is copied from as it is; a git
    directory (or a work tree without the files) gives them at its newest
    release tag not newer than the installed speechbrain.

    Arguments
    ---------
    paths : sequence of str
        Paths inside the repository; each is written to ``destination``
        under its file name.
    destination : str or pathlib.Path
        An existing folder.
    repository : str or pathlib.Path, optional
        A clone or a bare git directory (default:
        :func:`repository_location`).

    Returns
    -------
    str
        Where the files came from (the repository, and the tag used).

    Raises
    ------
    NoSpeechBrainRepository
        Without a repository, git, or a suitable tag, with the reason.

    Example
    -------
    >>> import tempfile
    >>> extract_speechbrain_files(
    ...     ["README.md"], tempfile.mkdtemp(), repository="/no/such/folder"
    ... )
    Traceback (most recent call last):
    ...
    recipes.speechbrain_scripts.NoSpeechBrainRepository: no speechbrain \
repository at /no/such/folder (set SPEECHBRAIN_REPO to a clone): its \
recipe scripts are not in the pip package
    """
    repository = pathlib.Path(repository or repository_location())
    destination = pathlib.Path(destination)
    if all((repository / path).is_file() for path in paths):
        for path in paths:
            shutil.copy(repository / path, destination)
        return str(repository)
    if shutil.which("git") is None or not repository.exists():
        raise NoSpeechBrainRepository(
            f"no speechbrain repository at {repository} (set "
            "SPEECHBRAIN_REPO to a clone): its recipe scripts are not in "
            "the pip package"
        )
    installed = release(speechbrain.__version__.split("+")[0])
    tags = [
        tag
        for tag in _git(repository, "tag", "--list").split()
        if release(tag) and release(tag) <= installed
    ]
    if not tags:
        raise NoSpeechBrainRepository(
            f"{repository} has no release tag up to {installed}"
        )
    tag = max(tags, key=release)
    for path in paths:
        text = _git(repository, "show", f"{tag}:{path}")
        (destination / pathlib.Path(path).name).write_text(text)
    return f"{repository} {tag}"
