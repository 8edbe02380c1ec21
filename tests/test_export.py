"""Model folders from a tiny training run: SpeechBrain loading, safety,
ONNX, fine-tuning."""

import functools
import pathlib
import shutil

import numpy as np
import pytest
import torch
from tiny import TINY_SCALE as SCALE

from speaker_metric_learning import export
from speaker_metric_learning.checkpoints import checkpoints_in_saving_order
from speaker_metric_learning.data import read_audio
from speaker_metric_learning.export import export_model
from speaker_metric_learning.hparams_safety import (
    UnsafeHyperparamsError,
    check_hyperparams_safe,
)
from speaker_metric_learning.losses import AdditiveAngularMarginLoss
from speaker_metric_learning.model_io import (
    load_exported,
    load_model,
    load_pretrained_embedding_model,
    load_weights,
)
from speaker_metric_learning.models import SincTDNN
from speaker_metric_learning.scoring.compare import load_results
from speaker_metric_learning.scoring.cosine import cosine_scores
from speaker_metric_learning.scoring.embeddings import extract_embeddings
from speaker_metric_learning.scoring.metrics import (
    equal_error_rate,
    split_scores,
)
from speaker_metric_learning.scoring.trials import TrialList, read_trials
from speaker_metric_learning.sincnet import load_sincnet
from speaker_metric_learning.sincnet import main as sincnet_main

ROOT = pathlib.Path(__file__).parents[1]


@pytest.fixture(scope="module")
def recognizer(model_folder):
    return load_exported(model_folder)


def checkpoints(run):
    """The run's checkpoint folders, oldest first."""
    return [c.path for c in checkpoints_in_saving_order(run / "save")]


def dev_wav(corpus, utterance):
    return corpus / "dev" / "wav" / f"{utterance}.wav"


def test_folder_holds_the_latest_weights_and_a_model_card(
    aam_run, model_folder
):
    assert sorted(path.name for path in model_folder.iterdir()) == [
        "MODEL_CARD.md",
        "embedding_model.ckpt",
        "hyperparams.yaml",
        "label_encoder.txt",
    ]
    saved = torch.load(model_folder / "embedding_model.ckpt")
    latest = torch.load(checkpoints(aam_run)[-1] / "embedding_model.ckpt")
    assert saved.keys() == latest.keys()
    assert all(torch.equal(saved[key], latest[key]) for key in saved)
    assert (model_folder / "label_encoder.txt").read_text() == (
        aam_run / "save" / "label_encoder.txt"
    ).read_text()
    results = load_results(aam_run)
    card = (model_folder / "MODEL_CARD.md").read_text()
    assert "AdditiveAngularMarginLoss(" in card and "margin=0.05" in card
    assert f"| EER | {100 * results['eer']['value']:.2f} %" in card
    assert f"{results['eer']['threshold']:.4f}" in card
    for entry in results["min_dcf"]:
        assert f"normalised | {entry['value']:.4f} |" in card
    assert results["trials"]["sha256"] in card
    assert f"scale={SCALE}" in card


def test_verify_files_scores_like_our_own_scoring_path(
    corpus, aam_run, recognizer
):
    trials = read_trials(corpus / "dev" / "trials.txt")
    first, second = (
        trials.utterances[trials.enrol_index[0]],
        trials.utterances[trials.test_index[0]],
    )
    score, decision = recognizer.verify_files(
        str(dev_wav(corpus, first)), str(dev_wav(corpus, second))
    )
    model = load_pretrained_embedding_model(SincTDNN(scale=SCALE), aam_run)
    utterances = [
        (name, read_audio(str(dev_wav(corpus, name))))
        for name in (first, second)
    ]
    embeddings = extract_embeddings(model, utterances, progress=False)
    pair = TrialList.from_lines([f"1 {first} {second}"])
    expected = cosine_scores(pair, embeddings)[0]
    assert abs(float(score) - float(expected)) < 1e-5
    assert bool(decision) == (float(score) > 0.25)


def test_exported_model_reproduces_the_runs_eer(corpus, aam_run, recognizer):
    trials = read_trials(corpus / "dev" / "trials.txt")
    embeddings = {
        name: recognizer.encode_batch(
            recognizer.load_audio(str(dev_wav(corpus, name)))
        ).flatten()
        for name in trials.utterances
    }
    positive, negative = split_scores(
        cosine_scores(trials, embeddings), trials.labels
    )
    eer, _ = equal_error_rate(positive, negative)
    assert abs(eer - load_results(aam_run)["eer"]["value"]) < 1e-6


def test_embeddings_are_padding_invariant_and_deterministic(
    model_folder, recognizer
):
    generator = torch.Generator().manual_seed(0)
    lengths = [16000, 9000, 30000]
    waveforms = [torch.randn(n, generator=generator) for n in lengths]
    batch = torch.zeros(len(lengths), max(lengths))
    for row, waveform in zip(batch, waveforms, strict=True):
        row[: len(waveform)] = waveform
    relative = torch.tensor(lengths) / max(lengths)
    padded = recognizer.encode_batch(batch, relative)
    alone = torch.cat([recognizer.encode_batch(w[None]) for w in waveforms])
    assert padded.shape == (3, 1, 512)
    assert (padded - alone).abs().max() < 1e-5 * alone.abs().max()
    reloaded = load_exported(model_folder)
    assert torch.equal(reloaded.encode_batch(batch, relative), padded)
    assert torch.equal(recognizer.encode_batch(batch, relative), padded)


def test_the_exported_hyperparameters_pass_the_safety_check(model_folder):
    assert check_hyperparams_safe(model_folder) == [
        "!name:speaker_metric_learning.model_io.load_weights",
        "!new:speaker_metric_learning.model_io.PassThrough",
        "!new:speaker_metric_learning.models.SincTDNN",
        "!new:speechbrain.dataio.preprocess.AudioNormalizer",
        "!new:speechbrain.utils.parameter_transfer.Pretrainer",
    ]


def test_a_folder_exported_before_model_io_still_loads(model_folder, tmp_path):
    # folders written before the model-I/O split name the weights hook and
    # the pass-through stages in speaker_metric_learning.export
    old = tmp_path / "old"
    shutil.copytree(model_folder, old)
    definition = old / "hyperparams.yaml"
    text = definition.read_text().replace(
        "speaker_metric_learning.model_io.", "speaker_metric_learning.export."
    )
    definition.write_text(text)
    assert "!new:speaker_metric_learning.export.PassThrough" in (
        check_hyperparams_safe(old)
    )
    wavs = torch.randn(2, 16000, generator=torch.Generator().manual_seed(5))
    assert torch.equal(
        load_exported(old).encode_batch(wavs),
        load_exported(model_folder).encode_batch(wavs),
    )


def test_a_run_loads_as_its_exported_folder(aam_run, model_folder):
    # load_model builds a run's network from the definition an export
    # writes, without writing a folder
    wavs = torch.randn(2, 16000, generator=torch.Generator().manual_seed(6))
    from_run = load_model(aam_run)
    assert torch.equal(
        from_run.encode_batch(wavs),
        load_exported(model_folder).encode_batch(wavs),
    )
    assert not from_run.mods.embedding_model.training


def test_the_filter_plot_reads_a_run_its_checkpoints_and_its_export(
    aam_run, model_folder, tmp_path
):
    trained = load_model(model_folder).mods.embedding_model.sincnet
    for source in (model_folder, aam_run, checkpoints(aam_run)[-1]):
        sincnet = load_sincnet(source, stride=trained.stride)
        assert torch.equal(sincnet.low_hz, trained.low_hz)
        assert torch.equal(sincnet.band_hz, trained.band_hz)
    sincnet_main([str(aam_run), "-o", str(tmp_path / "filters.png")])
    assert (tmp_path / "filters.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "entry, refused",
    [
        ("x: !new:os.system [ls]", "!new:os.system"),
        ("x: !apply:subprocess.run [[ls]]", "!apply:subprocess.run"),
        ("x: !module:os", "!module:os"),
        ("x: !name:builtins.exec", "!name:builtins.exec"),
        # an allowed module's attribute that is another module's function
        (
            "x: !apply:speaker_metric_learning.models.torch.load [f]",
            "(resolves to torch.serialization.load)",
        ),
        ("x: !!python/object/apply:os.system [ls]", "python/object/apply"),
        ("x: (1, !!python/name:os.system )", "python/name:os.system"),
        ('x: "(1, !!python/name:os.system )"', "python/name:os.system"),
        ("x: !include:other.yaml", "!include:other.yaml"),
        ("x: !applyref:os.getcwd []", "!applyref:os.getcwd"),
    ],
)
def test_the_safety_check_refuses_code_outside_the_allow_list(
    tmp_path, entry, refused
):
    path = tmp_path / "hyperparams.yaml"
    path.write_text(f"ok: !new:torch.nn.Linear [2, 3]\n{entry}\n")
    with pytest.raises(UnsafeHyperparamsError) as error:
        check_hyperparams_safe(path)
    message = str(error.value)
    assert "line 2: " in message and refused in message
    assert "line 1" not in message


def test_load_exported_refuses_before_running_anything(tmp_path, model_folder):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("embedding_model.ckpt", "hyperparams.yaml"):
        (folder / name).write_bytes((model_folder / name).read_bytes())
    marker = tmp_path / "marker"
    with open(folder / "hyperparams.yaml", "a") as hyperparams:
        hyperparams.write(f"touch: !apply:pathlib.Path.touch [{marker}]\n")
    with pytest.raises(UnsafeHyperparamsError, match="pathlib.Path.touch"):
        load_exported(folder)
    assert not marker.exists()


def test_a_savedir_of_another_model_is_refused(tmp_path, model_folder):
    savedir = tmp_path / "savedir"
    load_exported(model_folder, savedir=savedir)  # links the files
    load_exported(model_folder, savedir=savedir)  # same model: fine
    other = tmp_path / "other"
    other.mkdir()
    for path in model_folder.iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="give an empty savedir"):
        load_exported(other, savedir=savedir)


def test_weights_are_read_without_running_pickled_code(tmp_path):
    path = tmp_path / "embedding_model.ckpt"
    torch.save(
        {"weight": torch.zeros(1), "code": functools.partial(print)}, path
    )
    with pytest.raises(ValueError, match="not a weights-only state dict"):
        load_weights(torch.nn.Linear(1, 1), path)


def test_onnx_graph_matches_pytorch_for_any_batch_and_length(
    tmp_path, aam_run, recognizer
):
    pytest.importorskip("onnx", reason="ONNX export needs the onnx extra")
    pytest.importorskip(
        "onnxruntime", reason="ONNX inference needs the onnx extra"
    )
    from speaker_metric_learning.onnx_export import OnnxEmbedder

    folder = export_model(aam_run, tmp_path / "model", onnx=True)
    assert (
        "`embedding_model.onnx` maps" in (folder / "MODEL_CARD.md").read_text()
    )
    model = recognizer.mods.embedding_model
    embedder = OnnxEmbedder(str(folder / "embedding_model.onnx"), threads=1)
    assert (embedder.sample_rate, embedder.embedding_dim) == (16000, 512)
    generator = torch.Generator().manual_seed(1)
    for batch, samples in [(1, model.min_samples), (3, 20000), (2, 48000)]:
        wavs = torch.randn(batch, samples, generator=generator)
        lengths = torch.rand(batch, generator=generator) * 0.5 + 0.5
        lengths[0] = 1.0
        for relative in (lengths, None):
            with torch.no_grad():
                expected = model(wavs, relative).numpy()
            difference = np.abs(embedder(wavs, relative) - expected).max()
            assert difference < 1e-4, (batch, samples, relative)


def test_fine_tuning_starts_from_any_source_with_a_new_head(
    corpus, aam_run, model_folder
):
    exported = torch.load(model_folder / "embedding_model.ckpt")
    for source in (model_folder, aam_run, checkpoints(aam_run)[-1]):
        model = load_pretrained_embedding_model(SincTDNN(scale=SCALE), source)
        state = model.state_dict()
        assert all(torch.equal(state[key], exported[key]) for key in exported)
    # a new head for the 3 dev speakers: one step changes the network
    head = AdditiveAngularMarginLoss(embedding_dim=512, n_classes=3)
    optimizer = torch.optim.SGD(
        [*model.parameters(), *head.parameters()], lr=0.1
    )
    speakers = sorted((corpus / "dev" / "wav").iterdir())
    first_seconds = [
        read_audio(str(sorted(speaker.iterdir())[0]))[:16000]
        for speaker in speakers
    ]
    loss = head(model(torch.stack(first_seconds)), torch.arange(3))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(model.embedding.weight, exported["embedding.weight"])


def test_fine_tuning_refuses_another_architecture_clearly(model_folder):
    with pytest.raises(ValueError) as error:
        load_pretrained_embedding_model(SincTDNN(scale=0.25), model_folder)
    message = str(error.value)
    assert "shape mismatches" in message
    built = "SincTDNN(sample_rate=16000, embedding_dim=512, "
    assert f"{built}scale={SCALE}, architecture=default," in message


def test_an_older_checkpoint_is_exported_without_the_runs_results(
    aam_run, tmp_path, capsys
):
    oldest = checkpoints(aam_run)[0]
    export.main([str(oldest), str(tmp_path / "model")])
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "does not describe this checkpoint" in card
    saved = torch.load(tmp_path / "model" / "embedding_model.ckpt")
    first = torch.load(oldest / "embedding_model.ckpt")
    assert all(torch.equal(saved[key], first[key]) for key in first)
    # an existing folder is not overwritten without --overwrite
    with pytest.raises(SystemExit):
        export.main([str(oldest), str(tmp_path / "model")])
    assert "--overwrite" in capsys.readouterr().err
    export.main([str(aam_run), str(tmp_path / "model"), "--overwrite"])
    assert (
        "does not describe"
        not in (tmp_path / "model" / "MODEL_CARD.md").read_text()
    )


def test_check_command_prints_the_file_and_what_it_builds(model_folder, capsys):
    export.main(["--check", str(model_folder)])
    printed = capsys.readouterr().out
    assert (model_folder / "hyperparams.yaml").read_text() in printed
    assert "#   !new:speaker_metric_learning.models.SincTDNN" in printed


def test_a_network_without_onnx_export_still_gets_its_folder(
    aam_run, tmp_path, monkeypatch
):
    pytest.importorskip("onnx", reason="ONNX export needs the onnx extra")
    from speaker_metric_learning import onnx_export

    def refuse(*args, **kwargs):
        raise RuntimeError("STFT does not currently support complex types")

    monkeypatch.setattr(onnx_export, "export_onnx", refuse)
    with pytest.raises(ValueError, match="without embedding_model.onnx.*STFT"):
        export_model(aam_run, tmp_path / "model", onnx=True)
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "ONNX" not in card
    assert load_exported(tmp_path / "model").encode_batch(
        torch.zeros(1, 16000)
    ).shape == (1, 1, 512)


def test_onnx_parity_is_scale_free_and_a_refused_graph_is_not_left(
    aam_run, tmp_path, monkeypatch
):
    pytest.importorskip("onnx", reason="ONNX export needs the onnx extra")
    pytest.importorskip(
        "onnxruntime", reason="ONNX inference needs the onnx extra"
    )
    from speaker_metric_learning import onnx_export

    # embeddings of norm ~1e4, as after training: float32 rounding alone
    # then exceeds any absolute tolerance
    model = SincTDNN(scale=SCALE).eval()
    with torch.no_grad():
        model.embedding.weight *= 1e4
        model.embedding.bias *= 1e4
    path = onnx_export.export_onnx(model, str(tmp_path / "big.onnx"))
    wavs = torch.randn(2, 20000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(wavs, None).numpy()
    assert np.linalg.norm(expected, axis=-1).min() > 1e3
    embeddings = onnx_export.OnnxEmbedder(path)(wavs)
    assert onnx_export.relative_error(embeddings, expected) < 1e-4
    # a graph that fails the check is removed, also from a model folder
    monkeypatch.setattr(onnx_export, "PARITY_TOLERANCE", -1.0)
    with pytest.raises(RuntimeError, match="it is not written"):
        onnx_export.export_onnx(model, str(tmp_path / "refused.onnx"))
    assert not (tmp_path / "refused.onnx").exists()
    with pytest.raises(ValueError, match="without embedding_model.onnx"):
        export_model(aam_run, tmp_path / "model", onnx=True)
    assert not (tmp_path / "model" / "embedding_model.onnx").exists()
    assert (tmp_path / "model" / "embedding_model.ckpt").is_file()


@pytest.mark.parametrize("damage", ["same size", "truncated"])
def test_a_damaged_last_checkpoint_is_named_and_the_previous_one_used(
    aam_run, tmp_path, caplog, damage
):
    copy = tmp_path / "run"
    shutil.copytree(aam_run, copy)
    older, newer = checkpoints(copy)[-2:]
    weights = newer / "embedding_model.ckpt"
    content = bytearray(weights.read_bytes())
    if damage == "same size":
        content[len(content) // 2] ^= 0xFF
    else:
        content = content[: len(content) // 2]
    weights.write_bytes(content)
    export_model(copy, tmp_path / "model")
    assert f"Not using the checkpoint {newer}" in caplog.text
    assert f"using {older.name} instead (epoch" in caplog.text
    saved = torch.load(tmp_path / "model" / "embedding_model.ckpt")
    previous = torch.load(older / "embedding_model.ckpt")
    assert all(torch.equal(saved[key], previous[key]) for key in previous)
