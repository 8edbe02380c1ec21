"""Tests of speaker_metric_learning.scoring.compare and the command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from speechbrain.utils.metric_stats import minDCF

from speaker_metric_learning.command_line import EXIT_ERROR
from speaker_metric_learning.scoring.cli import main
from speaker_metric_learning.scoring.compare import (
    compare_results,
    evaluate_scores,
    load_results,
)
from speaker_metric_learning.scoring.metrics import (
    cllr,
    equal_error_rate,
    min_cllr,
)
from speaker_metric_learning.scoring.trials import (
    TrialList,
    read_scores,
    write_scores,
)


def _trials_and_scores(n_trials=300, seed=0, shift=2.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n_trials)
    lines = [
        f"{label} s{i % 7}/e{i}.wav s{(i * 3) % 11}/t{i}.wav"
        for i, label in enumerate(labels)
    ]
    scores = rng.normal(size=n_trials) + shift * labels
    return TrialList.from_lines(lines), scores.astype(np.float32)


def test_results_folder_holds_metrics_scores_and_plots(tmp_path):
    trials, scores = _trials_and_scores()
    results = evaluate_scores(
        scores, trials, tmp_path, "sys", n_replicates=100, extra={"loss": "x"}
    )
    assert results == load_results(tmp_path)
    assert json.loads((tmp_path / "results.json").read_text()) == results
    positive, negative = scores[trials.labels], scores[~trials.labels]
    assert results["eer"]["value"] == equal_error_rate(positive, negative)[0]
    low, high = results["eer"]["ci"]
    assert low <= results["eer"]["value"] <= high
    for entry in results["min_dcf"]:
        expected = minDCF(
            torch.from_numpy(positive),
            torch.from_numpy(negative),
            p_target=entry["p_target"],
        )[0]
        assert entry["value_speechbrain"] == pytest.approx(expected)
        assert entry["value"] == pytest.approx(expected / entry["p_target"])
    assert results["cllr"] == pytest.approx(cllr(positive, negative))
    assert results["min_cllr"] == pytest.approx(min_cllr(positive, negative))
    assert results["trials"]["sha256"] == trials.fingerprint.sha256
    assert results["extra"] == {"loss": "x"}
    saved = read_scores(tmp_path / results["files"]["scores"], trials)
    assert np.array_equal(saved.astype(np.float32), scores)
    for name in ("det", "histogram"):
        assert (tmp_path / results["files"][name]).stat().st_size > 0


def test_compare_writes_table_and_refuses_different_trials(tmp_path):
    trials, scores = _trials_and_scores()
    evaluate_scores(scores, trials, tmp_path / "a", "A", n_replicates=0)
    evaluate_scores(-scores, trials, tmp_path / "b", "B", n_replicates=0)
    table = compare_results([tmp_path / "a", tmp_path / "b"], tmp_path / "c")
    rows = table.splitlines()[-2:]
    assert rows[0].startswith("| A |") and rows[1].startswith("| B |")
    assert trials.fingerprint.sha256 in table
    assert (tmp_path / "c" / "comparison.md").read_text() == table + "\n"
    assert (tmp_path / "c" / "det.png").stat().st_size > 0
    other, other_scores = _trials_and_scores(n_trials=200)
    evaluate_scores(other_scores, other, tmp_path / "d", "D", n_replicates=0)
    with pytest.raises(ValueError, match="(?s)different trial lists.*a:.*d:"):
        compare_results([tmp_path / "a", tmp_path / "d"])


def test_load_results_explains_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.json not found"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text('{"schema": "other"}')
    with pytest.raises(ValueError, match="schema 'other'"):
        load_results(tmp_path)


def _write_inputs(folder, trials, scores):
    trial_file = folder / "trials.txt"
    trial_file.write_text(
        "".join(
            f"{int(label)} {enrol}.wav {test}.wav\n"
            for label, enrol, test in zip(
                trials.labels, trials.enrol, trials.test, strict=True
            )
        )
    )
    score_file = folder / "scores.txt"
    write_scores(score_file, trials, scores)
    return trial_file, score_file


def test_command_line_scores_and_compares(tmp_path, capsys):
    trials, scores = _trials_and_scores()
    trial_file, score_file = _write_inputs(tmp_path, trials, scores)
    for name in ("a", "b"):
        status = main(
            [
                "score-file",
                str(score_file),
                "--trials",
                str(trial_file),
                "-o",
                str(tmp_path / name),
                "--name",
                name,
                "--bootstrap",
                "50",
                "--resample_speakers",
            ]
        )
        assert status == 0
    printed = capsys.readouterr().out
    assert str(trials.fingerprint) in printed
    assert load_results(tmp_path / "a")["bootstrap"]["resampling"] == (
        "speakers"
    )
    assert (
        main(
            [
                "compare",
                str(tmp_path / "a"),
                str(tmp_path / "b"),
                "-o",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    assert "| a |" in capsys.readouterr().out


def test_command_line_reports_bad_input_in_one_line(tmp_path, capsys):
    trials, scores = _trials_and_scores(n_trials=5)
    trial_file, score_file = _write_inputs(tmp_path, trials, scores)
    lines = score_file.read_text().splitlines()
    lines[3] = "nan " + lines[3].split(" ", 1)[1]
    score_file.write_text("\n".join(lines))
    with pytest.raises(SystemExit) as exited:
        main(["score-file", str(score_file), "--trials", str(trial_file)])
    assert exited.value.code == EXIT_ERROR
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "line 4: the score 'nan'" in error


def test_python_dash_m_entry_point(tmp_path):
    trials, scores = _trials_and_scores(n_trials=20)
    trial_file, score_file = _write_inputs(tmp_path, trials, scores)
    environment = {**os.environ, "PYTHONPATH": "plugin"}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "speaker_metric_learning.scoring",
            "score-file",
            str(score_file),
            "--trials",
            str(trial_file),
            "--bootstrap",
            "0",
        ],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith(f"trials {trials.fingerprint.sha256}")
