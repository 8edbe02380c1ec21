"""Our recipe with SpeechBrain's own VoxCeleb recipe files, unmodified.

SpeechBrain's ``voxceleb_prepare.py`` writes the CSV files ``train.py``
trains and evaluates on (``--train_csv``, ``--enrol_csv``, ...), and its
``speaker_verification_cosine.py`` and ``speaker_verification_plda.py``
score our model through ``hparams/verification.yaml``. These files are in
the speechbrain repository, not in the pip package: they are extracted at
test time from a copy of that repository (the ``speechbrain_scripts``
fixture of ``conftest.py``); without one the tests are skipped.
"""

import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
from tiny import TINY_RUN

import train
from speaker_metric_learning.export import export_model
from speaker_metric_learning.scoring import cli

ROOT = pathlib.Path(__file__).parents[1]


@pytest.fixture(scope="module")
def voxceleb(voxceleb_folder, tmp_path_factory):
    """A synthetic corpus in VoxCeleb1's layout (utterances of 3 to 4 s,
    so that each gives one 3 s training segment) and its trial list in
    VoxCeleb's format; returns (data folder, trial list)."""
    return voxceleb_folder(
        tmp_path_factory.mktemp("voxceleb"),
        n_train_speakers=10,
        n_dev_speakers=3,
        utterances_per_speaker=4,
        min_duration=3.0,
        max_duration=4.0,
    )


@pytest.fixture(scope="module")
def prepared(speechbrain_scripts, voxceleb, tmp_path_factory):
    """The CSV files of SpeechBrain's own preparation of the corpus."""
    save_folder = tmp_path_factory.mktemp("prepared")
    spec = importlib.util.spec_from_file_location(
        "speechbrain_voxceleb_prepare",
        speechbrain_scripts / "voxceleb_prepare.py",
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data_folder, trials = voxceleb
    module.prepare_voxceleb(
        data_folder=str(data_folder),
        save_folder=str(save_folder),
        verification_pairs_file=str(trials),
        splits=["train", "dev", "test"],
        seg_dur=3.0,
    )
    return save_folder


@pytest.fixture(scope="module")
def run(prepared, voxceleb, tmp_path_factory):
    """A tiny run trained and evaluated on SpeechBrain's CSV files (8-d
    embeddings, so that PLDA has more training segments than dimensions)."""
    output = tmp_path_factory.mktemp("run")
    results = train.main(
        [
            str(ROOT / "hparams" / "softmax.yaml"),
            f"--output_folder={output}",
            f"--train_csv={prepared / 'train.csv'}",
            f"--valid_csv={prepared / 'dev.csv'}",
            "--valid_split=utterance",
            f"--enrol_csv={prepared / 'enrol.csv'}",
            f"--test_csv={prepared / 'test.csv'}",
            f"--trials_file={voxceleb[1]}",
            "--embedding_dim=8",
            *TINY_RUN,
        ]
    )
    return output, results


def run_script(scripts, name, voxceleb, model, output, *options):
    """Runs one of SpeechBrain's scripts with hparams/verification.yaml;
    returns the EER (%) it logs."""
    data_folder, trials = voxceleb
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugin"), str(ROOT)]),
    }
    process = subprocess.run(
        [
            sys.executable,
            name,
            str(ROOT / "hparams" / "verification.yaml"),
            f"--data_folder={data_folder}",
            f"--verification_file={trials}",
            f"--pretrain_path={model}",
            f"--output_folder={output}",
            "--device=cpu",
            "--cohort_size=5",
            *options,
        ],
        cwd=scripts,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    (eer,) = re.findall(r"EER\(%\)=([\d.]+)", process.stdout + process.stderr)
    return float(eer)


def test_train_py_takes_speechbrain_csv_files(prepared, voxceleb, run):
    output, results = run
    header = (prepared / "train.csv").read_text().splitlines()[0]
    assert header == "ID,duration,wav,start,stop,spk_id"
    speakers = {
        line.rsplit(",", 1)[1]
        for line in (prepared / "train.csv").read_text().splitlines()[1:]
    }
    recorded = (output / "hyperparams.yaml").read_text()
    assert f"n_train_speakers: {len(speakers)}" in recorded
    # every trial is scored: its utterances come from enrol.csv and
    # test.csv, merged with each ID once
    assert results["trials"]["n_trials"] == len(
        voxceleb[1].read_text().splitlines()
    )
    ids = [
        line.split(",", 1)[0]
        for name in ("enrol.csv", "test.csv")
        for line in (prepared / name).read_text().splitlines()[1:]
    ]
    merged = (output / "save" / "eval.csv").read_text().splitlines()[1:]
    assert sorted(line.split(",", 1)[0] for line in merged) == sorted(set(ids))
    log = (output / "train_log.txt").read_text()
    assert "valid loss" in log and "train loss" in log


def test_speechbrain_cosine_script_scores_as_score_model(
    speechbrain_scripts, voxceleb, run, tmp_path
):
    output, results = run
    model = export_model(output, tmp_path / "model")
    raw = run_script(
        speechbrain_scripts,
        "speaker_verification_cosine.py",
        voxceleb,
        model,
        tmp_path / "cosine",
        "--score_norm=null",
    )
    cli.main(
        [
            "score-model",
            str(output),  # the run itself: same weights as the export
            f"--eval_folder={voxceleb[0] / 'wav'}",
            f"--trials={voxceleb[1]}",
            f"--output={tmp_path / 'ours'}",
            "--bootstrap=0",
        ]
    )
    ours = json.loads((tmp_path / "ours" / "results.json").read_text())
    # whole utterances on both sides: the same embeddings, the same EER
    assert raw == pytest.approx(100 * ours["eer"]["value"], abs=1e-4)
    assert raw == pytest.approx(100 * results["eer"]["value"], abs=1e-4)
    theirs = {}
    for line in (tmp_path / "cosine" / "scores.txt").read_text().splitlines():
        enrol, test, _, score = line.split()
        theirs[enrol, test] = float(score)
    for line in (tmp_path / "ours" / "scores.txt").read_text().splitlines():
        score, enrol, test = line.split()
        key = (enrol.rsplit(".", 1)[0], test.rsplit(".", 1)[0])
        assert theirs[key] == pytest.approx(float(score), abs=2e-6)
    # s-norm as the script does it, from the run folder directly
    normalized = run_script(
        speechbrain_scripts,
        "speaker_verification_cosine.py",
        voxceleb,
        output,
        tmp_path / "snorm",
    )
    assert 0.0 <= normalized <= 100.0
    snorm_scores = (tmp_path / "snorm" / "scores.txt").read_text()
    assert snorm_scores != (tmp_path / "cosine" / "scores.txt").read_text()


def test_speechbrain_plda_script_scores_our_embeddings(
    speechbrain_scripts, voxceleb, run, tmp_path
):
    output, _ = run
    eer = run_script(
        speechbrain_scripts,
        "speaker_verification_plda.py",
        voxceleb,
        output,
        tmp_path / "plda",
        "--rank_f=4",
    )
    assert 0.0 <= eer <= 100.0
