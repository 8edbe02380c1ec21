"""Tests of speaker_metric_learning.scoring.plots."""

import numpy as np
import pytest
from scipy.stats import norm

from speaker_metric_learning.scoring.metrics import det_curve, equal_error_rate
from speaker_metric_learning.scoring.plots import (
    plot_det,
    plot_score_histograms,
)


def _systems():
    rng = np.random.default_rng(0)
    return {
        "good": (rng.normal(3, 1, 400), rng.normal(0, 1, 2000)),
        "bad": (rng.normal(1, 1, 300), rng.normal(0, 1, 900)),
    }


def test_det_curves_lie_on_normal_deviates_of_the_error_rates(tmp_path):
    systems = _systems()
    figure = plot_det(systems, tmp_path / "det.png")
    assert (tmp_path / "det.png").read_bytes()[:4] == b"\x89PNG"
    lines = figure.axes[0].get_lines()
    for name, (positive, negative) in systems.items():
        curve = _labelled(lines, name)
        marker = lines[lines.index(curve) + 1]
        p_miss, p_fa, _ = det_curve(positive, negative)
        on_curve = set(
            zip(norm.ppf(p_fa).round(9), norm.ppf(p_miss).round(9), strict=True)
        )
        x, y = curve.get_xdata().round(9), curve.get_ydata().round(9)
        # Rates of 0 (infinite deviates) are clipped to the lowest value.
        inside = (x > x.min()) & (y > y.min())
        assert inside.sum() > 10
        assert all(
            point in on_curve
            for point in zip(x[inside], y[inside], strict=True)
        )
        eer = equal_error_rate(positive, negative)[0]
        assert f"EER {100 * eer:.2f} %" in curve.get_label()
        assert marker.get_xdata()[0] == pytest.approx(norm.ppf(eer))


def _labelled(lines, name):
    return next(line for line in lines if line.get_label().startswith(name))


def test_histograms_have_one_density_panel_per_system(tmp_path):
    figure = plot_score_histograms(_systems(), tmp_path / "hist.png", bins=20)
    assert [axes.get_title() for axes in figure.axes] == ["good", "bad"]
    for axes in figure.axes:
        bars = axes.patches
        assert len(bars) == 40
        target_area = sum(b.get_height() * b.get_width() for b in bars[20:])
        assert target_area == pytest.approx(1.0)
