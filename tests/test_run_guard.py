"""A run's results stay true: bad options, a second train.py, changed
options on resume, outputs over a run's files and bad trial lists are
refused in one line before anything is trained or overwritten."""

import fcntl
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from tiny import TINY_RUN

import train
from speaker_metric_learning import export
from speaker_metric_learning.command_line import EXIT_ERROR, EXIT_USAGE
from speaker_metric_learning.run_guard import (
    ADDED_OPTIONS,
    ADDED_WITH,
    LOCK_FILE,
    RunGuardError,
    changed_options,
)
from speaker_metric_learning.scoring import cli, evaluation

ROOT = pathlib.Path(__file__).parents[1]


def arguments(corpus, output, loss="aam", trials=None):
    return [
        str(ROOT / "hparams" / f"{loss}.yaml"),
        f"--output_folder={output}",
        f"--data_folder={corpus / 'train'}",
        f"--eval_folder={corpus / 'dev'}",
        f"--trials_file={trials or corpus / 'dev' / 'trials.txt'}",
        *TINY_RUN,
        "--number_of_epochs=1",
    ]


def nothing_prepared(output):
    """No data prepared, trained or logged in an output folder (loading the
    hyperparameters creates its empty save/ folder)."""
    save = output / "save"
    return (
        not (save.exists() and any(save.iterdir()))
        and not (output / "train_log.txt").exists()
    )


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    output = tmp_path_factory.mktemp("run")
    train.main(arguments(corpus, output))
    return output


@pytest.mark.parametrize(
    "option, message",
    [
        (
            "--number_of_epochs=-1",
            "--number_of_epochs -1: must be a whole number >= 0",
        ),
        ("--chunk_seconds=0", "--chunk_seconds 0: must be above 0"),
        ("--chunk_seconds=-1", "--chunk_seconds -1: must be above 0"),
        ("--lr=abc", "--lr 'abc': must be a finite number"),
        ("--lr=nan", "--lr 'nan': must be a finite number"),
        ("--lr=.nan", "--lr nan: must be a finite number"),
        ("--speakers_per_batch=2.5", "--speakers_per_batch 2.5: must be a"),
        ("--loss=foo", "--loss 'foo': the loss must be one of the losses"),
        # a loss class without the statistics every loss of the package has
        ("--loss=!new:torch.nn.MSELoss", "--loss 'MSELoss': the loss must be"),
    ],
)
def test_invalid_options_are_refused_before_anything_runs(
    corpus, tmp_path, option, message
):
    with pytest.raises(RunGuardError, match=message):
        train.main([*arguments(corpus, tmp_path), option])
    assert nothing_prepared(tmp_path)


def test_a_pair_loss_needs_two_chunks_per_speaker(corpus, tmp_path):
    for loss in ("contrastive", "triplet"):
        with pytest.raises(RunGuardError, match="needs at least 2 chunks"):
            train.main(
                [*arguments(corpus, tmp_path, loss), "--chunks_per_speaker=1"]
            )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize(
    "option, message",
    [
        ("--device=cuda:0", "--device cuda:0: this machine has 0 CUDA GPU"),
        ("--lr=abc", "--lr 'abc': must be a finite number"),
    ],
)
def test_train_py_says_it_in_one_line(tmp_path, option, message):
    process = subprocess.run(
        [
            sys.executable,
            "train.py",
            "hparams/aam.yaml",
            option,
            f"--output_folder={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 1 and "Traceback" not in process.stderr
    assert process.stderr.strip().splitlines()[-1] == f"error: {message}" or (
        message in process.stderr.strip().splitlines()[-1]
    )


def test_a_second_train_py_on_one_folder_is_refused(corpus, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / LOCK_FILE, "w") as held:  # another process's lock
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        with pytest.raises(
            RunGuardError,
            match=r"another train.py \(process 4242\) is running on",
        ):
            train.main(arguments(corpus, tmp_path))
    assert nothing_prepared(tmp_path)


def test_changed_options_on_resume(corpus, run, capsys):
    record = (run / "hyperparams.yaml").read_bytes()
    results = (run / "results.json").read_bytes()
    for option, change in (
        ("--model_scale=0.25", r"\(model_scale: 0.125 -> 0.25\)"),
        ("--lr=0.5", r"\(lr: 0.001 -> 0.5\)"),
        ("--embedding_dim=256", r"\(embedding_dim: 512 -> 256\)"),
    ):
        with pytest.raises(
            RunGuardError,
            match=f"trained with other options than this command's {change}",
        ):
            train.main([*arguments(corpus, run), option])
        assert (run / "hyperparams.yaml").read_bytes() == record
    assert (run / "results.json").read_bytes() == results
    # the run is still whole: it exports
    export.export_model(run, run.parent / "exported")
    # evaluation options may change: applied, logged and recorded
    capsys.readouterr()
    train.main([*arguments(corpus, run), "--eval_batch_size=2"])
    logged = "".join(capsys.readouterr())  # SpeechBrain's log handlers
    assert "changed options, which do not change the trained network " in (
        logged
    )
    assert "eval_batch_size: 4 -> 2" in logged
    assert "eval_batch_size: 2\n" in (run / "hyperparams.yaml").read_text()


def recorded_before(text, options):
    """A run's hyperparams.yaml as a run recorded it before ``options``
    (of ``run_guard.ADDED_OPTIONS``) existed: without them, the entries
    built from them and the lines that pass them on."""
    dropped = (*options, *(k for k, v in ADDED_WITH.items() if v in options))
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line[:1] not in " #\n":  # a top-level entry
            skipping = line.split(":", 1)[0] in dropped
        passes_on = any(f"!ref <{name}>" in line for name in options)
        if not skipping and not passes_on:
            kept.append(line)
    return "".join(kept)


def test_a_run_recorded_before_added_options_resumes(corpus, run, capsys):
    record = run / "hyperparams.yaml"
    complete = record.read_text()
    later = [name for name in ADDED_OPTIONS if name != "sinc_filters"]
    old = recorded_before(complete, later)
    top_level = set(re.findall(r"(?m)^(\w+):", old))
    assert top_level.isdisjoint(later + ["margin_schedule", "lr_scheduler"])
    assert "<margin_warmup_steps>" not in old and "sinc_filters" in top_level
    try:
        record.write_text(old)
        with pytest.raises(RunGuardError, match=r"\(margin_warmup_steps: not"):
            train.main([*arguments(corpus, run), "--margin_warmup_steps=10"])
        assert record.read_text() == old
        capsys.readouterr()
        train.main(arguments(corpus, run))  # resumes: the added options off
        logged = "".join(capsys.readouterr())
        assert "margin_warmup_steps: not recorded, trained as 0 -> 0" in logged
        assert (
            "lr_annealing_factor: not recorded, trained as null -> null"
            in logged
        )
        assert "\nmargin_warmup_steps: 0\n" in record.read_text()
        # a run recorded before sinc_filters trained the 80-filter SincNet,
        # the default then: the 24-filter default is another network
        record.write_text(recorded_before(complete, ADDED_OPTIONS))
        with pytest.raises(
            RunGuardError,
            match=r"\(sinc_filters: not recorded, trained as 80 -> null\)",
        ):
            train.main(arguments(corpus, run))
    finally:
        record.write_text(complete)
    eighty = re.sub(r"(?m)^sinc_filters:.*$", "sinc_filters: 80", complete)
    assert (
        changed_options(recorded_before(complete, ADDED_OPTIONS), eighty) == {}
    )


def test_outputs_never_replace_a_runs_own_files(run, tmp_path, capsys):
    record = (run / "hyperparams.yaml").read_bytes()
    results = (run / "results.json").read_bytes()
    with pytest.raises(SystemExit):
        export.main([str(run), str(run), "--overwrite"])
    assert "is a train.py run folder" in capsys.readouterr().err
    (checkpoint,) = list((run / "save").glob("CKPT+*"))[-1:]
    with pytest.raises(SystemExit):
        export.main([str(run), str(checkpoint), "--overwrite"])
    assert "is in the save/ folder of the train.py run" in (
        capsys.readouterr().err
    )
    trials = run.parent / "trials.txt"
    trials.write_text("1 a b\n0 a c\n")
    scores = tmp_path / "scores.txt"
    scores.write_text("0.9 a b\n0.1 a c\n")
    for command in (
        ["score-file", str(scores), "--trials", str(trials), "-o", str(run)],
        ["compare", str(run), "-o", str(run)],
    ):
        with pytest.raises(SystemExit) as exited:
            cli.main(command)
        assert exited.value.code == EXIT_ERROR
        assert "is a train.py run folder" in capsys.readouterr().err
    assert (run / "hyperparams.yaml").read_bytes() == record
    assert (run / "results.json").read_bytes() == results
    # a subfolder of the run is fine
    cli.main(
        [
            "score-file",
            str(scores),
            "--trials",
            str(trials),
            "-o",
            str(run / "other-scores"),
        ]
    )
    assert (run / "other-scores" / "results.json").is_file()


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "1 spk0004/utt0000.wav nobody/nothing.wav\n0 a b\n",
            "no audio file for 'nobody/nothing'",
        ),
        (
            "1 spk0004/utt0000.wav spk0004/utt0001.wav\n",
            "has no non-target trial",
        ),
        ("1 a\n", "line 1: expected 3 fields"),
        ("maybe a b\n", "line 1: the label is 'maybe'"),
    ],
)
def test_trial_lists_are_checked_before_training(
    corpus, tmp_path, text, message
):
    trials = tmp_path / "trials.txt"
    trials.write_text(text)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        train.main(arguments(corpus, tmp_path / "out", trials=trials))
    assert nothing_prepared(tmp_path / "out")


def test_scoring_exits_1_on_any_refused_input(run, corpus, monkeypatch, capsys):
    def fails(*args, **kwargs):
        raise RuntimeError("embedding failed")

    monkeypatch.setattr(evaluation, "extract_embeddings", fails)
    with pytest.raises(SystemExit) as exited:
        cli.main(
            [
                "score-model",
                str(run),
                "--eval_folder",
                str(corpus / "dev" / "wav"),
                "--trials",
                str(corpus / "dev" / "trials.txt"),
            ]
        )
    assert exited.value.code == EXIT_ERROR
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1] == "error: embedding failed"
    for option in (["--window", "0"], ["--window", "3", "--step", "-0.1"]):
        with pytest.raises(SystemExit) as raised:
            cli.main(
                [
                    "score-model",
                    str(run),
                    "--eval_folder",
                    "x",
                    "--trials",
                    "y",
                    *option,
                ]
            )
        assert raised.value.code == EXIT_USAGE
        assert "must be > 0" in capsys.readouterr().err


def test_export_check_also_checks_the_weights(run, tmp_path, capsys):
    folder = export.export_model(run, tmp_path / "model")
    export.main(["--check", str(folder)])
    printed = capsys.readouterr().out
    assert "# Weights: " in printed and "fit SincTDNN" in printed
    torch.save(
        torch.nn.Linear(2, 2).state_dict(), folder / "embedding_model.ckpt"
    )
    with pytest.raises(SystemExit):
        export.main(["--check", str(folder)])
    assert "does not fit SincTDNN" in capsys.readouterr().err
    (folder / "embedding_model.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit):
        export.main(["--check", str(folder)])
    assert "is not a weights-only state dict" in capsys.readouterr().err


def test_ctrl_c_says_the_run_will_resume(corpus, tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "train.py",
            *arguments(corpus, tmp_path)[:-1],
            "--number_of_epochs=100",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not list((tmp_path / "save").glob("CKPT+*")):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, error = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in error
    assert error.strip().splitlines()[-1] == (
        "interrupted: run the same command again to resume from the last "
        "checkpoint"
    )
