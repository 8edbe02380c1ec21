"""The ``score-model`` command on a tiny trained and exported model."""

import numpy as np

from speaker_metric_learning.checkpoints import checkpoints_in_saving_order
from speaker_metric_learning.command_line import EXIT_ERROR
from speaker_metric_learning.model_io import load_exported
from speaker_metric_learning.scoring.cli import main
from speaker_metric_learning.scoring.compare import load_results
from speaker_metric_learning.scoring.trials import read_trials

#: Bound of float32 rounding errors of cosine scores (about 8 eps).
DELTA = 1e-6


def score_model(corpus, model, *options, trials=None):
    """Runs ``score-model`` on the dev trials; returns the exit status."""
    trials = trials or corpus / "dev" / "trials.txt"
    command = [
        "score-model",
        str(model),
        "--eval_folder",
        str(corpus / "dev" / "wav"),
        "--trials",
        str(trials),
        "--bootstrap",
        "0",
        "--batch_size",
        "3",
        *options,
    ]
    try:
        return main(command)
    except SystemExit as stop:
        return stop.code


def saved_scores(folder):
    with np.load(folder / "scores.npz") as saved:
        return saved["scores"]


def test_scores_of_an_exported_model_and_its_run_match_train_py(
    corpus,
    aam_run,
    model_folder,
    tmp_path,
    capsys,
):
    trained = load_results(aam_run)
    for model in (model_folder, aam_run):
        output = tmp_path / model.name
        assert score_model(corpus, model, "-o", str(output)) == 0
        results = load_results(output)
        assert results["eer"]["value"] == trained["eer"]["value"]
        assert results["trials"]["sha256"] == trained["trials"]["sha256"]
        for ours, theirs in zip(
            results["min_dcf"], trained["min_dcf"], strict=True
        ):
            assert abs(ours["value"] - theirs["value"]) < 1e-9
        np.testing.assert_allclose(
            saved_scores(output), saved_scores(aam_run), atol=1e-5
        )
        printed = capsys.readouterr().out
        assert str(read_trials(corpus / "dev" / "trials.txt").fingerprint) in (
            printed
        )
        assert f"| {100 * trained['eer']['value']:.2f} |" in printed
        if model == aam_run:  # the checkpoint used is named
            latest = checkpoints_in_saving_order(aam_run / "save")[-1].path
            assert f"scoring {latest.name} of {aam_run} (epoch " in printed
            assert "its latest intact checkpoint)" in printed
        else:
            assert f"scoring exported model {model}" in printed


def unit(vectors):
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def expected_s_norm(corpus, model_folder, per_speaker, top_k):
    """S-norm computed here with numpy, on embeddings of SpeechBrain's
    ``encode_batch`` (one file at a time), and its float32 tolerance."""
    recognizer = load_exported(model_folder)

    def embed(path):
        waveform = recognizer.load_audio(str(path))
        return recognizer.encode_batch(waveform[None]).flatten().numpy()

    cohort = []
    for speaker in sorted((corpus / "train" / "wav").iterdir()):
        files = sorted(speaker.glob("*.wav"))[:per_speaker]
        cohort.append(unit([embed(path) for path in files]).mean(axis=0))
    cohort = unit(cohort)
    trials = read_trials(corpus / "dev" / "trials.txt")
    vectors = unit(
        [
            embed(corpus / "dev" / "wav" / f"{utterance}.wav")
            for utterance in trials.utterances
        ]
    )
    cohort_scores = np.sort(vectors @ cohort.T, axis=1)[:, ::-1][:, :top_k]
    mean, std = cohort_scores.mean(axis=1), cohort_scores.std(axis=1)
    enrol, test = trials.enrol_index, trials.test_index
    raw = (vectors[enrol] * vectors[test]).sum(axis=1)
    # Float32 cosines, cohort means and (1-Lipschitz) standard deviations
    # are exact to DELTA; z = (raw - mean) / std then to
    # DELTA * (2 + |z|) / std, large here as this barely trained model's
    # cohort scores hardly spread.
    normalized, tolerance = 0, 0
    for side in (enrol, test):
        z = (raw - mean[side]) / std[side]
        normalized = normalized + z / 2
        tolerance = tolerance + DELTA * (2 + np.abs(z)) / std[side] / 2
    return normalized, tolerance


def test_s_norm_and_adaptive_s_norm_are_second_systems(
    corpus, model_folder, tmp_path
):
    output = tmp_path / "out"
    options = ["--cohort_folder", str(corpus / "train"), "-o", str(output)]
    options += ["--cohort_utterances", "2", "--cache_dir", str(tmp_path)]
    assert score_model(corpus, model_folder, *options) == 0
    assert score_model(corpus, model_folder, *options, "--top_k", "3") == 0
    raw = load_results(output)
    for method, top_k in (("snorm", None), ("asnorm-top3", 3)):
        results = load_results(output / method)
        normalized = saved_scores(output / method)
        assert np.isfinite(normalized).all()
        expected, tolerance = expected_s_norm(corpus, model_folder, 2, top_k)
        assert (np.abs(normalized - expected) <= tolerance).all()
        assert results["extra"]["cohort_speakers"] == 4
        assert results["extra"]["cohort_utterances"] == 8
        assert results["system"] == f"model {method}"
        assert results["trials"] == raw["trials"]


def test_a_missing_audio_file_is_one_error_naming_it_and_its_line(
    corpus,
    model_folder,
    tmp_path,
    capsys,
):
    trials = tmp_path / "trials.txt"
    lines = (corpus / "dev" / "trials.txt").read_text().splitlines()[:2]
    trials.write_text(
        "\n".join([*lines, "0 spk0999/none.wav " + lines[0].split()[1]])
    )
    assert score_model(corpus, model_folder, trials=trials) == EXIT_ERROR
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "spk0999/none" in error and f"{trials}, line 3" in error


def test_top_k_without_a_cohort_is_refused(
    corpus,
    model_folder,
    capsys,
):
    assert score_model(corpus, model_folder, "--top_k", "2") == EXIT_ERROR
    assert "--top_k needs --cohort_folder" in capsys.readouterr().err
