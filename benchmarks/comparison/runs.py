"""Launching the work: ``train.py`` runs and the scoring sub-steps.

Owns the ``train.py`` command line of a run (``train_command``), the
one-thread child processes logged to a file (``run_logged``), the
sub-steps of ``compare_losses.py`` run in their own process
(``self_command``), the budget guard of an output folder and
``run_all``, which trains and scores every system x seed and the
reference points, ``--jobs`` at a time, resuming what is done.
"""

import concurrent.futures
import dataclasses
import json
import os
import subprocess
import sys
import time

from comparison.corpus import (
    VARIANTS,
    decode_corpus,
    variant_csv,
    write_variants,
)
from comparison.evaluation import all_results_exist
from comparison.references import resemblyzer_available
from comparison.systems import ROOT, SYSTEMS

#: The script whose sub-steps ``self_command`` runs in their own process.
ENTRY_POINT = ROOT / "benchmarks" / "compare_losses.py"


def train_command(system, seed, budget, layout):
    """``train.py`` command line of one run (training only: no trial list,
    ``evaluate-run`` scores the clean and modified trials afterwards)."""
    options = {
        "data_folder": layout.decoded("train"),
        "eval_folder": layout.decoded("dev"),
        "seed": seed,
        "output_folder": layout.run(system, seed),
        "num_workers": 0,
        **budget.overrides(system),
    }
    return train_py_command(
        SYSTEMS[system].hparams_file(system).relative_to(ROOT), options
    )


def train_py_command(hparams_file, options):
    """The command line running ``train.py`` on ``hparams_file`` with
    ``options`` (``{name: value}``) as ``--name=value`` overrides.

    Example
    -------
    >>> train_py_command("hparams/aam.yaml", {"lr": -1, "seed": 3})[2:]
    ['hparams/aam.yaml', '--lr=-1', '--seed=3']
    """
    return [
        sys.executable,
        str(ROOT / "train.py"),
        str(hparams_file),
        *(f"--{name}={value}" for name, value in options.items()),
    ]


def single_thread_env():
    """Environment of the child processes: one thread each, our PYTHONPATH."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "plugin"), str(ROOT), env.get("PYTHONPATH", "")]
    )
    return env


def run_logged(command, log_file):
    """Runs a command, appending its output to ``log_file``; wall seconds."""
    start = time.perf_counter()
    with open(log_file, "a") as log:
        log.write(f"$ {' '.join(map(str, command))}\n")
        log.flush()
        result = subprocess.run(
            command,
            cwd=ROOT,
            env=single_thread_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if result.returncode:
        raise RuntimeError(f"exit {result.returncode}: see {log_file}")
    return time.perf_counter() - start


def self_command(*arguments, layout, args):
    """Command line of this script for one sub-step."""
    return [
        sys.executable,
        str(ENTRY_POINT),
        *arguments,
        "--output",
        str(layout.output),
        "--data",
        str(layout.data),
        "--shared",
        str(layout.shared),
        "--variant_seed",
        str(args.variant_seed),
    ]


def train_and_evaluate(system, seed, budget, layout, args):
    """One run: train (unless done), then its clean and robustness results."""
    run = layout.run(system, seed)
    run.mkdir(parents=True, exist_ok=True)
    log_file = run / "compare.log"
    timing_file = run / "wall_time.json"
    timing = json.loads(timing_file.read_text()) if timing_file.exists() else {}
    if "train_s" not in timing:
        timing["train_s"] = run_logged(
            train_command(system, seed, budget, layout), log_file
        )
        timing["load_average"] = os.getloadavg()[0]
        timing_file.write_text(json.dumps(timing, indent=1))
    if not all_results_exist(run):
        timing["evaluation_s"] = run_logged(
            self_command("evaluate-run", str(run), layout=layout, args=args),
            log_file,
        )
        timing_file.write_text(json.dumps(timing, indent=1))
    return f"{system}/{seed}"


def reference_job(name, layout, args):
    """One reference point, in its own process."""
    folder = layout.reference(name)
    folder.mkdir(parents=True, exist_ok=True)
    seconds = run_logged(
        self_command("evaluate-reference", name, layout=layout, args=args),
        folder / "compare.log",
    )
    (folder / "wall_time.json").write_text(json.dumps({"total_s": seconds}))
    return f"reference/{name}"


def check_budget(layout, budget):
    """Refuses to mix runs of different budgets in one output folder."""
    path = layout.output / "budget.json"
    wanted = dataclasses.asdict(budget)
    if path.exists():
        recorded = json.loads(path.read_text())
        if recorded != wanted:
            raise ValueError(
                f"{layout.output} holds runs of another budget {recorded}; "
                "give another --output (or the same budget options)"
            )
    layout.output.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(wanted, indent=1))


def run_all(args, budget, layout):
    """Trains and evaluates every system x seed, then the references."""
    check_budget(layout, budget)
    decode_corpus(layout)
    write_variants(layout, args.variant_seed)
    for variant in VARIANTS:
        variant_csv(layout, variant)
    jobs = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for name in args.references:
            if name == "resemblyzer" and not resemblyzer_available():
                print(
                    "resemblyzer not installed: pip install resemblyzer "
                    '"setuptools<81" (skipped)'
                )
                continue
            if not all_results_exist(layout.reference(name)):
                jobs.append(pool.submit(reference_job, name, layout, args))
        for seed in args.seeds:  # seed-major: every system gets seed 1 first
            for system in args.systems:
                jobs.append(
                    pool.submit(
                        train_and_evaluate, system, seed, budget, layout, args
                    )
                )
        for job in concurrent.futures.as_completed(jobs):
            try:
                print(
                    f"{time.strftime('%H:%M:%S')} done {job.result()}",
                    flush=True,
                )
            except RuntimeError as error:
                print(f"{time.strftime('%H:%M:%S')} FAILED {error}", flush=True)
