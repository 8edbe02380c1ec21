"""Our losses and SincTDNN inside SpeechBrain's VoxCeleb training script.

The adapters of ``speaker_metric_learning.speechbrain_recipe`` on their
own, the shipped yaml files of ``hparams/speechbrain_recipe/``, and
SpeechBrain's ``train_speaker_embeddings.py`` itself, unmodified (taken
from a copy of the speechbrain repository by the ``speechbrain_scripts``
fixture; skipped without one), training every loss for one short epoch on
a small corpus laid out as VoxCeleb.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest
import soundfile
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.metric_stats import MetricStats

from speaker_metric_learning.checkpoints import checkpoints_in_saving_order
from speaker_metric_learning.losses import (
    AdditiveAngularMarginLoss,
    CenterLoss,
    PairContrastiveLoss,
    SoftmaxLoss,
    TripletLoss,
)
from speaker_metric_learning.model_io import PassThrough
from speaker_metric_learning.scoring.cosine import pairwise_eer
from speaker_metric_learning.speechbrain_recipe import (
    LossCost,
    LossHead,
    PairVerificationStats,
    classification_error,
)

ROOT = pathlib.Path(__file__).parents[1]
YAMLS = ROOT / "hparams" / "speechbrain_recipe"
#: The loss entries of the losses without a shipped yaml file, put in the
#: shipped file of their family.
OTHER_LOSSES = {
    "softmax": ("aam", "SoftmaxLoss", ["embedding_dim", "n_classes"]),
    "center": ("aam", "CenterLoss", ["embedding_dim", "n_classes"]),
    "coco": ("aam", "CongenerousCosineLoss", ["embedding_dim", "n_classes"]),
    "contrastive": ("triplet", "PairContrastiveLoss", []),
}
CLASSIFICATION = {"aam", "softmax", "center", "coco"}
REFERENCES = {
    "embedding_dim": "<embedding_dim>",
    "n_classes": "<out_n_neurons>",
}


def recipe_yaml(loss):
    """The yaml text that trains ``loss`` in SpeechBrain's script: a
    shipped file, or one with its loss entry replaced."""
    if loss not in OTHER_LOSSES:
        return (YAMLS / f"train_sinctdnn_{loss}.yaml").read_text()
    family, name, arguments = OTHER_LOSSES[loss]
    entry = f"loss: !new:speaker_metric_learning.losses.{name}\n" + "".join(
        f"    {argument}: !ref {REFERENCES[argument]}\n"
        for argument in arguments
    )
    text = (YAMLS / f"train_sinctdnn_{family}.yaml").read_text()
    text, count = re.subn(
        r"^loss: [^\n]*\n(?:    [^\n]*\n)*", lambda _: entry, text, flags=re.M
    )
    assert count == 1
    return text


def tiny_overrides(loss, data_folder, trials, output, n_speakers):
    """The yaml overrides of the tiny runs."""
    overrides = {
        "data_folder": str(data_folder),
        "verification_file": str(trials),
        "output_folder": str(output),
        "model_scale": 0.125,
        "embedding_dim": 16,
        "batch_size": 8,
        "sentence_len": 1.0,
        "number_of_epochs": 1,
        "num_workers": 0,
    }
    if loss in CLASSIFICATION:
        overrides["out_n_neurons"] = n_speakers
    return overrides


# ------------------------------------------------------------- adapters


def test_head_hands_the_loss_weights_to_modules():
    loss = CenterLoss(embedding_dim=4, n_classes=3)
    head = LossHead(loss)
    modules = torch.nn.ModuleDict({"classifier": head})
    assert {id(p) for p in modules.parameters()} == {
        id(loss.weight),
        id(loss.centers),
    }
    assert set(head.state_dict()) == {"loss.weight", "loss.centers"}
    x = torch.randn(5, 1, 4)
    assert head(x) is x


def test_cost_is_the_loss_of_the_batch():
    torch.manual_seed(0)
    x = torch.randn(6, 1, 8)
    labels = torch.tensor([[0], [1], [2], [0], [1], [2]])
    for loss in (
        AdditiveAngularMarginLoss(embedding_dim=8, n_classes=3),
        TripletLoss(),
        PairContrastiveLoss(),
    ):
        cost = LossCost(loss)(x, labels, torch.ones(6))
        assert float(cost.detach()) > 0
        assert torch.equal(cost, loss(x.squeeze(1), labels.squeeze(1)))


@pytest.mark.parametrize(
    "labels", [[0, 1, 2, 3], [5, 5, 5]], ids=["one chunk each", "one speaker"]
)
@pytest.mark.parametrize("loss", [TripletLoss(), PairContrastiveLoss()])
def test_pair_cost_without_pairs_is_a_zero_in_the_graph(loss, labels):
    x = torch.randn(len(labels), 1, 8, requires_grad=True)
    before = dict(loss.statistics)
    cost = LossCost(loss)(x, torch.tensor(labels).unsqueeze(1))
    assert cost.requires_grad and float(cost.detach()) == 0.0
    cost.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert loss.statistics == before  # the loss itself was not run


def test_classification_error_counts_wrong_predictions():
    loss = SoftmaxLoss(embedding_dim=2, n_classes=3)
    with torch.no_grad():
        loss.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    x = torch.tensor([[[2.0, 0.0]], [[0.0, 3.0]], [[-1.0, 0.5]], [[0.1, 1]]])
    targets = torch.tensor([[0], [2], [2], [0]])
    # predicted: 0, 1, 2, 1 -> wrong on the second and the last
    errors = classification_error(x, targets, torch.ones(4), loss=loss)
    assert errors.tolist() == [0.0, 1.0, 0.0, 1.0]
    # as SpeechBrain's script uses it: MetricStats, summarised as average
    stats = MetricStats(
        metric=lambda p, t, n: classification_error(p, t, n, loss=loss)
    )
    stats.append(["a", "b", "c", "d"], x, targets, torch.ones(4))
    assert stats.summarize("average") == pytest.approx(0.5)
    with pytest.raises(TypeError, match="PairVerificationStats"):
        classification_error(x, targets, loss=TripletLoss())


def test_pair_statistics_are_the_eer_of_every_pair():
    torch.manual_seed(1)
    embeddings = torch.randn(10, 1, 4)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 3]).unsqueeze(1)
    stats = PairVerificationStats()
    stats.append([f"u{i}" for i in range(6)], embeddings[:6], labels[:6])
    stats.append([f"u{i}" for i in range(6, 10)], embeddings[6:], labels[6:])
    expected = pairwise_eer(embeddings.squeeze(1), labels.squeeze(1))
    assert 0.0 < expected < 1.0
    assert stats.summarize("average") == expected
    assert stats.summarize() == {"EER": expected, "chunks": 10}
    with pytest.raises(ValueError, match="unknown field"):
        stats.summarize("min_score")
    with pytest.raises(ValueError, match="no batch"):
        PairVerificationStats().summarize()


@pytest.mark.parametrize("loss", ["aam", "triplet", *OTHER_LOSSES])
def test_recipe_yaml_joins_the_loss_to_classifier_cost_and_checkpoint(
    loss, tmp_path
):
    hparams = load_hyperpyyaml(
        recipe_yaml(loss),
        tiny_overrides(loss, tmp_path, tmp_path / "v.txt", tmp_path, 7),
    )
    assert hparams["classifier"].loss is hparams["loss"]
    assert hparams["compute_cost"].loss is hparams["loss"]
    assert hparams["modules"]["classifier"] is hparams["classifier"]
    recoverables = hparams["checkpointer"].recoverables
    assert recoverables["classifier"] is hparams["classifier"]
    assert recoverables["embedding_model"] is hparams["embedding_model"]
    for stage in ("compute_features", "mean_var_norm"):
        assert isinstance(hparams["modules"][stage], PassThrough)
    stats = hparams["error_stats"]()
    if loss in CLASSIFICATION:
        assert isinstance(stats, MetricStats)
        assert hparams["loss"].n_classes == 7
    else:
        assert isinstance(stats, PairVerificationStats)
    assert hparams["lr_annealing"](3) == (0.001, 0.001)


# ------------------------------------------- SpeechBrain's script itself


@pytest.fixture(scope="module")
def voxceleb(voxceleb_folder, tmp_path_factory):
    """4 training and 2 test speakers as VoxCeleb has them: utterances of
    3 to 4 s give three 1 s training segments each."""
    return voxceleb_folder(
        tmp_path_factory.mktemp("voxceleb"),
        n_train_speakers=4,
        n_dev_speakers=2,
        utterances_per_speaker=5,
        min_duration=3.0,
        max_duration=4.0,
    )


def fixed_batch(run):
    """Every training segment of a run (at its CSV position, not at a
    random one) and its encoded speaker, as the script's label encoder
    gives it."""
    encoder = CategoricalEncoder()
    encoder.load(run / "save" / "label_encoder.txt")
    wavs, labels = [], []
    lines = (run / "save" / "train.csv").read_text().splitlines()[1:]
    for line in lines:
        _, _, wav, start, stop, speaker = line.split(",")
        samples, _ = soundfile.read(
            wav, start=int(start), stop=int(stop), dtype="float32"
        )
        wavs.append(torch.from_numpy(samples))
        labels.append(encoder.encode_label(speaker))
    return torch.stack(wavs), torch.tensor(labels).unsqueeze(1)


def batch_cost(hparams, wavs, labels):
    """The script's training cost of a batch: batch norm on the batch's
    statistics, as in training (after a few steps its running statistics
    are still mostly their initial values)."""
    with torch.no_grad():
        embeddings = hparams["embedding_model"](wavs)
        outputs = hparams["classifier"](embeddings)
        return float(hparams["compute_cost"](outputs, labels))


@pytest.mark.parametrize("loss", ["aam", "triplet", *OTHER_LOSSES])
def test_speechbrain_script_trains_the_loss_from_yaml_alone(
    loss, speechbrain_scripts, voxceleb, tmp_path
):
    data_folder, trials = voxceleb
    yaml = tmp_path / f"train_sinctdnn_{loss}.yaml"
    yaml.write_text(recipe_yaml(loss))
    run = tmp_path / "run"
    overrides = tiny_overrides(loss, data_folder, trials, run, 4)
    process = subprocess.run(
        [
            sys.executable,
            str(speechbrain_scripts / "train_speaker_embeddings.py"),
            str(yaml),
            *(f"--{name}={value}" for name, value in overrides.items()),
            "--device=cpu",
        ],
        env={
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "plugin"), str(ROOT)]),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]

    (line,) = (run / "train_log.txt").read_text().splitlines()
    match = re.fullmatch(
        r"epoch: 1, lr: 1.00e-03 - train loss: (\S+) - valid loss: (\S+), "
        r"valid ErrorRate: (\S+)",
        line,
    )
    assert match, line
    error_rate = float(match.group(3))
    assert 0.0 <= error_rate <= 1.0
    # the speakers of the verification list are not trained on
    speakers = {
        row.rsplit(",", 1)[1]
        for row in (run / "save" / "train.csv").read_text().splitlines()[1:]
    }
    assert speakers == {"id10001", "id00012", "id10002", "id00013"}

    # the same yaml and seed build the script's initial modules
    initial = load_hyperpyyaml(
        yaml.read_text(), {**overrides, "output_folder": str(tmp_path / "x")}
    )
    start_loss = {
        name: tensor.clone()
        for name, tensor in initial["classifier"].state_dict().items()
    }
    wavs, labels = fixed_batch(run)
    before = batch_cost(initial, wavs, labels)
    (checkpoint,) = checkpoints_in_saving_order(run / "save")
    trained = load_hyperpyyaml(
        yaml.read_text(), {**overrides, "output_folder": str(tmp_path / "y")}
    )
    for name in ("embedding_model", "classifier"):
        state = torch.load(checkpoint.path / f"{name}.ckpt", weights_only=True)
        trained[name].load_state_dict(state)
    after = batch_cost(trained, wavs, labels)
    assert after < before, (before, after)

    # the loss's own weights were optimised and are in the checkpoint
    state = torch.load(checkpoint.path / "classifier.ckpt", weights_only=True)
    assert set(state) == set(start_loss)
    if loss in CLASSIFICATION:
        assert state["loss.weight"].shape == (4, 16)
        for name, tensor in state.items():
            assert not torch.equal(tensor, start_loss[name]), name
    else:
        assert state == {}
