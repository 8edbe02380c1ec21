"""Learning speed of SincTDNN variants on real speech: the ablation table.

Every variant is trained by ``train.py`` at one budget (the compare budget
of BENCHMARKS.md: model_scale 0.125, 2 s chunks, 32 chunks per batch, 200
Adam steps at lr 0.001) on the speechocean762 training speakers and scored
by ``train.py`` itself on the dev trials (whole utterances, cosine). The
variants walk from the network of Coria et al. (2020) to the package's
default SincTDNN one change at a time, each row adding one option to the
row above; SpeechBrain's Fbank x-vector with the same AAM loss runs beside
them as the bar to reach, and the default SincTDNN with softmax as the
second loss. Every variant gives every option explicitly, so a row means
the same network whatever the package's defaults become.

Below them, the 80-filter network of the ``khz`` row (the default before
24 filters replaced it) with one option at a time set back to the paper's
value (leave-one-out rows), with 40 filters, stride 20 and softmax.

Per row: EER mean ± sd over seeds and the 95 % t-interval of that mean,
each seed's EER with its bootstrap CI over trials, the paired bootstrap
differences to the paper's network and to the Fbank x-vector (same
resampled trials for every run of both), minDCF, the last epoch's mean
pairwise cosine of the training embeddings (1 = every chunk embedded in
one direction), how far the SincNet cut-offs moved (mean absolute change
of the centre frequencies, Hz) and the wall time per run (it depends on
the machine's load at the time).

Usage (from the repository root; resumable: a run with a ``results.json``
is skipped, an interrupted one resumes from its last checkpoint)::

    PYTHONPATH=plugin:. python benchmarks/sinctdnn_ablation.py run --jobs 2
    PYTHONPATH=plugin:. python benchmarks/sinctdnn_ablation.py report

``report`` writes ``REPORT.md`` and ``summary.json`` into ``--output`` and
the filter plot of the default variant's first seed into
``benchmarks/figures``.
"""

import concurrent.futures
import json
import os
import pathlib
import re
import time

import numpy as np
import torch

from comparison.cli import (
    exit_on_error,
    jobs_argument,
    run_report_parser,
    run_then_report,
)
from comparison.corpus import decode_corpus
from comparison.results import min_dcf_entry
from comparison.runs import run_logged, train_py_command
from speaker_metric_learning.layout import TRAIN_LOG_FILE
from speaker_metric_learning.scoring.compare import (
    RESULTS_FILE,
    load_results,
    load_scores,
)
from speaker_metric_learning.scoring.significance import paired_bootstrap
from speaker_metric_learning.scoring.summaries import (
    format_interval,
    mean_interval,
    mean_sd,
)
from speaker_metric_learning.sincnet import SincNet, load_sincnet, plot_filters

ROOT = pathlib.Path(__file__).resolve().parents[1]
BUDGET = {
    "model_scale": 0.125,
    "chunk_seconds": 2.0,
    "speakers_per_batch": 32,
    "chunks_per_speaker": 1,
    "batches_per_epoch": 20,
    "number_of_epochs": 10,
    "lr": 0.001,
}
PAPER = {
    "architecture": "paper",
    "front_end": "sincnet",
    "sinc_filters": 80,
    "tdnn_norm": "weight",
    "front_end_scale": BUDGET["model_scale"],
    "compression": "abs",
    "sinc_stride": 5,
    "sinc_frequency_unit": 1.0,
}
# (name, yaml, change described, options): each SincTDNN row adds one
# option to the row above it.
STEPS = [
    ("paper", "aam", "Coria et al. (2020) exactly", {}),
    ("batch_norm", "aam", "+ TDNN Conv1d -> LeakyReLU -> BatchNorm1d",
     {"tdnn_norm": "batch"}),
    ("front_end_full", "aam", "+ front-end not scaled (80 filters, 60 ch.)",
     {"front_end_scale": 1.0}),
    ("log", "aam", "+ log(1 + 100 abs(x)) after the sinc filters",
     {"compression": "log"}),
    ("stride10", "aam", "+ SincNet stride 10 (was 5)", {"sinc_stride": 10}),
    ("filterbank_std", "aam",
     "+ log band energies (25 ms every 10 ms) instead of the convolution "
     "block, mean and variance normalised",
     {"front_end": "filterbank", "filterbank_std_norm": True}),
    ("filterbank", "aam", "+ only the mean removed from the band energies",
     {"filterbank_std_norm": False}),
    ("khz", "aam", "+ cut-offs learned in units of 1 kHz (was 1 Hz)",
     {"sinc_frequency_unit": 1000.0}),
    ("filters24", "aam", "+ 24 filters (was 80): the Fbank x-vector's TDNN "
     "input size", {"sinc_filters": 24}),
]  # fmt: skip
DEFAULT_ROW = "filters24"  # the package's default SincTDNN
# The rows below vary the 80-filter network of the "khz" row (the
# package's default until 24 filters replaced it; measured before).
EIGHTY_FILTER_ROW = "khz"
# (name, change described, option): the 80-filter network with that one
# option set back to the paper's value.
LEAVE_ONE_OUT = [
    ("no_batch_norm", "khz, TDNN weight norm + ReLU", "tdnn_norm"),
    ("scaled_front_end", "khz, 10 filters (front-end scaled by 0.125)",
     "front_end_scale"),
    ("no_log", "khz, band energies without log", "compression"),
    ("stride5", "khz, SincNet stride 5", "sinc_stride"),
]  # fmt: skip
# (name, yaml, change described, options): other variants of the
# 80-filter network.
OTHER_ROWS = [
    ("filters40", "aam", "khz, 40 filters", {"sinc_filters": 40}),
    ("stride20", "aam", "khz, SincNet stride 20 (half the SincNet cost)",
     {"sinc_stride": 20}),
    ("khz_softmax", "softmax", "khz, softmax loss", {}),
]  # fmt: skip


def variants():
    """``{name: (yaml, description, options)}`` of every row, in order."""
    rows, options = {}, dict(PAPER)
    for name, yaml_name, change, added in STEPS:
        options = {**options, **added}
        rows[name] = (yaml_name, change, dict(options))
    eighty = {**rows[EIGHTY_FILTER_ROW][2], "architecture": "default"}
    for name, change, option in LEAVE_ONE_OUT:
        rows[name] = ("aam", change, {**eighty, option: PAPER[option]})
    for name, yaml_name, change, options in OTHER_ROWS:
        rows[name] = (yaml_name, change, {**eighty, **options})
    rows["default_softmax"] = (
        "softmax",
        "default SincTDNN (24 filters), softmax loss",
        {**rows[DEFAULT_ROW][2], "architecture": "default"},
    )
    rows["xvector"] = ("xvector", "Fbank (24) + SpeechBrain Xvector, AAM", {})
    return rows


def train_command(name, seed, layout):
    """``train.py`` command of one run; it trains, then scores the trials."""
    yaml_name, _, options = variants()[name]
    arguments = {
        "data_folder": layout.decoded("train"),
        "eval_folder": layout.decoded("dev"),
        "trials_file": layout.trials,
        "seed": seed,
        "output_folder": layout.run(name, seed),
        "num_workers": 0,
        **BUDGET,
        **options,
    }
    return train_py_command(f"hparams/{yaml_name}.yaml", arguments)


def train_and_score(name, seed, layout):
    """One run (skipped when its results exist); returns its label."""
    run = layout.run(name, seed)
    if (run / RESULTS_FILE).exists():
        return f"{name}/{seed} (done before)"
    run.mkdir(parents=True, exist_ok=True)
    seconds = run_logged(train_command(name, seed, layout), run / "run.log")
    (run / "wall_time.json").write_text(
        json.dumps({"wall_s": seconds, "load_average": os.getloadavg()[0]})
    )
    return f"{name}/{seed}"


def run_all(args, layout):
    """Every variant x seed, ``args.jobs`` at a time, seed-major."""
    decode_corpus(layout)
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        jobs = [
            pool.submit(train_and_score, name, seed, layout)
            for seed in args.seeds
            for name in args.variants
        ]
        for job in concurrent.futures.as_completed(jobs):
            try:
                message = f"done {job.result()}"
            except RuntimeError as error:
                message = f"FAILED {error}"
            print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


# ---------------------------------------------------------------- report


def last_mean_cosine(train_log):
    """The last epoch's mean pairwise cosine in a ``train_log.txt``.

    Example
    -------
    >>> import tempfile
    >>> log = pathlib.Path(tempfile.mkdtemp()) / "train_log.txt"
    >>> _ = log.write_text("epoch: 1 - mean_pairwise_cosine: 0.99\\n"
    ...                    "epoch: 2 - mean_pairwise_cosine: 0.41\\n")
    >>> last_mean_cosine(log)
    0.41
    """
    found = re.findall(
        r"mean_pairwise_cosine: ([-+.\deE]+)",
        pathlib.Path(train_log).read_text(),
    )
    return float(found[-1]) if found else None


def cut_off_movement(run):
    """Mean |change| of the SincNet centre frequencies, Hz, at the run's
    latest checkpoint (None: no SincNet in the run's model)."""
    try:
        learned = load_sincnet(run)
    except ValueError:  # a model without SincNet
        return None
    initial = SincNet(
        n_filters=learned.n_filters,
        frequency_unit=float(learned.frequency_unit),
    )
    with torch.no_grad():
        change = (learned.center_hz - initial.center_hz).abs().mean()
    return float(change)


def collect(layout, names, seeds):
    """Per variant: finished runs and their metrics."""
    summary = {}
    for name in names:
        runs = {}
        for seed in seeds:
            run = layout.run(name, seed)
            if not (run / RESULTS_FILE).exists():
                continue
            results = load_results(run)
            wall = json.loads((run / "wall_time.json").read_text())
            runs[seed] = {
                "eer": results["eer"]["value"],
                "eer_ci": results["eer"]["ci"],
                "min_dcf": min_dcf_entry(results)["value"],
                "mean_cosine": last_mean_cosine(run / TRAIN_LOG_FILE),
                "cut_off_change_hz": cut_off_movement(run),
                "wall_s": wall["wall_s"],
            }
        if runs:
            eers = [r["eer"] for r in runs.values()]
            summary[name] = {"runs": runs, "eer_mean_ci": mean_interval(eers)}
    return summary


def paired_tests(layout, summary, reference="paper", n_replicates=1000):
    """Paired bootstrap of every variant against ``reference``."""
    if reference not in summary:
        return {}
    base = [
        load_scores(layout.run(reference, s))[0]
        for s in summary[reference]["runs"]
    ]
    labels = load_scores(
        layout.run(reference, next(iter(summary[reference]["runs"])))
    )[1]
    tests = {}
    for name, entry in summary.items():
        if name == reference:
            continue
        other = [load_scores(layout.run(name, s))[0] for s in entry["runs"]]
        tests[name] = paired_bootstrap(
            base, other, labels, n_replicates=n_replicates
        )
    return tests


def optional_mean(values, digits):
    """Mean of the values that are not None, formatted, or ``—``."""
    values = [v for v in values if v is not None]
    return f"{np.mean(values):.{digits}f}" if values else "—"


def format_difference(test):
    """``+d.d [a, b]`` points of a paired bootstrap's EER difference."""
    if not test:
        return "—"
    eer = test["eer"]
    return f"{100 * eer['difference']:+.1f} {format_interval(eer['ci'])}"


def report_table(summary, tests):
    """The ablation table in Markdown; ``tests`` maps a reference row to
    the paired tests of every other row against it."""
    header = (
        "| row | change | EER % mean ± sd | 95 % CI of the mean | EER % per "
        "seed [bootstrap CI] | ΔEER vs paper, pts [95 % CI] | ΔEER vs Fbank "
        "x-vector, pts [95 % CI] | minDCF 0.01 | last mean cosine | cut-off "
        "moved, Hz | wall min / run |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    all_variants = variants()
    for name, entry in summary.items():
        runs = entry["runs"].values()
        per_seed = "; ".join(
            f"{100 * r['eer']:.1f} {format_interval(r['eer_ci'])}" for r in runs
        )
        lines.append(
            f"| {name} | {all_variants[name][1]} | "
            f"{mean_sd([r['eer'] for r in runs], scale=100)} | "
            f"{format_interval(entry['eer_mean_ci'])} | {per_seed} | "
            f"{format_difference(tests['paper'].get(name))} | "
            f"{format_difference(tests['xvector'].get(name))} | "
            f"{mean_sd([r['min_dcf'] for r in runs], digits=3)} | "
            f"{optional_mean([r['mean_cosine'] for r in runs], 3)} | "
            f"{optional_mean([r['cut_off_change_hz'] for r in runs], 1)} | "
            f"{np.mean([r['wall_s'] for r in runs]) / 60:.1f} |"
        )
    return header + "\n".join(lines) + "\n"


def merged_with_earlier(layout, measured, tests):
    """Rows of ``measured`` (rows with runs here) over those of the
    ``summary.json`` already in the output folder, so that a report on a
    few re-run or new rows keeps the rows measured earlier (whose run
    folders may be gone); rows in the order of ``variants()``.

    A paired test needs the runs of both rows: the earlier tests are kept
    only between two earlier rows, the new ones (``tests``) are those
    between rows measured here.

    Example
    -------
    >>> import tempfile
    >>> from comparison.corpus import Layout
    >>> layout = Layout(tempfile.mkdtemp(), ".", ".")
    >>> earlier = {"variants": {"paper": 1, "khz": 2, "log": 3},
    ...            "tests": {"paper": {"khz": 3, "log": 4}, "xvector": {}}}
    >>> _ = (layout.output / "summary.json").write_text(json.dumps(earlier))
    >>> rows, kept = merged_with_earlier(
    ...     layout, {"khz": 4, "xvector": 5}, {"paper": {}, "xvector": {}}
    ... )
    >>> rows
    {'paper': 1, 'log': 3, 'khz': 4, 'xvector': 5}
    >>> kept
    {'paper': {'log': 4}, 'xvector': {}}
    """
    kept = layout.output / "summary.json"
    earlier = json.loads(kept.read_text()) if kept.exists() else {}
    rows = {**earlier.get("variants", {}), **measured}
    order = [name for name in variants() if name in rows]
    merged_tests = {}
    for reference, found in tests.items():
        old = earlier.get("tests", {}).get(reference, {})
        if reference in measured:
            old = {}
        old = {name: t for name, t in old.items() if name not in measured}
        merged_tests[reference] = {**old, **found}
    return {name: rows[name] for name in order}, merged_tests


def write_report(args, layout):
    """REPORT.md, summary.json and the default variant's filter plot."""
    measured = collect(layout, args.variants, args.seeds)
    for entry in measured.values():
        entry["measured"] = time.strftime("%Y-%m-%d")
    tests = {
        reference: paired_tests(layout, measured, reference)
        for reference in ("paper", "xvector")
    }
    summary, tests = merged_with_earlier(layout, measured, tests)
    table = report_table(summary, tests)
    command = (
        "PYTHONPATH=plugin:. python benchmarks/sinctdnn_ablation.py run "
        f"--jobs {args.jobs} --seeds {' '.join(map(str, args.seeds))}"
    )
    earlier = [name for name in summary if name not in measured]
    provenance = (
        f"\nRows measured in this report's run ({time.strftime('%Y-%m-%d')}, "
        f"paired tests among them): {', '.join(measured) or 'none'}."
    )
    if earlier:
        provenance += (
            f" Rows kept from the earlier summary.json (another session, "
            f"possibly another machine, paired tests only among them): "
            f"{', '.join(earlier)}.\n"
        )
    text = (
        f"# SincTDNN ablation\n\n    {command}\n\nBudget: "
        f"{json.dumps(BUDGET)}\n\n{table}{provenance}"
    )
    layout.output.mkdir(parents=True, exist_ok=True)
    (layout.output / "REPORT.md").write_text(text)
    (layout.output / "summary.json").write_text(
        json.dumps(
            {"budget": BUDGET, "variants": summary, "tests": tests}, indent=1
        )
    )
    first = layout.run(DEFAULT_ROW, min(args.seeds))
    if (first / RESULTS_FILE).exists():
        figure = (
            ROOT / "benchmarks" / "figures" / "sincnet_filters_ablation.png"
        )
        plot_filters(load_sincnet(first, stride=10), str(figure))
    print(text)


def parse_arguments(argv=None):
    """The command line (see the module docstring)."""
    parser = run_report_parser(__doc__, "sinctdnn_ablation")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(variants()),
        choices=list(variants()),
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    jobs_argument(parser)
    return parser.parse_args(argv)


def main(argv=None):
    """``run``: every missing run, then the report; ``report``: the
    report."""
    run_then_report(parse_arguments(argv), run_all, write_report)


if __name__ == "__main__":
    exit_on_error(main)
