"""Command line: score files, trial fingerprints and comparison tables.

Run as ``python -m speaker_metric_learning.scoring`` (``__main__.py`` calls
``main``).

Usage::

    python -m speaker_metric_learning.scoring score-file SCORES --trials TRIALS
        [-o FOLDER] [--name NAME] [--bootstrap N] [--resample-speakers]
    python -m speaker_metric_learning.scoring compare DIR1 DIR2 ... -o OUT
    python -m speaker_metric_learning.scoring fingerprint TRIALS

``SCORES`` has one ``score enrol test`` line per trial (any order, audio
extensions ignored); ``TRIALS`` has ``label enrol test`` lines (``.gz``
accepted). ``score-file`` prints the trial fingerprint and the metrics, and
with ``-o`` writes a results folder (see ``compare``); ``compare`` prints a
Markdown table and writes ``comparison.md`` and an overlaid ``det.png``.
"""

import argparse
import pathlib
import sys

from speaker_metric_learning.scoring.compare import (
    compare_results,
    compute_results,
    evaluate_scores,
    format_table,
)
from speaker_metric_learning.scoring.trials import read_scores, read_trials


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
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap replicates for the 95%% CIs (0: none)",
    )
    score.add_argument(
        "--resample-speakers",
        action="store_true",
        help="bootstrap speakers (first component of the enrolment id, "
        "e.g. id10270) instead of trials",
    )
    score.add_argument("--seed", type=int, default=0, help="bootstrap seed")
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
        Exit status: 0 on success, 2 on a bad input (message on stderr).

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
    try:
        if args.command == "fingerprint":
            print(read_trials(args.trials).fingerprint)
        elif args.command == "score-file":
            _score_file(args)
        else:
            print(compare_results(args.folders, args.output))
            print(f"\nWrote {pathlib.Path(args.output) / 'comparison.md'}")
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _score_file(args):
    """The ``score-file`` command."""
    trials = read_trials(args.trials)
    print(trials.fingerprint)
    scores = read_scores(args.scores, trials)
    speakers = None
    if args.resample_speakers:
        speakers = [utterance.split("/")[0] for utterance in trials.enrol]
    settings = {
        "scores": scores,
        "trials": trials,
        "system_name": args.name or pathlib.Path(args.scores).stem,
        "speakers": speakers,
        "n_replicates": args.bootstrap,
        "seed": args.seed,
    }
    if args.output is None:
        results = compute_results(**settings)
    else:
        results = evaluate_scores(
            output_folder=args.output,
            extra={"scores_file": str(args.scores)},
            **settings,
        )
    print(format_table([results]))
    if args.output is not None:
        print(f"\nWrote {pathlib.Path(args.output) / 'results.json'}")
