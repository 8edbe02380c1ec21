"""End-to-end runs of the recipe (train.py) on a tiny generated corpus."""

import json
import pathlib
import subprocess
import sys

import pytest
from tiny import TINY_RUN, tiny_corpus

import train

ROOT = pathlib.Path(__file__).parents[1]


def test_default_run_generates_the_corpus_trains_and_evaluates(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(train, "generate_corpus", tiny_corpus)
    output = tmp_path / "out"
    results = train.main(
        [
            str(ROOT / "hparams" / "aam.yaml"),
            f"--output_folder={output}",
            f"--default_corpus_folder={tmp_path / 'corpus'}",
            *TINY_RUN,
        ]
    )
    assert (tmp_path / "corpus" / "dev" / "trials.txt").exists()
    saved = json.loads((output / "results.json").read_text())
    assert saved == results
    assert 0.0 <= saved["eer"]["value"] <= 1.0
    low, high = saved["eer"]["ci"]
    assert low <= saved["eer"]["value"] <= high
    assert saved["trials"]["n_trials"] > 0
    assert (output / "det.png").stat().st_size > 0
    log = (output / "train_log.txt").read_text().splitlines()
    assert [line.split(",")[0] for line in log] == ["epoch: 1", "epoch: 2"]
    assert "n_train_speakers: 4" in (output / "hyperparams.yaml").read_text()


@pytest.mark.parametrize("loss", ["softmax", "aam"])
def test_given_folders_train_and_resume_without_repeating(
    corpus, tmp_path, loss
):
    arguments = [
        str(ROOT / "hparams" / f"{loss}.yaml"),
        f"--output_folder={tmp_path}",
        f"--data_folder={corpus / 'train'}",
        f"--eval_folder={corpus / 'dev'}",
        f"--trials_file={corpus / 'dev' / 'trials.txt'}",
        *TINY_RUN,
    ]
    train.main(arguments)
    # a second run with more epochs resumes from the checkpoint: only the
    # new epoch is trained and logged
    train.main([*arguments, "--number_of_epochs=3"])
    epochs = [
        line.split(",")[0]
        for line in (tmp_path / "train_log.txt").read_text().splitlines()
    ]
    assert epochs == ["epoch: 1", "epoch: 2", "epoch: 3"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--data_folder=/no/such/folder"], "/no/such/folder does not exist"),
        (["--number_of_epoch=3"], "Did you mean: number_of_epochs"),
    ],
)
def test_bad_command_lines_end_in_one_clear_line(tmp_path, arguments, message):
    process = subprocess.run(
        [
            sys.executable,
            "train.py",
            "hparams/aam.yaml",
            f"--output_folder={tmp_path}",
            *arguments,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode != 0
    last = process.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in process.stderr


def test_folder_without_audio_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="No readable audio file in .*empty"):
        train.main(
            [
                str(ROOT / "hparams" / "aam.yaml"),
                f"--output_folder={tmp_path / 'out'}",
                f"--data_folder={empty}",
            ]
        )


@pytest.mark.parametrize(
    "loss", ["softmax", "center", "coco", "aam", "contrastive", "triplet"]
)
def test_every_loss_file_trains_and_logs_its_statistics(corpus, tmp_path, loss):
    results = train.main(
        [
            str(ROOT / "hparams" / f"{loss}.yaml"),
            f"--output_folder={tmp_path}",
            f"--data_folder={corpus / 'train'}",
            f"--eval_folder={corpus / 'dev'}",
            f"--trials_file={corpus / 'dev' / 'trials.txt'}",
            *TINY_RUN,
            "--number_of_epochs=1",
        ]
    )
    assert results["system"] == loss
    log = (tmp_path / "train_log.txt").read_text()
    assert "embedding_norm" in log and "mean_pairwise_cosine" in log
    expected = (
        "active_fraction" if loss in ("contrastive", "triplet") else "accuracy"
    )
    assert expected in log


def test_pretrained_starts_from_another_run_with_a_new_head(corpus, tmp_path):
    common = [
        f"--eval_folder={corpus / 'dev'}",
        f"--trials_file={corpus / 'dev' / 'trials.txt'}",
        *(option for option in TINY_RUN if "speakers_per_batch" not in option),
        "--speakers_per_batch=3",
    ]
    first = train.main(
        [
            str(ROOT / "hparams" / "aam.yaml"),
            f"--output_folder={tmp_path / 'a'}",
            f"--data_folder={corpus / 'train'}",
            *common,
        ]
    )
    # no training: the evaluation sees exactly the pretrained embeddings,
    # although the new run has another loss (and head)
    second = train.main(
        [
            str(ROOT / "hparams" / "softmax.yaml"),
            f"--output_folder={tmp_path / 'b'}",
            f"--data_folder={corpus / 'dev'}",
            f"--pretrained={tmp_path / 'a'}",
            *common,
            "--number_of_epochs=0",
        ]
    )
    assert second["eer"]["value"] == first["eer"]["value"]
    assert second["cllr"] == pytest.approx(first["cllr"])
