"""SincTDNN trained by SpeechBrain's own VoxCeleb script beside ``train.py``.

For each loss (AAM, triplet) and seed, the same SincTDNN is trained twice
on the speechocean762 training speakers at one budget:

* by SpeechBrain's ``train_speaker_embeddings.py``, unmodified, with
  ``hparams/speechbrain_recipe/train_sinctdnn_<loss>.yaml`` (random
  batches of its shuffled sampler; its 90/10 split keeps a tenth of the
  training files for validation);
* by our ``train.py`` with ``hparams/<loss>.yaml`` (P x K speaker-balanced
  batches: 32 x 1 for AAM, 8 x 4 for triplet; every training file).

Both get 2 s chunks, 32 chunks per batch, Adam at one learning rate, no
augmentation, the same model options and the same number of optimizer
steps: the script's epoch is one pass over its training segments, so
``train.py`` runs as many epochs of as many batches. Both models are then
scored by SpeechBrain's ``speaker_verification_cosine.py`` with
``hparams/verification.yaml`` on the dev trials (raw cosine, whole
utterances; ``--pretrain_path`` is the run folder, whose latest checkpoint
is used).

SpeechBrain's scripts read ``.wav`` files laid out as VoxCeleb: the Opus
audio is decoded once to float WAV (``comparison.corpus.decode_corpus``),
linked as ``wav/<speaker>/s0/<utterance>.wav`` with the training and dev
speakers in one folder, and the trial list is rewritten to those paths.
The scripts are taken from a speechbrain repository
(``recipes.speechbrain_scripts``). Everything is written under ``--work``,
outside the repository; a finished step is skipped when the command is
run again, an interrupted training resumes from its checkpoint.

Usage (from the repository root)::

    PYTHONPATH=plugin:. python benchmarks/speechbrain_recipe.py \
        --data ../shared/data/speechocean762 --work /tmp/sb_recipe --seeds 1

writes ``REPORT.md`` and ``summary.json`` into ``--work``.
"""

import argparse
import json
import math
import os
import pathlib
import re
import sys
import time

import numpy as np

from comparison.cli import exit_on_error
from comparison.corpus import Layout, decode_corpus
from comparison.runs import run_logged, train_py_command
from recipes.speechbrain_scripts import (
    SPEAKER_REC,
    extract_speechbrain_files,
)
from speaker_metric_learning.model_io import weights_source
from speaker_metric_learning.scoring.summaries import mean_sd

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = (
    f"{SPEAKER_REC}/train_speaker_embeddings.py",
    f"{SPEAKER_REC}/speaker_verification_cosine.py",
    "recipes/VoxCeleb/voxceleb_prepare.py",
)
#: train.py's batch shape (speakers, chunks per speaker) for each loss.
BATCH_SHAPES = {"aam": (32, 1), "triplet": (8, 4)}


def voxceleb_path(utterance):
    """A dev trial path (``spk/utt.ext``) in the VoxCeleb layout.

    Example
    -------
    >>> voxceleb_path("spk0003/000030012.opus")
    'spk0003/s0/000030012.wav'
    """
    speaker, name = utterance.split("/")
    return f"{speaker}/s0/{name.rsplit('.', 1)[0]}.wav"


def convert_trials(text):
    """Our trial list (``1|0 enrol test``) in SpeechBrain's format and paths.

    Example
    -------
    >>> convert_trials("1 a/x.opus a/y.opus\\n0 a/x.opus b/z.opus\\n")
    '1 a/s0/x.wav a/s0/y.wav\\n0 a/s0/x.wav b/s0/z.wav\\n'
    """
    lines = []
    for line in text.splitlines():
        label, enrol, test = line.split()
        lines.append(f"{label} {voxceleb_path(enrol)} {voxceleb_path(test)}\n")
    return "".join(lines)


def steps_per_epoch(csv_text, batch_size):
    """Batches of one epoch of SpeechBrain's script over a CSV file.

    Example
    -------
    >>> steps_per_epoch("ID,duration\\na,1\\nb,1\\nc,1\\n", 2)
    2
    """
    rows = len(csv_text.strip().splitlines()) - 1
    return math.ceil(rows / batch_size)


def random_batch_pairs(csv_text, batch_size, passes=200, seed=0):
    """Same-speaker pairs in the batches of a shuffled sampler over a
    SpeechBrain CSV file (``spk_id`` last), over ``passes`` random epochs.

    Returns the mean number of unordered same-speaker pairs per batch and
    the fraction of batches with none.

    Example
    -------
    >>> csv = "ID,spk_id\\n" + "".join(f"u{i},s{i % 2}\\n" for i in range(4))
    >>> random_batch_pairs(csv, 4)  # one batch: 2 pairs, always
    (2.0, 0.0)
    """
    rows = csv_text.strip().splitlines()[1:]
    _, labels = np.unique(
        [row.rsplit(",", 1)[1] for row in rows], return_inverse=True
    )
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(passes):
        order = labels[rng.permutation(len(labels))]
        for start in range(0, len(order), batch_size):
            counts = np.bincount(order[start : start + batch_size])
            pairs.append(int((counts * (counts - 1) // 2).sum()))
    pairs = np.asarray(pairs)
    return float(pairs.mean()), float((pairs == 0).mean())


def _layout(args):
    """Decoded audio, its VoxCeleb-style links, the trial list and the
    SpeechBrain scripts (each once); returns (data folder, trials,
    scripts folder)."""
    layout = Layout(args.work, args.data, args.work)
    decode_corpus(layout)
    voxceleb = args.work / "voxceleb"
    if not (voxceleb / "DONE").exists():
        for part in ("train", "dev"):
            for wav in sorted((layout.decoded(part) / "wav").glob("*/*.wav")):
                link = voxceleb / "wav" / wav.parent.name / "s0" / wav.name
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.is_symlink():
                    link.symlink_to(wav)
        (voxceleb / "meta").mkdir(exist_ok=True)
        (voxceleb / "DONE").write_text("")
    trials = args.work / "veri_test.txt"
    trials.write_text(convert_trials(layout.trials.read_text()))
    scripts = args.work / "speechbrain_scripts"
    scripts.mkdir(exist_ok=True)
    source = extract_speechbrain_files(SCRIPTS, scripts)
    (scripts / "SOURCE").write_text(source + "\n")
    return layout, voxceleb, trials, scripts


def _speechbrain_run(loss, seed, args, voxceleb, trials, scripts):
    """Trains with SpeechBrain's script; returns the run folder."""
    run = args.work / "speechbrain_script" / loss / str(seed)
    if (run / "DONE").exists():
        return run
    run.mkdir(parents=True, exist_ok=True)
    yaml = (
        ROOT / "hparams" / "speechbrain_recipe" / f"train_sinctdnn_{loss}.yaml"
    )
    options = {
        "data_folder": voxceleb,
        "verification_file": trials,
        "output_folder": run,
        "seed": seed,
        "model_scale": args.model_scale,
        "sentence_len": args.chunk_seconds,
        "batch_size": args.batch_size,
        "number_of_epochs": args.epochs,
        "lr": args.lr,
        "num_workers": 0,
        "device": "cpu",
    }
    if loss == "aam":
        options["out_n_neurons"] = _training_speakers(args)
    command = [sys.executable, str(scripts / SCRIPTS[0].rsplit("/")[-1])]
    command.append(str(yaml))
    command += [f"--{name}={value}" for name, value in options.items()]
    _timed(command, run)
    return run


def _training_speakers(args):
    return len(list((pathlib.Path(args.data) / "train" / "wav").iterdir()))


def _timed(command, run):
    """Runs a command (one thread), logging to ``run/run.log``; records its
    wall time and marks the run done."""
    start = time.perf_counter()
    run_logged(command, run / "run.log")
    (run / "wall_time.json").write_text(
        json.dumps({"seconds": time.perf_counter() - start})
    )
    (run / "DONE").write_text("")


def _train_py_run(loss, seed, args, layout, steps):
    """Trains with ``train.py`` for ``args.epochs`` epochs of ``steps``
    batches; returns the run folder."""
    run = args.work / "train_py" / loss / str(seed)
    if (run / "DONE").exists():
        return run
    run.mkdir(parents=True, exist_ok=True)
    speakers, chunks = BATCH_SHAPES[loss]
    options = {
        "data_folder": layout.decoded("train"),
        "output_folder": run,
        "seed": seed,
        "model_scale": args.model_scale,
        "chunk_seconds": args.chunk_seconds,
        "speakers_per_batch": speakers,
        "chunks_per_speaker": chunks,
        "batches_per_epoch": steps,
        "number_of_epochs": args.epochs,
        "lr": args.lr,
        "num_workers": 0,
    }
    _timed(train_py_command(ROOT / "hparams" / f"{loss}.yaml", options), run)
    return run


def _score(run, name, voxceleb, trials, scripts):
    """EER (%) of SpeechBrain's cosine script on the run's latest
    checkpoint (once; kept in ``cosine/eer.json``)."""
    output = run / "cosine"
    result = output / "eer.json"
    if result.exists():
        return json.loads(result.read_text())
    output.mkdir(exist_ok=True)
    command = [
        sys.executable,
        str(scripts / "speaker_verification_cosine.py"),
        str(ROOT / "hparams" / "verification.yaml"),
        f"--data_folder={voxceleb}",
        f"--verification_file={trials}",
        f"--pretrain_path={run}",
        f"--output_folder={output}",
        "--score_norm=null",
        # unused with raw scores, but the script still ranks the cohort
        # (its 3 s training segments: 2,278 here) and needs k <= that
        "--cohort_size=2000",
        "--device=cpu",
    ]
    run_logged(command, output / "cosine.log")
    (eer,) = re.findall(
        r"EER\(%\)=([\d.]+)", (output / "cosine.log").read_text()
    )
    entry = {"system": name, "eer": float(eer), "weights": weights_source(run)}
    result.write_text(json.dumps(entry, indent=1))
    return entry


def _run_all(args):
    layout, voxceleb, trials, scripts = _layout(args)
    results = []
    for loss in args.losses:
        for seed in args.seeds:
            script_run = _speechbrain_run(
                loss, seed, args, voxceleb, trials, scripts
            )
            steps = steps_per_epoch(
                (script_run / "save" / "train.csv").read_text(), args.batch_size
            )
            py_run = _train_py_run(loss, seed, args, layout, steps)
            runs = (("speechbrain_script", script_run), ("train_py", py_run))
            for trainer, run in runs:
                entry = _score(run, trainer, voxceleb, trials, scripts)
                wall = json.loads((run / "wall_time.json").read_text())
                results.append(
                    {
                        **entry,
                        "loss": loss,
                        "seed": seed,
                        "trainer": trainer,
                        "steps": steps * args.epochs,
                        "train_minutes": wall["seconds"] / 60,
                        "train_log": (run / "train_log.txt").read_text(),
                    }
                )
    return results


def _report(results, args):
    summary = {"budget": _budget(args), "runs": results}
    train_csv = args.work / "speechbrain_script" / args.losses[0]
    train_csv = train_csv / str(args.seeds[0]) / "save" / "train.csv"
    mean_pairs, without = random_batch_pairs(
        train_csv.read_text(), args.batch_size
    )
    summary["random_batches"] = {
        "mean_same_speaker_pairs": mean_pairs,
        "fraction_without_pair": without,
    }
    (args.work / "summary.json").write_text(json.dumps(summary, indent=1))
    lines = [
        "| loss | trained by | steps | EER % (seeds " + _seeds(args) + ") "
        "| per seed | train min / run |",
        "|---|---|---|---|---|---|",
    ]
    for loss in args.losses:
        for trainer in ("speechbrain_script", "train_py"):
            runs = [
                r
                for r in results
                if r["loss"] == loss and r["trainer"] == trainer
            ]
            eers = [r["eer"] for r in runs]
            minutes = [r["train_minutes"] for r in runs]
            lines.append(
                f"| {loss} | {trainer} | {runs[0]['steps']} | "
                f"{mean_sd(eers)} | "
                + "; ".join(f"{e:.2f}" for e in eers)
                + f" | {mean_sd(minutes, digits=1)} |"
            )
    text = "\n".join(
        ["# SincTDNN in SpeechBrain's script and in train.py", ""]
        + [f"Budget: {json.dumps(_budget(args))}", ""]
        + lines
        + [
            "",
            f"Batches of the script's shuffled sampler ({train_csv}): "
            f"{mean_pairs:.2f} same-speaker pairs per batch of "
            f"{args.batch_size} on average, {100 * without:.2f} % of "
            "batches with none (200 random epochs).",
            "",
        ]
        + [
            f"- {r['loss']} {r['trainer']} seed {r['seed']}: {r['weights']}"
            for r in results
        ]
    )
    (args.work / "REPORT.md").write_text(text + "\n")
    print(text)


def _seeds(args):
    return ", ".join(str(seed) for seed in args.seeds)


def _budget(args):
    return {
        "model_scale": args.model_scale,
        "chunk_seconds": args.chunk_seconds,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "lr": args.lr,
        "threads": os.environ.get("OMP_NUM_THREADS", "1 (children)"),
    }


def parse_arguments(argv=None):
    """Command-line options.

    Example
    -------
    >>> args = parse_arguments(["--data", "d", "--work", "w"])
    >>> args.losses, args.seeds, args.epochs
    (['aam', 'triplet'], [1], 2)
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", required=True, help="speechocean762 root (train/, dev/)"
    )
    parser.add_argument(
        "--work",
        required=True,
        type=lambda path: pathlib.Path(path).resolve(),
        help="folder for audio copies, runs and the report",
    )
    parser.add_argument(
        "--losses", nargs="+", default=["aam", "triplet"], choices=BATCH_SHAPES
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--model_scale", type=float, default=0.125)
    parser.add_argument("--chunk_seconds", type=float, default=2.0)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument(
        "--epochs",
        type=int,
        default=2,
        help="epochs of SpeechBrain's script (train.py: as many, of as many "
        "batches)",
    )
    parser.add_argument("--lr", type=float, default=0.001)
    return parser.parse_args(argv)


def main(argv=None):
    """Runs every missing step, then writes the report.

    Example
    -------
    >>> main(["--data", "d", "--work", "w", "--epochs", "0"])
    Traceback (most recent call last):
    ...
    ValueError: --epochs must be at least 1
    """
    args = parse_arguments(argv)
    if args.epochs < 1:
        raise ValueError("--epochs must be at least 1")
    _report(_run_all(args), args)


if __name__ == "__main__":
    exit_on_error(main)
