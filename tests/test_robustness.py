"""Bad input and faults end in one clear message or a counted skip.

Every entry point (train.py, the scoring and export command lines, data
preparation, corpus generation) is given missing or unreadable paths,
empty folders, empty or malformed CSV and trial files, misspelt options and
yaml, and odd audio (NaN/Inf, silence, clipping, 0.1 s, very long); the
parsers and the audio reader are fuzzed with random bytes.

One file: one question (does every entry point fail clearly?) asked of
every entry point with the same bad inputs and the same message checks.
"""

import os
import pathlib
import re
import shutil
import string
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from speechbrain.dataio.dataloader import make_dataloader
from tiny import TINY_RUN

import train
from recipes import folder_prepare, synthetic_corpus, voxceleb_prepare
from speaker_metric_learning import export
from speaker_metric_learning.brain import NonFiniteLossError, SpeakerBrain
from speaker_metric_learning.command_line import EXIT_ERROR, error_line
from speaker_metric_learning.data import (
    AudioReadError,
    RandomChunker,
    SpeakerSubstitutes,
    check_data_csv,
    read_audio,
)
from speaker_metric_learning.hyperparams import HparamsError, load_hparams
from speaker_metric_learning.models import SincTDNN
from speaker_metric_learning.scoring import cli
from speaker_metric_learning.scoring.embeddings import extract_embeddings
from speaker_metric_learning.scoring.trials import TrialList, read_trials

ROOT = pathlib.Path(__file__).parents[1]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def write_wav(path, samples, rate=16000, subtype="FLOAT"):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.asarray(samples, dtype=np.float32), rate, subtype)
    return path


# --- hyperparameter files -------------------------------------------------


def loss_file(folder, body):
    """softmax.yaml with its loss entry replaced by ``body`` (at the end);
    returns the file and the number of the body's first line."""
    recipe = (ROOT / "hparams" / "softmax.yaml").read_text()
    head, tail = recipe.split("\nloss: ", 1)
    kept = head + "\n" + tail.split("\n\n", 1)[1]
    path = folder / "typo.yaml"
    path.write_text(kept + body)
    return path, kept.count("\n") + 1


@pytest.mark.parametrize(
    "body, line, message",
    [
        (
            "loss: !new:speaker_metric_learning.losses.SoftmaxLos\n"
            "    embedding_dim: 4\n    n_classes: 2\n",
            0,
            r"There is no such class as speaker_metric_learning.losses."
            r"SoftmaxLos. Did you mean speaker_metric_learning.losses."
            r"SoftmaxLoss\?",
        ),
        (
            "loss: !new:speaker_metric_learning.losses.SoftmaxLoss\n"
            "    embedding_dim: 4\n    n_clases: 2\n",
            2,
            r"speaker_metric_learning.losses.SoftmaxLoss has no argument "
            r"'n_clases'. Did you mean n_classes\?",
        ),
        (
            "loss: !new:speaker_metric_learning.losses.SoftmaxLoss\n"
            "    embedding_dim: !ref <embeding_dim>\n"
            "    n_classes: 2\n",
            1,
            r"!ref <embeding_dim> names no entry. Did you mean "
            r"<embedding_dim>\?",
        ),
    ],
)
def test_yaml_typos_name_the_file_and_line(tmp_path, body, line, message):
    path, first = loss_file(tmp_path, body)
    with pytest.raises(HparamsError) as raised:
        load_hparams(path)
    assert re.match(
        rf"{re.escape(str(path))}, line {first + line}: {message}",
        str(raised.value),
    )


def test_invalid_yaml_is_one_line(tmp_path):
    path, _ = loss_file(tmp_path, "loss: [\n")
    with pytest.raises(HparamsError, match="typo.yaml is not valid YAML"):
        load_hparams(path)


def test_an_error_inside_a_constructor_is_not_disguised(tmp_path):
    # a wrong value (not a misspelt name) keeps the class's own message
    body = (
        "loss: !new:speaker_metric_learning.losses.SoftmaxLoss\n"
        "    embedding_dim: 4\n    n_classes: 0\n"
    )
    with pytest.raises(ValueError) as raised:
        load_hparams(loss_file(tmp_path, body)[0])
    assert not isinstance(raised.value, HparamsError)


# --- train.py: one line on stderr, exit code 1 ----------------------------


def run_train(arguments, cwd=ROOT):
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_train_py_misspelt_class_is_one_line(tmp_path):
    body = (
        "loss: !new:speaker_metric_learning.losses.SoftmaxLos\n"
        "    embedding_dim: 4\n    n_classes: 2\n"
    )
    path, line = loss_file(tmp_path, body)
    process = run_train([str(path), f"--output_folder={tmp_path}"])
    assert process.returncode == 1
    assert "Traceback" not in process.stderr
    last = process.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"line {line}:" in last
    assert "Did you mean" in last


def test_worker_errors_lose_the_worker_traceback(tmp_path):
    """A file that fails in a DataLoader worker process reaches the main
    process with the worker's traceback in its message: error_line keeps
    the original message only."""
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, index):
            return {"id": "x", "sig": read_audio(str(bad))}

    loader = make_dataloader(Items(), batch_size=1, num_workers=1)
    with pytest.raises(AudioReadError) as raised:
        next(iter(loader))
    assert "Original Traceback" in str(raised.value)
    line = error_line(raised.value)
    assert line.startswith(f"error: cannot read audio file {bad}: ")
    assert "\n" not in line


def test_empty_trial_list_and_missing_eval_folder(corpus, tmp_path):
    empty = tmp_path / "trials.txt"
    empty.write_text("\n\n")
    base = [
        str(ROOT / "hparams" / "aam.yaml"),
        f"--output_folder={tmp_path / 'out'}",
        f"--data_folder={corpus / 'train'}",
    ]
    with pytest.raises(FileNotFoundError, match="--eval_folder /no/dir"):
        train.main([*base, "--eval_folder=/no/dir"])
    with pytest.raises(FileNotFoundError, match="/no/trials.txt"):
        train.main([*base, "--trials_file=/no/trials.txt"])
    # the trial list is read before the training: the message names it
    with pytest.raises(ValueError, match=f"{empty} is empty"):
        train.main(
            [
                *base,
                f"--eval_folder={corpus / 'dev'}",
                f"--trials_file={empty}",
                *TINY_RUN,
                "--number_of_epochs=1",
            ]
        )
    assert not (tmp_path / "out" / "train_log.txt").exists()


# --- data CSV files ---------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty: no header line"),
        ("ID,duration,wav,spk_id\n", "holds no utterance"),
        ("ID,dur,wav,spk_id\na,1,a.wav,s\n", r"line 1: .*\['duration'\]"),
        ("ID,duration,wav,spk_id\na,1,a.wav\n", "line 2: 3 fields"),
        ("ID,duration,wav,spk_id\na,1,a.wav,s\na,2,b.wav,s\n", "line 3: dup"),
        ("ID,duration,wav,spk_id\na,nan,a.wav,s\n", "line 2: duration 'nan'"),
        ("ID,duration,wav,spk_id\na,1,,s\n", "line 2: empty ID, wav"),
        (b"ID,duration,wav,spk_id\n\xff,1,a,s\n", "is not a CSV text file"),
    ],
)
def test_malformed_data_csv_names_the_line(tmp_path, text, message):
    path = tmp_path / "train.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ValueError, match=message) as raised:
        check_data_csv(path)
    assert str(path) in str(raised.value)
    assert "prepare the data again" in str(raised.value)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_fuzz_data_csv_raises_only_value_error(tmp_path, raw):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(b"ID,duration,wav,spk_id\n" + raw)
    try:
        rows = check_data_csv(path)
    except ValueError:
        return
    assert rows >= 1


@FUZZ
@given(
    rows=st.lists(
        st.lists(st.text(string.printable, max_size=6), min_size=0, max_size=5),
        max_size=8,
    )
)
def test_fuzz_split_validation_raises_only_value_error(tmp_path, rows):
    path = tmp_path / "data.csv"
    lines = ["ID,duration,wav,spk_id"] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    try:
        folder_prepare.split_validation(
            path, tmp_path / "t.csv", tmp_path / "v.csv", 0.5, "utterance"
        )
    except ValueError:
        pass


# --- trial lists ------------------------------------------------------------


@FUZZ
@given(raw=st.binary(max_size=400))
def test_fuzz_trial_bytes_raise_only_value_error(raw):
    try:
        trials = TrialList.from_bytes(raw, "fuzz.txt")
    except ValueError as error:
        assert str(error).startswith("fuzz.txt")
        return
    assert len(trials) == len(trials.line_numbers) >= 1
    assert set(trials.labels.tolist()) <= {True, False}


@FUZZ
@given(
    lines=st.lists(
        st.lists(
            st.sampled_from(["0", "1", "2", "a/b.wav", "c", "x y", "\t", ""]),
            max_size=4,
        ),
        max_size=6,
    )
)
def test_fuzz_trial_lines_are_parsed_or_refused_by_line(lines):
    text = [" ".join(fields) for fields in lines]
    try:
        trials = TrialList.from_lines(text, "t.txt")
    except ValueError as error:
        assert str(error).startswith("t.txt")
        return
    # every non-blank line is a trial with its line number
    numbered = [i + 1 for i, line in enumerate(text) if line.split()]
    assert trials.line_numbers.tolist() == numbered


def test_undecodable_trial_file_names_the_line(tmp_path):
    path = tmp_path / "trials.txt"
    path.write_bytes(b"1 a b\n0 a \xff\xfe\n")
    with pytest.raises(ValueError, match=r"trials.txt, line 2: .*UTF-8"):
        read_trials(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "Trial file not found"),
        ("", "is empty"),
        ("1 a\n", "line 1: expected 3 fields"),
        ("yes a b\n", "line 1: the label is 'yes'"),
        ("folder", "Is a directory"),
    ],
)
def test_scoring_command_line_gives_one_error_line(
    tmp_path, capsys, content, message
):
    path = tmp_path / "trials.txt"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exited:
        cli.main(["fingerprint", str(path)])
    assert exited.value.code == EXIT_ERROR
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error
    assert str(path) in error and len(error.strip().splitlines()) == 1


# --- audio ------------------------------------------------------------------


@FUZZ
@given(raw=st.binary(max_size=2000), header=st.booleans())
def test_fuzz_read_audio_returns_samples_or_audio_read_error(
    tmp_path, raw, header
):
    path = tmp_path / "fuzz.wav"
    if header:  # a valid WAV header followed by random bytes
        write_wav(path, np.zeros(4), subtype="PCM_16")
        raw = path.read_bytes()[:44] + raw
    path.write_bytes(raw)
    try:
        waveform = read_audio(str(path))
    except AudioReadError as error:
        assert str(path) in str(error)
        return
    assert waveform.ndim == 1 and len(waveform) > 0
    assert torch.isfinite(waveform).all()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: write_wav(p, [0.0, np.nan, 0.1]), "NaN or Inf"),
        (lambda p: write_wav(p, [0.0, np.inf, 0.1]), "NaN or Inf"),
        (lambda p: write_wav(p, np.zeros(0)), "holds no samples"),
        (lambda p: p.write_bytes(b"\0" * 100), "cannot read audio file"),
        (lambda p: p.mkdir(), "cannot read audio file"),
        (lambda p: None, "cannot read audio file"),
    ],
)
def test_unusable_audio_names_the_file(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioReadError, match=message) as raised:
        read_audio(str(path))
    assert str(path) in str(raised.value)


def test_silent_and_clipped_audio_give_finite_embeddings():
    model = SincTDNN(scale=0.125).eval()
    rng = np.random.default_rng(0)
    clipped = np.clip(rng.normal(0, 3, 16000), -1, 1)  # most samples at +-1
    wavs = torch.tensor(np.stack([np.zeros(16000), clipped]), dtype=torch.float)
    with torch.no_grad():
        embeddings = model(wavs, torch.tensor([1.0, 0.75]))
    assert torch.isfinite(embeddings).all()


class RecordingModel(torch.nn.Module):
    """Mean and maximum of each (unpadded) waveform; records the longest
    input it was given, to check the memory bound."""

    min_samples = 100

    def __init__(self):
        super().__init__()
        self.longest_input = 0

    def forward(self, wavs, lengths):
        self.longest_input = max(self.longest_input, wavs.shape[1])
        n = (lengths * wavs.shape[1]).round().long()
        if (n < self.min_samples).any():
            raise ValueError("too short for the model")
        mask = torch.arange(wavs.shape[1]) < n[:, None]
        mean = (wavs * mask).sum(1) / n
        peak = wavs.masked_fill(~mask, -1e9).amax(1)
        return torch.stack([mean, peak], dim=-1)[:, None]


def test_short_utterances_are_repeated_to_the_model_minimum(caplog):
    model = RecordingModel()
    short = torch.arange(30.0)  # 30 samples, the model needs 100
    ids, embeddings = extract_embeddings(
        model, [("short", short)], progress=False
    )
    repeated = torch.cat([short] * 4)[:100]
    assert embeddings[0].tolist() == [repeated.mean().item(), 29.0]
    assert "1 utterances shorter than the model's" in caplog.text


def test_long_utterances_are_averaged_windows_of_bounded_length():
    model = RecordingModel()
    long = torch.arange(1000.0)  # 1000 samples, at most 400 at once
    short = torch.ones(150)
    ids, embeddings = extract_embeddings(
        model,
        [("long", long), ("short", short)],
        batch_size=2,
        sample_rate=100,
        max_seconds=4.0,
        progress=False,
    )
    # windows [0, 400), [400, 800) and the last one ending at the end,
    # [600, 1000): means 199.5, 599.5, 799.5; peaks 399, 799, 999
    assert embeddings[0].tolist() == [
        pytest.approx((199.5 + 599.5 + 799.5) / 3),
        pytest.approx((399 + 799 + 999) / 3),
    ]
    assert embeddings[1].tolist() == [1.0, 1.0]
    assert model.longest_input == 400


def test_a_long_file_costs_only_its_chunk_in_training(tmp_path):
    path = tmp_path / "long.wav"
    minutes, rate = 10, 16000
    with soundfile.SoundFile(
        path, "w", samplerate=rate, channels=1, subtype="PCM_16"
    ) as long_file:
        for _ in range(minutes):
            long_file.write(np.full(60 * rate, 0.1, dtype=np.float32))
    chunker = RandomChunker(1.0, rate, seed=0)

    def peak_bytes(read):
        tracemalloc.start()
        try:
            read()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    chunk_peak = peak_bytes(lambda: chunker("spk/long", str(path), 600.0))
    whole_peak = peak_bytes(lambda: read_audio(str(path)))
    assert chunk_peak < 1e6  # 1 s of float32 is 64 kB
    assert whole_peak >= 4 * minutes * 60 * rate  # the measure sees arrays


def test_unreadable_training_file_is_replaced_by_its_speaker(tmp_path, caplog):
    good = write_wav(tmp_path / "s/good.wav", np.linspace(0, 1, 8000))
    other = write_wav(tmp_path / "t/other.wav", np.ones(8000))
    bad = tmp_path / "s/bad.wav"
    bad.write_bytes(b"garbage")
    rows = {
        "s/bad": {"wav": str(bad), "duration": "1.0", "spk_id": "s"},
        "t/other": {"wav": str(other), "duration": "0.5", "spk_id": "t"},
        "s/good": {"wav": str(good), "duration": "0.5", "spk_id": "s"},
    }
    listing = tmp_path / "unreadable.txt"
    chunker = RandomChunker(0.25, seed=1)
    substitutes = SpeakerSubstitutes(rows, chunker, listing)
    chunk = substitutes("s/bad")
    assert torch.equal(chunk, chunker("s/good", str(good), 0.5))
    substitutes("s/bad")  # a second time: logged and listed once
    (line,) = listing.read_text().splitlines()
    assert line.startswith(f"{bad}\tcannot read audio file {bad}")
    assert len(caplog.records) == 1 and str(bad) in caplog.text
    bad_too = tmp_path / "s/bad2.wav"
    bad_too.write_bytes(b"")
    rows["s/good"]["wav"] = str(bad_too)
    with pytest.raises(AudioReadError, match="no audio of speaker s can be"):
        SpeakerSubstitutes(rows, chunker)("s/bad")


def test_unreadable_evaluation_file_says_what_to_do(corpus, tmp_path):
    dev = tmp_path / "dev"
    shutil.copytree(corpus / "dev", dev)
    run = [
        str(ROOT / "hparams" / "aam.yaml"),
        f"--output_folder={tmp_path / 'out'}",
        f"--data_folder={corpus / 'train'}",
        f"--eval_folder={dev}",
        f"--trials_file={dev / 'trials.txt'}",
        *TINY_RUN,
        "--number_of_epochs=1",
    ]
    train.main(run)
    # a file whose header is fine but whose samples are not
    bad = sorted((dev / "wav").rglob("*.wav"))[0]
    write_wav(bad, [0.1] * 4000 + [np.nan] + [0.1] * 4000)
    with pytest.raises(AudioReadError) as raised:
        train.main(run)
    message = error_line(raised.value)
    assert str(bad) in message and "run the same command again" in message
    # training was not repeated by the second run
    assert (
        len((tmp_path / "out" / "train_log.txt").read_text().split("\n")) == 2
    )


# --- training faults ------------------------------------------------------


def test_non_finite_loss_stops_with_the_batch_and_keeps_the_checkpoint(
    corpus, tmp_path, monkeypatch
):
    arguments = [
        str(ROOT / "hparams" / "softmax.yaml"),
        f"--output_folder={tmp_path}",
        f"--data_folder={corpus / 'train'}",
        *TINY_RUN,
    ]
    compute = SpeakerBrain.compute_objectives

    def nan_in_epoch_2(brain, predictions, batch, stage):
        loss = compute(brain, predictions, batch, stage)
        if brain.hparams.epoch_counter.current == 2:
            predictions = predictions * float("nan")
            return compute(brain, predictions, batch, stage)
        return loss

    monkeypatch.setattr(SpeakerBrain, "compute_objectives", nan_in_epoch_2)
    with pytest.raises(NonFiniteLossError) as raised:
        train.main(arguments)
    message = error_line(raised.value)
    assert "loss is nan on the batch of utterances spk" in message
    checkpoints = sorted((tmp_path / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1
    saved = torch.load(checkpoints[0] / "embedding_model.ckpt")
    assert all(torch.isfinite(value).all() for value in saved.values())
    assert (checkpoints[0] / "counter.ckpt").read_text() == "1"
    epochs = (tmp_path / "train_log.txt").read_text().splitlines()
    assert [line.split(",")[0] for line in epochs] == ["epoch: 1"]
    # the run goes on from the last good checkpoint once the cause is gone
    monkeypatch.undo()
    train.main(arguments)
    epochs = (tmp_path / "train_log.txt").read_text().splitlines()
    assert [line.split(",")[0] for line in epochs] == ["epoch: 1", "epoch: 2"]


# --- other entry points -----------------------------------------------------


def test_preparation_of_a_folder_of_bad_files_lists_every_skip(tmp_path):
    root = tmp_path / "corpus"
    (root / "spk1").mkdir(parents=True)
    (root / "spk1" / "empty.wav").write_bytes(b"")
    (root / "spk1" / "junk.wav").write_bytes(b"RIFF" + os.urandom(60))
    (root / "loose.wav").write_bytes(b"")
    with pytest.raises(ValueError, match=r"No readable audio file .*3 skip"):
        folder_prepare.prepare_folder(root, tmp_path / "data.csv")
    good = write_wav(root / "spk1" / "good.wav", np.zeros(1600))
    csv_file = folder_prepare.prepare_folder(root, tmp_path / "data.csv")
    assert check_data_csv(csv_file) == 1
    skipped = (tmp_path / "data_skipped.txt").read_text().splitlines()
    assert len(skipped) == 3 and str(good) not in "".join(skipped)


@FUZZ
@given(contents=st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_fuzz_folder_scan_skips_and_counts_bad_files(tmp_path, contents):
    root = tmp_path / "fuzz" / str(abs(hash(tuple(contents))))
    write_wav(root / "spk0" / "good.wav", np.zeros(800), subtype="PCM_16")
    for number, raw in enumerate(contents):
        (root / "spk1").mkdir(parents=True, exist_ok=True)
        (root / "spk1" / f"f{number}.wav").write_bytes(raw)
    utterances, skipped = folder_prepare.scan_folder(root, progress=False)
    assert len(utterances) + len(skipped) == len(contents) + 1
    assert "spk0/good" in [u.id for u in utterances]
    assert all(u.duration >= 0 for u in utterances)


def test_corpus_generation_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        synthetic_corpus.main([str(tmp_path / "c"), "--n_dev_speakers", "1"])
    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: Invalid synthetic corpus: n_dev_speakers")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(SystemExit):
        synthetic_corpus.main([str(not_a_folder)])
    assert "exists and is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "No readable audio file"),
    ],
)
def test_voxceleb_preparation_errors_are_one_line(
    tmp_path, capsys, make, message
):
    folder = tmp_path / "data"
    make(folder)
    with pytest.raises(SystemExit) as exited:
        voxceleb_prepare.main([str(folder), str(tmp_path / "save")])
    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error


@pytest.mark.parametrize("source", ["/no/such/run", "empty"])
def test_export_errors_are_one_line(tmp_path, capsys, source):
    if source == "empty":
        source = tmp_path / "run"
        source.mkdir()
    with pytest.raises(SystemExit) as exited:
        export.main([str(source), str(tmp_path / "model")])
    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and str(source) in error


def clip_file(path, gain=30.0):
    """Rewrites a wav file amplified ``gain`` times and clipped to +-1."""
    samples, rate = soundfile.read(path, dtype="float32")
    peak = np.abs(samples).max()
    write_wav(path, np.clip(samples * gain / peak, -1, 1), rate)


def test_clipped_audio_is_used_and_listed(corpus, tmp_path, capsys):
    data = tmp_path / "corpus"
    shutil.copytree(corpus, data)
    speaker = sorted((data / "train" / "wav").iterdir())[0]
    clipped_train = sorted(speaker.glob("*.wav"))
    for path in clipped_train:
        clip_file(path)
    clipped_eval = sorted((data / "dev" / "wav").rglob("*.wav"))[1]
    clip_file(clipped_eval)
    output = tmp_path / "out"
    train.main(
        [
            str(ROOT / "hparams" / "aam.yaml"),
            f"--output_folder={output}",
            f"--data_folder={data / 'train'}",
            f"--eval_folder={data / 'dev'}",
            f"--trials_file={data / 'dev' / 'trials.txt'}",
            *TINY_RUN,
            "--number_of_epochs=1",
        ]
    )

    def listed(name):
        lines = (output / "save" / name).read_text().splitlines()
        return {pathlib.Path(line.split("\t")[0]) for line in lines}

    # every batch holds every speaker (4 of 4), so the clipped speaker's
    # chunks were drawn; the other speakers' audio is not clipped
    trained = listed("clipped.txt")
    assert trained and trained <= set(clipped_train)
    assert listed("eval_clipped.txt") == {clipped_eval}
    log = capsys.readouterr().out
    assert f"{len(trained)} training files look clipped" in log
    assert "1 evaluation utterances look clipped" in log
    assert (output / "results.json").exists()
