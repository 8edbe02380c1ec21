"""Command line: score files, trial fingerprints and comparison tables.

Run as ``python -m speaker_metric_learning.scoring`` (``__main__.py`` calls
``main``).

Usage::

    python -m speaker_metric_learning.scoring score-file SCORES --trials TRIALS
        [-o FOLDER] [--name NAME] [--bootstrap N] [--resample_speakers]
    python -m speaker_metric_learning.scoring score-model MODEL
        --eval_folder DIR --trials TRIALS [-o FOLDER] [--name NAME]
        [--window SECONDS [--step SECONDS]] [--batch_size N]
        [--cohort_folder DIR [--cohort_utterances N] [--top_k K]]
        [--bootstrap N] [--cache_dir DIR]
    python -m speaker_metric_learning.scoring compare DIR1 DIR2 ... -o OUT
    python -m speaker_metric_learning.scoring fingerprint TRIALS

``SCORES`` has one ``score enrol test`` line per trial (any order, audio
extensions ignored); ``TRIALS`` has ``label enrol test`` lines (``.gz``
accepted). ``score-file`` prints the trial fingerprint and the metrics, and
with ``-o`` writes a results folder (see ``compare``); ``compare`` prints a
Markdown table and writes ``comparison.md`` and an overlaid ``det.png``.

``score-model`` evaluates a model: ``MODEL`` is an exported model folder
(``speaker_metric_learning.export``; its ``hyperparams.yaml`` is checked
before anything is built and its weights are read with ``weights_only``), a
``train.py`` output folder (latest checkpoint) or one of its ``save/CKPT+*``
folders. The utterances of the trial list are read from ``--eval_folder``
(the trial path, e.g. ``spk0041/utt0002.wav``, below it; the trial list's
extension is not kept, so ``.wav``, ``.flac``, ``.ogg``, ``.opus``, ``.mp3``
or no extension are tried), embedded whole (or as the average of
``--window`` windows every ``--step`` seconds) and scored by cosine
similarity: the same scores as ``train.py``'s evaluation. With
``--cohort_folder`` (speaker folders ``<spk>/...`` or ``wav/<spk>/...``),
the first ``--cohort_utterances`` audio files of each speaker (sorted
paths) are embedded, each speaker's mean normalised embedding joins the
cohort, and the scores are also s-normalised (adaptive s-norm with
``--top_k``, see ``normalization``). ``-o FOLDER`` receives the results
folder of the raw cosine scores, and, with a cohort, ``FOLDER/snorm`` (or
``FOLDER/asnorm-top<K>``) that of the normalised scores, as a second system
on the same trial list (``compare FOLDER FOLDER/snorm`` tabulates both).
"""

import argparse
import pathlib

from speaker_metric_learning.command_line import exit_on
from speaker_metric_learning.run_guard import refuse_run_folder
from speaker_metric_learning.scoring.audio import (
    AudioFiles,
    cohort_files,
    trial_audio,
)
from speaker_metric_learning.scoring.compare import (
    compare_results,
    format_table,
)
from speaker_metric_learning.scoring.embeddings import extract_embeddings
from speaker_metric_learning.scoring.evaluation import evaluate, measure
from speaker_metric_learning.scoring.normalization import (
    normalized_cosine_scores,
    speaker_centroids,
)
from speaker_metric_learning.scoring.trials import read_scores, read_trials


def _number(kind, low, strict):
    """An argparse type: a ``kind`` number above ``low`` (or from ``low``
    when not ``strict``), finite."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value != value or abs(value) == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number")
        if value < low or (strict and value == low):
            relation = ">" if strict else ">="
            raise argparse.ArgumentTypeError(f"{text} must be {relation} {low}")
        return value

    parse.__name__ = kind.__name__
    return parse


_positive_float = _number(float, 0, strict=True)
_positive_int = _number(int, 0, strict=True)
_natural = _number(int, 0, strict=False)


def build_parser():
    """Builds the argument parser of the command line.

    Returns
    -------
    argparse.ArgumentParser
        The parser.

    Example
    -------
    >>> build_parser().parse_args(["compare", "a", "b", "-o", "c"]).folders
    ['a', 'b']
    """
    parser = argparse.ArgumentParser(
        prog="python -m speaker_metric_learning.scoring",
        description="Speaker verification evaluation.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score-file", help="evaluate a 'score enrol test' file"
    )
    score.add_argument("scores", help="score file")
    score.add_argument("--trials", required=True, help="trial list")
    score.add_argument("-o", "--output", help="results folder to write")
    score.add_argument("--name", help="system name (default: score file)")
    score.add_argument(
        "--bootstrap",
        type=_natural,
        default=1000,
        metavar="N",
        help="bootstrap replicates for the 95%% CIs (0: none)",
    )
    score.add_argument(
        "--resample_speakers",
        action="store_true",
        help="bootstrap speakers (first component of the enrolment id, "
        "e.g. id10270) instead of trials",
    )
    score.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    _add_score_model_parser(commands)
    compare = commands.add_parser(
        "compare", help="compare results folders on the same trial list"
    )
    compare.add_argument("folders", nargs="+", help="results folders")
    compare.add_argument("-o", "--output", required=True, help="output folder")
    fingerprint = commands.add_parser(
        "fingerprint", help="print the fingerprint of a trial list"
    )
    fingerprint.add_argument("trials", help="trial list")
    return parser


def main(argv=None):
    """Runs the command line.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 1 on a bad input (message on stderr).

    Example
    -------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "trials.txt"
    >>> _ = path.write_text("1 a b\\n")
    >>> main(["fingerprint", str(path)])
    trials 0d4c06d2b432: 1 trials (1 targets, 0 non-targets), 2 utterances
    0
    """
    args = build_parser().parse_args(argv)
    # OSError, ValueError, RuntimeError: AudioReadError among them
    with exit_on(OSError, ValueError, RuntimeError):
        if getattr(args, "output", None) is not None:
            refuse_run_folder(args.output, "results")
        if args.command == "fingerprint":
            print(read_trials(args.trials).fingerprint)
        elif args.command == "score-file":
            _score_file(args)
        elif args.command == "score-model":
            _score_model(args)
        else:
            print(compare_results(args.folders, args.output))
            print(f"\nWrote {pathlib.Path(args.output) / 'comparison.md'}")
    return 0


def _score_file(args):
    """The ``score-file`` command."""
    trials = read_trials(args.trials)
    print(trials.fingerprint)
    scores = read_scores(args.scores, trials)
    speakers = None
    if args.resample_speakers:
        speakers = [utterance.split("/")[0] for utterance in trials.enrol]
    results = measure(
        scores,
        trials,
        args.output,
        args.name or pathlib.Path(args.scores).stem,
        speakers=speakers,
        n_replicates=args.bootstrap,
        seed=args.seed,
        extra={"scores_file": str(args.scores)},
    )
    print(format_table([results]))
    if args.output is not None:
        print(f"\nWrote {pathlib.Path(args.output) / 'results.json'}")


def _add_score_model_parser(commands):
    """Adds the ``score-model`` command to the subcommands."""
    parser = commands.add_parser(
        "score-model",
        help="embed and score a trial list with a model (exported folder, "
        "train.py run or checkpoint)",
    )
    parser.add_argument(
        "model", help="exported model folder, train.py run or CKPT+ folder"
    )
    parser.add_argument(
        "--eval_folder", required=True, help="folder the trial paths are in"
    )
    parser.add_argument("--trials", required=True, help="trial list")
    parser.add_argument("-o", "--output", help="results folder to write")
    parser.add_argument("--name", help="system name (default: model folder)")
    parser.add_argument(
        "--window",
        type=_positive_float,
        metavar="SECONDS",
        help="average the embeddings of windows this long (default: whole "
        "utterances)",
    )
    parser.add_argument(
        "--step", type=_positive_float, metavar="SECONDS", help="window step"
    )
    parser.add_argument(
        "--batch_size",
        type=_positive_int,
        default=16,
        help="utterances per batch",
    )
    parser.add_argument(
        "--cohort_folder",
        help="speaker folders (<spk>/... or wav/<spk>/...) for s-norm",
    )
    parser.add_argument(
        "--cohort_utterances",
        type=_positive_int,
        default=5,
        metavar="N",
        help="audio files embedded per cohort speaker",
    )
    parser.add_argument(
        "--top_k",
        type=_positive_int,
        metavar="K",
        help="adaptive s-norm with the K closest cohort speakers",
    )
    parser.add_argument(
        "--bootstrap",
        type=_natural,
        default=1000,
        metavar="N",
        help="bootstrap replicates for the 95%% CIs (0: none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--cache_dir", help="folder of cached embeddings")


def _score_model(args):
    """The ``score-model`` command."""
    # Imported here: SpeechBrain's inference modules load slowly.
    from speaker_metric_learning.model_io import load_model, weights_source

    trials = read_trials(args.trials)
    print(trials.fingerprint)
    paths = trial_audio(trials, args.eval_folder)
    if args.top_k is not None and args.cohort_folder is None:
        raise ValueError("--top_k needs --cohort_folder (the cohort).")
    print(f"scoring {weights_source(args.model)}")
    verification = load_model(args.model, run_opts={"device": "cpu"})
    model = verification.mods.embedding_model
    sample_rate = verification.hparams.sample_rate
    settings = {
        "batch_size": args.batch_size,
        "window": args.window,
        "step": args.step,
        "sample_rate": sample_rate,
        "cache_dir": args.cache_dir,
    }
    name = args.name or pathlib.Path(args.model).resolve().name
    extra = {
        "model": str(args.model),
        "eval_folder": str(args.eval_folder),
        "window": args.window,
        "step": args.step,
    }
    common = {"n_replicates": args.bootstrap, "seed": args.seed}
    results, embeddings = evaluate(
        model,
        AudioFiles(trials.utterances, paths, sample_rate),
        trials,
        args.output,
        name,
        extra,
        **common,
        **settings,
    )
    if args.output is not None:
        args.output = pathlib.Path(args.output)
        print(f"Wrote {args.output / 'results.json'}")
    all_results = [results]
    if args.cohort_folder is not None:
        pairs = cohort_files(args.cohort_folder, args.cohort_utterances)
        ids = [str(path) for _, path in pairs]
        _, cohort_embeddings = extract_embeddings(
            model,
            AudioFiles(ids, [path for _, path in pairs], sample_rate),
            **settings,
        )
        speakers, cohort = speaker_centroids(
            cohort_embeddings, [speaker for speaker, _ in pairs]
        )
        _, normalized = normalized_cosine_scores(
            trials, embeddings, cohort, args.top_k
        )
        method = "snorm" if args.top_k is None else f"asnorm-top{args.top_k}"
        cohort_extra = {
            **extra,
            "normalization": method,
            "cohort_folder": str(args.cohort_folder),
            "cohort_speakers": len(speakers),
            "cohort_utterances": len(pairs),
        }
        folder = None if args.output is None else args.output / method
        all_results.append(
            measure(
                normalized, trials, folder, f"{name} {method}",
                extra=cohort_extra, **common,
            )
        )  # fmt: skip
        if folder is not None:
            print(f"Wrote {folder / 'results.json'}")
    print(format_table(all_results))
