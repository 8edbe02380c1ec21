"""Reading the finished results into the summary, and the tests on it.

Owns ``collect`` (the compact metrics, wall times and training losses of
every finished run and reference point: the ``summary.json`` the report
is written from) and ``significance``, the paired bootstrap of every
system against the reference system on the clean or a modified trial
list; and the readers of one results folder they use.
"""

import json
import pathlib

from comparison.corpus import VARIANTS, runs_robustness_folder
from comparison.evaluation import as_norm_folder
from comparison.references import REFERENCES
from comparison.systems import REFERENCE_SYSTEM
from speaker_metric_learning.layout import TRAIN_LOG_FILE
from speaker_metric_learning.scoring.compare import (
    RESULTS_FILE,
    load_results,
    load_scores,
)
from speaker_metric_learning.scoring.significance import paired_bootstrap


def min_dcf_entry(results, p_target=0.01):
    """The minDCF entry of ``results`` at ``p_target``."""
    return next(d for d in results["min_dcf"] if d["p_target"] == p_target)


def run_summary(folder):
    """Compact metrics of one results folder (or None if unfinished)."""
    folder = pathlib.Path(folder)
    if not (folder / RESULTS_FILE).exists():
        return None
    results = load_results(folder)
    dcf = min_dcf_entry(results)
    return {
        "eer": results["eer"]["value"],
        "eer_ci": results["eer"]["ci"],
        "min_dcf": dcf["value"],
        "min_dcf_ci": dcf["ci"],
    }


def train_losses(train_log):
    """Training loss of the first and of the last epoch in a
    ``train_log.txt`` (None when there is none).

    Example
    -------
    >>> import tempfile
    >>> log = pathlib.Path(tempfile.mkdtemp()) / "train_log.txt"
    >>> _ = log.write_text("epoch: 1 - train loss: 4.9\\nepoch: 2 - train "
    ...                    "loss: 4.5, train accuracy: 0.1\\n")
    >>> train_losses(log)
    (4.9, 4.5)
    """
    if not pathlib.Path(train_log).exists():
        return None
    values = [
        float(line.split("train loss: ")[1].split(",")[0])
        for line in pathlib.Path(train_log).read_text().splitlines()
        if "train loss: " in line
    ]
    return (values[0], values[-1]) if values else None


def collect(layout, systems, seeds):
    """Everything finished: per-run, per-system and reference summaries."""
    summary = {"systems": {}, "references": {}}
    for system in systems:
        runs = {}
        for seed in seeds:
            run = layout.run(system, seed)
            clean = run_summary(run)
            if clean is None:
                continue
            timing_file = run / "wall_time.json"
            runs[seed] = {
                "clean": clean,
                "as_norm": run_summary(as_norm_folder(run)),
                "robustness": {
                    v: run_summary(runs_robustness_folder(run, v))
                    for v in VARIANTS
                },
                "wall_time": json.loads(timing_file.read_text())
                if timing_file.exists()
                else {},
                "train_loss_first_last": train_losses(run / TRAIN_LOG_FILE),
            }
        if runs:
            summary["systems"][system] = {"runs": runs}
    for name in REFERENCES:
        folder = layout.reference(name)
        clean = run_summary(folder)
        if clean is not None:
            summary["references"][name] = {
                "label": REFERENCES[name][0],
                "clean": clean,
                "robustness": {
                    v: run_summary(runs_robustness_folder(folder, v))
                    for v in VARIANTS
                },
            }
    return summary


def significance(layout, summary, condition=None, n_replicates=1000):
    """Paired bootstrap of every system against AAM (seeds both have)."""
    tests = {}
    systems = summary["systems"]
    if REFERENCE_SYSTEM not in systems:
        return tests

    def folder(system, seed):
        run = layout.run(system, seed)
        return (
            run if condition is None else runs_robustness_folder(run, condition)
        )

    def available(system):
        return [
            seed
            for seed in systems[system]["runs"]
            if (folder(system, seed) / RESULTS_FILE).exists()
        ]

    reference_seeds = available(REFERENCE_SYSTEM)
    if not reference_seeds:
        return tests
    reference = [
        load_scores(folder(REFERENCE_SYSTEM, s))[0] for s in reference_seeds
    ]
    _, labels = load_scores(folder(REFERENCE_SYSTEM, reference_seeds[0]))
    for system in systems:
        seeds = available(system)
        if system == REFERENCE_SYSTEM or not seeds:
            continue
        other = [load_scores(folder(system, s))[0] for s in seeds]
        tests[system] = paired_bootstrap(
            reference, other, labels, n_replicates=n_replicates
        )
        tests[system]["seeds"] = {
            "reference": reference_seeds,
            "other": seeds,
        }
    return tests
