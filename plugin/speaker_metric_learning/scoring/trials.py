"""Trial lists, their fingerprints, score files and cosine scoring.

A trial list has one trial per line, ``label enrol test`` (VoxCeleb format):
``label`` is 1 for a target (same speaker) trial and 0 for a non-target one,
``enrol`` and ``test`` are audio paths. An utterance is identified by its path
without extension, e.g. ``id10270/x6uYqmx31kE/00001``. Fields are separated
by any blanks, blank lines are ignored, files ending in ``.gz`` are
decompressed.

A score file holds one trial per line, ``score enrol test`` (the trial list
with the label replaced by the score), written with enough digits to read
back float32 scores exactly; its lines may come in any order.

Parsing works on the bytes of the file with numpy (token boundaries, line
numbers, a 64-bit hash of every path, one sort of the hashes, exact
verification) instead of a Python loop over lines, so the 581,480 trials of
VoxCeleb1-E are read in a fraction of a second. The fingerprint identifies a
trial list in every result, so that results on different lists are never
compared.
"""

import functools
import gzip
import hashlib
from dataclasses import dataclass

import numpy as np
import torch

_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
#: _WORD_MASKS[n] keeps the first n bytes of a little-endian 8-byte word.
_WORD_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)


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
        labels = table.column_bytes(0)
        is_target = labels == b"1"
        wrong = np.flatnonzero(~is_target & (labels != b"0"))
        if wrong.size:
            raise ValueError(
                f"{source}, line {table.line_numbers[wrong[0]]}: the label is "
                f"{table.field(wrong[0], 0)!r} but must be 1 (target) or 0 "
                "(non-target)."
            )
        utterances, index = table.utterance_index()
        return cls(
            labels=is_target,
            utterances=utterances,
            enrol_index=index[:, 0],
            test_index=index[:, 1],
            line_numbers=table.line_numbers,
            source=source,
        )

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
    """Whitespace-separated fields of a text file, located in its bytes.

    Arguments
    ---------
    data : numpy.ndarray
        The bytes of the file, as uint8.
    starts : numpy.ndarray
        [rows, 3] offset of the first byte of each field.
    ends : numpy.ndarray
        [rows, 3] offset just after the last byte of each field.
    line_numbers : numpy.ndarray
        1-based line number of each row.
    """

    def __init__(self, data, starts, ends, line_numbers, source="<bytes>"):
        self.data = data
        self.starts = starts
        self.ends = ends
        self.line_numbers = line_numbers
        self.source = source

    @classmethod
    def from_bytes(cls, raw, source, layout):
        """Splits bytes into rows of 3 fields; blank lines are skipped."""
        data = np.frombuffer(raw, dtype=np.uint8)
        in_field = data > ord(" ")
        edges = np.flatnonzero(in_field[1:] != in_field[:-1]) + 1
        if data.size and in_field[0]:
            edges = np.concatenate([[0], edges])
        if data.size and in_field[-1]:
            edges = np.concatenate([edges, [data.size]])
        starts, ends = edges[0::2], edges[1::2]
        if starts.size == 0:
            raise ValueError(f"{source} is empty: no line '{layout}'.")
        newlines = np.flatnonzero(data == ord("\n"))
        field_lines = np.searchsorted(newlines, starts)
        fields_per_line = np.bincount(field_lines)
        wrong = np.flatnonzero((fields_per_line != 0) & (fields_per_line != 3))
        if wrong.size:
            line = int(wrong[0])
            first = newlines[line - 1] + 1 if line else 0
            last = newlines[line] if line < newlines.size else data.size
            raise ValueError(
                f"{source}, line {line + 1}: expected 3 fields '{layout}' but "
                f"found {fields_per_line[line]}: "
                f"{bytes(data[first:last]).decode(errors='replace')!r}"
            )
        return cls(
            data,
            starts.reshape(-1, 3),
            ends.reshape(-1, 3),
            field_lines[0::3] + 1,
            source,
        )

    def __len__(self):
        return len(self.line_numbers)

    def field(self, row, column):
        """The text of one field."""
        start, end = self.starts[row, column], self.ends[row, column]
        return bytes(self.data[start:end]).decode(errors="replace")

    def column_bytes(self, column):
        """A column as a fixed-width bytes array (``numpy.bytes_``)."""
        starts, ends = self.starts[:, column], self.ends[:, column]
        lengths = ends - starts
        width = int(lengths.max())
        matrix = np.zeros((len(self), width), dtype=np.uint8)
        for offset in range(width):
            present = lengths > offset
            matrix[present, offset] = self.data[starts[present] + offset]
        return matrix.view(f"S{width}").reshape(-1)

    def _path_id(self, raw, field, start, end):
        """The id of one path field (``field``: its index among the path
        fields, two per row), naming its line if it is not UTF-8."""
        try:
            return _without_extension(raw[start:end].decode())
        except UnicodeDecodeError:
            raise ValueError(
                f"{self.source}, line {self.line_numbers[field // 2]}: "
                f"{raw[start:end]!r} is not UTF-8 text: save the file as "
                "UTF-8."
            ) from None

    def utterance_index(self):
        """Ids (paths without extension) of columns 1 and 2, indexed.

        Returns
        -------
        utterances : list of str
            Distinct ids in order of first appearance (row by row).
        index : numpy.ndarray
            [rows, 2] index of each path into ``utterances``.
        """
        starts = self.starts[:, 1:].reshape(-1)
        ends = self.ends[:, 1:].reshape(-1)
        first, path_index = _factorize_fields(self.data, starts, ends)
        # Distinct paths are few: decode them and strip their extensions,
        # then merge the paths that differ only by extension.
        raw = self.data.tobytes()
        spans = zip(
            first.tolist(),
            starts[first].tolist(),
            ends[first].tolist(),
            strict=True,
        )
        ids = [self._path_id(raw, *span) for span in spans]
        distinct = dict.fromkeys(ids)
        if len(distinct) == len(ids):
            return ids, path_index.reshape(-1, 2)
        number = {utterance: i for i, utterance in enumerate(distinct)}
        id_of_path = np.array([number[utterance] for utterance in ids])
        return list(distinct), id_of_path[path_index].reshape(-1, 2)


def _without_extension(path):
    """The path without the extension of its last component.

    The extension starts at the last dot of the last component, unless that
    dot is the component's first character (``.profile`` has none).
    """
    dot = path.rfind(".")
    return path[:dot] if dot > path.rfind("/") + 1 else path


def _factorize_fields(data, starts, ends):
    """First occurrence of each distinct field, and the index of each field.

    Fields are hashed 8 bytes at a time (64-bit multiplicative hash), the
    hashes sorted once, and every field compared byte for byte with the
    first field of its hash, so the result is exact; should two different
    fields ever share a hash, a dictionary of the fields is used instead.

    Returns
    -------
    first : numpy.ndarray
        Index of the first occurrence of each distinct field, increasing.
    index : numpy.ndarray
        Index of each field into ``first``.
    """
    padded = np.concatenate([data, np.zeros(8, dtype=np.uint8)])
    words = np.ndarray(
        (data.size + 1,), dtype="<u8", buffer=padded, strides=(1,)
    )
    lengths = ends - starts
    columns = [
        words[starts + offset] & _WORD_MASKS[np.clip(lengths - offset, 0, 8)]
        for offset in range(0, int(lengths.max()), 8)
    ]
    hashes = lengths.astype(np.uint64)
    for column in columns:
        hashes ^= column
        hashes *= _HASH_MULTIPLIER
        hashes ^= hashes >> np.uint64(29)
    first, inverse = _first_and_inverse(hashes)
    representative = first[inverse]
    exact = all(
        np.array_equal(values, values[representative])
        for values in [lengths, *columns]
    )
    if not exact:
        return _factorize_with_dict(data, starts, ends)
    # Renumber the distinct fields by first appearance.
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return first[order], rank[inverse]


def _first_and_inverse(values):
    """First index of each distinct value, and the group of every value.

    Same as ``numpy.unique(values, return_index=True, return_inverse=True)``
    without its values, but with an unstable sort (faster): the first index
    of a group is the minimum of the group's indices.
    """
    order = np.argsort(values)
    ordered = values[order]
    starts_group = np.empty(len(values), dtype=bool)
    starts_group[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts_group[1:])
    first = np.minimum.reduceat(order, np.flatnonzero(starts_group))
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(starts_group) - 1
    return first, inverse


def _factorize_with_dict(data, starts, ends):
    """Exact but slower version of ``_factorize_fields``."""
    raw = data.tobytes()
    number = {}
    index = np.array(
        [
            number.setdefault(raw[start:end], len(number))
            for start, end in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
    )
    first = np.zeros(len(number), dtype=np.int64)
    first[index[::-1]] = np.arange(len(index))[::-1]
    return first, index


def embedding_rows(embeddings, utterances, trials=None):
    """Finds the embedding of each utterance without copying the matrix.

    Arguments
    ---------
    embeddings : dict or tuple
        ``{utterance_id: vector}``, or ``(ids, matrix)`` with one row per id
        (tensor or array).
    utterances : list of str
        The utterance ids wanted, in order.
    trials : TrialList, optional
        When given, a missing utterance is reported with the trial-file line
        where it first appears.

    Returns
    -------
    matrix : numpy.ndarray
        float32 [rows, dim] embeddings (the given matrix when it is already a
        float32 array or CPU tensor).
    rows : numpy.ndarray
        Row of ``matrix`` holding each utterance.

    Raises
    ------
    ValueError
        If an utterance has no embedding.

    Example
    -------
    >>> matrix, rows = embedding_rows((["a", "b"], [[1, 2], [3, 4]]), ["b"])
    >>> rows.tolist(), matrix[rows].tolist()
    ([1], [[3.0, 4.0]])
    """
    if isinstance(embeddings, dict):
        ids = list(embeddings)
        matrix = np.stack(
            [_as_array(vector).reshape(-1) for vector in embeddings.values()]
        )
    else:
        ids, matrix = embeddings
        matrix = _as_array(matrix).reshape(len(ids), -1)
    if list(ids) == list(utterances):
        return matrix, np.arange(len(ids))
    row_of = {utterance: row for row, utterance in enumerate(ids)}
    rows = np.fromiter(
        (row_of.get(utterance, -1) for utterance in utterances),
        dtype=np.int64,
        count=len(utterances),
    )
    if (rows < 0).any():
        missing = utterances[int(np.flatnonzero(rows < 0)[0])]
        where = ""
        if trials is not None:
            where = f" ({trials.source}, line {_first_line(trials, missing)})"
        raise ValueError(
            f"No embedding for utterance '{missing}'{where}: extract "
            "embeddings for every utterance of the trial list."
        )
    return matrix, rows


def _as_array(values):
    """float32 numpy view (or copy) of a tensor, array or nested list."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def embedding_matrix(embeddings, utterances, trials=None):
    """Returns the L2-normalised embeddings of ``utterances`` as a matrix.

    Arguments
    ---------
    embeddings : dict or tuple
        ``{utterance_id: vector}``, or ``(ids, matrix)`` with one row per id.
    utterances : list of str
        The utterance ids wanted, in order.
    trials : TrialList, optional
        Used to name the trial-file line of a missing utterance.

    Returns
    -------
    torch.Tensor
        float32 matrix [len(utterances), dim] with unit rows.

    Example
    -------
    >>> embedding_matrix({"a": [3.0, 4.0], "b": [1.0, 0.0]}, ["b", "a"])
    tensor([[1.0000, 0.0000],
            [0.6000, 0.8000]])
    """
    matrix, rows = embedding_rows(embeddings, utterances, trials)
    return torch.nn.functional.normalize(torch.from_numpy(matrix[rows]), dim=1)


def _first_line(trials, utterance):
    """Line number of the first trial that uses ``utterance``."""
    index = trials.utterances.index(utterance)
    uses = (trials.enrol_index == index) | (trials.test_index == index)
    return int(trials.line_numbers[np.flatnonzero(uses)[0]])


def cosine_scores(trials, embeddings, chunk_size=1024):
    """Scores every trial by the cosine similarity of its two embeddings.

    The norm of each embedding is computed once; trials are scored by
    row-wise dot products of index-gathered rows (see ``pair_scores``),
    divided by the two norms. The embedding matrix is never copied.

    Arguments
    ---------
    trials : TrialList
        The trials.
    embeddings : dict or tuple
        ``{utterance_id: vector}`` or ``(ids, matrix)``.
    chunk_size : int
        Trials scored at once (see ``pair_scores``).

    Returns
    -------
    numpy.ndarray
        float32 score of each trial, in [-1, 1].

    Example
    -------
    >>> trials = TrialList.from_lines(["1 a b", "0 a c"])
    >>> vectors = {"a": [1.0, 0.0], "b": [1.0, 1.0], "c": [0.0, 2.0]}
    >>> [round(score, 4) for score in cosine_scores(trials, vectors).tolist()]
    [0.7071, 0.0]
    """
    matrix, rows = embedding_rows(embeddings, trials.utterances, trials)
    enrol, test = rows[trials.enrol_index], rows[trials.test_index]
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    norms = np.maximum(norms, np.float32(1e-12))
    scores = pair_scores(matrix, enrol, test, chunk_size)
    scores /= norms[enrol]
    scores /= norms[test]
    return scores


def pair_scores(matrix, first, second, chunk_size=1024):
    """Row-wise dot products ``matrix[first[i]] . matrix[second[i]]``.

    Arguments
    ---------
    matrix : torch.Tensor or numpy.ndarray
        [rows, dim] matrix.
    first : array-like
        Row index of the first vector of each pair.
    second : array-like
        Row index of the second vector of each pair.
    chunk_size : int
        Pairs computed at once (small blocks of gathered rows stay in cache).

    Returns
    -------
    numpy.ndarray
        Dot product of each pair (dtype of ``matrix``).

    Example
    -------
    >>> pair_scores(torch.eye(2), [0, 0], [0, 1]).tolist()
    [1.0, 0.0]
    """
    matrix = np.asarray(matrix)
    first, second = np.asarray(first), np.asarray(second)
    scores = np.empty(len(first), dtype=matrix.dtype)
    for start in range(0, len(first), chunk_size):
        stop = start + chunk_size
        np.einsum(
            "ij,ij->i",
            matrix.take(first[start:stop], axis=0),
            matrix.take(second[start:stop], axis=0),
            out=scores[start:stop],
        )
    return scores


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
        lines may be in any order).
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
    utterances, index = table.utterance_index()
    # Translate the score file's utterance numbers into the trial list's.
    known = {utterance: i for i, utterance in enumerate(trials.utterances)}
    translate = np.array(
        [known.get(utterance, -1) for utterance in utterances], dtype=np.int64
    )
    n_utterances = len(trials.utterances) + 1
    scored = (translate[index[:, 0]] + 1) * n_utterances + (
        translate[index[:, 1]] + 1
    )
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


def _parse_floats(table, source):
    """Parses column 0 as finite floats, naming the line of a bad one."""
    column = table.column_bytes(0)
    try:
        values = column.astype(np.float64)
    except ValueError:
        values = np.array([_float_or_nan(value) for value in column])
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"{source}, line {table.line_numbers[bad[0]]}: the score "
            f"{table.field(bad[0], 0)!r} is not a finite number."
        )
    return values


def _float_or_nan(text):
    """float(text), or NaN if it is not a number."""
    try:
        return float(text)
    except ValueError:
        return float("nan")
