"""What the command lines of the benchmark scripts share.

Owns the corpus options of every script trained on speechocean762
(``--data``, ``--output``, ``--shared``), ``--jobs``, the parser and the
``run`` / ``report`` dispatch of ``learning_curves.py`` and
``sinctdnn_ablation.py``, and the exit of a script on a user error (a
message, no traceback).
"""

import argparse

from comparison.corpus import Layout
from comparison.systems import ROOT
from speaker_metric_learning.command_line import exit_on


def corpus_arguments(parser, output_name):
    """``--data``, ``--output`` (``benchmarks/results/<output_name>``) and
    ``--shared`` of the benchmark scripts trained on speechocean762."""
    parser.add_argument(
        "--data",
        default=str(ROOT.parent / "shared" / "data" / "speechocean762"),
        help="corpus root with train/wav, dev/wav, dev/trials.txt",
    )
    parser.add_argument(
        "--output",
        default=str(ROOT / "benchmarks" / "results" / output_name),
    )
    parser.add_argument(
        "--shared",
        default=str(ROOT / "benchmarks" / "results" / "compare_shared"),
        help="decoded audio, test-side variants and reference points "
        "(independent of the budget, shared by output folders)",
    )


def jobs_argument(parser):
    """``--jobs``: how many runs at once (one thread each)."""
    parser.add_argument(
        "--jobs", type=int, default=2, help="runs at once (one thread each)"
    )


def run_report_parser(doc, output_name):
    """The parser of a ``run`` / ``report`` script: its description (the
    first line of the script's docstring ``doc``), the command and the
    ``corpus_arguments``; the script adds its own options, then
    ``jobs_argument``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("command", choices=["run", "report"])
    corpus_arguments(parser, output_name)
    return parser


def run_then_report(args, run_all, write_report):
    """The ``run`` / ``report`` commands of a benchmark script.

    Arguments
    ---------
    args : argparse.Namespace
        The script's options: ``command`` (``"run"`` or ``"report"``) and
        those of ``corpus_arguments``.
    run_all : callable
        ``run_all(args, layout)``: every missing run.
    write_report : callable
        ``write_report(args, layout)``: the report of what has finished,
        written after ``run`` and alone for ``report``.
    """
    layout = Layout(args.output, args.data, args.shared)
    if args.command == "run":
        run_all(args, layout)
    write_report(args, layout)


def exit_on_error(main):
    """Calls ``main()``; a ``FileNotFoundError`` or ``ValueError`` (a
    wrong option or folder) ends the script as the package's commands end
    (``speaker_metric_learning.command_line``): one ``error:`` line, exit
    code 1, no traceback."""
    with exit_on(FileNotFoundError, ValueError):
        main()
