"""Trial lists, their fingerprints and score files.

A trial list has one trial per line, ``label enrol test`` (VoxCeleb format):
``label`` is 1 for a target (same speaker) trial and 0 for a non-target one,
``enrol`` and ``test`` are audio paths. An utterance is identified by its path
without extension, e.g. ``id10270/x6uYqmx31kE/00001``. Fields are separated
by blanks, blank lines are ignored, files ending in ``.gz`` are
decompressed.

A score file holds one trial per line, ``score enrol test`` (the trial list
with the label replaced by the score), written with enough digits to read
back float32 scores exactly; its lines may come in any order.

Fields are separated by ASCII blanks (space, tab, CR, vertical tab, form
feed), so CRLF files read as LF files; a path may hold any other character
(UTF-8). A trial listed twice with both labels, or scored twice with two
scores, is refused; a trial listed twice with one label is counted twice,
with a warning.

Parsing splits the whole file once (``bytes.split``), finds the line of
every field with numpy, and numbers the distinct paths with a dictionary:
reading the 581,480 trials of VoxCeleb1-E takes 2.8-3.1 times less time
than with the line-by-line reference parser of
``tests/test_trial_parsing.py`` (1.27-1.39 s against 3.89 s, gunzip
included, at load 5 on 2 cores; ``benchmarks/metrics_speed.py`` in
BENCHMARKS.md, "Trial parsing: the parser kept, against a line-by-line
reference"). That test checks it against the reference on thousands of
random files.

The fingerprint identifies a trial list in every result, so that results
on different lists are never compared. Cosine scoring of a trial list is
in ``speaker_metric_learning.scoring.cosine``; its functions
(``cosine_scores``, ``embedding_matrix``, ``embedding_rows``,
``pair_scores``) are still importable from here.

One file: trial lists and score files are one format (three blank-separated
fields per line, the same utterance ids) read by one parser, ``_Table``,
with the same error messages and the same check of repeated trials; the
parser's edge cases (blanks, CRLF, undecodable paths) are tested once for
both readers, against one reference.
"""

import functools
import gzip
import hashlib
import logging
from dataclasses import dataclass

import numpy as np

from speaker_metric_learning.layout import utterance_id

# Cosine scoring lived here first: its functions stay importable from here.
from speaker_metric_learning.scoring.cosine import (  # noqa: F401
    cosine_scores,
    embedding_matrix,
    embedding_rows,
    pair_scores,
)

logger = logging.getLogger(__name__)

#: Bytes that separate fields (those of ``bytes.split()``); ``\n`` also
#: ends a line.
_BLANK = np.zeros(256, dtype=bool)
_BLANK[list(b" \t\n\r\x0b\x0c")] = True


@dataclass(frozen=True)
class TrialFingerprint:
    """Identity and size of a trial list.

    Arguments
    ---------
    sha256 : str
        First 12 hex digits of the sha256 of the normalised list: the
        utterance ids in order of first appearance, joined by newlines and
        UTF-8 encoded, a NUL byte, then the labels (one byte each), the
        enrolment and the test utterance indices (little-endian int64).
        Two files with the same trials in the same order (whatever their
        blanks and audio extensions) share it.
    n_trials : int
        Number of trials.
    n_targets : int
        Number of target trials.
    n_nontargets : int
        Number of non-target trials.
    n_utterances : int
        Number of distinct utterances.

    Example
    -------
    >>> trials = TrialList.from_lines(["1 a/1.wav a/2.wav", "0 a/1 b/1"])
    >>> print(trials.fingerprint)
    trials c9e2704bbecf: 2 trials (1 targets, 1 non-targets), 3 utterances
    """

    sha256: str
    n_trials: int
    n_targets: int
    n_nontargets: int
    n_utterances: int

    def __str__(self):
        return (
            f"trials {self.sha256}: {self.n_trials:,} trials "
            f"({self.n_targets:,} targets, {self.n_nontargets:,} non-targets),"
            f" {self.n_utterances:,} utterances"
        )

    def to_dict(self):
        """Returns the fingerprint as a JSON-ready dict.

        Returns
        -------
        dict
            The fields of the fingerprint.

        Example
        -------
        >>> TrialList.from_lines(["1 a b"]).fingerprint.to_dict()["n_trials"]
        1
        """
        return dict(self.__dict__)


@dataclass
class TrialList:
    """A parsed trial list, with utterances indexed once.

    Arguments
    ---------
    labels : numpy.ndarray
        Boolean, True for a target trial.
    utterances : list of str
        Distinct utterance ids, in order of first appearance.
    enrol_index : numpy.ndarray
        Index into ``utterances`` of each trial's enrolment utterance.
    test_index : numpy.ndarray
        Index into ``utterances`` of each trial's test utterance.
    line_numbers : numpy.ndarray
        1-based line number of each trial in its file.
    source : str
        File name (or description) the trials were read from.

    Example
    -------
    >>> trials = TrialList.from_lines(["1 a/1.wav a/2.wav", "0 a/1 b/1.flac"])
    >>> trials.utterances
    ['a/1', 'a/2', 'b/1']
    >>> trials.enrol_index.tolist(), trials.test_index.tolist()
    ([0, 0], [1, 2])
    """

    labels: np.ndarray
    utterances: list
    enrol_index: np.ndarray
    test_index: np.ndarray
    line_numbers: np.ndarray
    source: str = "<lines>"

    def __len__(self):
        return len(self.labels)

    @classmethod
    def from_bytes(cls, raw, source="<bytes>"):
        """Parses the bytes of a trial list (format: module docstring).

        Arguments
        ---------
        raw : bytes
            UTF-8 text of the trial list.
        source : str
            Name of the origin, used in error messages.

        Returns
        -------
        TrialList
            The parsed trials.

        Raises
        ------
        ValueError
            Naming the first malformed line: not three fields, or a label
            other than 0 or 1; or if there is no trial at all.

        Example
        -------
        >>> len(TrialList.from_bytes(b"1 a b\\n\\n0\\ta  c\\n"))
        2
        """
        table = _Table.from_bytes(raw, source, "label enrol test")
        # object, not bytes_: numpy drops trailing NUL bytes (0\x00 -> 0)
        labels = np.array(table.column(0), dtype=object)
        is_target = labels == b"1"
        wrong = np.flatnonzero(~is_target & (labels != b"0"))
        if wrong.size:
            raise ValueError(
                f"{source}, line {table.line_numbers[wrong[0]]}: the label is "
                f"{table.field(wrong[0], 0)!r} but must be 1 (target) or 0 "
                "(non-target)."
            )
        utterances, index = table.utterance_index()
        trials = cls(
            labels=is_target,
            utterances=utterances,
            enrol_index=index[:, 0],
            test_index=index[:, 1],
            line_numbers=table.line_numbers,
            source=source,
        )
        trials._check_repeats()
        return trials

    def _check_repeats(self):
        """Refuses a trial listed twice with both labels; warns about
        trials listed more than once (each counts as often as listed)."""
        codes = self.enrol_index * len(self.utterances) + self.test_index
        earlier, later = _repeated_rows(codes)
        if not later.size:
            return
        lines = self.line_numbers
        conflicts = np.flatnonzero(self.labels[earlier] != self.labels[later])
        if conflicts.size:
            first = conflicts[0]
            raise ValueError(
                f"{self.source}, line {lines[later[first]]}: the trial "
                f"{self._pair(later[first])} is also on line "
                f"{lines[earlier[first]]} with the other label: keep the "
                "right one."
            )
        logger.warning(
            "%s: %d trial lines repeat an earlier line (e.g. line %d repeats "
            "line %d, %s) and count as often as they appear: remove them "
            "unless that is intended",
            self.source,
            later.size,
            lines[later[0]],
            lines[earlier[0]],
            self._pair(later[0]),
        )

    def _pair(self, row):
        """``'enrol test'`` of one trial."""
        enrol = self.utterances[self.enrol_index[row]]
        return f"'{enrol} {self.utterances[self.test_index[row]]}'"

    @classmethod
    def from_lines(cls, lines, source="<lines>"):
        """Parses trial lines given as a string or a list of strings.

        Arguments
        ---------
        lines : str or list of str
            The text of a trial list, or its lines.
        source : str
            Name of the origin, used in error messages.

        Returns
        -------
        TrialList
            The parsed trials.

        Example
        -------
        >>> TrialList.from_lines("1 a b\\n0 a c").labels.tolist()
        [True, False]
        """
        text = lines if isinstance(lines, str) else "\n".join(lines)
        return cls.from_bytes(text.encode(), source)

    @property
    def enrol(self):
        """Enrolment utterance id of each trial.

        Example
        -------
        >>> TrialList.from_lines(["1 a b"]).enrol.tolist()
        ['a']
        """
        return np.array(self.utterances, dtype=object)[self.enrol_index]

    @property
    def test(self):
        """Test utterance id of each trial.

        Example
        -------
        >>> TrialList.from_lines(["1 a b"]).test.tolist()
        ['b']
        """
        return np.array(self.utterances, dtype=object)[self.test_index]

    def first_line(self, utterance):
        """The line number of the first trial that uses ``utterance``.

        Arguments
        ---------
        utterance : str
            An utterance id of ``utterances``.

        Returns
        -------
        int

        Example
        -------
        >>> TrialList.from_lines(["1 a b", "0 b c"]).first_line("c")
        2
        """
        index = self.utterances.index(utterance)
        uses = (self.enrol_index == index) | (self.test_index == index)
        return int(self.line_numbers[np.flatnonzero(uses)[0]])

    @functools.cached_property
    def fingerprint(self):
        """The ``TrialFingerprint`` of this list.

        Example
        -------
        >>> TrialList.from_lines(["1 a b"]).fingerprint.n_utterances
        2
        """
        digest = hashlib.sha256("\n".join(self.utterances).encode())
        digest.update(b"\0")
        digest.update(self.labels.astype(np.uint8).tobytes())
        digest.update(self.enrol_index.astype("<i8").tobytes())
        digest.update(self.test_index.astype("<i8").tobytes())
        n_targets = int(self.labels.sum())
        return TrialFingerprint(
            sha256=digest.hexdigest()[:12],
            n_trials=len(self),
            n_targets=n_targets,
            n_nontargets=len(self) - n_targets,
            n_utterances=len(self.utterances),
        )


def read_trials(path):
    """Reads a trial list file (``label enrol test`` lines, or ``.gz``).

    Arguments
    ---------
    path : str or pathlib.Path
        The trial file.

    Returns
    -------
    TrialList
        The parsed trials.

    Example
    -------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "trials.txt"
    >>> _ = path.write_text("1 a/1.wav a/2.wav\\n0 a/1.wav b/1.wav\\n")
    >>> print(read_trials(path).fingerprint)
    trials c9e2704bbecf: 2 trials (1 targets, 1 non-targets), 3 utterances
    """
    return TrialList.from_bytes(_read_bytes(path, "Trial"), source=str(path))


def _read_bytes(path, kind):
    """Reads a file, decompressing ``.gz`` files."""
    path = str(path)
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{kind} file not found: {path}") from None


class _Table:
    """Rows of three blank-separated fields of a text file.

    Fields are separated by ASCII blanks (space, tab, CR, vertical tab,
    form feed: the separators of ``bytes.split()``), rows by newlines;
    blank lines are skipped.

    Arguments
    ---------
    fields : list of bytes
        The fields, three per row.
    line_numbers : numpy.ndarray
        1-based line number of each row.
    source : str
        File name (or description), used in error messages.
    """

    def __init__(self, fields, line_numbers, source="<bytes>"):
        self.fields = fields
        self.line_numbers = line_numbers
        self.source = source

    @classmethod
    def from_bytes(cls, raw, source, layout):
        """Splits bytes into rows of 3 fields, naming the first line that
        has another number of fields."""
        fields = raw.split()
        if not fields:
            raise ValueError(f"{source} is empty: no line '{layout}'.")
        data = np.frombuffer(raw, dtype=np.uint8)
        blank = _BLANK[data]
        follows_blank = np.concatenate([[True], blank[:-1]])
        starts = np.flatnonzero(~blank & follows_blank)
        newlines = np.flatnonzero(data == ord("\n"))
        field_lines = np.searchsorted(newlines, starts)
        fields_per_line = np.bincount(field_lines)
        wrong = np.flatnonzero((fields_per_line != 0) & (fields_per_line != 3))
        if wrong.size:
            line = int(wrong[0])
            text = raw.split(b"\n")[line].decode(errors="replace")
            raise ValueError(
                f"{source}, line {line + 1}: expected 3 fields '{layout}' but "
                f"found {fields_per_line[line]}: {text!r}"
            )
        return cls(fields, field_lines[0::3] + 1, source)

    def __len__(self):
        return len(self.line_numbers)

    def field(self, row, column):
        """The text of one field."""
        return self.fields[3 * row + column].decode(errors="replace")

    def column(self, column):
        """The fields of one column, as a list of bytes."""
        return self.fields[column::3]

    def utterance_index(self, whole=frozenset()):
        """Ids (paths without extension) of columns 1 and 2, indexed.

        Arguments
        ---------
        whole : set of str
            Paths that are ids as they are (a score file written by
            :func:`write_scores` holds ids, which may contain a dot).

        Returns
        -------
        utterances : list of str
            Distinct ids in order of first appearance (row by row).
        index : numpy.ndarray
            [rows, 2] index of each path into ``utterances``.
        """
        paths = [b""] * (2 * len(self))
        paths[0::2], paths[1::2] = self.column(1), self.column(2)
        number = dict.fromkeys(paths)  # distinct, in order of appearance
        for position, path in enumerate(number):
            number[path] = position
        index = np.fromiter(
            map(number.__getitem__, paths), dtype=np.int64, count=len(paths)
        )
        # Distinct paths are few: decode them (at once: no field holds a
        # newline) and strip their extensions, then merge the paths that
        # differ only by extension.
        try:
            decoded = b"\n".join(number).decode().split("\n")
        except UnicodeDecodeError:
            decoded = [self._decode(path, paths) for path in number]
        ids = [
            path if path in whole else utterance_id(path) for path in decoded
        ]
        distinct = dict.fromkeys(ids)
        if len(distinct) == len(ids):
            return ids, index.reshape(-1, 2)
        renumber = {utterance: i for i, utterance in enumerate(distinct)}
        id_of_path = np.array([renumber[utterance] for utterance in ids])
        return list(distinct), id_of_path[index].reshape(-1, 2)

    def _decode(self, path, paths):
        """One path as text, naming its first line if it is not UTF-8."""
        try:
            return path.decode()
        except UnicodeDecodeError:
            row = paths.index(path) // 2
            raise ValueError(
                f"{self.source}, line {self.line_numbers[row]}: {path!r} is "
                "not UTF-8 text: save the file as UTF-8."
            ) from None


def write_scores(path, trials, scores):
    """Writes a score file: one ``score enrol test`` line per trial.

    Arguments
    ---------
    path : str or pathlib.Path
        The file to write.
    trials : TrialList
        The trials, in the order of ``scores``.
    scores : array-like
        One score per trial.

    Example
    -------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "scores.txt"
    >>> write_scores(path, TrialList.from_lines(["1 a b"]), [0.25])
    >>> path.read_text()
    '0.25 a b\\n'
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(trials):
        raise ValueError(
            f"{len(scores)} scores for {len(trials)} trials: give one score "
            "per trial."
        )
    utterances = trials.utterances
    with open(path, "w") as file:
        file.writelines(
            f"{score:.9g} {utterances[enrol]} {utterances[test]}\n"
            for score, enrol, test in zip(
                scores.tolist(),
                trials.enrol_index.tolist(),
                trials.test_index.tolist(),
                strict=True,
            )
        )


def read_scores(path, trials):
    """Reads a score file and orders its scores like ``trials``.

    Arguments
    ---------
    path : str or pathlib.Path
        Score file, ``score enrol test`` per line (extensions are ignored,
        lines may be in any order). A path that is an utterance id of the
        trial list as it is (``spk/take.2``, as :func:`write_scores` writes
        it) is not stripped of its "extension".
    trials : TrialList
        The trials the scores must cover.

    Returns
    -------
    numpy.ndarray
        float64 score of each trial, in trial order.

    Raises
    ------
    ValueError
        Naming the line of a malformed or non-finite score, or a trial
        without a score.

    Example
    -------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "scores.txt"
    >>> _ = path.write_text("0.5 a c.wav\\n0.9 a b.wav\\n")
    >>> read_scores(path, TrialList.from_lines(["1 a b", "0 a c"])).tolist()
    [0.9, 0.5]
    """
    source = str(path)
    table = _Table.from_bytes(_read_bytes(path, "Score"), source, "score a b")
    values = _parse_floats(table, source)
    known = {utterance: i for i, utterance in enumerate(trials.utterances)}
    utterances, index = table.utterance_index(whole=known)
    # Translate the score file's utterance numbers into the trial list's.
    translate = np.array(
        [known.get(utterance, -1) for utterance in utterances], dtype=np.int64
    )
    n_utterances = len(trials.utterances) + 1
    scored = (translate[index[:, 0]] + 1) * n_utterances + (
        translate[index[:, 1]] + 1
    )
    _check_score_repeats(table, values, scored, known=translate[index] >= 0)
    wanted = (trials.enrol_index + 1) * n_utterances + (trials.test_index + 1)
    order = np.argsort(scored, kind="stable")
    position = np.searchsorted(scored[order], wanted).clip(0, len(order) - 1)
    found = scored[order][position] == wanted
    if not found.all():
        trial = int(np.flatnonzero(~found)[0])
        raise ValueError(
            f"{source} has no score for the trial "
            f"'{trials.utterances[trials.enrol_index[trial]]} "
            f"{trials.utterances[trials.test_index[trial]]}' "
            f"({trials.source}, line {trials.line_numbers[trial]}): score "
            "every trial of the list."
        )
    return values[order[position]]


def _check_score_repeats(table, values, codes, known):
    """Refuses two lines that score the same trial differently."""
    rows = np.flatnonzero(known.all(axis=1))
    earlier, later = _repeated_rows(codes[rows])
    earlier, later = rows[earlier], rows[later]
    conflicts = np.flatnonzero(values[earlier] != values[later])
    if conflicts.size:
        first, second = earlier[conflicts[0]], later[conflicts[0]]
        raise ValueError(
            f"{table.source}, line {table.line_numbers[second]}: the trial "
            f"'{table.field(second, 1)} {table.field(second, 2)}' has another "
            f"score on line {table.line_numbers[first]} "
            f"({table.field(first, 0)} and {table.field(second, 0)}): keep "
            "one score per trial."
        )


def _parse_floats(table, source):
    """Parses column 0 as finite floats, naming the line of a bad one."""
    values = np.fromiter(
        map(_float_or_nan, table.column(0)), dtype=np.float64, count=len(table)
    )
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"{source}, line {table.line_numbers[bad[0]]}: the score "
            f"{table.field(bad[0], 0)!r} is not a finite number."
        )
    return values


def _float_or_nan(text):
    """float(text) (text: str or bytes), or NaN if it is not a number."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _repeated_rows(codes):
    """Rows whose code is that of an earlier row.

    Arguments
    ---------
    codes : numpy.ndarray
        One integer per row (a trial's enrolment and test utterances).

    Returns
    -------
    earlier : numpy.ndarray
        For each repeating row, the closest earlier row with its code.
    later : numpy.ndarray
        The repeating rows, increasing.

    Example
    -------
    >>> earlier, later = _repeated_rows(np.array([5, 7, 5, 5, 7]))
    >>> earlier.tolist(), later.tolist()
    ([0, 2, 1], [2, 3, 4])
    """
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    repeats = np.flatnonzero(ordered[1:] == ordered[:-1])
    earlier, later = order[repeats], order[repeats + 1]
    by_row = np.argsort(later, kind="stable")
    return earlier[by_row], later[by_row]
