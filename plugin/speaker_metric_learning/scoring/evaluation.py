"""One evaluation: embed the utterances of a trial list, score, measure.

``train.py`` (after training), ``score-model`` (any model folder, run or
checkpoint) and the benchmark harness evaluate models the same way: embed
every utterance with the run's evaluation settings (``eval_batch_size``,
``eval_window_seconds``, ``eval_step_seconds``, ``eval_max_seconds``),
score each trial by the cosine of its two embeddings, and compute (and
write) the metrics of ``results.json``. :func:`evaluate` is that path;
:func:`evaluation_settings` reads the settings off a run's hyperparameters
so that no caller lists them by hand.

Authors
 * speaker_metric_learning developers
"""

from speaker_metric_learning.scoring.compare import (
    compute_results,
    evaluate_scores,
)
from speaker_metric_learning.scoring.cosine import cosine_scores
from speaker_metric_learning.scoring.embeddings import extract_embeddings


def evaluation_settings(hparams):
    """The embedding settings of a run's evaluation, for
    :func:`evaluate` or ``extract_embeddings``.

    Arguments
    ---------
    hparams : mapping
        A run's hyperparameters (``train.py``'s yaml keys).

    Returns
    -------
    dict
        ``batch_size``, ``window``, ``step``, ``max_seconds``,
        ``sample_rate``.

    Example
    -------
    >>> evaluation_settings({"eval_batch_size": 8, "eval_window_seconds": 3.0,
    ...     "eval_step_seconds": 0.1, "eval_max_seconds": 60.0,
    ...     "sample_rate": 16000})["window"]
    3.0
    """
    return {
        "batch_size": hparams["eval_batch_size"],
        "window": hparams["eval_window_seconds"],
        "step": hparams["eval_step_seconds"],
        "max_seconds": hparams["eval_max_seconds"],
        "sample_rate": hparams["sample_rate"],
    }


def evaluate(
    model,
    utterances,
    trials,
    output_folder=None,
    system_name="system",
    extra=None,
    n_replicates=1000,
    seed=0,
    **embedding,
):
    """Embeds ``utterances``, scores ``trials`` by cosine and measures them.

    Arguments
    ---------
    model : torch.nn.Module
        ``forward(wavs [B, T], lengths [B]) -> [B, 1, D]``; put in eval
        mode for the extraction.
    utterances : dataset or iterable
        The utterances of the trial list (see ``extract_embeddings``).
    trials : speaker_metric_learning.scoring.trials.TrialList
        The trial list.
    output_folder : str or pathlib.Path, optional
        Results folder to write (``results.json``, scores, figures); None
        only computes the results.
    system_name : str
        Name of the system in tables and figures.
    extra : dict, optional
        Recorded in ``results.json``.
    n_replicates : int
        Bootstrap replicates of the confidence intervals.
    seed : int
        Seed of the bootstrap.
    **embedding
        ``extract_embeddings`` options: ``batch_size``, ``window``,
        ``step``, ``max_seconds``, ``sample_rate``, ``device``,
        ``cache_dir``, ``progress`` (see :func:`evaluation_settings`).

    Returns
    -------
    results : dict
        The content of ``results.json``.
    embeddings : tuple
        ``(ids, [N, D] tensor)`` of the utterances, e.g. for
        normalisation against a cohort.

    Example
    -------
    >>> import torch
    >>> from speaker_metric_learning.scoring.trials import TrialList
    >>> class Mean(torch.nn.Module):
    ...     def forward(self, wavs, lengths):
    ...         return torch.stack([wavs.mean(1), wavs.std(1)], -1)[:, None]
    >>> trials = TrialList.from_lines(["1 a b", "0 a c", "1 c d", "0 b d"])
    >>> utterances = [(i, torch.randn(100, generator=torch.Generator(
    ...     ).manual_seed(n))) for n, i in enumerate("abcd")]
    >>> results, (ids, vectors) = evaluate(Mean(), utterances, trials,
    ...     n_replicates=10, progress=False)
    >>> ids, vectors.shape, 0 <= results["eer"]["value"] <= 1
    (['a', 'b', 'c', 'd'], torch.Size([4, 2]), True)
    """
    embeddings = extract_embeddings(model, utterances, **embedding)
    results = measure(
        cosine_scores(trials, embeddings),
        trials,
        output_folder,
        system_name,
        extra=extra,
        n_replicates=n_replicates,
        seed=seed,
    )
    return results, embeddings


def measure(scores, trials, output_folder, system_name, **settings):
    """The results of scored trials, written to ``output_folder`` unless it
    is None.

    Arguments
    ---------
    scores : array-like
        One score per trial.
    trials : speaker_metric_learning.scoring.trials.TrialList
        The trial list.
    output_folder : str or pathlib.Path, optional
        Results folder (``evaluate_scores``); None: ``compute_results``.
    system_name : str
        Name of the system.
    **settings
        ``n_replicates``, ``seed``, ``extra``, ... (``compute_results``).

    Returns
    -------
    dict

    Example
    -------
    >>> from speaker_metric_learning.scoring.trials import TrialList
    >>> trials = TrialList.from_lines(["1 a b", "0 a c"])
    >>> measure([0.9, 0.1], trials, None, "toy", n_replicates=5)["eer"]["value"]
    0.0
    """
    if output_folder is None:
        return compute_results(scores, trials, system_name, **settings)
    return evaluate_scores(
        scores, trials, output_folder, system_name, **settings
    )
