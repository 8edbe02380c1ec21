"""Speaker verification metrics: EER, detection costs, Cllr, bootstrap CIs.

Every metric is computed from one sort of the pooled scores, in O(n log n)
time and O(n) memory, so the official VoxCeleb lists (and far larger ones) are
scored in well under a second.

Decision convention (the one of ``speechbrain.utils.metric_stats``): a trial is
*accepted* when its score is strictly above the threshold ``t``, so at ``t``

* miss rate ``P_miss(t) = #{target scores <= t} / #targets``,
* false-alarm rate ``P_fa(t) = #{non-target scores > t} / #non-targets``.

``equal_error_rate`` and ``minimum_dcf`` reproduce, value for value and
threshold for threshold, ``speechbrain.utils.metric_stats.EER`` and
``minDCF`` (whose loops are quadratic in the number of trials), including their
float32 rate arithmetic and their handling of tied scores, so numbers from
this package and from SpeechBrain recipes are directly comparable.

Scores may be given as torch tensors, numpy arrays or lists. float32 and
float64 inputs keep their dtype (it decides which scores tie), half precision
is widened to float32, anything else (lists, integers) is read as float64.

One file: the DET curve, EER, minDCF, minCllr and the bootstrap are all
read off one sweep of the sorted scores (``ScoreSweep``, ``_group_ends``),
with one decision convention and one handling of tied scores; the
bootstrap recomputes EER and minDCF with weighted counts over the scores
sorted once. Apart, each module would import the sweep's private helpers,
and the convention that makes the values equal SpeechBrain's would be
spread over several files.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

#: Target priors of the usual detection-cost operating points (VoxSRC, NIST
#: SRE), with ``c_miss = c_fa = 1``.
DCF_PRIORS = (0.01, 0.05)


def as_scores(scores, name="scores"):
    """Returns scores as a finite, flat float32 or float64 numpy array.

    Arguments
    ---------
    scores : torch.Tensor, numpy.ndarray or sequence of numbers
        The scores.
    name : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        The scores, flattened.

    Raises
    ------
    ValueError
        If there are no scores or one of them is NaN or infinite.

    Example
    -------
    >>> as_scores([0.5, 1]).dtype
    dtype('float64')
    >>> as_scores(torch.ones(2, 1, dtype=torch.float16)).dtype
    dtype('float32')
    """
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu()
        if scores.is_floating_point() and scores.dtype != torch.float64:
            scores = scores.float()
        scores = scores.numpy()
    array = np.asarray(scores).reshape(-1)
    if array.dtype not in (np.float32, np.float64):
        widened = np.float32 if array.dtype == np.float16 else np.float64
        array = array.astype(widened)
    if array.size == 0:
        raise ValueError(f"{name} is empty: at least one score is needed.")
    not_finite = ~np.isfinite(array)
    if not_finite.any():
        index = int(np.flatnonzero(not_finite)[0])
        raise ValueError(
            f"{name}[{index}] is {array[index]}: scores must be finite."
        )
    return array


def split_scores(scores, labels):
    """Splits scores into target and non-target scores by their labels.

    Arguments
    ---------
    scores : tensor, array or sequence
        One score per trial.
    labels : tensor, array or sequence
        One label per trial: 1 (or True) for a target, 0 for a non-target.

    Returns
    -------
    positive_scores : numpy.ndarray
        Scores of the target trials.
    negative_scores : numpy.ndarray
        Scores of the non-target trials.

    Example
    -------
    >>> split_scores([0.9, 0.1, 0.4], [1, 0, 0])
    (array([0.9]), array([0.1, 0.4]))
    """
    scores = as_scores(scores)
    is_target = as_labels(labels, len(scores))
    return scores[is_target], scores[~is_target]


def as_labels(labels, n_trials):
    """Returns trial labels as a boolean array (True for a target trial).

    Arguments
    ---------
    labels : tensor, array or sequence
        0/1 or boolean labels.
    n_trials : int
        Expected number of labels.

    Returns
    -------
    numpy.ndarray
        Boolean array of length ``n_trials``.

    Example
    -------
    >>> as_labels([1, 0], 2)
    array([ True, False])
    """
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels).reshape(-1)
    if labels.size != n_trials:
        raise ValueError(
            f"There are {labels.size} labels for {n_trials} scores: give one "
            "label per score."
        )
    if labels.dtype != bool:
        wrong = (labels != 0) & (labels != 1)
        if wrong.any():
            index = int(np.flatnonzero(wrong)[0])
            raise ValueError(
                f"labels[{index}] is {labels[index]}: labels must be 0 "
                "(non-target) or 1 (target)."
            )
    return labels.astype(bool)


@dataclass
class ScoreSweep:
    """Error counts at every distinct score, used as decision threshold.

    Arguments
    ---------
    thresholds : numpy.ndarray
        The distinct scores in increasing order (dtype of the scores).
    misses : numpy.ndarray
        Number of target scores ``<=`` each threshold.
    false_alarms : numpy.ndarray
        Number of non-target scores ``>`` each threshold.
    n_targets : int
        Number of target trials.
    n_nontargets : int
        Number of non-target trials.

    Example
    -------
    >>> sweep = ScoreSweep.from_scores([0.2, 0.7], [0.2, 0.1])
    >>> sweep.thresholds.tolist(), sweep.misses.tolist()
    ([0.1, 0.2, 0.7], [0, 1, 2])
    >>> sweep.false_alarms.tolist()
    [1, 0, 0]
    """

    thresholds: np.ndarray
    misses: np.ndarray
    false_alarms: np.ndarray
    n_targets: int
    n_nontargets: int

    @classmethod
    def from_scores(cls, positive_scores, negative_scores):
        """Sorts the pooled scores once and counts errors at each of them.

        Only the values are sorted (no argsort); the smaller class is then
        located among the distinct scores by binary search.

        Arguments
        ---------
        positive_scores : tensor, array or sequence
            Scores of target trials.
        negative_scores : tensor, array or sequence
            Scores of non-target trials.

        Returns
        -------
        ScoreSweep
            The error counts.

        Example
        -------
        >>> ScoreSweep.from_scores([1, 1], [1]).misses.tolist()
        [2]
        """
        positive = as_scores(positive_scores, "positive_scores")
        negative = as_scores(negative_scores, "negative_scores")
        dtype = np.result_type(positive, negative)
        pooled = np.sort(np.concatenate([positive, negative]).astype(dtype))
        group_ends = _group_ends(pooled)
        thresholds = pooled[group_ends]
        smaller = positive if positive.size <= negative.size else negative
        groups = np.searchsorted(thresholds, np.sort(smaller.astype(dtype)))
        smaller_below = np.cumsum(
            np.bincount(groups, minlength=len(thresholds))
        )
        other_below = group_ends + 1 - smaller_below
        if smaller is positive:
            targets_below, nontargets_below = smaller_below, other_below
        else:
            targets_below, nontargets_below = other_below, smaller_below
        return cls(
            thresholds=thresholds,
            misses=targets_below,
            false_alarms=negative.size - nontargets_below,
            n_targets=positive.size,
            n_nontargets=negative.size,
        )

    def error_rates(self):
        """Returns the miss and false-alarm rates as SpeechBrain computes them.

        Returns
        -------
        p_miss : numpy.ndarray
            float32 miss rate at each threshold.
        p_fa : numpy.ndarray
            float32 false-alarm rate at each threshold.

        Example
        -------
        >>> ScoreSweep.from_scores([0.2, 0.7], [0.1]).error_rates()[0]
        array([0. , 0.5, 1. ], dtype=float32)
        """
        p_miss = self.misses.astype(np.float32) / np.float32(self.n_targets)
        p_fa = self.false_alarms.astype(np.float32) / np.float32(
            self.n_nontargets
        )
        return p_miss, p_fa

    def target_counts(self):
        """Returns the number of target and non-target scores at each value.

        Returns
        -------
        targets : numpy.ndarray
            Number of target scores equal to each threshold.
        nontargets : numpy.ndarray
            Number of non-target scores equal to each threshold.

        Example
        -------
        >>> ScoreSweep.from_scores([0.2, 0.7], [0.2]).target_counts()
        (array([1, 1]), array([1, 0]))
        """
        targets = np.diff(self.misses, prepend=0)
        nontargets = -np.diff(self.false_alarms, prepend=self.n_nontargets)
        return targets, nontargets


def _group_ends(sorted_values):
    """Index of the last element of each run of equal values."""
    is_last = np.ones(sorted_values.shape[-1], dtype=bool)
    is_last[:-1] = sorted_values[1:] != sorted_values[:-1]
    return np.flatnonzero(is_last)


def det_curve(positive_scores, negative_scores):
    """Computes the detection error trade-off: error rates at every threshold.

    Arguments
    ---------
    positive_scores : tensor, array or sequence
        Scores of target trials.
    negative_scores : tensor, array or sequence
        Scores of non-target trials.

    Returns
    -------
    p_miss : numpy.ndarray
        float64 miss rate at each distinct score (increasing).
    p_fa : numpy.ndarray
        float64 false-alarm rate at each distinct score (decreasing).
    thresholds : numpy.ndarray
        The distinct scores, in increasing order.

    Example
    -------
    >>> p_miss, p_fa, thresholds = det_curve([0.7, 0.2], [0.1, 0.5])
    >>> p_miss.tolist(), p_fa.tolist()
    ([0.0, 0.5, 0.5, 1.0], [0.5, 0.5, 0.0, 0.0])
    """
    sweep = ScoreSweep.from_scores(positive_scores, negative_scores)
    p_miss = sweep.misses / sweep.n_targets
    p_fa = sweep.false_alarms / sweep.n_nontargets
    return p_miss, p_fa, sweep.thresholds


def equal_error_rate(positive_scores, negative_scores):
    """Computes the equal error rate (EER) and its threshold.

    Definition (identical to ``speechbrain.utils.metric_stats.EER``): among
    the candidate thresholds ``t`` -- every distinct score and the midpoint of
    every two consecutive distinct scores, in increasing order -- take the
    first one that minimises ``|P_fa(t) - P_miss(t)|`` (rates in float32,
    accept when score > t, see the module docstring); the EER is the mean
    ``(P_fa(t) + P_miss(t)) / 2`` at that threshold. There is no
    interpolation between operating points: when the two rates never meet
    exactly, the EER is the average of the two rates at the closest point.
    A midpoint has the error counts of the distinct score below it, so it is
    only returned when float32 rounding makes SpeechBrain's loop move on to it.

    Runs in O(n log n) time and O(n) memory (SpeechBrain: O(n^2) time).

    Arguments
    ---------
    positive_scores : tensor, array or sequence
        Scores of target (same speaker) trials.
    negative_scores : tensor, array or sequence
        Scores of non-target trials.

    Returns
    -------
    eer : float
        The equal error rate, in [0, 1].
    threshold : float
        The threshold at which it is reached.

    Example
    -------
    >>> equal_error_rate([0.6, 0.7, 0.8, 0.5], [0.4, 0.3, 0.2, 0.1])
    (0.0, 0.4)
    >>> equal_error_rate([0.6, 0.7, 0.8, 0.3], [0.4, 0.5, 0.2, 0.1])
    (0.25, 0.4)
    """
    sweep = ScoreSweep.from_scores(positive_scores, negative_scores)
    p_miss, p_fa = sweep.error_rates()
    best, moved_to_midpoint = _speechbrain_eer_index(p_miss, p_fa)
    threshold = sweep.thresholds[best]
    if moved_to_midpoint and best + 1 < len(sweep.thresholds):
        following = sweep.thresholds[best + 1]
        midpoint = (threshold + following) / threshold.dtype.type(2)
        if midpoint != following:
            threshold = midpoint
    eer = (float(p_fa[best]) + float(p_miss[best])) / 2
    return eer, float(threshold)


def _speechbrain_eer_index(p_miss, p_fa):
    """Replays SpeechBrain's EER loop without looping over thresholds.

    SpeechBrain keeps the first threshold and replaces the current best one
    whenever ``float32(|P_fa - P_miss|) < |best P_fa - best P_miss|``, the
    right side being computed exactly (in float64). Every float32 value below
    the running minimum triggers a replacement, so the final best index holds
    the global float32 minimum ``low``. Among the indices holding ``low``
    the loop moves from one to the next as long as ``low`` is below the
    exact gap of the current one, so the answer is the first of them whose
    exact gap is ``<= low``, or the last of them.

    Returns
    -------
    index : int
        Index (among distinct scores) of the threshold SpeechBrain keeps.
    moved_to_midpoint : bool
        True when the loop also moves on to the following midpoint, which has
        the same error counts (the last index holding ``low`` has an exact
        gap above ``low``).
    """
    rounded_gap = np.abs(p_fa - p_miss)
    low = rounded_gap.min()
    holders = np.flatnonzero(rounded_gap == low)
    exact_gap = np.abs(
        p_fa[holders].astype(np.float64) - p_miss[holders].astype(np.float64)
    )
    settled = np.flatnonzero(exact_gap <= low)
    if settled.size:
        return int(holders[settled[0]]), False
    return int(holders[-1]), True


def minimum_dcf(
    positive_scores,
    negative_scores,
    p_target=0.01,
    c_miss=1.0,
    c_fa=1.0,
    normalized=False,
):
    """Computes the minimum detection cost function (minDCF) and its threshold.

    ``C_det(t) = c_miss * P_miss(t) * p_target + c_fa * P_fa(t) * (1 -
    p_target)``, minimised over the same candidate thresholds as
    ``equal_error_rate``, with SpeechBrain's float32 arithmetic, and the first
    minimising threshold (always a score value: a midpoint has the costs of
    the score below it). With ``normalized=False`` (the default) the value is
    exactly ``speechbrain.utils.metric_stats.minDCF``; with
    ``normalized=True`` it is divided by ``min(c_miss * p_target, c_fa * (1 -
    p_target))``, the cost of the best decision without scores, as NIST and
    VoxSRC report it.

    Arguments
    ---------
    positive_scores : tensor, array or sequence
        Scores of target trials.
    negative_scores : tensor, array or sequence
        Scores of non-target trials.
    p_target : float
        Prior probability of a target trial (usual: ``DCF_PRIORS``).
    c_miss : float
        Cost of a miss.
    c_fa : float
        Cost of a false alarm.
    normalized : bool
        Divide by the cost of the best decision without scores.

    Returns
    -------
    min_dcf : float
        The minimum detection cost.
    threshold : float
        The threshold at which it is reached.

    Example
    -------
    >>> minimum_dcf([0.6, 0.7, 0.8, 0.5], [0.4, 0.3, 0.2, 0.1])
    (0.0, 0.4)
    >>> cost, threshold = minimum_dcf([0.6, 0.3], [0.4, 0.1], p_target=0.5)
    >>> round(cost, 6), threshold
    (0.25, 0.1)
    >>> round(minimum_dcf([0.6, 0.3], [0.4, 0.1], 0.5, normalized=True)[0], 6)
    0.5
    """
    sweep = ScoreSweep.from_scores(positive_scores, negative_scores)
    p_miss, p_fa = sweep.error_rates()
    costs = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
    best = int(np.argmin(costs))
    min_dcf = float(costs[best])
    if normalized:
        min_dcf /= trivial_cost(p_target, c_miss, c_fa)
    return min_dcf, float(sweep.thresholds[best])


def trivial_cost(p_target=0.01, c_miss=1.0, c_fa=1.0):
    """Cost of always accepting or always rejecting, whichever is cheaper.

    Arguments
    ---------
    p_target : float
        Prior probability of a target trial.
    c_miss : float
        Cost of a miss.
    c_fa : float
        Cost of a false alarm.

    Returns
    -------
    float
        ``min(c_miss * p_target, c_fa * (1 - p_target))``.

    Example
    -------
    >>> trivial_cost(0.05)
    0.05
    """
    return min(c_miss * p_target, c_fa * (1 - p_target))


def detection_cost(
    positive_scores,
    negative_scores,
    threshold,
    p_target=0.01,
    c_miss=1.0,
    c_fa=1.0,
    normalized=False,
):
    """Computes the actual detection cost at a fixed decision threshold.

    Same cost and convention (accept when score > threshold) as
    ``minimum_dcf``, in float64, at a threshold chosen beforehand (e.g. on
    development data, or ``log((1 - p_target) / p_target)`` for calibrated
    log-likelihood ratios).

    Arguments
    ---------
    positive_scores : tensor, array or sequence
        Scores of target trials.
    negative_scores : tensor, array or sequence
        Scores of non-target trials.
    threshold : float
        The decision threshold.
    p_target : float
        Prior probability of a target trial.
    c_miss : float
        Cost of a miss.
    c_fa : float
        Cost of a false alarm.
    normalized : bool
        Divide by the cost of the best decision without scores.

    Returns
    -------
    float
        The detection cost.

    Example
    -------
    >>> detection_cost([0.6, 0.3], [0.4, 0.1], threshold=0.35, p_target=0.5)
    0.5
    """
    positive = as_scores(positive_scores, "positive_scores")
    negative = as_scores(negative_scores, "negative_scores")
    p_miss = np.mean(positive <= threshold)
    p_fa = np.mean(negative > threshold)
    cost = float(c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target))
    if normalized:
        cost /= trivial_cost(p_target, c_miss, c_fa)
    return cost


def cllr(positive_scores, negative_scores):
    """Computes the log-likelihood-ratio cost Cllr, in bits.

    The scores are read as natural-log likelihood ratios:
    ``Cllr = (mean_tar log2(1 + exp(-s)) + mean_non log2(1 + exp(s))) / 2``.
    1 bit is the cost of a system that always answers ``s = 0``; raw cosine
    scores are not calibrated, so their Cllr mostly measures calibration (see
    ``min_cllr`` for discrimination alone).

    Arguments
    ---------
    positive_scores : tensor, array or sequence
        Log-likelihood ratios of target trials.
    negative_scores : tensor, array or sequence
        Log-likelihood ratios of non-target trials.

    Returns
    -------
    float
        Cllr in bits.

    Example
    -------
    >>> cllr([0.0], [0.0])
    1.0
    >>> round(cllr([math.log(3)], [-math.log(3)]), 6) == round(
    ...     math.log2(4 / 3), 6
    ... )
    True
    """
    positive = as_scores(positive_scores, "positive_scores").astype(float)
    negative = as_scores(negative_scores, "negative_scores").astype(float)
    target_cost = np.mean(np.logaddexp(0.0, -positive))
    nontarget_cost = np.mean(np.logaddexp(0.0, negative))
    return float((target_cost + nontarget_cost) / (2 * math.log(2)))


def min_cllr(positive_scores, negative_scores):
    """Computes the minimum Cllr over monotone recalibrations of the scores.

    The optimal monotone (non-decreasing) map from scores to log-likelihood
    ratios is given by isotonic regression of the trial labels on the scores,
    solved by pool-adjacent-violators (PAV); tied scores form one block since
    a function of the score cannot separate them. A block holding ``t``
    targets and ``f`` non-targets gets the log-likelihood ratio
    ``log((t / #targets) / (f / #non-targets))``. The sort is O(n log n);
    PAV is linear in the number of distinct scores (after merging runs of
    equal target ratio, which it would pool anyway).

    Arguments
    ---------
    positive_scores : tensor, array or sequence
        Scores of target trials.
    negative_scores : tensor, array or sequence
        Scores of non-target trials.

    Returns
    -------
    float
        minCllr in bits, between 0 (perfect separation) and 1.

    Example
    -------
    >>> min_cllr([0.9, 0.8], [0.1, 0.2])
    0.0
    >>> min_cllr([0.5, 0.5], [0.5, 0.5])
    1.0
    """
    sweep = ScoreSweep.from_scores(positive_scores, negative_scores)
    targets, nontargets = _pool_adjacent_violators(*sweep.target_counts())
    n_targets, n_nontargets = sweep.n_targets, sweep.n_nontargets
    # Block costs: log2(1 + exp(-llr)) per target, log2(1 + exp(llr)) per
    # non-target; with weighted counts a = t / n_targets, b = f / n_nontargets
    # they are log2((a + b) / a) and log2((a + b) / b).
    target_share = targets / n_targets
    nontarget_share = nontargets / n_nontargets
    both = target_share + nontarget_share
    with np.errstate(divide="ignore", invalid="ignore"):
        target_cost = np.where(
            targets > 0, target_share * np.log2(both / target_share), 0.0
        )
        nontarget_cost = np.where(
            nontargets > 0,
            nontarget_share * np.log2(both / nontarget_share),
            0.0,
        )
    return float((target_cost.sum() + nontarget_cost.sum()) / 2)


def _pool_adjacent_violators(targets, nontargets):
    """Pools score blocks until the target ratio never decreases.

    Arguments
    ---------
    targets : numpy.ndarray
        Number of targets per block, blocks in increasing score order.
    nontargets : numpy.ndarray
        Number of non-targets per block.

    Returns
    -------
    targets : numpy.ndarray
        Targets per pooled block.
    nontargets : numpy.ndarray
        Non-targets per pooled block.
    """
    totals = targets + nontargets
    # Neighbours with the same ratio would be pooled anyway: merge them with
    # numpy first, so that the Python loop below only sees ratio changes.
    same_ratio = targets[1:] * totals[:-1] == targets[:-1] * totals[1:]
    starts = np.flatnonzero(np.concatenate([[True], ~same_ratio]))
    pooled_targets, pooled_totals = [], []
    for block_targets, block_total in zip(
        np.add.reduceat(targets, starts).tolist(),
        np.add.reduceat(totals, starts).tolist(),
        strict=True,
    ):
        # Integer cross-multiplication: exact comparison of ratios.
        while pooled_targets and (
            pooled_targets[-1] * block_total
            >= block_targets * pooled_totals[-1]
        ):
            block_targets += pooled_targets.pop()
            block_total += pooled_totals.pop()
        pooled_targets.append(block_targets)
        pooled_totals.append(block_total)
    pooled_targets = np.array(pooled_targets)
    return pooled_targets, np.array(pooled_totals) - pooled_targets


def bootstrap_intervals(
    scores,
    labels,
    n_replicates=1000,
    confidence=0.95,
    speakers=None,
    p_targets=DCF_PRIORS,
    c_miss=1.0,
    c_fa=1.0,
    seed=0,
):
    """Bootstrap confidence intervals of the EER and of minimum DCFs.

    Each replicate draws trials with replacement -- targets and non-targets
    separately, so that both counts are kept -- or, when ``speakers`` is
    given, draws speakers with replacement and keeps all their trials (the
    counts then vary). The metrics of each replicate are computed from
    weighted cumulative counts over the scores sorted once, for blocks of
    replicates at a time (vectorised). The interval is the percentile
    interval of the replicate values. Replicate metrics use the definitions
    of ``equal_error_rate`` and ``minimum_dcf`` (unnormalised) with float64
    rates instead of SpeechBrain's float32 ones.

    Arguments
    ---------
    scores : tensor, array or sequence
        One score per trial.
    labels : tensor, array or sequence
        1 for a target trial, 0 for a non-target trial.
    n_replicates : int
        Number of bootstrap replicates.
    confidence : float
        Coverage of the interval, e.g. 0.95.
    speakers : sequence, optional
        One speaker id per trial (e.g. of the enrolment utterance): resample
        speakers instead of trials.
    p_targets : sequence of float
        Target priors of the minimum DCFs.
    c_miss : float
        Cost of a miss.
    c_fa : float
        Cost of a false alarm.
    seed : int
        Seed of the random generator.

    Returns
    -------
    dict
        ``{"eer": (low, high), "min_dcf": {p_target: (low, high), ...}}``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> labels = np.arange(2000) < 500
    >>> scores = rng.normal(size=2000) + 2 * labels
    >>> ci = bootstrap_intervals(scores, labels, n_replicates=200)
    >>> low, high = ci["eer"]
    >>> eer, _ = equal_error_rate(*split_scores(scores, labels))
    >>> bool(low < eer < high)
    True
    """
    scores = as_scores(scores)
    is_target = as_labels(labels, len(scores))
    if is_target.all() or not is_target.any():
        raise ValueError("Bootstrap needs both target and non-target trials.")
    if speakers is not None and len(speakers) != len(scores):
        raise ValueError(
            f"There are {len(speakers)} speaker ids for {len(scores)} "
            "trials: give one speaker id per trial."
        )
    order = np.argsort(scores, kind="stable")
    is_target = is_target[order]
    group_ends = _group_ends(scores[order])
    draw_weights = _bootstrap_weight_sampler(
        is_target, None if speakers is None else np.asarray(speakers)[order]
    )
    rng = np.random.default_rng(seed)
    block = max(1, 4_000_000 // len(scores))
    eers, costs = [], {p: [] for p in p_targets}
    for start in range(0, n_replicates, block):
        weights = draw_weights(rng, min(block, n_replicates - start))
        p_miss, p_fa, present = _weighted_error_rates(
            weights, is_target, group_ends
        )
        gap = np.where(present, np.abs(p_fa - p_miss), np.inf)
        best = np.argmin(gap, axis=1)[:, None]
        eers.append((np.take_along_axis(p_fa + p_miss, best, axis=1)[:, 0]) / 2)
        for p_target in p_targets:
            cost = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
            costs[p_target].append(np.where(present, cost, np.inf).min(axis=1))
    tail = 100 * (1 - confidence) / 2

    def interval(values):
        low, high = np.nanpercentile(np.concatenate(values), [tail, 100 - tail])
        return float(low), float(high)

    return {
        "eer": interval(eers),
        "min_dcf": {p: interval(costs[p]) for p in p_targets},
    }


def _bootstrap_weight_sampler(is_target, speakers):
    """Returns ``draw(rng, n) -> [n, n_trials]`` integer trial weights."""
    if speakers is None:
        strata = [np.flatnonzero(is_target), np.flatnonzero(~is_target)]

        def draw(rng, n_replicates):
            weights = np.zeros((n_replicates, len(is_target)), dtype=np.int32)
            for members in strata:
                weights[:, members] = _multinomial_counts(
                    rng, n_replicates, len(members)
                )
            return weights

        return draw
    _, speaker_index = np.unique(speakers, return_inverse=True)
    n_speakers = int(speaker_index.max()) + 1

    def draw(rng, n_replicates):
        counts = _multinomial_counts(rng, n_replicates, n_speakers)
        return counts[:, speaker_index]

    return draw


def _multinomial_counts(rng, n_replicates, n_items):
    """How often each item is drawn in ``n_items`` draws with replacement."""
    draws = rng.integers(0, n_items, size=(n_replicates, n_items))
    draws += np.arange(n_replicates)[:, None] * n_items
    counts = np.bincount(draws.ravel(), minlength=n_replicates * n_items)
    return counts.reshape(n_replicates, n_items).astype(np.int32)


def _weighted_error_rates(weights, is_target, group_ends):
    """Error rates at each distinct score for each row of trial weights.

    Returns float64 ``p_miss`` and ``p_fa`` of shape [rows, distinct scores]
    and a mask of the distinct scores present (non-zero weight) in each row;
    replicates without targets or without non-targets get NaN rates.
    """
    targets_below = np.cumsum(weights * is_target, axis=1)[:, group_ends]
    trials_below = np.cumsum(weights, axis=1)[:, group_ends]
    n_targets = targets_below[:, -1:]
    n_nontargets = trials_below[:, -1:] - n_targets
    present = np.diff(trials_below, axis=1, prepend=0) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        p_miss = targets_below / n_targets
        p_fa = (n_nontargets - (trials_below - targets_below)) / n_nontargets
    return p_miss, p_fa, present
