"""Tiny recipe runs with the VoxCeleb-recipe options: validation split by
speaker or by utterance, noise and reverberation augmentation, TensorBoard;
and with the training options that are off by default: triplet mining, the
margin warm-up and the learning-rate annealing."""

import pathlib

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny import tiny_corpus

import train
from speaker_metric_learning.checkpoints import checkpoints_in_saving_order
from speaker_metric_learning.hyperparams import HparamsError
from speaker_metric_learning.losses import MINERS, Miner

ROOT = pathlib.Path(__file__).parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # 6 speakers of 4 utterances: enough to hold some out for validation
    return tiny_corpus(
        tmp_path_factory.mktemp("data") / "corpus",
        n_train_speakers=6,
        utterances_per_speaker=4,
    )


def tiny_run(corpus, output, *options, recipe="softmax"):
    return [
        str(ROOT / "hparams" / f"{recipe}.yaml"),
        f"--output_folder={output}",
        f"--data_folder={corpus / 'train'}",
        "--model_scale=0.125",
        "--chunk_seconds=1.0",
        "--speakers_per_batch=2",
        "--chunks_per_speaker=2",
        "--batches_per_epoch=2",
        "--number_of_epochs=1",
        "--num_workers=0",
        *options,
    ]


def epoch_fields(output):
    """The fields of every line (epoch) of a run's train log."""
    return [
        dict(
            field.strip().rsplit(": ", 1)
            for part in line.split(" - ")
            for field in part.split(",")
        )
        for line in (output / "train_log.txt").read_text().splitlines()
    ]


def log_fields(output):
    (fields,) = epoch_fields(output)
    return fields


def test_speaker_disjoint_validation_reports_eer_only(corpus, tmp_path):
    train.main(
        tiny_run(
            corpus, tmp_path, "--valid_fraction=0.5", "--valid_split=speaker"
        )
    )
    fields = log_fields(tmp_path)
    assert 0.0 <= float(fields["valid eer"]) <= 1.0
    assert "valid loss" not in fields and "train loss" in fields
    train_ids = (tmp_path / "save" / "train.csv").read_text()
    valid_rows = (tmp_path / "save" / "valid.csv").read_text().splitlines()[1:]
    assert len(valid_rows) == 12  # 3 of 6 speakers x 4 utterances
    assert all(row.split(",")[3] not in train_ids for row in valid_rows)
    assert "n_train_speakers: 3" in (tmp_path / "hyperparams.yaml").read_text()


def test_utterance_validation_augmentation_and_tensorboard(
    corpus, tmp_path, monkeypatch
):
    pytest.importorskip("tensorboard", reason="pip install tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    rng = np.random.default_rng(0)
    (tmp_path / "musan").mkdir()
    sf.write(tmp_path / "musan" / "n.wav", rng.standard_normal(32000), 16000)
    (tmp_path / "rirs").mkdir()
    sf.write(tmp_path / "rirs" / "r.wav", np.r_[1.0, np.zeros(99)], 16000)
    calls, real_augmenter = [], train.waveform_augmenter

    def counting_augmenter(**kwargs):
        augment = real_augmenter(**kwargs)

        def counted(wavs, lengths):
            calls.append(wavs.shape)
            return augment(wavs, lengths)

        counted.replicate_labels = augment.replicate_labels
        return counted

    monkeypatch.setattr(train, "waveform_augmenter", counting_augmenter)
    output = tmp_path / "out"
    train.main(
        tiny_run(
            corpus,
            output,
            "--valid_fraction=0.5",
            "--valid_split=utterance",
            f"--noise_folder={tmp_path / 'musan'}",
            f"--rir_folder={tmp_path / 'rirs'}",
            "--use_tensorboard=True",
        )
    )
    fields = log_fields(output)
    assert "valid loss" in fields and "valid accuracy" in fields
    assert 0.0 <= float(fields["valid eer"]) <= 1.0
    assert calls == [(4, 16000), (4, 16000)]  # both training batches only
    assert (output / "save" / "noise.csv").exists()
    events = EventAccumulator(str(output / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "valid/eer", "lr", "train/step_loss"} <= set(scalars)
    assert [e.step for e in events.Scalars("train/step_loss")] == [1, 2]


@pytest.mark.parametrize(
    "options, message",
    [
        (
            ["--train_csv=data.csv", "--data_folder=train"],
            "give --train_csv or --data_folder, not both",
        ),
        (
            ["--train_csv=data.csv", "--valid_fraction=0.2"],
            "give --train_csv or --valid_fraction, not both",
        ),
        (
            ["--enrol_csv=data.csv", "--eval_csv=data.csv"],
            "give --eval_csv or --enrol_csv, not both",
        ),
        (["--enrol_csv=data.csv"], "give --enrol_csv and --test_csv together"),
        (["--train_csv=missing.csv"], "--train_csv missing.csv does not exist"),
    ],
)
def test_contradicting_data_options_are_refused_first(
    tmp_path, monkeypatch, options, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("ID,duration,wav,spk_id\n")
    (tmp_path / "train").mkdir()
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        train.main(
            [
                str(ROOT / "hparams" / "softmax.yaml"),
                f"--output_folder={tmp_path / 'out'}",
                *options,
            ]
        )
    assert not (tmp_path / "out").exists()


#: Whether a triplet is kept, from ``d(a, n) - d(a, p)`` and the margin.
MINING_RULES = {
    "semihard": lambda gap, margin: 0 < gap <= margin,
    "hard": lambda gap, margin: gap <= 0,
}


@pytest.mark.parametrize("recipe", ["triplet", "contrastive"])
@pytest.mark.parametrize("mining", sorted(MINING_RULES))
def test_mining_option_selects_its_triplets_in_a_run(
    corpus, tmp_path, monkeypatch, recipe, mining
):
    calls, real_triplets = [], Miner.triplets

    def recorded(miner, distances, labels, margin):
        selected = real_triplets(miner, distances, labels, margin)
        kept = set(zip(*[t.tolist() for t in selected], strict=True))
        calls.append((miner, distances.detach(), labels, margin, kept))
        return selected

    monkeypatch.setattr(Miner, "triplets", recorded)
    train.main(
        tiny_run(
            corpus,
            tmp_path,
            "--speakers_per_batch=3",
            f"--mining={mining}",
            recipe=recipe,
        )
    )
    assert len(calls) == 2  # one per training batch
    n_selected, n_triplets = 0, 0
    for miner, distances, labels, margin, selected in calls:
        assert type(miner) is MINERS[mining]
        assert margin == 0.4
        labels = labels.tolist()
        every = [
            (a, p, n)
            for a in range(len(labels))
            for p in range(len(labels))
            for n in range(len(labels))
            if a != p and labels[a] == labels[p] != labels[n]
        ]
        expected = {
            (a, p, n)
            for a, p, n in every
            if MINING_RULES[mining](
                float(distances[a, n] - distances[a, p]), margin
            )
        }
        assert selected == expected
        n_selected, n_triplets = n_selected + len(selected), len(every)
    assert 0 < n_selected < 2 * n_triplets
    if recipe == "triplet":  # the loss averaged over the mined triplets
        logged = float(log_fields(tmp_path)["train triplets"])
        assert logged == pytest.approx(n_selected / 2, rel=1e-2)


def test_unknown_mining_is_refused_before_data_is_prepared(tmp_path):
    with pytest.raises(ValueError, match="--mining 'hardest': use null, 'all'"):
        train.main(
            [
                str(ROOT / "hparams" / "triplet.yaml"),
                f"--output_folder={tmp_path / 'out'}",
                "--mining=hardest",
            ]
        )
    assert not (tmp_path / "out").exists()


def test_euclidean_pair_loss_warns_that_scoring_is_cosine(corpus, tmp_path):
    recipe = (ROOT / "hparams" / "triplet.yaml").read_text()
    assert recipe.count("    distance: cosine\n") == 1
    euclidean = tmp_path / "euclidean.yaml"
    euclidean.write_text(
        recipe.replace("    distance: cosine\n", "    distance: euclidean\n")
    )
    warning = "TripletLoss trains with the euclidean distance, but validation"
    for path, output, warned in (
        (euclidean, tmp_path / "euclidean", True),
        (ROOT / "hparams" / "triplet.yaml", tmp_path / "cosine", False),
    ):
        arguments = tiny_run(corpus, output, "--number_of_epochs=0")
        train.main([str(path), *arguments[1:]])
        assert (warning in (output / "log.txt").read_text()) is warned


def test_margin_warmup_raises_the_margin_over_its_steps(corpus, tmp_path):
    # AAM margin 0.05 reached after 4 optimizer steps, 2 steps per epoch:
    # the batches of epoch 1 use margins 0 and 0.0125, of epoch 2 0.025 and
    # 0.0375, then 0.05; a run resumed after epoch 2 goes on from step 4.
    arguments = tiny_run(
        corpus, tmp_path, "--margin_warmup_steps=4", recipe="aam"
    )
    train.main([*arguments, "--number_of_epochs=2"])
    train.main([*arguments, "--number_of_epochs=3"])
    margins = [float(e["train margin"]) for e in epoch_fields(tmp_path)]
    assert margins == pytest.approx([0.00625, 0.03125, 0.05], rel=1e-2)


def test_margin_warmup_is_refused_where_there_is_no_margin(tmp_path):
    for recipe in ("softmax", "center", "coco"):
        with pytest.raises(
            HparamsError,
            match=f"unknown option --margin_warmup_steps for .*{recipe}",
        ):
            train.main(
                tiny_run(
                    ROOT,
                    tmp_path / "out",
                    "--margin_warmup_steps=4",
                    recipe=recipe,
                )
            )
    assert not (tmp_path / "out").exists()


def test_lr_annealing_lowers_the_lr_when_the_loss_stalls(corpus, tmp_path):
    # NewBob on the training loss (no validation), through a resume after
    # epoch 2: the scheduler's state comes back from the checkpoint.
    arguments = tiny_run(corpus, tmp_path, "--lr_annealing_factor=0.5")
    train.main([*arguments, "--number_of_epochs=2"])
    train.main([*arguments, "--number_of_epochs=4"])
    epochs = epoch_fields(tmp_path)
    losses = [float(epoch["train loss"]) for epoch in epochs]
    lr, expected = 0.001, [0.001]  # expected[e]: the lr of epoch e + 1
    for previous, loss in zip([None, *losses[:-1]], losses, strict=True):
        if previous is not None and (previous - loss) / previous < 0.0025:
            lr *= 0.5
        expected.append(lr)
    assert [float(epoch["lr"]) for epoch in epochs] == expected[:4]
    assert expected[-1] < 0.001  # the loss did stall
    last = checkpoints_in_saving_order(tmp_path / "save")[-1].path
    optimizer = torch.load(last / "optimizer.ckpt")
    assert optimizer["param_groups"][0]["lr"] == expected[4]
    assert (last / "lr_scheduler.ckpt").is_file()


def test_lr_annealing_factor_must_be_a_fraction(tmp_path):
    for factor, problem in (("0", "must be above 0"), ("2", r"\(0, 1\]")):
        with pytest.raises(ValueError, match=problem):
            train.main(
                tiny_run(
                    ROOT, tmp_path / "out", f"--lr_annealing_factor={factor}"
                )
            )
    assert not (tmp_path / "out").exists()
