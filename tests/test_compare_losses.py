"""Tests of the loss comparison harness (``benchmarks/compare_losses.py``
and its package ``benchmarks/comparison``) and of the scripts sharing it,
on synthetic results folders: no training."""

import json
import os
import subprocess
import sys

import compare_losses
import learning_curves
import numpy as np
import pytest
import sinctdnn_ablation
from tiny import ROOT

from comparison import throughput
from comparison.corpus import VARIANTS, Layout
from comparison.report import write_report
from comparison.runs import single_thread_env
from comparison.systems import Budget
from speaker_metric_learning.scoring.compare import evaluate_scores
from speaker_metric_learning.scoring.trials import TrialList

SEPARATION = {"aam": 2.5, "softmax": 0.5}  # of target scores, per system


def results_folder(folder, separation, seed, trials):
    """A results folder of random scores of a given target separation."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=len(trials.labels)) + separation * trials.labels
    evaluate_scores(scores, trials, folder, "toy", n_replicates=20)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """An output folder with 2 seeds of AAM and softmax (every variant, and
    AS-norm for AAM) and the log-mel reference point, without audio."""
    base = tmp_path_factory.mktemp("comparison")
    layout = Layout(base / "output", base / "data", base / "shared")
    lines = [
        f"{int(i % 3 == 0)} s{i % 5}/a{i} s{i % 7}/b{i}" for i in range(240)
    ]
    trials = TrialList.from_lines(lines)
    for system, separation in SEPARATION.items():
        for seed in (1, 2):
            run = layout.run(system, seed)
            results_folder(run, separation, seed, trials)
            for number, variant in enumerate(VARIANTS):
                folder = run / "robustness" / variant.replace(" ", "_")
                results_folder(folder, separation / 2, 10 + number, trials)
            if system == "aam":
                results_folder(run / "asnorm_top43", separation, 20, trials)
            (run / "wall_time.json").write_text(
                json.dumps({"train_s": 120.0, "evaluation_s": 60.0})
            )
            (run / "train_log.txt").write_text(
                "epoch: 1 - train loss: 4.9\nepoch: 2 - train loss: 4.5\n"
            )
    reference = layout.reference("logmel")
    results_folder(reference, 1.0, 30, trials)
    for variant in VARIANTS:
        folder = reference / "robustness" / variant.replace(" ", "_")
        results_folder(folder, 0.5, 31, trials)
    throughput = {"s_per_step": 0.5, "embed_s_per_audio_s": 0.01}
    (layout.output / "throughput.json").write_text(
        json.dumps(
            {
                "load_average": 1.0,
                "systems": {
                    system: {**throughput, "parameters": 1000}
                    for system in SEPARATION
                },
            }
        )
    )
    return layout


def folder_options(output, data, shared):
    """``--output``, ``--data`` and ``--shared`` of a script."""
    folders = {"output": output, "data": data, "shared": shared}
    return [x for name, f in folders.items() for x in (f"--{name}", str(f))]


def report_of(layout, *options):
    """Writes the report of ``layout`` with ``compare_losses``'s options."""
    args = compare_losses.parse_arguments(
        [
            "report",
            *folder_options(layout.output, layout.data, layout.shared),
            "--systems",
            *SEPARATION,
            "--seeds",
            "1",
            "2",
            *options,
        ]
    )
    write_report(args, Budget(), layout)
    return (layout.output / "REPORT.md").read_text()


def test_report_renders_the_tables_and_sentences(comparison, capsys):
    text = report_of(comparison)
    assert text.startswith("## Loss comparison on speechocean762\n")
    assert "4 of 4 runs\nfinished" in text
    assert "| SincTDNN + AAM | 1 k | " in text
    assert "| *mean+std log-mel, training-free* | — |" in text
    # softmax's scores are much less separated: significantly worse
    assert "AAM is significantly better (paired bootstrap" in text
    assert "than softmax (+" in text
    assert "AAM ranks 1 of 2; the paper ranks it first." in text
    assert "| System | EER % raw | EER % AS-norm | difference, pts |" in text
    assert "training + evaluation, at the machine's" in text  # wall times
    summary = json.loads((comparison.output / "summary.json").read_text())
    assert list(summary["systems"]) == list(SEPARATION)
    assert set(summary["significance_vs_aam"]) == {"clean", *VARIANTS}
    assert summary["systems"]["aam"]["runs"]["1"]["as_norm"] is not None
    assert (comparison.output / "det.png").exists()
    assert capsys.readouterr().out.strip() == text.strip()


def test_report_replaces_its_benchmarks_section(comparison, tmp_path):
    page = tmp_path / "BENCHMARKS.md"
    page.write_text("# Benchmarks\n\n## Toy run\nold text\n\n## Other\nkept\n")
    text = report_of(
        comparison, "--title", "Toy run", "--benchmarks_file", str(page)
    )
    updated = page.read_text()
    assert "old text" not in updated
    assert updated.endswith("## Other\nkept\n")
    section = updated[updated.index("## Toy run") : updated.index("## Other")]
    relative = os.path.relpath(comparison.output / "det.png", tmp_path)
    assert (
        section.strip() == text.replace("](det.png)", f"]({relative})").strip()
    )


def test_report_names_systems_without_a_throughput(comparison):
    path = comparison.output / "throughput.json"
    complete = path.read_text()
    record = json.loads(complete)
    del record["systems"]["softmax"]
    path.write_text(json.dumps(record))
    try:
        text = report_of(comparison)
    finally:
        path.write_text(complete)
    assert "No throughput measured for softmax: they are left out" in text
    assert "| aam | 0.50 |" in text
    assert "| softmax | 0.50 |" not in text


def test_throughput_of_more_systems_keeps_the_earlier_ones(
    tmp_path, monkeypatch
):
    layout = Layout(tmp_path / "output", tmp_path / "data", tmp_path)

    def fake_measure(budget, systems, steps):
        return {s: {"s_per_step": float(len(s))} for s in systems}

    monkeypatch.setattr(throughput, "measure_throughput", fake_measure)
    throughput.write_throughput(layout, Budget(), ["aam"], 1)
    throughput.write_throughput(layout, Budget(), ["softmax"], 1)
    record = json.loads((layout.output / "throughput.json").read_text())
    assert record["systems"] == {
        "aam": {"s_per_step": 3.0},
        "softmax": {"s_per_step": 7.0},
    }
    throughput.write_throughput(layout, Budget(number_of_epochs=7), ["aam"], 1)
    record = json.loads((layout.output / "throughput.json").read_text())
    assert list(record["systems"]) == ["aam"]  # another budget: replaced


def test_report_into_a_missing_folder_is_a_clear_error(tmp_path):
    missing = tmp_path / "not_there"
    process = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "compare_losses.py"),
            "report",
            *folder_options(missing, tmp_path, tmp_path),
        ],
        capture_output=True,
        text=True,
        env=single_thread_env(),
        cwd=ROOT,
    )
    assert process.returncode == 1
    assert process.stderr.strip() == (
        f"error: no comparison in {missing}: the folder does not exist; "
        "give the --output of a comparison started with 'run'"
    )
    assert not missing.exists()


@pytest.mark.parametrize("script", [learning_curves, sinctdnn_ablation])
def test_run_report_scripts_report_an_empty_output(script, tmp_path):
    output = tmp_path / "output"
    script.main(
        [
            "report",
            *folder_options(output, tmp_path, tmp_path),
            "--jobs",
            "1",
        ]
    )
    assert (output / "REPORT.md").read_text().startswith("# ")
    assert "--jobs 1" in (output / "REPORT.md").read_text()
