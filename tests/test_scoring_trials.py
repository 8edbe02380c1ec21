"""Tests of speaker_metric_learning.scoring.trials."""

import gzip
import hashlib

import numpy as np
import pytest
import torch

from speaker_metric_learning.scoring.trials import (
    TrialList,
    cosine_scores,
    read_scores,
    read_trials,
    write_scores,
)

LINES = [
    "1 id1/a/00001.wav id1/b/00002.wav",
    "0 id1/a/00001.wav id2/c/00001.wav",
    "1 id2/c/00001.wav id2/d/00003.wav",
]


def test_parses_labels_ids_and_indices(tmp_path):
    path = tmp_path / "trials.txt"
    path.write_text("\n".join(LINES) + "\n")
    trials = read_trials(path)
    assert trials.labels.tolist() == [True, False, True]
    assert trials.utterances == [
        "id1/a/00001",
        "id1/b/00002",
        "id2/c/00001",
        "id2/d/00003",
    ]
    assert trials.enrol.tolist() == [
        "id1/a/00001",
        "id1/a/00001",
        "id2/c/00001",
    ]
    assert trials.test.tolist() == ["id1/b/00002", "id2/c/00001", "id2/d/00003"]
    assert trials.line_numbers.tolist() == [1, 2, 3]


def test_blanks_and_gzip_are_accepted_and_line_numbers_kept(tmp_path):
    path = tmp_path / "trials.txt.gz"
    text = (
        "\n"
        + LINES[0]
        + "\n\n\t"
        + LINES[1].replace(" ", " \t ")
        + "\r\n"
        + LINES[2]
    )
    with gzip.open(path, "wt") as file:
        file.write(text)
    trials = read_trials(path)
    assert trials.line_numbers.tolist() == [2, 4, 5]
    assert trials.fingerprint == TrialList.from_lines(LINES).fingerprint


def test_fingerprint_ignores_format_but_not_content():
    reference = TrialList.from_lines(LINES).fingerprint
    assert reference.n_trials == 3 and reference.n_targets == 2
    assert reference.n_nontargets == 1 and reference.n_utterances == 4
    flac = [line.replace(".wav", ".flac") for line in LINES]
    assert TrialList.from_lines(flac).fingerprint == reference
    flipped = ["0" + LINES[0][1:], *LINES[1:]]
    assert TrialList.from_lines(flipped).fingerprint.sha256 != reference.sha256
    swapped = [LINES[1], LINES[0], LINES[2]]
    assert TrialList.from_lines(swapped).fingerprint.sha256 != reference.sha256
    assert str(reference).startswith(f"trials {reference.sha256}: 3 trials")


def test_paths_differing_only_by_extension_are_one_utterance():
    trials = TrialList.from_lines(["1 s/a.wav s/b.wav", "0 s/a.flac .hidden/c"])
    assert trials.utterances == ["s/a", "s/b", ".hidden/c"]
    assert trials.enrol_index.tolist() == [0, 0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("1 a b\n1 a\n", "line 2: expected 3 fields .* found 2: '1 a'"),
        ("1 a b\n\n0 a b c\n", "line 3: expected 3 fields .* found 4"),
        ("1 a b\nyes a c\n", "line 2: the label is 'yes' but must be 1"),
        ("\n \n", "is empty"),
    ],
)
def test_malformed_trial_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"bad.txt.*{message}"):
        read_trials(path)


def test_missing_trial_file():
    with pytest.raises(FileNotFoundError, match="Trial file not found: nope"):
        read_trials("nope.txt")


def test_cosine_scores_equal_per_trial_cosine_similarity():
    generator = torch.Generator().manual_seed(0)
    trials = TrialList.from_lines(LINES)
    vectors = {
        utterance: torch.randn(1, 8, generator=generator)
        for utterance in reversed(trials.utterances)
    }
    expected = [
        torch.nn.functional.cosine_similarity(
            vectors[enrol], vectors[test]
        ).item()
        for enrol, test in zip(trials.enrol, trials.test, strict=True)
    ]
    from_dict = cosine_scores(trials, vectors, chunk_size=2)
    ids = list(vectors)
    matrix = torch.cat([vectors[i] for i in ids]).numpy()
    from_matrix = cosine_scores(trials, (ids, matrix))
    in_order = torch.cat([vectors[u] for u in trials.utterances])
    in_order.requires_grad_(True)
    from_tensor = cosine_scores(trials, (trials.utterances, in_order))
    assert from_dict == pytest.approx(expected, abs=1e-6)
    assert from_matrix == pytest.approx(expected, abs=1e-6)
    assert from_tensor == pytest.approx(expected, abs=1e-6)


def test_missing_embedding_names_utterance_and_line():
    trials = TrialList.from_lines(LINES, source="list.txt")
    vectors = {u: [1.0, 0.0] for u in trials.utterances if u != "id2/c/00001"}
    with pytest.raises(
        ValueError, match="'id2/c/00001' \\(list.txt, line 2\\)"
    ):
        cosine_scores(trials, vectors)


def test_score_files_round_trip_in_any_line_order(tmp_path):
    trials = TrialList.from_lines(LINES)
    scores = np.array([0.1234567, -0.5, 0.75], dtype=np.float32)
    path = tmp_path / "scores.txt"
    write_scores(path, trials, scores)
    lines = path.read_text().splitlines()
    assert lines[1] == "-0.5 id1/a/00001 id2/c/00001"
    path.write_text("\n".join(reversed(lines)))
    assert np.array_equal(read_scores(path, trials).astype(np.float32), scores)


@pytest.mark.parametrize(
    "text, message",
    [
        ("0.5 a b\nnan a c\n", "line 2: the score 'nan' is not a finite"),
        ("0.5 a b\n\nhigh a c\n", "line 3: the score 'high' is not a finite"),
        ("0.5 a b\n", "no score for the trial 'a c' \\(<lines>, line 2\\)"),
        ("0.5 a b\n0.1 a\n", "line 2: expected 3 fields"),
    ],
)
def test_bad_score_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "scores.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_scores(path, TrialList.from_lines(["1 a b", "0 a c"]))


def test_fingerprint_is_the_documented_sha256():
    trials = TrialList.from_lines(["1 a/1.wav a/2.wav", "0 a/1 b/1"])
    content = b"a/1\na/2\nb/1" + b"\0" + bytes([1, 0])
    content += np.array([0, 0], dtype="<i8").tobytes()
    content += np.array([1, 2], dtype="<i8").tobytes()
    expected = hashlib.sha256(content).hexdigest()[:12]
    assert trials.fingerprint.sha256 == expected
