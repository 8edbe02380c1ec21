"""The trial and score file reader against a line-by-line reference.

``reference_trials`` and ``reference_scores`` read the formats of
``speaker_metric_learning.scoring.trials`` the plainest way: one line at a
time, fields split by a regular expression, a dictionary per file. The
reader must give the same trials and scores on every valid file, and on an
invalid one refuse it with a ValueError naming a line the reference finds
bad. The files are generated with paths of very different lengths (the
reader once read past its buffer when the last path was much shorter than
the longest), unicode, CRLF, tabs, blank lines, repeated and malformed
lines.
"""

import gzip
import random
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speaker_metric_learning.scoring import cli
from speaker_metric_learning.scoring.trials import (
    TrialList,
    read_scores,
    read_trials,
    write_scores,
)

FIELD_SEPARATOR = re.compile(rb"[ \t\r\x0b\x0c]+")


class Refused(Exception):
    """The reference refuses the file; ``lines`` are its bad lines."""

    def __init__(self, lines):
        super().__init__(lines)
        self.lines = set(lines)


def utterance_id(path):
    """The documented id: the path without the extension of its last
    component (a dot that starts the component starts no extension)."""
    folder, slash, name = path.rpartition("/")
    stem, dot, _ = name.rpartition(".")
    return folder + slash + (stem if dot and stem else name)


def reference_rows(raw, to_id=utterance_id):
    """``(line number, first field, id, id)`` of the non-blank lines, and
    the lines that are not three fields of UTF-8 paths."""
    rows, bad = [], []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        fields = [field for field in FIELD_SEPARATOR.split(line) if field]
        if not fields:
            continue
        if len(fields) != 3:
            bad.append(number)
            continue
        try:
            ids = [to_id(field.decode("utf-8")) for field in fields[1:]]
        except UnicodeDecodeError:
            bad.append(number)
            continue
        rows.append((number, fields[0], *ids))
    return rows, bad


def reference_trials(raw):
    """``(labels, enrol ids, test ids, line numbers)`` of a trial list."""
    rows, bad = reference_rows(raw)
    bad += [number for number, label, *_ in rows if label not in (b"0", b"1")]
    label_of = {}
    for number, label, enrol, test in rows:
        if label_of.setdefault((enrol, test), label) != label:
            bad.append(number)
    if bad or not rows:
        raise Refused(bad)
    return (
        [label == b"1" for _, label, _, _ in rows],
        [enrol for _, _, enrol, _ in rows],
        [test for _, _, _, test in rows],
        [number for number, *_ in rows],
    )


def reference_scores(raw, pairs):
    """The score of each ``(enrol, test)`` pair of ``pairs`` (lines of
    other pairs are ignored, but their scores must be numbers). A path that
    is an id of the pairs as it is keeps its dots."""
    ids = {utterance for pair in pairs for utterance in pair}
    rows, bad = reference_rows(
        raw, lambda path: path if path in ids else utterance_id(path)
    )
    score_of = {}
    for number, text, enrol, test in rows:
        try:
            score = float(text)
        except ValueError:
            score = float("nan")
        if not np.isfinite(score):
            bad.append(number)
        elif (enrol, test) not in pairs:
            continue
        elif score_of.setdefault((enrol, test), score) != score:
            bad.append(number)
    if bad or not rows or any(pair not in score_of for pair in pairs):
        raise Refused(bad)
    return [score_of[pair] for pair in pairs]


def named_line(error):
    """The line number a reader's error names (None: no line)."""
    found = re.search(r", line (\d+)", str(error))
    return int(found.group(1)) if found else None


def check_trials(raw):
    """The reader's result on ``raw`` is the reference's."""
    try:
        expected = reference_trials(raw)
    except Refused as refused:
        with pytest.raises(ValueError) as raised:
            TrialList.from_bytes(raw, "t.txt")
        assert str(raised.value).startswith("t.txt")
        line = named_line(raised.value)
        assert line in refused.lines if refused.lines else line is None
        return None
    trials = TrialList.from_bytes(raw, "t.txt")
    labels, enrol, test, numbers = expected
    assert trials.labels.tolist() == labels
    assert trials.enrol.tolist() == enrol
    assert trials.test.tolist() == test
    assert trials.line_numbers.tolist() == numbers
    assert trials.utterances == list(
        dict.fromkeys(
            utterance
            for pair in zip(enrol, test, strict=True)
            for utterance in pair
        )
    )
    return trials


# --- generated files ----------------------------------------------------------

CHARACTERS = "abcXYZ019_-.é中🙂"
EXTENSIONS = ["", ".wav", ".flac", ".opus", ".tar.gz"]


def random_path(rng):
    """A path of 1 to 3 components, 1 to 60 characters each."""
    components = [
        "".join(rng.choice(CHARACTERS) for _ in range(rng.choice([1, 2, 60])))
        for _ in range(rng.randint(1, 3))
    ]
    return "/".join(components) + rng.choice(EXTENSIONS)


def random_trial_file(rng, malformed=0.05, labels="01"):
    """Bytes of a random trial list: varied paths, blanks, line ends, and
    now and then a repeated or malformed line."""
    paths = [random_path(rng) for _ in range(rng.randint(1, 12))]
    lines = []
    for _ in range(rng.randint(0, 25)):
        kind = rng.random()
        if kind < 0.1:
            lines.append(rng.choice(["", " ", "\t", "\r"]))
        elif kind < 0.2 and lines:
            lines.append(rng.choice(lines))
        else:
            fields = [rng.choice(labels), rng.choice(paths), rng.choice(paths)]
            if rng.random() < malformed:
                fields = rng.choice(
                    [fields[:2], fields + ["x"], ["2", *fields[1:]]]
                )
            separators = [
                rng.choice([" ", "\t", "  ", " \t\x0b"]) for _ in "ab"
            ]
            lines.append(
                rng.choice(["", " ", "\t"])
                + fields[0]
                + separators[0]
                + separators[1].join(fields[1:])
                + rng.choice(["", " ", "\t", "\x0c"])
            )
    text = rng.choice(["\n", "\r\n"]).join(lines) + rng.choice(["", "\n"])
    return text.encode("utf-8")


def test_the_two_line_file_that_crashed_the_reader(tmp_path):
    path = tmp_path / "trials.txt"
    path.write_text(
        "1 spk0003/000030012.opus spk0003/000030024.opus\n0 s/a.opus s/b.opus\n"
    )
    trials = read_trials(path)
    assert trials.utterances == [
        "spk0003/000030012",
        "spk0003/000030024",
        "s/a",
        "s/b",
    ]
    assert trials.labels.tolist() == [True, False]
    assert check_trials(path.read_bytes()) is not None
    scores = tmp_path / "scores.txt"
    scores.write_text(
        "0.9 spk0003/000030012.opus spk0003/000030024.opus\n"
        "0.1 s/a.opus s/b.opus\n"
    )
    assert read_scores(scores, trials).tolist() == [0.9, 0.1]
    assert cli.main(["fingerprint", str(path)]) == 0


def test_thousands_of_random_trial_files_parse_like_the_reference():
    rng = random.Random(0)
    parsed = 0
    for _ in range(3000):
        parsed += check_trials(random_trial_file(rng)) is not None
    assert parsed > 1000  # most files are valid: the comparison is real


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32), malformed=st.sampled_from([0.0, 0.3]))
def test_fuzz_trial_files_parse_like_the_reference(seed, malformed):
    check_trials(random_trial_file(random.Random(seed), malformed))


@settings(max_examples=500, deadline=None)
@given(
    raw=st.lists(
        st.sampled_from(
            [
                b"0",
                b"1",
                b"2",
                b" ",
                b"\t",
                b"\r",
                b"\n",
                b"\x0b",
                b"\x0c",
                b"\x00",
                b"a",
                b"b.wav",
                b"/",
                b".",
                "é".encode(),
                b"\xff",
                b"\xa0",
                b"\x1c",
            ]
        ),
        max_size=40,
    ).map(b"".join)
)
def test_fuzz_bytes_parse_like_the_reference(raw):
    check_trials(raw)


def check_scores(trials, raw, path):
    """``read_scores`` gives the reference's scores or refuses the file."""
    pairs = list(zip(trials.enrol.tolist(), trials.test.tolist(), strict=True))
    try:
        expected = reference_scores(raw, pairs)
    except Refused:
        expected = None
    path.write_bytes(raw)
    try:
        values = read_scores(path, trials)
    except ValueError:
        assert expected is None
        return None
    assert values.tolist() == expected
    return values


def random_score_file(rng, trials):
    """Score lines of the trials (shuffled, sometimes repeated with the same
    or another score, sometimes missing or not a number)."""
    lines = []
    for enrol, test in zip(trials.enrol, trials.test, strict=True):
        score = rng.choice(["0.5", "-1e-3", "7", "1_0", "2.5E1"])
        if rng.random() < 0.01:
            score = rng.choice(["nan", "x", "inf"])
        enrol, test = (
            utterance + rng.choice(["", ".wav"]) for utterance in (enrol, test)
        )
        line = f"{score}\t{enrol} {test}"
        lines += [line] * rng.choice([0] + [1] * 90 + [2] * 9)
        if rng.random() < 0.01:
            lines.append(f"{rng.choice(['0.5', '0.25'])} {enrol} {test}")
    rng.shuffle(lines)
    return rng.choice(["\n", "\r\n"]).join(lines).encode("utf-8")


def test_random_score_files_read_like_the_reference(tmp_path):
    rng = random.Random(1)
    read = 0
    for _ in range(1000):
        try:
            raw = random_trial_file(rng, malformed=0.0, labels="1")
            trials = TrialList.from_bytes(raw, "t.txt")
        except ValueError:
            continue
        scores = random_score_file(rng, trials)
        read += check_scores(trials, scores, tmp_path / "s.txt") is not None
    assert read > 150  # many files are valid: the comparison is real


# --- repeated lines -----------------------------------------------------------


def test_repeated_trials_are_counted_with_a_warning(caplog):
    trials = TrialList.from_lines(["1 a b", "0 a c", "1 a.wav b.wav"], "t.txt")
    assert len(trials) == 3 and trials.labels.sum() == 2
    assert "t.txt: 1 trial lines repeat an earlier line" in caplog.text
    assert "line 3 repeats line 1, 'a b'" in caplog.text


def test_a_trial_with_both_labels_is_refused():
    with pytest.raises(
        ValueError,
        match=r"t.txt, line 3: the trial 'a b' is "
        "also on line 1 with the other label",
    ):
        TrialList.from_lines(["1 a b", "0 a c", "0 a b"], "t.txt")


def test_a_trial_scored_twice_differently_is_refused(tmp_path):
    trials = TrialList.from_lines(["1 a b", "0 a c"])
    path = tmp_path / "scores.txt"
    path.write_text("0.5 a b\n0.25 a c\n0.5 a b.wav\n")
    assert read_scores(path, trials).tolist() == [0.5, 0.25]
    path.write_text("0.5 a b\n0.25 a c\n0.75 a b.wav\n")
    with pytest.raises(
        ValueError,
        match="line 3: the trial 'a b.wav' has "
        r"another score on line 1 \(0.5 and 0.75\)",
    ):
        read_scores(path, trials)


def test_scores_written_for_ids_with_dots_read_back(tmp_path):
    trials = TrialList.from_lines(["1 s/take.2.wav s/take.3.flac", "0 s/a s/b"])
    assert trials.utterances == ["s/take.2", "s/take.3", "s/a", "s/b"]
    path = tmp_path / "scores.txt"
    write_scores(path, trials, [0.75, 0.25])
    assert path.read_text().splitlines()[0] == "0.75 s/take.2 s/take.3"
    assert read_scores(path, trials).tolist() == [0.75, 0.25]


def test_gzip_crlf_and_unicode(tmp_path):
    path = tmp_path / "trials.txt.gz"
    with gzip.open(path, "wb") as file:
        file.write("1\té/中.wav  é/🙂.wav\r\n\r\n0 é/中 x\r\n".encode())
    trials = read_trials(path)
    assert trials.utterances == ["é/中", "é/🙂", "x"]
    assert trials.line_numbers.tolist() == [1, 3]
