"""DET curves and score histograms, several systems per figure.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global
backend state) and saved with the Agg renderer, so plotting works on machines
without a display and from several threads.

DET axes are normal deviates (``scipy.stats.norm.ppf`` of the error rates),
labelled in percent, as in NIST evaluations: a system whose target and
non-target scores are Gaussian with equal variance draws a straight line.
"""

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import norm

from speaker_metric_learning.scoring.metrics import (
    det_curve,
    equal_error_rate,
)

_DET_TICKS = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8]
_DET_LIMITS = (0.0005, 0.9)


def _thinned(x, y, resolution=0.005):
    """Drops curve points closer than ``resolution`` (axis units)."""
    cells = np.stack([np.round(x / resolution), np.round(y / resolution)], 1)
    _, first = np.unique(cells, axis=0, return_index=True)
    keep = np.sort(np.concatenate([first, [0, len(x) - 1]]))
    return x[keep], y[keep]


def plot_det(systems, path=None, title="DET curve"):
    """Draws the DET curves of several systems in one figure.

    Arguments
    ---------
    systems : dict
        ``{name: (positive_scores, negative_scores)}``.
    path : str or pathlib.Path, optional
        Where to save the figure (format from the extension).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> figure = plot_det({"toy": (rng.normal(2, 1, 99), rng.normal(0, 1, 99))})
    >>> [line.get_label() for line in figure.axes[0].get_lines()][0]
    'toy (EER 14.14 %)'
    """
    figure = Figure(figsize=(5.5, 5.5 + 0.2 * len(systems)))
    axes = figure.add_subplot()
    low, high = _DET_LIMITS
    for name, (positive, negative) in systems.items():
        p_miss, p_fa, _ = det_curve(positive, negative)
        eer, _ = equal_error_rate(positive, negative)
        x = norm.ppf(np.clip(p_fa, low / 2, 1 - low / 2))
        y = norm.ppf(np.clip(p_miss, low / 2, 1 - low / 2))
        line = axes.plot(
            *_thinned(x, y), label=f"{name} (EER {100 * eer:.2f} %)"
        )
        deviate = norm.ppf(np.clip(eer, low / 2, 1 - low / 2))
        axes.plot(deviate, deviate, "o", color=line[0].get_color(), ms=4)
    ticks = norm.ppf(_DET_TICKS)
    labels = [f"{100 * tick:g}" for tick in _DET_TICKS]
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_ticks(ticks, labels)
    axes.set_xlim(norm.ppf(low), norm.ppf(high))
    axes.set_ylim(norm.ppf(low), norm.ppf(high))
    axes.plot(axes.get_xlim(), axes.get_ylim(), ":", color="grey", lw=0.8)
    axes.set_xlabel("False acceptance rate (%)")
    axes.set_ylabel("False rejection rate (%)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    # below the axes: curves of weak systems fill the upper right, those
    # of strong ones the lower left
    axes.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize="small"
    )
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=150)
    return figure


def plot_score_histograms(systems, path=None, bins=100):
    """Draws target and non-target score histograms, one panel per system.

    Arguments
    ---------
    systems : dict
        ``{name: (positive_scores, negative_scores)}``.
    path : str or pathlib.Path, optional
        Where to save the figure.
    bins : int
        Number of bins, shared by both classes of a system.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Example
    -------
    >>> figure = plot_score_histograms({"a": ([0.9, 0.8], [0.1, 0.3])})
    >>> figure.axes[0].get_title()
    'a'
    """
    figure = Figure(figsize=(5.5, 2.6 * len(systems)))
    for row, (name, (positive, negative)) in enumerate(systems.items()):
        axes = figure.add_subplot(len(systems), 1, row + 1)
        positive, negative = np.asarray(positive), np.asarray(negative)
        edges = np.histogram_bin_edges(
            np.concatenate([positive, negative]), bins=bins
        )
        for scores, label in ((negative, "non-target"), (positive, "target")):
            axes.hist(scores, bins=edges, density=True, alpha=0.5, label=label)
        axes.set_title(name)
        axes.set_ylabel("density")
        axes.legend(fontsize="small")
    figure.axes[-1].set_xlabel("score")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=150)
    return figure
