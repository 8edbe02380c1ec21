"""CPU speed of the SincNet layer and of SincTDNN, side by side.

Part 1, the front-end layer on a batch of 32 x 3 s at 16 kHz (80 filters,
251 taps, stride 5, no padding), forward (under ``no_grad``) and forward +
backward (weight gradients, fixed random output gradient):

* ours: ``speaker_metric_learning.sincnet.SincNet`` (polyphase conv1d);
* ours, direct: the same filters through a strided ``conv1d`` (the
  alternative the polyphase form replaces);
* SpeechBrain: ``speechbrain.nnet.CNN.SincConv`` with the same settings;
* plain conv: ``torch.nn.Conv1d(1, 80, 251, stride=5)`` (free weights, the
  speed target).

Part 2, whole models at full size on the same waveforms, forward (eval,
``no_grad``) and a training step (forward, backward, SGD step), with
SpeechBrain relative lengths (uniform in [0.5, 1]) and without: the
default ``SincTDNN`` (24 SincNet filters; also with lengths all 1, what a
batch of fixed-size chunks carries), the default with 40 and with 80
filters (``sinc_filters``), the paper's architecture, and the
reference, SpeechBrain's
Fbank (24 bands) + sentence mean normalisation + ``Xvector`` as
``hparams/xvector.yaml`` builds it (``FbankEmbeddingModel``, noise-free
statistics pooling).

The machine may be shared: repetitions interleave the systems (each
repetition runs every system once, in turn, forward and backward order
alternating) so that load changes hit all of them alike; the table
reports medians over repetitions of the time and of the per-repetition
ratio to the reference row.

Usage (from the repository root)::

    PYTHONPATH=plugin:. python benchmarks/sincnet_speed.py

Authors
 * speaker_metric_learning developers
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.Xvector import Xvector
from speechbrain.nnet.CNN import SincConv
from speechbrain.processing.features import InputNormalization

from speaker_metric_learning.models import FbankEmbeddingModel, SincTDNN
from speaker_metric_learning.sincnet import SincNet

SAMPLE_RATE = 16000


def timed(function):
    """Seconds taken by ``function()``."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def interleaved_medians(cases, repetitions, warmup=1):
    """Runs every case once per repetition, in turn; returns the timings.

    Every other repetition runs the cases in reverse order: a case's time
    depends on what ran just before it (caches, the allocator; up to 30 %
    in a probe here), so no case always follows the same one.

    Arguments
    ---------
    cases : dict
        Name -> callable.
    repetitions : int
        Timed repetitions (after ``warmup`` untimed ones).
    warmup : int
        Untimed repetitions.

    Returns
    -------
    dict
        Name -> list of seconds, one per repetition.

    Example
    -------
    >>> times = interleaved_medians({"a": lambda: None}, 3)
    >>> len(times["a"])
    3
    """
    times = {name: [] for name in cases}
    order = list(cases.items())
    for repetition in range(warmup + repetitions):
        for name, function in order if repetition % 2 else order[::-1]:
            seconds = timed(function)
            if repetition >= warmup:
                times[name].append(seconds)
    return times


def report(title, times, reference):
    """Prints medians and median per-repetition ratios to ``reference``.

    Arguments
    ---------
    title : str
        Table heading.
    times : dict
        Name -> list of seconds (same repetitions for every name).
    reference : str
        Name of the row the ratios divide by.

    Example
    -------
    >>> report("demo", {"a": [1.0, 2.0, 3.0], "b": [2.0, 4.0, 6.0]}, "a")
    <BLANKLINE>
    | demo | median ms | ratio to a |
    |---|---:|---:|
    | a | 2000.0 | 1.00 |
    | b | 4000.0 | 2.00 |
    """
    print(f"\n| {title} | median ms | ratio to {reference} |")
    print("|---|---:|---:|")
    for name, seconds in times.items():
        ratios = [a / b for a, b in zip(seconds, times[reference], strict=True)]
        median_ms = 1000 * statistics.median(seconds)
        print(f"| {name} | {median_ms:.1f} | {statistics.median(ratios):.2f} |")


def layer_cases(batch, seconds):
    """Forward and forward+backward callables of each front-end layer."""
    waveforms = torch.randn(batch, seconds * SAMPLE_RATE)
    ours = SincNet()
    speechbrain_sinc = SincConv(
        out_channels=80,
        kernel_size=251,
        in_channels=1,
        stride=5,
        padding="valid",
        sample_rate=SAMPLE_RATE,
        min_low_hz=50,
        min_band_hz=50,
    )
    plain = torch.nn.Conv1d(1, 80, 251, stride=5)

    def direct(x):
        return F.conv1d(x[:, None], ours.filters()[:, None], stride=5)

    layers = {
        "ours (SincNet)": ours,
        "ours, direct strided conv1d": direct,
        "SpeechBrain SincConv": lambda x: speechbrain_sinc(x).transpose(1, 2),
        "plain Conv1d": lambda x: plain(x[:, None]),
    }
    output_gradient = torch.randn(
        batch, 80, ours.output_length(len(waveforms[0]))
    )

    def forward(layer):
        def run():
            with torch.no_grad():
                layer(waveforms)

        return run

    def forward_backward(layer):
        def run():
            layer(waveforms).backward(output_gradient)

        return run

    return (
        {name: forward(layer) for name, layer in layers.items()},
        {name: forward_backward(layer) for name, layer in layers.items()},
    )


def model_cases(batch, seconds):
    """Forward and training-step callables of SincTDNN (default and the
    paper's architecture) and SpeechBrain's Fbank x-vector, all at full
    size and all on the same waveforms."""
    generator = torch.Generator().manual_seed(0)
    waveforms = torch.randn(batch, seconds * SAMPLE_RATE, generator=generator)
    lengths = 0.5 + 0.5 * torch.rand(batch, generator=generator)
    lengths[0] = 1.0
    models = {
        "SincTDNN": SincTDNN(),
        "SincTDNN, 40 filters": SincTDNN(sinc_filters=40),
        "SincTDNN, 80 filters": SincTDNN(sinc_filters=80),
        "SincTDNN (paper)": SincTDNN(architecture="paper"),
        "Fbank x-vector": FbankEmbeddingModel(
            Fbank(n_mels=24),
            InputNormalization(norm_type="sentence", std_norm=False),
            Xvector(in_channels=24),
        ),
    }

    def forward(model, inputs, relative):
        def run():
            model.eval()
            with torch.no_grad():
                model(inputs, relative)

        return run

    def training_step(model, inputs, relative):
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)

        def run():
            model.train()
            optimizer.zero_grad()
            model(inputs, relative).square().mean().backward()
            optimizer.step()

        return run

    forwards, steps = {}, {}
    for name, model in models.items():
        variants = [("no lengths", None), ("lengths", lengths)]
        if "filters" in name:  # options of the front-end: one row each
            variants = variants[:1]
        elif name == "SincTDNN":
            variants.insert(1, ("lengths all 1", torch.ones(batch)))
        for label, relative in variants:
            forwards[f"{name}, {label}"] = forward(model, waveforms, relative)
            steps[f"{name}, {label}"] = training_step(
                model, waveforms, relative
            )
    return forwards, steps


def main():
    """Runs both parts and prints markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--layer_repetitions", type=int, default=15)
    parser.add_argument("--model_repetitions", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch "
        f"{args.batch} x {args.seconds} s"
    )

    sincnet = SincNet()
    build = interleaved_medians({"filters": sincnet.filters}, 50)["filters"]
    median_us, min_us = 1e6 * statistics.median(build), 1e6 * min(build)
    print(
        f"\nbuilding the 80 x 251 filter bank: median {median_us:.0f} us, "
        f"min {min_us:.0f} us"
    )

    forwards, forward_backwards = layer_cases(args.batch, args.seconds)
    reference = "plain Conv1d"
    report(
        "front-end forward",
        interleaved_medians(forwards, args.layer_repetitions),
        reference,
    )
    report(
        "front-end forward + backward",
        interleaved_medians(forward_backwards, args.layer_repetitions),
        reference,
    )

    forwards, steps = model_cases(args.batch, args.seconds)
    reference = "Fbank x-vector, no lengths"
    report(
        "model forward (eval)",
        interleaved_medians(forwards, args.model_repetitions),
        reference,
    )
    report(
        "model training step",
        interleaved_medians(steps, args.model_repetitions),
        reference,
    )


if __name__ == "__main__":
    main()
