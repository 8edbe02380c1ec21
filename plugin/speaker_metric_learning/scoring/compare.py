"""Results folders of evaluated systems, and tables comparing them.

``evaluate_scores`` turns the scores of one system on a trial list into a
results folder::

    results.json     metrics, confidence intervals, trial fingerprint
    scores.txt       one "score enrol test" line per trial (trial order)
    scores.npz       arrays "scores" (float64) and "labels" (bool)
    det.png          DET curve
    histogram.png    target / non-target score histograms

``results.json`` (schema ``RESULTS_SCHEMA``) holds::

    schema        "speaker_metric_learning.scoring.results/1"
    system        name of the system
    trials        {"source", "sha256", "n_trials", "n_targets",
                   "n_nontargets", "n_utterances"}  (the trial fingerprint)
    eer           {"value", "threshold", "ci": [low, high] or null}
    min_dcf       [{"p_target", "c_miss", "c_fa",
                    "value"             normalised minDCF,
                    "value_speechbrain" speechbrain.utils.metric_stats.minDCF,
                    "threshold", "ci": [low, high] (normalised) or null}, ...]
    cllr, min_cllr  in bits (scores read as natural-log likelihood ratios)
    bootstrap     {"n_replicates", "confidence", "resampling", "seed"}
    files         {"scores", "scores_array", "det", "histogram"}
    extra         free-form metadata given by the caller (e.g. the loss)

EER, minDCF and their thresholds follow ``speaker_metric_learning.scoring
.metrics`` (identical to SpeechBrain's EER and minDCF). ``compare_results``
refuses to compare folders whose trial fingerprints differ.
"""

import json
import pathlib

import numpy as np

from speaker_metric_learning.scoring.metrics import (
    DCF_PRIORS,
    bootstrap_intervals,
    cllr,
    equal_error_rate,
    min_cllr,
    minimum_dcf,
    split_scores,
    trivial_cost,
)
from speaker_metric_learning.scoring.plots import (
    plot_det,
    plot_score_histograms,
)
from speaker_metric_learning.scoring.trials import write_scores

RESULTS_SCHEMA = "speaker_metric_learning.scoring.results/1"
RESULTS_FILE = "results.json"
#: The scores and labels of a results folder, as arrays.
SCORES_FILE = "scores.npz"


def compute_results(
    scores,
    trials,
    system_name,
    speakers=None,
    n_replicates=1000,
    confidence=0.95,
    p_targets=DCF_PRIORS,
    seed=0,
    extra=None,
):
    """Computes every metric of one system (``results.json`` without files).

    Arguments
    ---------
    scores : array-like
        One score per trial, in the order of ``trials``.
    trials : speaker_metric_learning.scoring.trials.TrialList
        The trial list (labels, utterance ids, fingerprint).
    system_name : str
        Name of the system in tables and figures.
    speakers : sequence, optional
        One speaker id per trial: bootstrap resamples speakers instead of
        trials.
    n_replicates : int
        Bootstrap replicates; 0 skips the confidence intervals.
    confidence : float
        Coverage of the confidence intervals.
    p_targets : sequence of float
        Target priors of the minimum DCFs (``c_miss = c_fa = 1``).
    seed : int
        Bootstrap seed.
    extra : dict, optional
        JSON-serialisable metadata stored as ``extra``.

    Returns
    -------
    dict
        The results, with ``files`` set to None.

    Example
    -------
    >>> from speaker_metric_learning.scoring.trials import TrialList
    >>> trials = TrialList.from_lines(["1 a b", "0 a c", "1 c d", "0 b d"])
    >>> results = compute_results([0.9, 0.2, 0.4, 0.5], trials, "toy")
    >>> results["eer"]["value"], results["trials"]["n_trials"]
    (0.5, 4)
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(trials):
        raise ValueError(
            f"{len(scores)} scores for {len(trials)} trials "
            f"({trials.source}): give one score per trial."
        )
    positive, negative = split_scores(scores, trials.labels)
    eer, eer_threshold = equal_error_rate(positive, negative)
    intervals = None
    if n_replicates:
        intervals = bootstrap_intervals(
            scores,
            trials.labels,
            n_replicates=n_replicates,
            confidence=confidence,
            speakers=speakers,
            p_targets=p_targets,
            seed=seed,
        )
    min_dcfs = []
    for p_target in p_targets:
        raw, threshold = minimum_dcf(positive, negative, p_target)
        scale = trivial_cost(p_target)
        interval = None
        if intervals is not None:
            interval = [v / scale for v in intervals["min_dcf"][p_target]]
        min_dcfs.append(
            {
                "p_target": p_target,
                "c_miss": 1.0,
                "c_fa": 1.0,
                "value": raw / scale,
                "value_speechbrain": raw,
                "threshold": threshold,
                "ci": interval,
            }
        )
    return {
        "schema": RESULTS_SCHEMA,
        "system": system_name,
        "trials": {"source": trials.source, **trials.fingerprint.to_dict()},
        "eer": {
            "value": eer,
            "threshold": eer_threshold,
            "ci": None if intervals is None else list(intervals["eer"]),
        },
        "min_dcf": min_dcfs,
        "cllr": cllr(positive, negative),
        "min_cllr": min_cllr(positive, negative),
        "bootstrap": {
            "n_replicates": n_replicates,
            "confidence": confidence,
            "resampling": "trials" if speakers is None else "speakers",
            "seed": seed,
        },
        "files": None,
        "extra": extra or {},
    }


def evaluate_scores(scores, trials, output_folder, system_name, **settings):
    """Computes every metric of one system and writes its results folder.

    Arguments
    ---------
    scores : array-like
        One score per trial, in the order of ``trials``.
    trials : speaker_metric_learning.scoring.trials.TrialList
        The trial list (labels, utterance ids, fingerprint).
    output_folder : str or pathlib.Path
        Folder to create or update (see the module docstring).
    system_name : str
        Name of the system in tables and figures.
    **settings
        ``speakers``, ``n_replicates``, ``confidence``, ``p_targets``,
        ``seed``, ``extra``: see ``compute_results``.

    Returns
    -------
    dict
        The content of ``results.json``.

    Example
    -------
    >>> import tempfile, os
    >>> from speaker_metric_learning.scoring.trials import TrialList
    >>> trials = TrialList.from_lines(["1 a b", "0 a c", "1 c d", "0 b d"])
    >>> folder = tempfile.mkdtemp()
    >>> results = evaluate_scores(
    ...     [0.9, 0.2, 0.4, 0.5], trials, folder, "toy", n_replicates=20
    ... )
    >>> sorted(os.listdir(folder))
    ['det.png', 'histogram.png', 'results.json', 'scores.npz', 'scores.txt']
    """
    results = compute_results(scores, trials, system_name, **settings)
    folder = pathlib.Path(output_folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "scores": "scores.txt",
        "scores_array": SCORES_FILE,
        "det": "det.png",
        "histogram": "histogram.png",
    }
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    write_scores(folder / files["scores"], trials, scores)
    np.savez(
        folder / files["scores_array"], scores=scores, labels=trials.labels
    )
    systems = {system_name: split_scores(scores, trials.labels)}
    plot_det(systems, folder / files["det"], title=system_name)
    plot_score_histograms(systems, folder / files["histogram"])
    results["files"] = files
    with open(folder / RESULTS_FILE, "w") as file:
        json.dump(results, file, indent=2)
    return results


def load_results(folder):
    """Reads and checks the ``results.json`` of a results folder.

    Arguments
    ---------
    folder : str or pathlib.Path
        A folder written by ``evaluate_scores``.

    Returns
    -------
    dict
        The results.

    Raises
    ------
    FileNotFoundError
        If the folder has no ``results.json``.
    ValueError
        If the file is not a results file of this schema.

    Example
    -------
    >>> import tempfile
    >>> from speaker_metric_learning.scoring.trials import TrialList
    >>> folder = tempfile.mkdtemp()
    >>> trials = TrialList.from_lines(["1 a b", "0 a c"])
    >>> _ = evaluate_scores([0.9, 0.1], trials, folder, "toy", n_replicates=0)
    >>> load_results(folder)["system"]
    'toy'
    """
    path = pathlib.Path(folder) / RESULTS_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: give folders written by evaluate_scores (or "
            "by 'python -m speaker_metric_learning.scoring score-file')."
        )
    with open(path) as file:
        try:
            results = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
    if results.get("schema") != RESULTS_SCHEMA:
        raise ValueError(
            f"{path} has schema {results.get('schema')!r}, expected "
            f"{RESULTS_SCHEMA!r}: re-run the evaluation with this version."
        )
    return results


def load_scores(folder):
    """The scores and labels of a results folder.

    Arguments
    ---------
    folder : str or pathlib.Path
        A folder written by ``evaluate_scores``.

    Returns
    -------
    scores, labels : numpy.ndarray
        One score (float) and one label (True: target) per trial, in the
        order of the trial list.

    Example
    -------
    >>> import tempfile
    >>> from speaker_metric_learning.scoring.trials import TrialList
    >>> folder = tempfile.mkdtemp()
    >>> trials = TrialList.from_lines(["1 a b", "0 a c"])
    >>> _ = evaluate_scores([0.9, 0.1], trials, folder, "toy", n_replicates=0)
    >>> scores, labels = load_scores(folder)
    >>> scores.tolist(), labels.tolist()
    ([0.9, 0.1], [True, False])
    """
    with np.load(pathlib.Path(folder) / SCORES_FILE) as saved:
        return saved["scores"], saved["labels"]


def format_table(all_results):
    """Formats results as a Markdown table, one row per system.

    Arguments
    ---------
    all_results : list of dict
        Results as returned by ``evaluate_scores``.

    Returns
    -------
    str
        The table (EER in percent with its CI, normalised minDCFs, Cllr and
        minCllr), preceded by the trial fingerprint line.

    Example
    -------
    >>> import tempfile
    >>> from speaker_metric_learning.scoring.trials import TrialList
    >>> trials = TrialList.from_lines(["1 a b", "0 a c"])
    >>> results = compute_results([0.9, 0.1], trials, "toy", n_replicates=0)
    >>> print(format_table([results]).splitlines()[-1])
    | toy | 0.00 | 0.000 | 0.000 | 0.783 | 0.000 |
    """
    trials = all_results[0]["trials"]
    confidence = all_results[0]["bootstrap"]["confidence"]
    dcf_names = [f"minDCF {d['p_target']:g}" for d in all_results[0]["min_dcf"]]
    header = ["System", f"EER % [{100 * confidence:g} % CI]", *dcf_names]
    header += ["Cllr", "minCllr"]
    lines = [
        f"Trials {trials['sha256']} ({trials['n_trials']:,} trials, "
        f"{trials['n_targets']:,} targets, {trials['n_nontargets']:,} "
        f"non-targets). minDCF normalised, c_miss = c_fa = 1.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for results in all_results:
        eer = f"{100 * results['eer']['value']:.2f}"
        if results["eer"]["ci"] is not None:
            low, high = results["eer"]["ci"]
            eer += f" [{100 * low:.2f}, {100 * high:.2f}]"
        cells = [results["system"], eer]
        cells += [f"{d['value']:.3f}" for d in results["min_dcf"]]
        cells += [f"{results['cllr']:.3f}", f"{results['min_cllr']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_results(folders, output_folder=None):
    """Compares results folders: Markdown table and overlaid DET curves.

    Arguments
    ---------
    folders : list of str or pathlib.Path
        Folders written by ``evaluate_scores``, all on the same trial list.
    output_folder : str or pathlib.Path, optional
        Where to write ``comparison.md`` and ``det.png``.

    Returns
    -------
    str
        The Markdown table.

    Raises
    ------
    ValueError
        If the folders' trial fingerprints differ.

    Example
    -------
    >>> import tempfile
    >>> from speaker_metric_learning.scoring.trials import TrialList
    >>> trials = TrialList.from_lines(["1 a b", "0 a c"])
    >>> kw = {"trials": trials, "n_replicates": 0}
    >>> a, b = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> _ = evaluate_scores([0.9, 0.1], output_folder=a, system_name="A", **kw)
    >>> _ = evaluate_scores([0.1, 0.9], output_folder=b, system_name="B", **kw)
    >>> len(compare_results([a, b]).splitlines())
    6
    """
    if not folders:
        raise ValueError("No results folder to compare.")
    all_results = [load_results(folder) for folder in folders]
    fingerprints = {r["trials"]["sha256"] for r in all_results}
    if len(fingerprints) > 1:
        listing = "\n".join(
            f"  {folder}: trials {r['trials']['sha256']} "
            f"({r['trials']['n_trials']:,} trials, {r['trials']['source']})"
            for folder, r in zip(folders, all_results, strict=True)
        )
        raise ValueError(
            "Cannot compare results on different trial lists (fingerprints "
            f"differ):\n{listing}\nEvaluate every system on the same list."
        )
    table = format_table(all_results)
    if output_folder is not None:
        output = pathlib.Path(output_folder)
        output.mkdir(parents=True, exist_ok=True)
        (output / "comparison.md").write_text(table + "\n")
        names = [r["system"] for r in all_results]
        systems = {}
        for folder, results in zip(folders, all_results, strict=True):
            name = results["system"]
            if names.count(name) > 1:
                name = f"{name} ({folder})"
            systems[name] = split_scores(*load_scores(folder))
        plot_det(systems, output / "det.png")
    return table
