"""Tiny recipe runs with the VoxCeleb-recipe options: validation split by
speaker or by utterance, noise and reverberation augmentation, TensorBoard."""

import pathlib

import numpy as np
import pytest
import soundfile as sf
from tiny import tiny_corpus

import train

ROOT = pathlib.Path(__file__).parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # 6 speakers of 4 utterances: enough to hold some out for validation
    return tiny_corpus(
        tmp_path_factory.mktemp("data") / "corpus",
        n_train_speakers=6,
        utterances_per_speaker=4,
    )


def tiny_run(corpus, output, *options):
    return [
        str(ROOT / "hparams" / "softmax.yaml"),
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


def log_fields(output):
    (line,) = (output / "train_log.txt").read_text().splitlines()
    return dict(
        field.strip().rsplit(": ", 1)
        for part in line.split(" - ")
        for field in part.split(",")
    )


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
