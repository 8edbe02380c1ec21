"""The audio files a scoring reads: the utterances of a trial list, a
cohort's files, and a dataset that reads them one at a time.

Authors
 * speaker_metric_learning developers
"""

import pathlib

from speaker_metric_learning.data import read_audio
from speaker_metric_learning.layout import (
    AUDIO_EXTENSIONS,
    find_audio,
    speaker_audio_files,
)


def cohort_files(folder, per_speaker):
    """The first audio files (sorted paths) of each speaker of a folder.

    Arguments
    ---------
    folder : str or pathlib.Path
        Speaker folders ``<spk>/...``, or a corpus part with ``wav/<spk>/...``.
    per_speaker : int
        Files kept per speaker (at most).

    Returns
    -------
    list of tuple
        ``(speaker, path)`` pairs, by speaker then path.

    Raises
    ------
    ValueError
        If no speaker folder holds an audio file.

    Example
    -------
    >>> import tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["wav/s1/b.wav", "wav/s1/a.wav", "wav/s2/x/c.flac"]:
    ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
    ...     (root / name).touch()
    >>> [(s, p.name) for s, p in cohort_files(root, 1)]
    [('s1', 'a.wav'), ('s2', 'c.flac')]
    """
    if not pathlib.Path(folder).is_dir():
        raise FileNotFoundError(f"cohort folder not found: {folder}")
    pairs = [
        (speaker, path)
        for speaker, files in speaker_audio_files(folder).items()
        for path in files[:per_speaker]
    ]
    if not pairs:
        raise ValueError(
            f"{folder} holds no speaker folder with audio files "
            f"({', '.join(AUDIO_EXTENSIONS)}): give a folder of <spk>/... "
            "or wav/<spk>/... audio files as --cohort_folder."
        )
    return pairs


class AudioFiles:
    """Audio files as ``(id, waveform)`` items, each read when indexed (so
    that memory stays bounded): the dataset ``extract_embeddings`` takes.

    Arguments
    ---------
    ids : sequence of str
        The ID of each file (its utterance ID, or any name).
    paths : sequence of str or pathlib.Path
        The files.
    sample_rate : int
        The rate of the waveforms (files of other rates are resampled).

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.wav"
    >>> soundfile.write(path, numpy.zeros(800, "float32"), 16000)
    >>> files = AudioFiles(["spk/a"], [path], 16000)
    >>> name, waveform = files[0]
    >>> len(files), name, tuple(waveform.shape)
    (1, 'spk/a', (800,))
    """

    def __init__(self, ids, paths, sample_rate):
        self.data_ids = list(ids)
        self.paths = list(paths)
        self.sample_rate = sample_rate

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        audio = read_audio(str(self.paths[index]), self.sample_rate)
        return self.data_ids[index], audio


def trial_audio(trials, folder):
    """The audio file of every utterance of a trial list.

    Arguments
    ---------
    trials : speaker_metric_learning.scoring.trials.TrialList
        The trials.
    folder : str or pathlib.Path
        The folder the trial paths are relative to.

    Returns
    -------
    list of pathlib.Path
        One file per utterance of ``trials.utterances``.

    Raises
    ------
    ValueError
        If the list has no target or no non-target trial (no error rate
        can be measured).
    FileNotFoundError
        Naming the first utterance without a file, and the first trial
        line that uses it.

    Example
    -------
    >>> import tempfile
    >>> from speaker_metric_learning.scoring.trials import TrialList
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a.wav", "b.flac"):
    ...     (folder / name).touch()
    >>> trials = TrialList.from_lines(["1 a b", "0 b a"])
    >>> [path.name for path in trial_audio(trials, folder)]
    ['a.wav', 'b.flac']
    >>> trial_audio(TrialList.from_lines(["1 a b"], "t.txt"), folder)
    Traceback (most recent call last):
    ...
    ValueError: t.txt has no non-target trial (label 0): an error rate needs \
both target and non-target trials.
    """
    fingerprint = trials.fingerprint
    for count, kind, label in (
        (fingerprint.n_targets, "target", 1),
        (fingerprint.n_nontargets, "non-target", 0),
    ):
        if not count:
            raise ValueError(
                f"{trials.source} has no {kind} trial (label {label}): an "
                "error rate needs both target and non-target trials."
            )
    paths = []
    for utterance in trials.utterances:
        path = find_audio(folder, utterance)
        if path is None:
            line = trials.first_line(utterance)
            raise FileNotFoundError(
                f"no audio file for '{utterance}' ({trials.source}, line "
                f"{line}): {pathlib.Path(folder) / utterance} (with "
                f"{', '.join(AUDIO_EXTENSIONS)} or no extension) does not "
                "exist; check --eval_folder or fix the trial list."
            )
        paths.append(path)
    return paths
