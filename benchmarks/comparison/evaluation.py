"""Scoring a trained run: clean trials, test-side variants, AS-norm.

Owns ``evaluate_run`` (embeds the dev audio and the variants with the
run's last checkpoint and writes its results folders), the cosine scoring
of clean enrolment against modified test embeddings (``cross_scores``,
``score_all``, shared with the reference points), the adaptive s-norm of
the AAM systems (its cohort and results folder) and ``all_results_exist``,
which tells the runner what is still to score.
"""

import pathlib

import numpy as np
import soundfile
import torch

from comparison.corpus import VARIANTS, runs_robustness_folder, variant_csv
from comparison.systems import AAM_SYSTEMS
from speaker_metric_learning.layout import (
    HYPERPARAMS_FILE,
    SAVE_FOLDER,
    audio_root,
    utterance_id,
)
from speaker_metric_learning.scoring.compare import (
    RESULTS_FILE,
    evaluate_scores,
)
from speaker_metric_learning.scoring.cosine import (
    embedding_matrix,
    pair_scores,
)
from speaker_metric_learning.scoring.trials import read_trials

# Adaptive s-norm as Coria et al. report it: the top 400 of 1,170 training
# speaker centroids, i.e. the same share of our 125 training speakers.
AS_NORM_TOP_K = round(125 * 400 / 1170)
AS_NORM_UTTERANCES = 10  # per training speaker, averaged into its centroid


def cross_scores(trials, enrol_embeddings, test_embeddings):
    """Cosine scores of clean enrolment against (modified) test embeddings.

    Arguments
    ---------
    trials : TrialList
        The trials.
    enrol_embeddings, test_embeddings : dict or (ids, matrix)
        Embeddings of every enrolment / every test utterance.

    Returns
    -------
    numpy.ndarray
        One score per trial.

    Example
    -------
    >>> from speaker_metric_learning.scoring.trials import TrialList
    >>> trials = TrialList.from_lines(["1 a b", "0 b c"])
    >>> clean = {"a": [1.0, 0.0], "b": [0.0, 1.0]}
    >>> cut = {"b": [1.0, 1.0], "c": [0.0, 3.0]}
    >>> [round(float(x), 4) for x in cross_scores(trials, clean, cut)]
    [0.7071, 1.0]
    """
    enrol_rows = np.unique(trials.enrol_index)
    test_rows = np.unique(trials.test_index)
    utterances = np.array(trials.utterances, dtype=object)
    enrol = embedding_matrix(
        enrol_embeddings, utterances[enrol_rows].tolist(), trials
    )
    test = embedding_matrix(test_embeddings, utterances[test_rows].tolist())
    position = np.full(len(utterances), -1)
    position[enrol_rows] = np.arange(len(enrol_rows))
    first = position[trials.enrol_index]
    position[test_rows] = len(enrol_rows) + np.arange(len(test_rows))
    second = position[trials.test_index]
    return pair_scores(torch.cat([enrol, test]).numpy(), first, second)


def score_all(folder, name, trials, embed_folder, extra=None):
    """Clean and variant results folders of one system (those missing).

    ``embed_folder(None)`` gives the clean embeddings of every dev utterance,
    ``embed_folder(variant)`` those of the variant's test utterances. The
    clean results go to ``folder``, each variant's to its robustness folder.
    """
    clean = None
    targets = [(None, pathlib.Path(folder), name)]
    for variant in VARIANTS:
        targets.append(
            (
                variant,
                runs_robustness_folder(folder, variant),
                f"{name} ({variant})",
            )
        )
    for variant, target, system_name in targets:
        if (target / RESULTS_FILE).exists():
            continue
        if clean is None:
            clean = embed_folder(None)
        tests = clean if variant is None else embed_folder(variant)
        evaluate_scores(
            cross_scores(trials, clean, tests),
            trials,
            target,
            system_name,
            extra=extra,
        )
    return clean


def cohort_csv(layout):
    """Data CSV of the first ``AS_NORM_UTTERANCES`` files of every training
    speaker, the adaptive s-norm cohort (written once)."""
    from speaker_metric_learning.data import DATA_CSV_COLUMNS
    from speaker_metric_learning.scoring.audio import cohort_files

    csv_file = layout.shared / "csv" / f"cohort_{AS_NORM_UTTERANCES}.csv"
    if not csv_file.exists():
        folder = layout.decoded("train")
        rows = [",".join(DATA_CSV_COLUMNS)]
        for speaker, path in cohort_files(folder, AS_NORM_UTTERANCES):
            duration = soundfile.info(path).duration
            name = utterance_id(path.relative_to(audio_root(folder)))
            rows.append(f"{name},{duration},{path},{speaker}")
        csv_file.parent.mkdir(parents=True, exist_ok=True)
        csv_file.write_text("\n".join(rows) + "\n")
    return csv_file


def as_norm_folder(run):
    """Results folder of a run's adaptive s-normalised clean trials."""
    return pathlib.Path(run) / f"asnorm_top{AS_NORM_TOP_K}"


def score_as_norm(run, name, trials, clean, embed_csv, layout):
    """Clean trials of a run, adaptive s-normalised with the top
    ``AS_NORM_TOP_K`` of the training speakers' centroids."""
    from speaker_metric_learning.scoring.normalization import (
        normalized_cosine_scores,
        speaker_centroids,
    )

    ids, matrix = embed_csv(cohort_csv(layout))
    speakers, cohort = speaker_centroids(
        matrix, [utterance.split("/")[0] for utterance in ids]
    )
    _, normalized = normalized_cosine_scores(
        trials, clean, cohort, AS_NORM_TOP_K
    )
    evaluate_scores(
        normalized,
        trials,
        as_norm_folder(run),
        f"{name} AS-norm top {AS_NORM_TOP_K}",
        extra={
            "normalization": f"asnorm-top{AS_NORM_TOP_K}",
            "cohort_speakers": len(speakers),
            "cohort_utterances": len(ids),
        },
    )


def evaluate_run(run, layout):
    """Clean and robustness results of one trained run (last checkpoint),
    scored like ``train.py`` scores a run (same embedding settings, cosine
    scoring, ``evaluate_scores``)."""
    from speaker_metric_learning.data import evaluation_dataset
    from speaker_metric_learning.hyperparams import load_hparams
    from speaker_metric_learning.model_io import load_model
    from speaker_metric_learning.scoring.embeddings import extract_embeddings
    from speaker_metric_learning.scoring.evaluation import evaluation_settings

    run = pathlib.Path(run)
    record = run / HYPERPARAMS_FILE
    hparams = load_hparams(str(record))  # the run's evaluation settings
    model = load_model(run).mods.embedding_model  # its latest checkpoint
    trials = read_trials(layout.trials)

    def embed_csv(csv_file):
        return extract_embeddings(
            model,
            evaluation_dataset(str(csv_file), hparams["sample_rate"]),
            progress=False,
            **evaluation_settings(hparams),
        )

    def embed_folder(variant):
        if variant is None:
            return embed_csv(run / SAVE_FOLDER / "eval.csv")
        return embed_csv(variant_csv(layout, variant))

    clean = score_all(
        run,
        hparams["experiment"],
        trials,
        embed_folder,
        extra={"hparams": str(record)},
    )
    normalise = run.parent.name in AAM_SYSTEMS
    if normalise and not (as_norm_folder(run) / RESULTS_FILE).exists():
        if clean is None:
            clean = embed_folder(None)
        score_as_norm(
            run, hparams["experiment"], trials, clean, embed_csv, layout
        )


def all_results_exist(folder):
    """Clean and every robustness ``results.json`` are in ``folder`` (and
    the adaptive s-normalised one for a run of an AAM system)."""
    folder = pathlib.Path(folder)
    folders = [folder, *(runs_robustness_folder(folder, v) for v in VARIANTS)]
    if folder.parent.name in AAM_SYSTEMS:
        folders.append(as_norm_folder(folder))
    return all((f / RESULTS_FILE).exists() for f in folders)
