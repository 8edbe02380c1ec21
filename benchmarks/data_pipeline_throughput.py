"""Training throughput of SincTDNN fed by the recipe's data pipeline, side
by side with the same model fed from tensors already in memory.

The pipeline is the recipe's: the prepared CSV -> SpeechBrain
``DynamicItemDataset`` with ``RandomChunker`` (seeded random chunk, only its
frames decoded by soundfile) -> ``SpeakerBalancedBatchSampler`` (P x K) ->
SpeechBrain's ``make_dataloader`` (``PaddedBatch``) with ``num_workers``
worker processes. A training step is what ``SpeakerBrain.fit_batch`` does:
forward, AAM loss, backward, Adam step.

Every configuration runs the same number of steps, in interleaved rounds so
that the load of a shared machine weighs on all alike; the first batch of
each loader (worker start-up) is left out. Reported per configuration: mean
step time, the part spent waiting for the next batch, and audio seconds
trained per second.

    PYTHONPATH=plugin:. python benchmarks/data_pipeline_throughput.py \\
        --corpus benchmarks/results/synthetic_corpus/train --threads 2

Authors
 * Speaker metric learning contributors 2025
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.dataio.encoder import CategoricalEncoder

from recipes.folder_prepare import prepare_folder
from speaker_metric_learning.data import RandomChunker, training_dataset
from speaker_metric_learning.losses import AdditiveAngularMarginLoss
from speaker_metric_learning.models import SincTDNN
from speaker_metric_learning.sampling import SpeakerBalancedBatchSampler


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, help="training folder")
    parser.add_argument("--speakers_per_batch", type=int, default=16)
    parser.add_argument("--chunks_per_speaker", type=int, default=2)
    parser.add_argument("--chunk_seconds", type=float, default=3.0)
    parser.add_argument("--model_scale", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=6, help="per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


class Trainer:
    """Model, loss and optimizer; ``step`` is one training step."""

    def __init__(self, n_speakers, scale):
        torch.manual_seed(0)
        self.model = SincTDNN(scale=scale)
        self.loss = AdditiveAngularMarginLoss(512, n_speakers, 0.05, 10.0)
        parameters = [*self.model.parameters(), *self.loss.parameters()]
        self.optimizer = torch.optim.Adam(parameters, lr=1e-3)

    def step(self, wavs, lengths, labels):
        self.optimizer.zero_grad()
        loss = self.loss(self.model(wavs, lengths), labels)
        loss.backward()
        self.optimizer.step()


def batches(dataset, labels, arguments, workers, epoch, count):
    """A loader iterator giving ``count`` batches (after a first one)."""
    sampler = SpeakerBalancedBatchSampler(
        labels,
        arguments.speakers_per_batch,
        arguments.chunks_per_speaker,
        seed=epoch,
        batches_per_epoch=count + 1,
    )
    sampler.set_epoch(epoch)
    loader = make_dataloader(
        dataset, batch_sampler=sampler, num_workers=workers
    )
    iterator = iter(loader)
    next(iterator)  # worker start-up and first decode: not measured
    return iterator


def tensors(batch):
    wavs, lengths = batch.sig
    return wavs, lengths, batch.spk_id_encoded.data


def main():
    arguments = parse_arguments()
    torch.set_num_threads(arguments.threads)
    with tempfile.TemporaryDirectory() as folder:
        csv_file = prepare_folder(
            arguments.corpus, Path(folder) / "train.csv", progress=False
        )
        chunker = RandomChunker(arguments.chunk_seconds, seed=0)
        dataset = training_dataset(csv_file, chunker, CategoricalEncoder())
        labels = [dataset.data[uid]["spk_id"] for uid in dataset.data_ids]
        trainer = Trainer(len(set(labels)), arguments.model_scale)
        in_memory = tensors(
            next(batches(dataset, labels, arguments, 0, 1000, 1))
        )
        trainer.step(*in_memory)  # warm-up
        modes = ["memory", *(f"{w} workers" for w in arguments.workers)]
        waits = {mode: [] for mode in modes}
        steps = {mode: [] for mode in modes}
        for round_index in range(arguments.rounds):
            for mode in modes:
                iterator = None
                if mode != "memory":
                    workers = int(mode.split()[0])
                    chunker.set_epoch(round_index)
                    iterator = batches(
                        dataset,
                        labels,
                        arguments,
                        workers,
                        round_index,
                        arguments.steps,
                    )
                for _ in range(arguments.steps):
                    start = time.perf_counter()
                    batch = (
                        in_memory
                        if iterator is None
                        else tensors(next(iterator))
                    )
                    ready = time.perf_counter()
                    trainer.step(*batch)
                    end = time.perf_counter()
                    waits[mode].append(ready - start)
                    steps[mode].append(end - start)
                del iterator
    batch_size = arguments.speakers_per_batch * arguments.chunks_per_speaker
    audio = batch_size * arguments.chunk_seconds
    print(
        f"SincTDNN scale {arguments.model_scale}, batch {batch_size} x "
        f"{arguments.chunk_seconds} s chunks, {arguments.threads} threads, "
        f"{arguments.rounds} rounds x {arguments.steps} steps per mode"
    )
    print(
        "| feeding | step (s) | waiting for data (s) | waiting (% of step) "
        "| audio s / s |"
    )
    print("|---|---|---|---|---|")
    for mode in modes:
        step = statistics.mean(steps[mode])
        wait = statistics.mean(waits[mode])
        print(
            f"| {mode} | {step:.3f} | {wait:.3f} | {100 * wait / step:.1f} "
            f"| {audio / step:.1f} |"
        )


if __name__ == "__main__":
    main()
