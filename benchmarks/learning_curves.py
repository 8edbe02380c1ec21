"""Learning curves on real speech: dev EER against optimizer steps.

Before a loss comparison "at convergence" can be run, its budget has to be
chosen: this script trains a few systems (by default SincTDNN + AAM,
SincTDNN + triplet and SpeechBrain's Fbank x-vector + AAM) on the
speechocean762 training speakers, one seed each, with the comparison's
settings (``comparison.systems.Budget``: model_scale 0.125, 2 s chunks, 32
chunks per batch, Adam at a constant lr 0.001, 20 batches per epoch), and
scores each on the dev trial list (whole utterances, cosine; the trials of
the evaluation speakers, who are never trained on) at a doubling number of
steps: 100, 200, 400, ... Each point continues the same run: ``train.py``
resumes from the run's last checkpoint with a higher ``--number_of_epochs``
and scores the trials again; the point's ``results.json`` is kept as
``curve/<steps>.json``.

The curves stop after the round (one doubling, every system) in which the
reference system's (AAM's) EER improved by less than ``--plateau`` points
(0.5), or at ``--max_steps``.

Usage (from the repository root; resumable: finished points are kept, an
interrupted segment resumes from its last checkpoint)::

    PYTHONPATH=plugin:. python benchmarks/learning_curves.py run --jobs 2
    PYTHONPATH=plugin:. python benchmarks/learning_curves.py report

``report`` writes ``curves.json`` and ``REPORT.md`` into ``--output``
(with the measured seconds per step and the arithmetic of a full
comparison at the chosen budget) and ``benchmarks/figures/
learning_curves.png``.
"""

import concurrent.futures
import dataclasses
import json
import time

from comparison.cli import (
    exit_on_error,
    jobs_argument,
    run_report_parser,
    run_then_report,
)
from comparison.corpus import decode_corpus
from comparison.runs import run_logged, train_command
from comparison.systems import ROOT, SYSTEMS, Budget
from speaker_metric_learning.scoring.compare import load_results

REFERENCE = "aam"


def doubling_steps(first, limit):
    """``first, 2 first, 4 first, ...`` up to ``limit`` (inclusive).

    Example
    -------
    >>> doubling_steps(100, 1000)
    [100, 200, 400, 800]
    """
    steps = []
    while first <= limit:
        steps.append(first)
        first *= 2
    return steps


def reached_plateau(points, plateau):
    """Whether the last doubling improved the EER by less than ``plateau``.

    Arguments
    ---------
    points : dict
        ``{steps: eer}`` (EER as a fraction), steps doubling.
    plateau : float
        EER points (percent) per doubling.

    Example
    -------
    >>> reached_plateau({100: 0.20, 200: 0.15, 400: 0.147}, 0.5)
    True
    >>> reached_plateau({100: 0.20, 200: 0.15}, 0.5)
    False
    """
    if len(points) < 2:
        return False
    *_, before, last = (points[s] for s in sorted(points))
    return 100 * (before - last) < plateau


def segment_command(system, seed, steps, budget, layout):
    """``train.py`` command training ``system`` to ``steps`` steps, then
    scoring the dev trials."""
    epochs, remainder = divmod(steps, budget.batches_per_epoch)
    if remainder:
        raise ValueError(
            f"{steps} steps are not whole epochs of "
            f"{budget.batches_per_epoch} batches"
        )
    budget = dataclasses.replace(budget, number_of_epochs=epochs)
    command = train_command(system, seed, budget, layout)
    return [*command, "--trials_file", str(layout.trials)]


def curve_file(layout, system, seed, steps):
    """Where the results of one point are kept."""
    return layout.run(system, seed) / "curve" / f"{steps}.json"


def train_point(system, seed, steps, budget, layout):
    """Trains ``system`` on to ``steps`` and keeps its dev results; returns
    the point's EER (read back when it was made before)."""
    kept = curve_file(layout, system, seed, steps)
    if not kept.exists():
        run = layout.run(system, seed)
        run.mkdir(parents=True, exist_ok=True)
        seconds = run_logged(
            segment_command(system, seed, steps, budget, layout),
            run / "run.log",
        )
        results = load_results(run)
        results["wall_s"] = seconds
        kept.parent.mkdir(exist_ok=True)
        kept.write_text(json.dumps(results, indent=1))
    return json.loads(kept.read_text())["eer"]["value"]


def run_all(args, layout):
    """Every system's curve, point after point, ``args.jobs`` segments at
    a time; the next segment to start is always one of the system that is
    furthest behind, so that the curves grow together. Once the reference
    system (AAM) reaches its plateau, no system goes past its steps."""
    decode_corpus(layout)
    schedule = doubling_steps(args.first_steps, args.max_steps)
    limit = schedule[-1]
    done = dict.fromkeys(args.systems, 0)
    reference = {}
    idle, running = list(args.systems), {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        while idle or running:
            while idle and len(running) < args.jobs:
                system = min(idle, key=done.get)
                idle.remove(system)
                steps = next((s for s in schedule if s > done[system]), None)
                if steps is not None and steps <= limit:
                    job = pool.submit(
                        train_point, system, args.seed, steps, args.budget,
                        layout,
                    )  # fmt: skip
                    running[job] = system, steps
            finished, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for job in finished:
                system, steps = running.pop(job)
                eer = job.result()
                print(
                    f"{time.strftime('%H:%M:%S')} {system}/{args.seed} "
                    f"{steps} steps: EER {100 * eer:.2f} %",
                    flush=True,
                )
                done[system] = steps
                idle.append(system)
                if system == REFERENCE:
                    reference[steps] = eer
                    if reached_plateau(reference, args.plateau):
                        limit = steps
                        print(f"{REFERENCE} reached its plateau at {steps}")


# ---------------------------------------------------------------- report


def read_curve(layout, system, seed):
    """``{steps: {"eer", "eer_ci", "wall_s"}}`` of the points made."""
    folder = layout.run(system, seed) / "curve"
    points = {}
    for kept in folder.glob("*.json") if folder.is_dir() else []:
        results = json.loads(kept.read_text())
        points[int(kept.stem)] = {
            "eer": results["eer"]["value"],
            "eer_ci": results["eer"]["ci"],
            "wall_s": results["wall_s"],
        }
    return dict(sorted(points.items()))


def seconds_per_step(points):
    """Wall seconds per step over the segments after the first (the first
    also decodes, prepares and warms up), scoring included.

    Example
    -------
    >>> seconds_per_step({100: {"wall_s": 90.0}, 200: {"wall_s": 40.0},
    ...                   400: {"wall_s": 80.0}})
    0.4
    """
    steps = sorted(points)
    pairs = list(zip(steps[:-1], steps[1:], strict=True))
    if not pairs:
        return None
    seconds = sum(points[b]["wall_s"] for _, b in pairs)
    return seconds / sum(b - a for a, b in pairs)


def budget_arithmetic(steps, s_per_step, runs, processes=2):
    """Wall hours of ``runs`` runs of ``steps`` steps, ``processes`` at a
    time.

    Example
    -------
    >>> budget_arithmetic(1000, 0.5, 30)
    2.0833333333333335
    """
    return steps * s_per_step * runs / processes / 3600


def plot_curves(curves, figure):
    """EER against steps (log axis), one line per system, with CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6, 4))
    for system, points in curves.items():
        steps = list(points)
        eers = [100 * p["eer"] for p in points.values()]
        low = [100 * p["eer_ci"][0] for p in points.values()]
        high = [100 * p["eer_ci"][1] for p in points.values()]
        axis.plot(steps, eers, marker="o", label=SYSTEMS[system].description)
        axis.fill_between(steps, low, high, alpha=0.2)
    axis.set_xscale("log", base=2)
    axis.set_xlabel("optimizer steps (32 chunks of 2 s each)")
    axis.set_ylabel("EER on speechocean762 dev trials (%)")
    axis.grid(True, alpha=0.3)
    axis.legend()
    fig.tight_layout()
    fig.savefig(figure, dpi=120)
    plt.close(fig)


def write_report(args, layout):
    """``curves.json``, ``REPORT.md`` and the figure."""
    curves = {
        system: read_curve(layout, system, args.seed) for system in args.systems
    }
    curves = {system: points for system, points in curves.items() if points}
    rates = {system: seconds_per_step(p) for system, p in curves.items()}
    steps = sorted({s for points in curves.values() for s in points})
    header = "| system | " + " | ".join(f"{s} steps" for s in steps)
    lines = [
        header + " | s / step |",
        "|---|" + "---:|" * (len(steps) + 1),
    ]
    for system, points in curves.items():
        cells = [
            f"{100 * points[s]['eer']:.2f}" if s in points else "—"
            for s in steps
        ]
        rate = rates[system]
        lines.append(
            f"| {SYSTEMS[system].description} | " + " | ".join(cells) + " | "
            f"{'—' if rate is None else f'{rate:.2f}'} |"
        )
    command = (
        "PYTHONPATH=plugin:. python benchmarks/learning_curves.py run "
        f"--jobs {args.jobs} --seed {args.seed}"
    )
    text = (
        f"# Learning curves\n\n    {command}\n\nEER % on the dev trials, one "
        f"seed ({args.seed}), budget {dataclasses.asdict(args.budget)} "
        "except the number of epochs.\n\n" + "\n".join(lines) + "\n"
    )
    layout.output.mkdir(parents=True, exist_ok=True)
    (layout.output / "REPORT.md").write_text(text)
    (layout.output / "curves.json").write_text(
        json.dumps({"curves": curves, "seconds_per_step": rates}, indent=1)
    )
    if curves:
        figure = ROOT / "benchmarks" / "figures" / "learning_curves.png"
        plot_curves(curves, figure)
    print(text)


def parse_arguments(argv=None):
    """The command line (see the module docstring)."""
    parser = run_report_parser(__doc__, "learning_curves")
    parser.add_argument(
        "--systems",
        nargs="+",
        default=[REFERENCE, "triplet", "xvector"],
        choices=list(SYSTEMS),
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--first_steps", type=int, default=100)
    parser.add_argument("--max_steps", type=int, default=6400)
    parser.add_argument(
        "--plateau",
        type=float,
        default=0.5,
        help="stop the reference once a doubling gains fewer EER points",
    )
    jobs_argument(parser)
    args = parser.parse_args(argv)
    if REFERENCE not in args.systems:
        parser.error(f"--systems must include the reference, {REFERENCE}")
    args.budget = Budget()
    return args


def main(argv=None):
    """``run``: every missing point, then the report; ``report``: the
    report."""
    run_then_report(parse_arguments(argv), run_all, write_report)


if __name__ == "__main__":
    exit_on_error(main)
