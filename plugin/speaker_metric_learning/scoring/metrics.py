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

Scores may be given as torch tensors, numpy arrays or lists; non-float inputs
and lists are read as float64, float tensors and arrays keep their dtype.
"""

from dataclasses import dataclass

import numpy as np
import torch

#: Operating points of the NIST SRE / VoxSRC detection cost, by target prior.
DCF_PRESETS = {
    0.01: {"p_target": 0.01, "c_miss": 1.0, "c_fa": 1.0},
    0.05: {"p_target": 0.05, "c_miss": 1.0, "c_fa": 1.0},
}


def as_score_tensor(scores, name="scores"):
    """Returns scores as a finite 1-D float tensor on the CPU.

    Arguments
    ---------
    scores : torch.Tensor, numpy.ndarray or sequence of numbers
        The scores. Float tensors and arrays keep their dtype; anything else
        is converted to float64.
    name : str
        Name used in error messages.

    Returns
    -------
    torch.Tensor
        A flat float tensor.

    Raises
    ------
    ValueError
        If there are no scores or one of them is NaN or infinite.

    Example
    -------
    >>> as_score_tensor([0.5, 1]).dtype
    torch.float64
    >>> as_score_tensor(torch.ones(2, 1, dtype=torch.float32)).shape
    torch.Size([2])
    """
    if isinstance(scores, torch.Tensor):
        tensor = scores.detach().cpu().reshape(-1)
    else:
        tensor = torch.as_tensor(np.asarray(scores)).reshape(-1)
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty: at least one score is needed.")
    not_finite = ~torch.isfinite(tensor)
    if bool(not_finite.any()):
        index = int(torch.nonzero(not_finite)[0])
        raise ValueError(
            f"{name}[{index}] is {float(tensor[index])}: scores must be finite."
        )
    return tensor


@dataclass
class ScoreSweep:
    """Error counts at every distinct score, used as decision threshold.

    Arguments
    ---------
    thresholds : torch.Tensor
        The distinct scores in increasing order (dtype of the scores).
    misses : torch.Tensor
        int64 count of target scores ``<=`` each threshold.
    false_alarms : torch.Tensor
        int64 count of non-target scores ``>`` each threshold.
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

    thresholds: torch.Tensor
    misses: torch.Tensor
    false_alarms: torch.Tensor
    n_targets: int
    n_nontargets: int

    @classmethod
    def from_scores(cls, positive_scores, negative_scores):
        """Sorts the pooled scores once and counts errors at each of them.

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
        positive = as_score_tensor(positive_scores, "positive_scores")
        negative = as_score_tensor(negative_scores, "negative_scores")
        scores = torch.cat([positive, negative])
        is_target = torch.zeros(scores.numel(), dtype=torch.bool)
        is_target[: positive.numel()] = True
        sorted_scores, order = torch.sort(scores)
        group_ends = _group_ends(sorted_scores)
        targets_below = torch.cumsum(is_target[order], 0)[group_ends]
        nontargets_below = group_ends + 1 - targets_below
        return cls(
            thresholds=sorted_scores[group_ends],
            misses=targets_below,
            false_alarms=negative.numel() - nontargets_below,
            n_targets=positive.numel(),
            n_nontargets=negative.numel(),
        )

    def error_rates(self):
        """Returns the miss and false-alarm rates as SpeechBrain computes them.

        Returns
        -------
        p_miss : torch.Tensor
            float32 miss rate at each threshold.
        p_fa : torch.Tensor
            float32 false-alarm rate at each threshold.

        Example
        -------
        >>> ScoreSweep.from_scores([0.2, 0.7], [0.1]).error_rates()[0]
        tensor([0.0000, 0.5000, 1.0000])
        """
        p_miss = self.misses.float() / self.n_targets
        p_fa = self.false_alarms.float() / self.n_nontargets
        return p_miss, p_fa


def _group_ends(sorted_values):
    """Index of the last element of each run of equal values."""
    is_last = torch.ones(sorted_values.shape[-1], dtype=torch.bool)
    is_last[:-1] = sorted_values[1:] != sorted_values[:-1]
    return torch.nonzero(is_last).flatten()


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
    if moved_to_midpoint and best + 1 < sweep.thresholds.numel():
        following = sweep.thresholds[best + 1]
        midpoint = (threshold + following) / 2
        if midpoint != following:
            threshold = midpoint
    eer = (p_fa[best].item() + p_miss[best].item()) / 2
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
    rounded_gap = (p_fa - p_miss).abs()
    exact_gap = (p_fa.double() - p_miss.double()).abs()
    low = rounded_gap.min()
    holders = torch.nonzero(rounded_gap == low).flatten()
    settled = exact_gap[holders] <= low.double()
    if bool(settled.any()):
        return int(holders[torch.nonzero(settled)[0]]), False
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
        Prior probability of a target trial (presets: ``DCF_PRESETS``).
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
    best = int(torch.nonzero(costs == costs.min())[0])
    min_dcf = costs[best].item()
    if normalized:
        min_dcf /= _trivial_cost(p_target, c_miss, c_fa)
    return min_dcf, float(sweep.thresholds[best])


def _trivial_cost(p_target, c_miss, c_fa):
    """Cost of always accepting or always rejecting, whichever is cheaper."""
    return min(c_miss * p_target, c_fa * (1 - p_target))
