"""The fair comparison on real speech: six losses and two SpeechBrain baselines.

Every system is trained by ``train.py`` at the same budget on the
speechocean762 training speakers and evaluated on the dev trial list:

* the six losses of Coria et al. (2020) on SincTDNN (``hparams/<loss>.yaml``);
* two baselines built from SpeechBrain's own modules in our recipe, trained
  with the same AAM loss: Fbank + x-vector (``hparams/xvector.yaml``) and
  Fbank + ECAPA-TDNN (``hparams/ecapa.yaml``).

Same data, same chunk length, same number of chunks per batch (P speakers x
K chunks: K = 1 for the classification losses, K = 4 for the pair losses,
as in their yaml files), same number of optimizer steps, same learning rate
and optimizer, same augmentation (none: no noise corpus is available
offline), same evaluation (whole utterances, cosine scoring). Each system is
trained with several seeds. Two reference points are scored on the same
trials, outside the comparison: mean+std log-mel (training-free, see
``benchmarks/logmel_baseline.py``) and ``resemblyzer``'s pretrained GE2E
encoder (``pip install resemblyzer "setuptools<81"``; skipped when absent).

Robustness: every model is also scored with the test side of each trial
replaced by a seeded, deterministic variant: cut to 1 s or 2 s (random
offset per utterance; shorter utterances stay whole) or with white Gaussian
noise added at 5 dB SNR (power of the whole utterance).

Statistics: mean and standard deviation over seeds of EER and minDCF
(p_target 0.01, normalised); 95 % bootstrap CIs of every run
(``results.json``); a paired bootstrap of the difference to AAM (same
resampled trials for every run of both systems, difference of the seed
means; ``speaker_metric_learning.scoring.significance``).

Usage (from the repository root; everything lands in ``--output``)::

    PYTHONPATH=plugin:. python benchmarks/compare_losses.py throughput
    PYTHONPATH=plugin:. python benchmarks/compare_losses.py run --jobs 2
    PYTHONPATH=plugin:. python benchmarks/compare_losses.py report

``run`` resumes: a run whose training finished (``wall_time.json`` records
it) is not trained again, an interrupted training resumes from its last
checkpoint (SpeechBrain's checkpointer), and results folders already written
(clean, robustness, references) are kept. ``train.py`` trains; the
``evaluate-run`` step then scores the run from its last checkpoint exactly as
``train.py`` would (same embedding settings, cosine scoring,
``evaluate_scores``), the clean trials and the modified ones in one process,
so that the clean embeddings serve both. The audio is decoded once into
float32 WAV copies (the same samples as ``soundfile`` decodes from the Opus
files; decoding Opus cost a third of a training step).

``report`` writes ``REPORT.md``, ``summary.json`` and ``det.png`` from
whatever has finished. The decoded audio, the test-side
variants and the reference points do not depend on the budget: they live in
``--shared`` (delete its ``reference`` folder after changing
``--variant_seed``).

This file is the command line; the code is in ``benchmarks/comparison``,
one module per job (see its package docstring).
"""

import argparse
import dataclasses

import torch

from comparison.cli import corpus_arguments, exit_on_error, jobs_argument
from comparison.corpus import Layout
from comparison.evaluation import evaluate_run
from comparison.references import REFERENCES, evaluate_reference
from comparison.report import write_report
from comparison.runs import run_all
from comparison.systems import SYSTEMS, Budget
from comparison.throughput import write_throughput


def parse_arguments(argv=None):
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "command",
        choices=[
            "run",
            "report",
            "throughput",
            "evaluate-run",
            "evaluate-reference",
        ],
    )
    parser.add_argument("target", nargs="?", help="run folder / reference")
    corpus_arguments(parser, "compare")
    parser.add_argument(
        "--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS)
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument(
        "--references",
        nargs="*",
        default=list(REFERENCES),
        choices=list(REFERENCES),
    )
    jobs_argument(parser)
    parser.add_argument("--variant_seed", type=int, default=0)
    parser.add_argument(
        "--title",
        default="Loss comparison on speechocean762",
        help="heading of the report (and of its BENCHMARKS.md section)",
    )
    parser.add_argument("--throughput_steps", type=int, default=5)
    parser.add_argument(
        "--benchmarks_file",
        help="also put the report into this Markdown file (e.g. "
        "BENCHMARKS.md), replacing its section of the same heading",
    )
    for field in dataclasses.fields(Budget):
        parser.add_argument(
            f"--{field.name}", type=type(field.default), default=field.default
        )
    return parser.parse_args(argv)


def main(argv=None):
    """Runs one command: ``run``, ``report``, ``throughput`` or a sub-step
    (``evaluate-run``, ``evaluate-reference``)."""
    args = parse_arguments(argv)
    budget = Budget(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(Budget)}
    )
    layout = Layout(args.output, args.data, args.shared)
    torch.set_num_threads(1)
    if args.command == "run":
        run_all(args, budget, layout)
        write_report(args, budget, layout)
    elif args.command == "report":
        write_report(args, budget, layout)
    elif args.command == "throughput":
        write_throughput(layout, budget, args.systems, args.throughput_steps)
    elif args.command == "evaluate-run":
        evaluate_run(args.target, layout)
    elif args.command == "evaluate-reference":
        evaluate_reference(args.target, layout)


if __name__ == "__main__":
    exit_on_error(main)
