"""Tests of the hyperparameter loading and of the shipped yaml files."""

import pathlib
import re

import pytest
import ruamel.yaml
import torch
from hyperpyyaml import load_hyperpyyaml

from speaker_metric_learning.hyperparams import (
    HparamsError,
    check_overrides,
    load_hparams,
    preview_hparams,
)
from speaker_metric_learning.inference_definition import exported_hyperparams
from speaker_metric_learning.layout import WEIGHTS_FILE

HPARAMS = pathlib.Path(__file__).parents[1] / "hparams"
#: Options of SincTDNN, which the Fbank baselines do not have.
SINCTDNN_OPTIONS = {
    "architecture",
    "front_end",
    "sinc_filters",
    "tdnn_norm",
    "compression",
    "sinc_stride",
    "sinc_frequency_unit",
    "front_end_scale",
    "filterbank_std_norm",
}
#: The margin warm-up, which the losses without a margin do not have.
MARGIN_WARMUP = {"margin_warmup_steps", "margin_schedule"}
#: The training recipes, and the entries in which each differs from
#: aam.yaml, which it leaves out or which it adds (besides ``experiment``,
#: whose entry holds the file's header).
RECIPES = {
    "aam": set(),
    "softmax": {"loss", *MARGIN_WARMUP},
    "center": {"loss", *MARGIN_WARMUP},
    "coco": {"loss", *MARGIN_WARMUP},
    "contrastive": {
        "mining",
        "loss",
        "speakers_per_batch",
        "chunks_per_speaker",
    },
    "triplet": {
        "mining",
        "loss",
        "speakers_per_batch",
        "chunks_per_speaker",
        "lr",
    },
    "xvector": {"embedding_model", *SINCTDNN_OPTIONS},
    "ecapa": {"embedding_model", "embedding_dim", *SINCTDNN_OPTIONS},
}
#: Top-level names the tests, benchmarks and README pass on command lines.
COMMAND_LINE_OPTIONS = {
    "model_scale": 0.125,
    "chunk_seconds": 1.0,
    "speakers_per_batch": 4,
    "chunks_per_speaker": 2,
    "batches_per_epoch": 2,
    "number_of_epochs": 1,
    "lr": 0.01,
    "seed": 3,
    "data_folder": "train",
    "eval_folder": "dev",
    "trials_file": "trials.txt",
    "train_csv": "train.csv",
    "valid_csv": "dev.csv",
    "eval_csv": "eval.csv",
    "enrol_csv": "enrol.csv",
    "test_csv": "test.csv",
    "num_workers": 0,
    "eval_batch_size": 2,
    "valid_fraction": 0.5,
    "valid_split": "utterance",
    "pretrained": None,
    "use_tensorboard": False,
    "default_corpus_folder": "corpus",
    "eval_window_seconds": 3.0,
    "eval_step_seconds": 0.1,
    "lr_annealing_factor": 0.5,
}
#: What SpeechBrain's Brain and our train.py take from a recipe.
BRAIN_KEYS = (
    "modules",
    "opt_class",
    "checkpointer",
    "epoch_counter",
    "train_logger",
    "label_encoder",
    "chunker",
    "batch_sampler",
)


def entries(path):
    """Top-level entries of a yaml file: name -> its lines, with the
    comment lines just above it (the first holds the file's header)."""
    result, pending = {}, []
    for line in path.read_text().splitlines():
        name = re.match(r"([A-Za-z_]\w*):", line)
        if name:
            result[name.group(1)] = pending + [line]
            pending = []
        elif line.startswith((" ", "\t")) and result and not pending:
            result[list(result)[-1]].append(line)
        elif line.strip():
            pending.append(line)
    return result


def write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return str(path)


def test_every_recipe_is_listed_here():
    shipped = {path.stem for path in HPARAMS.glob("*.yaml")}
    assert shipped - {"verification"} == set(RECIPES)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipes_differ_only_where_their_loss_or_model_does(name):
    reference = entries(HPARAMS / "aam.yaml")
    recipe = entries(HPARAMS / f"{name}.yaml")
    # the shared entries in the same order, some perhaps left out or added
    shared = [key for key in recipe if key in reference]
    assert shared == [key for key in reference if key in recipe]
    differing = {
        key
        for key in {*reference, *recipe}
        if recipe.get(key) != reference.get(key)
    } - {"experiment"}
    # the declared differences are exactly the real ones
    assert differing == RECIPES[name]
    assert recipe["experiment"][-1] == f"experiment: {name}"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_plain_hyperpyyaml_loads_every_recipe_for_a_brain(name, tmp_path):
    overrides = {
        **COMMAND_LINE_OPTIONS,
        "output_folder": str(tmp_path),
        "n_train_speakers": 7,
    }
    if "architecture" not in RECIPES[name]:
        overrides.update(tdnn_norm="batch", sinc_stride=10)
    with open(HPARAMS / f"{name}.yaml") as stream:
        hparams = load_hyperpyyaml(stream, overrides)
    for key in BRAIN_KEYS:
        assert hparams[key] is not None, key
    assert hparams["experiment"] == name
    assert set(hparams["modules"]) == {"embedding_model", "loss"}
    assert hparams["modules"]["loss"] is hparams["loss"]
    recoverables = hparams["checkpointer"].recoverables
    assert recoverables["loss"] is hparams["loss"]
    assert recoverables["embedding_model"] is hparams["embedding_model"]
    assert recoverables["counter"] is hparams["epoch_counter"]
    assert hparams["epoch_counter"].limit == 1
    assert hparams["checkpointer"].checkpoints_dir == tmp_path / "save"
    n_classes = getattr(hparams["loss"], "n_classes", 7)
    assert n_classes == 7
    assert hparams["lr_scheduler"].hyperparam_value == hparams["lr"]
    assert hparams["lr_scheduler"].annealing_factor == 0.5
    if "margin_schedule" in hparams:
        assert hparams["margin_schedule"].loss is hparams["loss"]
        assert hparams["margin_schedule"].warmup_steps == 0


#: What SpeechBrain's speaker_verification_cosine.py and
#: speaker_verification_plda.py read from their yaml.
VERIFICATION_KEYS = (
    "data_folder",
    "output_folder",
    "save_folder",
    "verification_file",
    "train_data",
    "enrol_data",
    "test_data",
    "split_ratio",
    "skip_prep",
    "n_train_snts",
    "score_norm",
    "cohort_size",
    "train_dataloader_opts",
    "enrol_dataloader_opts",
    "test_dataloader_opts",
    "compute_features",
    "mean_var_norm",
    "embedding_model",
    "pretrainer",
    "seg_dur",
    "emb_dim",
    "compute_plda",
)


def test_plain_hyperpyyaml_loads_the_verification_yaml(tmp_path):
    """With a model folder, the yaml gives SpeechBrain's scripts all they
    read, and its Pretrainer loads the folder's weights."""
    node = ruamel.yaml.YAML().load(
        "m: !new:speaker_metric_learning.models.SincTDNN\n"
        "    {scale: 0.125, embedding_dim: 16}"
    )["m"]
    model = tmp_path / "model"
    model.mkdir()
    (model / "hyperparams.yaml").write_text(exported_hyperparams(node))
    saved = load_hyperpyyaml(exported_hyperparams(node))["embedding_model"]
    torch.save(saved.state_dict(), model / WEIGHTS_FILE)
    overrides = {
        "data_folder": str(tmp_path / "voxceleb1"),
        "pretrain_path": str(model),
        "output_folder": str(tmp_path / "out"),
    }
    with open(HPARAMS / "verification.yaml") as stream:
        hparams = load_hyperpyyaml(stream, overrides)
    for key in VERIFICATION_KEYS:
        assert key in hparams, key
    assert hparams["emb_dim"] == 16
    # the scripts write the trial list to save_folder first
    (tmp_path / "out" / "save").mkdir(parents=True)
    hparams["pretrainer"].collect_files()
    hparams["pretrainer"].load_collected()
    loaded = hparams["embedding_model"].state_dict()
    for name, value in saved.state_dict().items():
        assert torch.equal(loaded[name], value), name
    wavs = torch.randn(2, 16000)
    lengths = torch.ones(2)
    feats = hparams["mean_var_norm"](hparams["compute_features"](wavs), lengths)
    assert torch.equal(feats, wavs)


def test_overrides_and_references(tmp_path):
    path = write(tmp_path, "r.yaml", "a: 1\nb: !ref <a> + 1\nc: null\n")
    assert load_hparams(path, "a: 10") == {"a": 10, "b": 11, "c": None}
    assert load_hparams(path, {"c": 5}) == {"a": 1, "b": 2, "c": 5}


def test_unknown_override_names_the_closest_options(tmp_path):
    path = write(tmp_path, "r.yaml", "number_of_epochs: 1\n")
    for check in (load_hparams, preview_hparams, check_overrides):
        with pytest.raises(HparamsError, match="Did you mean: number_of_ep"):
            check(path, {"number_of_epoch": 3})


def test_missing_and_invalid_files_give_clear_errors(tmp_path):
    with pytest.raises(HparamsError, match="not found"):
        load_hparams(str(tmp_path / "nope.yaml"))
    broken = write(tmp_path, "b.yaml", "a: [1, 2\n")
    with pytest.raises(HparamsError, match="not valid YAML"):
        load_hparams(broken)
    listed = write(tmp_path, "l.yaml", "- 1\n- 2\n")
    with pytest.raises(HparamsError, match="must hold a mapping"):
        load_hparams(listed)


def test_preview_resolves_values_and_builds_nothing(tmp_path):
    path = write(
        tmp_path,
        "r.yaml",
        "out: results\nsave: !ref <out>/save\n"
        "boom: !apply:sys.exit [3]\nn: !ref <k> * 2\nk: 4\n",
    )
    preview = preview_hparams(path, {"out": "elsewhere", "k": 5})
    assert preview["save"] == "elsewhere/save"
    assert preview["n"] == 10
    assert preview["boom"].tag.value == "!apply:sys.exit"
