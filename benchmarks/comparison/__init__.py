"""The loss comparison harness behind ``benchmarks/compare_losses.py``.

One module per job; ``learning_curves.py``, ``sinctdnn_ablation.py`` and
``speechbrain_recipe.py`` reuse some of them:

``systems``
    The compared systems (``SYSTEMS``) and the training budget (``Budget``).
``corpus``
    Paths (``Layout``), decoded audio, the test-side variants.
``runs``
    ``train.py`` commands, one-thread child processes (``run_logged``),
    ``run_all``.
``evaluation``
    ``evaluate_run``: a trained run scored on the clean and modified trials,
    and its adaptive s-norm.
``references``
    The reference points (log-mel, resemblyzer) and their scoring.
``throughput``
    Seconds per step and per second of audio; the budget arithmetic.
``results``
    The summary of what has finished; paired tests against AAM.
``plots``
    The DET figure of the report.
``report``
    ``REPORT.md``, ``summary.json`` and the BENCHMARKS.md section.
``cli``
    Options and entry-point helpers the benchmark scripts share.

Generic statistics (mean ± sd, t-intervals, p-value cells, paired
bootstrap) are in ``speaker_metric_learning.scoring``.
"""
