"""Paired bootstrap comparison of two systems scored on the same trials.

Two systems evaluated on one trial list make paired observations: a hard
trial is hard for both. ``paired_bootstrap`` resamples the trials once per
replicate (targets and non-targets separately, so that both counts are kept)
and applies the *same* resampled trials to every run of both systems, so the
spread of the difference reflects the trial sample and not the two samples
twice. Each system may have several runs (e.g. training seeds): a
replicate's metric of a system is the mean over its runs.

The p-value is two-sided, from the bootstrap distribution of the difference
(``B - A``): twice the smaller fraction of replicates on either side of 0,
with the usual +1 correction (``(k + 1) / (n + 1)``), so it is never 0 and
its resolution is ``2 / (n_replicates + 1)``. It answers "would another
sample of trials from the same population reverse the sign?", not "would
another training seed?": the runs' spread is in the per-system mean and
standard deviation.

The observed difference uses ``metrics.equal_error_rate`` and the
normalised ``metrics.minimum_dcf`` (the values of ``results.json``).
Replicate metrics use the same definitions with float64 rates, computed from
the weighted cumulative counts of ``metrics`` (one sort per run, blocks of
replicates at once); they may break exact ties between two thresholds
differently from SpeechBrain's float32 loop (half an error step at most).
"""

import numpy as np

from speaker_metric_learning.scoring.metrics import (
    _group_ends,
    _multinomial_counts,
    _weighted_error_rates,
    as_labels,
    as_scores,
    equal_error_rate,
    minimum_dcf,
    split_scores,
    trivial_cost,
)


def weighted_metrics(scores, labels, weights, p_target=0.01):
    """EER and normalised minDCF of each row of trial weights.

    Row ``r`` counts trial ``i`` ``weights[r, i]`` times, as if the trial
    list held that many copies of it (a bootstrap resample).

    Arguments
    ---------
    scores : array-like
        One score per trial.
    labels : array-like
        1 (or True) for a target trial, 0 for a non-target trial.
    weights : numpy.ndarray
        ``[replicates, trials]`` non-negative integer counts, in trial order.
    p_target : float
        Target prior of the minDCF (``c_miss = c_fa = 1``, normalised by the
        cost of the best trivial system).

    Returns
    -------
    eer, min_dcf : numpy.ndarray
        ``[replicates]`` float64 values.

    Example
    -------
    >>> scores = np.array([0.1, 0.4, 0.35, 0.8])
    >>> labels = np.array([0, 0, 1, 1])
    >>> weights = np.array([[1, 1, 1, 1], [1, 0, 1, 1], [0, 2, 1, 1]])
    >>> eer, _ = weighted_metrics(scores, labels, weights)
    >>> eer.tolist()  # row 2: without the non-target at 0.4, no confusion
    [0.5, 0.0, 0.75]
    """
    scores = as_scores(scores)
    is_target = as_labels(labels, len(scores))
    weights = np.asarray(weights)
    order = np.argsort(scores, kind="stable")
    p_miss, p_fa, present = _weighted_error_rates(
        weights[:, order], is_target[order], _group_ends(scores[order])
    )
    gap = np.where(present, np.abs(p_fa - p_miss), np.inf)
    best = np.argmin(gap, axis=1)[:, None]
    eer = np.take_along_axis(p_fa + p_miss, best, axis=1)[:, 0] / 2
    cost = p_miss * p_target + p_fa * (1 - p_target)
    min_dcf = np.where(present, cost, np.inf).min(axis=1)
    return eer, min_dcf / trivial_cost(p_target)


def stratified_weights(is_target, n_replicates, rng):
    """Bootstrap trial counts, targets and non-targets drawn separately.

    Arguments
    ---------
    is_target : numpy.ndarray
        Boolean label of each trial.
    n_replicates : int
        Number of resamples.
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    numpy.ndarray
        ``[n_replicates, trials]`` int32 counts; each row keeps the number of
        targets and of non-targets.

    Example
    -------
    >>> is_target = np.array([True, False, False, True, False])
    >>> weights = stratified_weights(is_target, 3, np.random.default_rng(0))
    >>> weights[:, is_target].sum(axis=1).tolist()
    [2, 2, 2]
    >>> weights[:, ~is_target].sum(axis=1).tolist()
    [3, 3, 3]
    """
    weights = np.zeros((n_replicates, len(is_target)), dtype=np.int32)
    for members in (np.flatnonzero(is_target), np.flatnonzero(~is_target)):
        weights[:, members] = _multinomial_counts(
            rng, n_replicates, len(members)
        )
    return weights


def paired_bootstrap(
    reference_runs,
    other_runs,
    labels,
    n_replicates=1000,
    confidence=0.95,
    p_target=0.01,
    seed=0,
):
    """Paired bootstrap of the difference of EER and minDCF of two systems.

    Arguments
    ---------
    reference_runs : list of array-like
        Scores of each run of system A (e.g. one per seed), trial order.
    other_runs : list of array-like
        Scores of each run of system B on the same trials.
    labels : array-like
        1 for a target trial, 0 for a non-target trial.
    n_replicates : int
        Bootstrap replicates.
    confidence : float
        Coverage of the interval of the difference.
    p_target : float
        Target prior of the normalised minDCF.
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict
        For ``"eer"`` and ``"min_dcf"``: ``difference`` (mean of B's runs
        minus mean of A's runs, on the full trial list), ``ci`` (percentile
        interval of the replicate differences) and ``p_value`` (two-sided,
        see the module docstring); plus ``n_replicates``, ``confidence``,
        ``p_target``, ``seed``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> labels = np.arange(4000) < 1000
    >>> good = rng.normal(size=4000) + 3 * labels
    >>> bad = good + rng.normal(size=4000)  # same trials, plus noise
    >>> test = paired_bootstrap([good], [bad], labels, n_replicates=200)
    >>> test["eer"]["difference"] > 0, test["eer"]["p_value"] < 0.01
    (True, True)
    >>> paired_bootstrap([good], [good], labels, n_replicates=50)["eer"]
    {'difference': 0.0, 'ci': [0.0, 0.0], 'p_value': 1.0}
    """
    runs = [as_scores(scores) for scores in [*reference_runs, *other_runs]]
    if not reference_runs or not other_runs:
        raise ValueError("Give at least one run of each system.")
    is_target = as_labels(labels, len(runs[0]))
    if any(len(scores) != len(is_target) for scores in runs):
        raise ValueError(
            "Every run must score the same trials: got "
            f"{sorted({len(s) for s in runs})} scores for {len(is_target)} "
            "labels."
        )
    if is_target.all() or not is_target.any():
        raise ValueError("The bootstrap needs target and non-target trials.")
    n_reference = len(reference_runs)

    def difference(per_run):
        per_run = np.asarray(per_run)
        return per_run[n_reference:].mean(0) - per_run[:n_reference].mean(0)

    observed = []
    for scores in runs:
        positive, negative = split_scores(scores, is_target)
        min_dcf, _ = minimum_dcf(positive, negative, p_target)
        observed.append(
            (
                equal_error_rate(positive, negative)[0],
                min_dcf / trivial_cost(p_target),
            )
        )
    rng = np.random.default_rng(seed)
    block = max(1, 4_000_000 // len(is_target))
    replicates = {"eer": [], "min_dcf": []}
    for start in range(0, n_replicates, block):
        weights = stratified_weights(
            is_target, min(block, n_replicates - start), rng
        )
        metrics = [
            weighted_metrics(s, is_target, weights, p_target) for s in runs
        ]
        for column, name in enumerate(("eer", "min_dcf")):
            replicates[name].append(difference([m[column] for m in metrics]))
    tail = 100 * (1 - confidence) / 2
    results = {}
    for column, name in enumerate(("eer", "min_dcf")):
        values = np.concatenate(replicates[name])
        low, high = np.percentile(values, [tail, 100 - tail])
        below, above = np.sum(values <= 0), np.sum(values >= 0)
        p_value = 2 * (min(below, above) + 1) / (len(values) + 1)
        results[name] = {
            "difference": float(difference([o[column] for o in observed])),
            "ci": [float(low), float(high)],
            "p_value": float(min(1.0, p_value)),
        }
    return {
        **results,
        "n_replicates": n_replicates,
        "confidence": confidence,
        "p_target": p_target,
        "seed": seed,
    }


def format_p_value(p_value, n_replicates):
    """A bootstrap p-value in a table cell: ``"≤ floor"`` at the resolution
    of the bootstrap (``2 / (n_replicates + 1)``, the smallest p-value of
    ``paired_bootstrap``), else 3 digits below 0.01 and 2 above.

    Arguments
    ---------
    p_value : float
        The p-value.
    n_replicates : int
        Replicates of the bootstrap that gave it.

    Returns
    -------
    str
        The p-value as it reads in a report.

    Example
    -------
    >>> format_p_value(2 / 1001, 1000), format_p_value(0.25, 1000)
    ('≤ 0.002', '0.25')
    >>> format_p_value(0.004, 1000)
    '0.004'
    """
    floor = 2 / (n_replicates + 1)
    if p_value <= floor * (1 + 1e-9):
        return f"≤ {floor:.3f}"
    return f"{p_value:.3f}" if p_value < 0.01 else f"{p_value:.2f}"


def significance_groups(tests, metric="eer", alpha=0.05):
    """Splits the systems tested against one reference by the outcome of
    their paired bootstrap.

    Arguments
    ---------
    tests : dict
        ``{system: paired_bootstrap(reference runs, system runs, ...)}``.
    metric : str
        ``"eer"`` or ``"min_dcf"``.
    alpha : float
        Level of the two-sided test.

    Returns
    -------
    dict
        ``"higher"``: systems whose metric is significantly higher than
        the reference's (difference > 0, p < alpha), ``"lower"``:
        significantly lower, ``"not significant"``: the others; each a
        list in the order of ``tests``.

    Example
    -------
    >>> def test(difference, p_value):
    ...     return {"eer": {"difference": difference, "p_value": p_value}}
    >>> significance_groups(
    ...     {"a": test(0.02, 0.01), "b": test(-0.01, 0.2), "c": test(-0.03, 0)}
    ... )
    {'higher': ['a'], 'lower': ['c'], 'not significant': ['b']}
    """
    groups = {"higher": [], "lower": [], "not significant": []}
    for system, test in tests.items():
        difference, p_value = (
            test[metric][k] for k in ("difference", "p_value")
        )
        if p_value >= alpha:
            groups["not significant"].append(system)
        elif difference > 0:
            groups["higher"].append(system)
        else:
            groups["lower"].append(system)
    return groups
