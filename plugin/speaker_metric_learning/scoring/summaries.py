"""Summaries of one metric over several runs, as table cells.

A system trained with several seeds has one value of each metric per run:
``mean_sd`` writes their mean and standard deviation (``n - 1``),
``mean_interval`` gives the Student-t interval of their mean, and
``format_interval`` writes an interval (a bootstrap CI of
``metrics.bootstrap_intervals`` or ``significance.paired_bootstrap``, or
one of ``mean_interval``) as ``[low, high]``. The spread over trials of a
single run is in its bootstrap CI, not here.
"""

import numpy as np
from scipy import stats


def mean_sd(values, scale=1.0, digits=2):
    """``"mean ± sd"`` of the values (sd over runs, ``n - 1``), or the
    value alone for one run.

    Arguments
    ---------
    values : array-like
        One value per run.
    scale : float
        Factor applied first (100 for a rate in percent).
    digits : int
        Digits after the decimal point.

    Returns
    -------
    str
        ``"mean ± sd"``, or the one value, scaled and rounded.

    Example
    -------
    >>> mean_sd([0.1, 0.2, 0.3], scale=100)
    '20.00 ± 10.00'
    >>> mean_sd([0.25], digits=1)
    '0.2'
    """
    values = scale * np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def mean_interval(values, confidence=0.95):
    """Student-t interval of the mean of ``values`` (None for one value).

    Arguments
    ---------
    values : array-like
        One value per run.
    confidence : float
        Coverage of the interval.

    Returns
    -------
    list of float or None
        ``[low, high]``.

    Example
    -------
    >>> [round(v, 3) for v in mean_interval([0.1, 0.2, 0.3])]
    [-0.048, 0.448]
    >>> mean_interval([0.1]) is None
    True
    """
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return None
    half = stats.t.ppf((1 + confidence) / 2, len(values) - 1) * stats.sem(
        values
    )
    return [float(values.mean() - half), float(values.mean() + half)]


def format_interval(interval, scale=100, digits=1):
    """``"[low, high]"`` of an interval, or ``"—"`` for None.

    Arguments
    ---------
    interval : sequence of two floats or None
        The interval.
    scale, digits : float, int
        As in ``mean_sd`` (the default: a rate in percent, 1 digit).

    Returns
    -------
    str
        ``"[low, high]"`` scaled and rounded, or a dash.

    Example
    -------
    >>> format_interval([0.1, 0.125])
    '[10.0, 12.5]'
    >>> format_interval(None)
    '—'
    """
    if interval is None:
        return "—"
    low, high = interval
    return f"[{scale * low:.{digits}f}, {scale * high:.{digits}f}]"
