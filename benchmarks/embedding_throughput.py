"""CPU embedding throughput of SincTDNN and SpeechBrain's Fbank models.

Part 1, throughput: audio seconds embedded per second of wall time, on a
batch of 32 x 3 s at 16 kHz (full-length, relative lengths all 1, as
SpeechBrain's ``encode_batch`` passes them), random weights, 2 threads:

* SincTDNN, PyTorch eager (fp32, ``inference_mode``);
* SincTDNN, ONNX Runtime (the graph of ``speaker_metric_learning.
  onnx_export``, same thread count);
* SincTDNN, eager under CPU bfloat16 autocast: only where the processor
  has native bf16 dot products (``avx512_bf16`` or ``amx_bf16`` in
  /proc/cpuinfo); elsewhere it is emulated, so the row is skipped with the
  reason (``--bf16`` runs it anyway);
* SpeechBrain's x-vector: ``Fbank(n_mels=24)`` -> sentence mean
  normalisation -> ``Xvector(in_channels=24)`` (its VoxCeleb recipe);
* SpeechBrain's ECAPA-TDNN, C=1024: ``Fbank(n_mels=80)`` -> sentence mean
  normalisation -> ``ECAPA_TDNN(80, channels=[1024] * 4 + [3072])``.

The machine may be shared: every repetition runs each system once, in turn
(interleaved), and the table reports medians over repetitions.

Part 2 (``--eer SOURCE``), what bf16 autocast does to accuracy: embeds
every utterance of a trial list whole, in fp32 and under bf16 autocast,
with a trained model (an exported model folder, a ``train.py`` run or one
of its checkpoints, loaded by ``model_io.load_model``), and
prints EER and minDCF of both and the largest score change. Numerics do not
depend on native bf16 support, so this part runs on any CPU.

Usage (from the repository root)::

    PYTHONPATH=plugin:. python benchmarks/embedding_throughput.py
    PYTHONPATH=plugin:. python benchmarks/embedding_throughput.py \\
        --eer results/aam/1986 --eval_folder data/synthetic_corpus/dev/wav \\
        --trials data/synthetic_corpus/dev/trials.txt

Authors
 * speaker_metric_learning developers
"""

import argparse
import pathlib
import statistics
import tempfile

import numpy as np
import torch
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from speechbrain.lobes.models.Xvector import Xvector
from speechbrain.processing.features import InputNormalization

from benchmarks.sincnet_speed import interleaved_medians
from speaker_metric_learning.command_line import exit_on
from speaker_metric_learning.data import read_audio
from speaker_metric_learning.layout import audio_root
from speaker_metric_learning.model_io import load_model
from speaker_metric_learning.models import SincTDNN
from speaker_metric_learning.scoring.audio import trial_audio
from speaker_metric_learning.scoring.compare import compute_results
from speaker_metric_learning.scoring.cosine import cosine_scores
from speaker_metric_learning.scoring.embeddings import extract_embeddings
from speaker_metric_learning.scoring.trials import read_trials

SAMPLE_RATE = 16000
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16(cpuinfo="/proc/cpuinfo"):
    """The CPU flags giving native bf16 dot products (empty: none).

    Arguments
    ---------
    cpuinfo : str
        The kernel's CPU description.

    Returns
    -------
    list of str

    Example
    -------
    >>> isinstance(native_bf16(), list)
    True
    """
    try:
        flags = set(pathlib.Path(cpuinfo).read_text().split())
    except OSError:
        return []
    return [flag for flag in NATIVE_BF16_FLAGS if flag in flags]


class Autocast(torch.nn.Module):
    """Runs a model under CPU autocast and returns float32 outputs.

    Arguments
    ---------
    model : torch.nn.Module
        ``forward(wavs, lengths)``.
    dtype : torch.dtype
        Autocast precision.

    Example
    -------
    >>> model = Autocast(torch.nn.Linear(2, 2))
    >>> model(torch.ones(1, 2)).dtype
    torch.float32
    """

    def __init__(self, model, dtype=torch.bfloat16):
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, *inputs):
        """The model's output, computed under autocast, as float32."""
        with torch.autocast("cpu", dtype=self.dtype):
            return self.model(*inputs).float()


class FbankSystem(torch.nn.Module):
    """SpeechBrain's pipeline: Fbank -> sentence mean norm -> model.

    Arguments
    ---------
    n_mels : int
        Mel bands.
    model : torch.nn.Module
        ``forward(features, lengths)``.

    Example
    -------
    >>> system = FbankSystem(24, Xvector(in_channels=24)).eval()
    >>> system(torch.randn(2, 16000), torch.ones(2)).shape
    torch.Size([2, 1, 512])
    """

    def __init__(self, n_mels, model):
        super().__init__()
        self.features = Fbank(n_mels=n_mels)
        self.normalisation = InputNormalization(
            norm_type="sentence", std_norm=False
        )
        self.model = model

    def forward(self, wavs, lengths):
        """Embeddings ``[batch, 1, dim]`` of ``[batch, time]`` waveforms."""
        features = self.normalisation(self.features(wavs), lengths)
        return self.model(features, lengths)


def systems(threads, run_bf16, folder):
    """Name -> callable(wavs, lengths), and name -> reason it is skipped."""
    sinc_tdnn = SincTDNN().eval()
    cases = {"SincTDNN, PyTorch eager fp32": sinc_tdnn}
    skipped = {}
    try:
        from speaker_metric_learning.onnx_export import (
            OnnxEmbedder,
            export_onnx,
        )

        path = export_onnx(sinc_tdnn, str(folder / "sinc_tdnn.onnx"))
        cases["SincTDNN, ONNX Runtime"] = OnnxEmbedder(path, threads)
    except ImportError as error:
        skipped["SincTDNN, ONNX Runtime"] = str(error)
    bf16_name = "SincTDNN, eager bf16 autocast"
    if run_bf16:
        cases[bf16_name] = Autocast(sinc_tdnn)
    else:
        skipped[bf16_name] = (
            "no avx512_bf16 / amx_bf16 in /proc/cpuinfo: bf16 would be "
            "emulated (--bf16 runs it anyway)"
        )
    cases["SpeechBrain x-vector (Fbank 24)"] = FbankSystem(
        24, Xvector(in_channels=24)
    ).eval()
    cases["SpeechBrain ECAPA-TDNN C=1024 (Fbank 80)"] = FbankSystem(
        80, ECAPA_TDNN(80, channels=[1024, 1024, 1024, 1024, 3072])
    ).eval()
    return cases, skipped


def throughput(args):
    """Part 1: prints the throughput table."""
    wavs = torch.randn(
        args.batch,
        round(args.seconds * SAMPLE_RATE),
        generator=torch.Generator().manual_seed(0),
    )
    lengths = torch.ones(args.batch)
    flags = native_bf16()
    with tempfile.TemporaryDirectory() as folder:
        cases, skipped = systems(
            args.threads, bool(flags) or args.bf16, pathlib.Path(folder)
        )

        def call(system):
            def run():
                with torch.inference_mode():
                    system(wavs, lengths)

            return run

        times = interleaved_medians(
            {name: call(system) for name, system in cases.items()},
            args.repetitions,
        )
    audio = args.batch * args.seconds
    reference = next(iter(times))
    print(
        f"\ntorch {torch.__version__}, {args.threads} threads, batch "
        f"{args.batch} x {args.seconds} s, median of {args.repetitions} "
        f"interleaved repetitions; native bf16: {', '.join(flags) or 'no'}"
    )
    print("\n| system | audio s / s | ms per batch | speed vs first row |")
    print("|---|---:|---:|---:|")
    for name, seconds in times.items():
        ratios = [b / a for a, b in zip(seconds, times[reference], strict=True)]
        print(
            f"| {name} | {audio / statistics.median(seconds):.0f} | "
            f"{1000 * statistics.median(seconds):.0f} | "
            f"{statistics.median(ratios):.2f} |"
        )
    for name, reason in skipped.items():
        print(f"| {name} | skipped: {reason} | | |")


def bf16_accuracy(args):
    """Part 2: EER and minDCF in fp32 and under bf16 autocast."""
    model = load_model(args.eer).mods.embedding_model
    trials = read_trials(args.trials)
    paths = trial_audio(trials, audio_root(args.eval_folder))
    utterances = [
        (name, read_audio(str(path), SAMPLE_RATE))
        for name, path in zip(trials.utterances, paths, strict=True)
    ]
    audio = sum(len(waveform) for _, waveform in utterances) / SAMPLE_RATE
    print(
        f"\n{len(utterances)} utterances ({audio:.0f} s), "
        f"{len(trials)} trials ({int(trials.labels.sum())} targets)"
    )
    print("\n| precision | EER % | minDCF (0.01) |")
    print("|---|---:|---:|")
    scores = {}
    for name, system in (("fp32", model), ("bf16 autocast", Autocast(model))):
        embeddings = extract_embeddings(
            system, utterances, batch_size=1, progress=False
        )
        scores[name] = cosine_scores(trials, embeddings)
        results = compute_results(
            scores[name], trials, name, n_replicates=0, p_targets=(0.01,)
        )
        eer, min_dcf = results["eer"]["value"], results["min_dcf"][0]["value"]
        print(f"| {name} | {100 * eer:.2f} | {min_dcf:.4f} |")
    change = np.abs(scores["bf16 autocast"] - scores["fp32"])
    print(
        f"\nscore change (cosine): max {change.max():.4f}, "
        f"median {np.median(change):.4f}"
    )


def main():
    """Runs part 1, or part 2 with ``--eer``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument(
        "--bf16", action="store_true", help="time bf16 even if emulated"
    )
    parser.add_argument("--eer", help="model folder or train.py run")
    parser.add_argument("--eval_folder", help="audio folder of the trials")
    parser.add_argument("--trials", help="trial list (1|0 enrol test)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.eer:
        if not (args.eval_folder and args.trials):
            parser.error("--eer needs --eval_folder and --trials")
        bf16_accuracy(args)
    else:
        throughput(args)


if __name__ == "__main__":
    with exit_on(FileNotFoundError, ValueError):  # a wrong --eer or folder
        main()
