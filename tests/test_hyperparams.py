"""Tests of the layered hyperparameter loading and of the shipped yaml."""

import pathlib

import pytest

from speaker_metric_learning.hyperparams import (
    HparamsError,
    load_hparams,
    resolved_hparams_text,
)

HPARAMS = pathlib.Path(__file__).parents[1] / "hparams"
LOSS_FILES = sorted(
    path for path in HPARAMS.glob("*.yaml") if path.name != "base.yaml"
)


def write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return str(path)


def test_child_overrides_and_cli_overrides_reach_the_shared_file(tmp_path):
    write(tmp_path, "base.yaml", "a: 1\nb: !ref <a> + 1\nc: null\n")
    child = write(tmp_path, "c.yaml", "r: !include:base.yaml\n    c: 5\n")
    hparams = load_hparams(child, "a: 10")
    assert hparams == {"a": 10, "b": 11, "c": 5}


def test_references_in_the_child_see_the_shared_names(tmp_path):
    write(tmp_path, "base.yaml", "dim: 4\nloss: null\n")
    child = write(
        tmp_path, "c.yaml", "r: !include:base.yaml\n    loss: !ref <dim> * 2\n"
    )
    assert load_hparams(child, {"dim": 5})["loss"] == 10


def test_unknown_cli_override_names_the_closest_options(tmp_path):
    write(tmp_path, "base.yaml", "number_of_epochs: 1\n")
    child = write(tmp_path, "c.yaml", "r: !include:base.yaml\n")
    with pytest.raises(HparamsError, match="Did you mean: number_of_epochs"):
        load_hparams(child, {"number_of_epoch": 3})


def test_unknown_entry_in_the_child_file_is_refused(tmp_path):
    write(tmp_path, "base.yaml", "lr: 1\n")
    child = write(tmp_path, "c.yaml", "r: !include:base.yaml\n    lrr: 2\n")
    with pytest.raises(HparamsError, match="--lrr"):
        load_hparams(child)


def test_plain_file_is_checked_too(tmp_path):
    plain = write(tmp_path, "p.yaml", "lr: 1\n")
    assert load_hparams(plain, {"lr": 2}) == {"lr": 2}
    with pytest.raises(HparamsError, match="--batch"):
        load_hparams(plain, {"batch": 2})


def test_missing_and_invalid_files_give_clear_errors(tmp_path):
    with pytest.raises(HparamsError, match="not found"):
        load_hparams(str(tmp_path / "nope.yaml"))
    broken = write(tmp_path, "b.yaml", "a: [1, 2\n")
    with pytest.raises(HparamsError, match="not valid YAML"):
        load_hparams(broken)


def test_resolved_text_records_what_the_run_used(tmp_path):
    write(tmp_path, "base.yaml", "a: 1\nb: !ref <a>\n")
    child = write(tmp_path, "c.yaml", "r: !include:base.yaml\n")
    text = resolved_hparams_text(child, {"a": 4})
    assert text == "a: 4\nb: 4\n"


@pytest.mark.parametrize("path", LOSS_FILES, ids=lambda p: p.stem)
def test_every_loss_file_builds_its_loss_and_shares_the_base(path, tmp_path):
    hparams = load_hparams(
        str(path),
        {"output_folder": str(tmp_path), "n_train_speakers": 7},
    )
    assert hparams["experiment"] == path.stem
    assert hparams["modules"]["loss"] is hparams["loss"]
    assert hparams["checkpointer"].recoverables["loss"] is hparams["loss"]
    # A loss file holds only its differences: one include, few entries.
    lines = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0].endswith("!include:base.yaml")
    assert len(lines) < 20
