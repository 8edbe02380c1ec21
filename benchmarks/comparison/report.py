"""The written report: tables, English prose, the BENCHMARKS section.

Owns ``write_report`` (``REPORT.md``, ``summary.json`` and ``det.png`` of
an output folder from whatever has finished), its Markdown tables and
sentences (ranking, significance against AAM, robustness, AS-norm) and
``update_section``, which puts the report into a Markdown file such as
``BENCHMARKS.md`` in place of its section of the same heading.
"""

import dataclasses
import json
import os
import pathlib

import numpy as np

from comparison.corpus import VARIANTS
from comparison.evaluation import AS_NORM_TOP_K, AS_NORM_UTTERANCES
from comparison.plots import plot_all
from comparison.results import collect, significance
from comparison.systems import AAM_SYSTEMS, BASELINES, REFERENCE_SYSTEM, SYSTEMS
from comparison.throughput import budget_arithmetic
from speaker_metric_learning.scoring.significance import (
    format_p_value,
    significance_groups,
)
from speaker_metric_learning.scoring.summaries import format_interval, mean_sd


def report_tables(summary, tests, robustness_tests, throughput):
    """The Markdown tables of the report."""
    lines = [
        "| System | params | EER % (mean ± sd) | minDCF 0.01 (mean ± sd) "
        "| EER % per seed [95 % CI] | ΔEER vs AAM, pts [95 % CI] | p "
        "| last train loss | wall min / run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for system, entry in summary["systems"].items():
        runs = entry["runs"]
        eers = [runs[s]["clean"]["eer"] for s in runs]
        dcfs = [runs[s]["clean"]["min_dcf"] for s in runs]
        per_seed = "; ".join(
            f"{100 * runs[s]['clean']['eer']:.1f} "
            f"{format_interval(runs[s]['clean']['eer_ci'])}"
            for s in runs
        )
        test = tests.get(system)
        delta = p = "—"
        if test is not None:
            delta = (
                f"{100 * test['eer']['difference']:+.1f} "
                f"{format_interval(test['eer']['ci'])}"
            )
            p = format_p_value(test["eer"]["p_value"], test["n_replicates"])
        walls = [
            sum(v for k, v in runs[s]["wall_time"].items() if k.endswith("_s"))
            / 60
            for s in runs
        ]
        losses = [
            runs[s]["train_loss_first_last"][1]
            for s in runs
            if runs[s]["train_loss_first_last"] is not None
        ]
        parameters = throughput.get(system, {}).get("parameters")
        lines.append(
            f"| {SYSTEMS[system].description} | "
            f"{'—' if parameters is None else f'{parameters / 1e3:.0f} k'} | "
            f"{mean_sd(eers, 100)} | {mean_sd(dcfs, 1, 3)} | {per_seed} | "
            f"{delta} | {p} | {mean_sd(losses, 1, 2) if losses else '—'} | "
            f"{mean_sd(walls, 1, 1)} |"
        )
    for entry in summary["references"].values():
        clean = entry["clean"]
        lines.append(
            f"| *{entry['label']}* | — | {100 * clean['eer']:.2f} | "
            f"{clean['min_dcf']:.3f} | {100 * clean['eer']:.1f} "
            f"{format_interval(clean['eer_ci'])} | — | — | — | — |"
        )
    robustness = [
        "| System | clean | " + " | ".join(VARIANTS) + " |",
        "|---|---|" + "---|" * len(VARIANTS),
    ]
    for system, entry in summary["systems"].items():
        runs = entry["runs"]
        cells = [mean_sd([runs[s]["clean"]["eer"] for s in runs], 100)]
        for variant in VARIANTS:
            values = [
                runs[s]["robustness"][variant]["eer"]
                for s in runs
                if runs[s]["robustness"][variant] is not None
            ]
            cell = mean_sd(values, 100) if values else "—"
            test = robustness_tests[variant].get(system)
            if test is not None and test["eer"]["p_value"] < 0.05:
                cell += " †"
            cells.append(cell)
        robustness.append(
            f"| {SYSTEMS[system].description} | " + " | ".join(cells) + " |"
        )
    for entry in summary["references"].values():
        cells = [f"{100 * entry['clean']['eer']:.2f}"]
        for variant in VARIANTS:
            result = entry["robustness"][variant]
            cells.append(
                "—" if result is None else f"{100 * result['eer']:.2f}"
            )
        robustness.append(f"| *{entry['label']}* | " + " | ".join(cells) + " |")
    return "\n".join(lines), "\n".join(robustness)


def as_norm_table(summary):
    """Raw and adaptive s-normalised EER of the AAM systems, side by side.

    Example
    -------
    >>> run = {"clean": {"eer": 0.10}, "as_norm": {"eer": 0.09}}
    >>> print(as_norm_table({"systems": {"aam": {"runs": {1: run}}}}))
    | System | EER % raw | EER % AS-norm | difference, pts |
    |---|---|---|---|
    | SincTDNN + AAM | 10.00 | 9.00 | -1.00 |
    """
    lines = [
        "| System | EER % raw | EER % AS-norm | difference, pts |",
        "|---|---|---|---|",
    ]
    for system, entry in summary["systems"].items():
        runs = [r for r in entry["runs"].values() if r.get("as_norm")]
        if system not in AAM_SYSTEMS or not runs:
            continue
        raw = [r["clean"]["eer"] for r in runs]
        normalised = [r["as_norm"]["eer"] for r in runs]
        change = [b - a for a, b in zip(raw, normalised, strict=True)]
        lines.append(
            f"| {SYSTEMS[system].description} | {mean_sd(raw, 100)} | "
            f"{mean_sd(normalised, 100)} | {mean_sd(change, 100)} |"
        )
    return "\n".join(lines)


def ordinal(n):
    """English ordinal of a small positive integer.

    Example
    -------
    >>> [ordinal(n) for n in (1, 2, 3, 4, 11)]
    ['1st', '2nd', '3rd', '4th', '11th']
    """
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{'th' if 10 <= n % 100 <= 20 else suffix}"


def significance_sentences(tests):
    """Which systems AAM is significantly better or worse than, and which
    it does not differ from (paired bootstrap of the EER, p < 0.05).

    Example
    -------
    >>> test = {"eer": {"difference": 0.021, "ci": [0.01, 0.03],
    ...                 "p_value": 0.004}, "n_replicates": 1000}
    >>> print(*significance_sentences({"softmax": test}))
    AAM is significantly better (paired bootstrap, p < 0.05) than softmax
    (+2.1 pts, CI [1.0, 3.0], p 0.004).
    """
    groups = significance_groups(tests, "eer", alpha=0.05)
    texts = {
        system: f"{system} ({100 * test['eer']['difference']:+.1f} pts, "
        f"CI {format_interval(test['eer']['ci'])}, "
        f"p {format_p_value(test['eer']['p_value'], test['n_replicates'])})"
        for system, test in tests.items()
    }
    better, worse, unclear = (
        ", ".join(texts[system] for system in groups[name])
        for name in ("higher", "lower", "not significant")
    )
    lines = []
    if better:
        lines.append(
            "AAM is significantly better (paired bootstrap, p < 0.05) than "
            + better
            + "."
        )
    if worse:
        lines.append("AAM is significantly worse than " + worse + ".")
    if unclear:
        lines.append("No significant difference from AAM: " + unclear + ".")
    return lines


def ranking_text(summary, tests):
    """Plain statements of where the ranking agrees with the paper."""
    systems = summary["systems"]
    if REFERENCE_SYSTEM not in systems:
        return "AAM has no finished run yet: no ranking."
    means = {
        system: np.mean([r["clean"]["eer"] for r in e["runs"].values()])
        for system, e in systems.items()
    }
    losses = [s for s in means if s not in BASELINES]
    order = sorted(losses, key=means.get)
    rank = order.index(REFERENCE_SYSTEM) + 1
    lines = [
        "Ranking of the losses on SincTDNN by mean EER: "
        + " < ".join(f"{s} {100 * means[s]:.1f}" for s in order)
        + f" %. AAM ranks {rank} of {len(order)}; the paper ranks it first.",
    ]
    lines += significance_sentences(tests)
    for variant in VARIANTS:
        degraded = {}
        for system in losses:
            pairs = [
                (run["robustness"][variant]["eer"], run["clean"]["eer"])
                for run in systems[system]["runs"].values()
                if run["robustness"][variant] is not None
            ]
            if pairs:
                degraded[system] = np.mean([v - c for v, c in pairs])
        if REFERENCE_SYSTEM in degraded:
            order = sorted(degraded, key=degraded.get)
            rank = ordinal(order.index(REFERENCE_SYSTEM) + 1)
            lines.append(
                f"{variant}: EER increase over clean (mean over seeds) "
                + ", ".join(f"{s} {100 * degraded[s]:+.1f}" for s in order)
                + f" pts; AAM ranks {rank}"
                f" of {len(order)} losses (1st = least degraded; the paper "
                "finds AAM the most robust; a system near chance cannot "
                "degrade much, so read this with the clean EER)."
            )
    best = min(means, key=means.get)
    for entry in summary["references"].values():
        eer = entry["clean"]["eer"]
        verdict = "beats" if means[best] < eer else "does not beat"
        lines.append(
            f"Best system here, {best} ({100 * means[best]:.1f} %), "
            f"{verdict} the {entry['label']} reference "
            f"({100 * eer:.1f} % {format_interval(entry['clean']['eer_ci'])})."
        )
    return "\n\n".join(lines)


def write_report(args, budget, layout):
    """REPORT.md, summary.json and det.png from the finished results.

    Raises
    ------
    FileNotFoundError
        If the output folder does not exist (no run was started there).
    """
    if not layout.output.is_dir():
        raise FileNotFoundError(
            f"no comparison in {layout.output}: the folder does not exist; "
            "give the --output of a comparison started with 'run'"
        )
    summary = collect(layout, args.systems, args.seeds)
    tests = significance(layout, summary)
    robustness_tests = {v: significance(layout, summary, v) for v in VARIANTS}
    throughput_file = layout.output / "throughput.json"
    throughput = (
        json.loads(throughput_file.read_text())
        if throughput_file.exists()
        else {"systems": {}}
    )
    plot_all(layout, summary, layout.output / "det.png")
    main_table, robustness_table = report_tables(
        summary, tests, robustness_tests, throughput["systems"]
    )
    n_runs = sum(len(e["runs"]) for e in summary["systems"].values())
    command = (
        "PYTHONPATH=plugin:. python benchmarks/compare_losses.py run "
        + " ".join(
            f"--{name} {value}"
            for name, value in dataclasses.asdict(budget).items()
        )
        + f" --seeds {' '.join(map(str, args.seeds))} --jobs {args.jobs}"
    )
    text = f"""## {args.title}

Six losses on SincTDNN (its default architecture), the network of Coria et
al. (2020) with AAM (`--architecture paper`), and two baselines from
SpeechBrain's own modules (Fbank + `Xvector`, Fbank + `ECAPA_TDNN`, both
with our AAM loss), trained by
`train.py` at one budget on the 125 training speakers of speechocean762
(2,646 utterances, 3.1 h) and scored on its dev trials (63 other speakers,
12,299 trials). {n_runs} of {len(args.systems) * len(args.seeds)} runs
finished (systems x seeds {", ".join(map(str, args.seeds))}).

    {command}

Budget, the same for every system: model_scale {budget.model_scale},
{budget.chunk_seconds:g} s chunks, {budget.chunks_per_batch} chunks per
batch (32 speakers x 1 chunk for the classification losses and the
baselines, 8 x 4 for contrastive and triplet), {budget.steps} optimizer steps
({budget.number_of_epochs} epochs x {budget.batches_per_epoch} batches),
Adam lr {budget.lr:g}, no augmentation (no noise corpus offline), whole
utterances at test, cosine scoring. One thread per run.

{main_table}

EER per seed with its 95 % bootstrap CI over trials; ΔEER = mean EER of the
system minus mean EER of AAM, in percentage points, with the 95 % interval
and two-sided p-value of a paired bootstrap (1,000 replicates; the same
resampled trials for every run of both systems; seeds paired by trial, not
by seed). minDCF normalised, p_target 0.01. Last train loss: mean over
seeds of the last epoch's training loss (for softmax, center's
cross-entropy and CoCo, ln 125 = 4.83 is the loss of a uniform guess over
the 125 speakers; AAM's includes its margin). Wall time: training + dev
evaluation + robustness evaluation of one run, on the shared 2-core machine
(other jobs running). Italic rows: reference points outside the comparison.

{ranking_text(summary, tests)}

Adaptive s-norm of the AAM systems as Coria et al. report it: the
{AS_NORM_TOP_K} closest of the 125 training speakers' centroids (the
paper's top 400 of 1,170; each centroid the mean of the normalised
embeddings of the speaker's first {AS_NORM_UTTERANCES} utterances), mean ±
sd over seeds:

{as_norm_table(summary)}

Budget arithmetic:

{budget_arithmetic(throughput, budget, args, layout, summary)}

Robustness (EER %, mean ± sd over seeds; test side of every trial cut to
2 s / 1 s at a seeded random offset, or with white noise at 5 dB SNR;
enrolment side clean; † = differs from AAM under the same condition,
paired bootstrap p < 0.05):

{robustness_table}

![DET curves](det.png)
"""
    (layout.output / "REPORT.md").write_text(text)
    (layout.output / "summary.json").write_text(
        json.dumps(
            {
                "budget": dataclasses.asdict(budget),
                "seeds": args.seeds,
                "throughput": throughput,
                **summary,
                "significance_vs_aam": {"clean": tests, **robustness_tests},
            },
            indent=1,
        )
    )
    print(text)
    if args.benchmarks_file:
        update_section(args.benchmarks_file, text, layout.output / "det.png")


def update_section(path, text, figure):
    """Puts the report (its first heading and what follows) into a Markdown
    file, replacing the section of the same heading, or appending it; the
    figure link is made relative to the file.

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> page = folder / "B.md"
    >>> _ = page.write_text("# B\\n\\n## A\\nold\\n\\n## C\\nkept\\n")
    >>> report = "## A\\nnew ![x](det.png)\\n"
    >>> update_section(page, report, folder / "out" / "det.png")
    >>> print(page.read_text())
    # B
    <BLANKLINE>
    ## A
    new ![x](out/det.png)
    <BLANKLINE>
    ## C
    kept
    <BLANKLINE>
    """
    path = pathlib.Path(path)
    heading = text.splitlines()[0]
    relative = os.path.relpath(figure, path.resolve().parent)
    text = text.replace("](det.png)", f"]({pathlib.Path(relative).as_posix()})")
    old = path.read_text() if path.exists() else ""
    if heading in old.splitlines():
        start = old.index(heading + "\n")
        following = old.find("\n## ", start + len(heading))
        rest = "" if following < 0 else old[following + 1 :]
        new = (
            old[:start]
            + text.rstrip("\n")
            + "\n"
            + ("\n" + rest if rest else "")
        )
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)
