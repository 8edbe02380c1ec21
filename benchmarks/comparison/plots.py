"""The report's figure: overlaid DET curves of the compared systems.

Owns ``plot_all``: the median-EER run of each system and every reference
point on one DET plot (``det.png``).
"""

from speaker_metric_learning.scoring.compare import load_scores


def median_run(runs):
    """Seed of the run with the median EER."""
    ordered = sorted(runs, key=lambda seed: runs[seed]["clean"]["eer"])
    return ordered[(len(ordered) - 1) // 2]


def plot_all(layout, summary, path):
    """Overlaid DET curves: median-EER run of each system + references."""
    from speaker_metric_learning.scoring.metrics import split_scores
    from speaker_metric_learning.scoring.plots import plot_det

    curves = {}
    for system, entry in summary["systems"].items():
        seed = median_run(entry["runs"])
        scores, labels = load_scores(layout.run(system, seed))
        curves[f"{system} (seed {seed})"] = split_scores(scores, labels)
    for name, entry in summary["references"].items():
        scores, labels = load_scores(layout.reference(name))
        curves[entry["label"]] = split_scores(scores, labels)
    if curves:
        plot_det(
            curves,
            path,
            title="speechocean762 dev: median-EER run of each system",
        )
