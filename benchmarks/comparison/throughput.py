"""Measured cost of the systems and the arithmetic of a full run.

Owns ``measure_throughput`` (seconds per training step and per second of
audio embedded, on random waveforms; the ``throughput`` command writes
them to ``throughput.json``) and ``budget_arithmetic``, the report's
table and prose of what the comparison costs at that throughput.
"""

import dataclasses
import json
import os
import time

import numpy as np
import torch

from comparison.corpus import SAMPLE_RATE, VARIANTS, audio_seconds
from comparison.systems import SYSTEMS


def measure_throughput(budget, systems, steps=5, threads=1):
    """Seconds per training step (compute only) and per second of audio
    embedded, of every system at the budget, on random waveforms."""
    import tempfile

    from speaker_metric_learning.hyperparams import load_hparams

    torch.set_num_threads(threads)
    chunk = round(budget.chunk_seconds * SAMPLE_RATE)
    table = {}
    for system in systems:
        hparams = load_hparams(
            str(SYSTEMS[system].hparams_file(system)),
            {
                **budget.overrides(system),
                "n_train_speakers": 125,
                "output_folder": tempfile.mkdtemp(),
            },
        )
        model, loss = hparams["embedding_model"], hparams["loss"]
        optimizer = torch.optim.Adam(
            [*model.parameters(), *loss.parameters()], lr=budget.lr
        )
        per_speaker = SYSTEMS[system].chunks_per_speaker
        wavs = torch.randn(budget.chunks_per_batch, chunk)
        labels = torch.arange(budget.chunks_per_batch) // per_speaker
        times = []
        for _ in range(steps + 1):  # the first step warms up
            start = time.perf_counter()
            value = loss(model(wavs, torch.ones(len(wavs))), labels)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        model.eval()
        with torch.no_grad():
            start = time.perf_counter()
            model(torch.randn(8, 4 * SAMPLE_RATE), torch.ones(8))
            embed = (time.perf_counter() - start) / 32
        table[system] = {
            "s_per_step": float(np.median(times[1:])),
            "embed_s_per_audio_s": embed,
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        print(
            f"{system:12s} {table[system]['s_per_step']:.3f} s/step  "
            f"{embed * 1000:.2f} ms per s of audio embedded  "
            f"{table[system]['parameters']:,} parameters",
            flush=True,
        )
    return table


def write_throughput(layout, budget, systems, steps):
    """Measures the throughput of ``systems`` (one thread) into the output
    folder's ``throughput.json``, with the budget and the load average.

    Systems measured earlier at the same budget keep their entries, so a
    system can be added later with ``--systems``."""
    table = measure_throughput(budget, systems, steps)
    layout.output.mkdir(parents=True, exist_ok=True)
    path = layout.output / "throughput.json"
    record = {"budget": dataclasses.asdict(budget), "threads": 1}
    earlier = json.loads(path.read_text()) if path.exists() else {}
    if earlier.get("budget") == record["budget"]:
        table = {**earlier["systems"], **table}
    record.update(load_average=os.getloadavg()[0], systems=table)
    path.write_text(json.dumps(record, indent=1))


def budget_arithmetic(throughput, budget, args, layout, summary):
    """The budget table and the arithmetic from measured throughput."""
    systems = throughput.get("systems", {})
    if not systems:
        return "No throughput measured yet (run `throughput`)."
    dev = audio_seconds(layout.decoded("dev"))
    tests = sum(audio_seconds(layout.variant(v)) for v in VARIANTS)
    lines = [
        "| System | s / step | training s / run | embedding ms / audio s "
        "| evaluation s / run |",
        "|---|---|---|---|---|",
    ]
    total_train = total_eval = 0.0
    measured = [system for system in args.systems if system in systems]
    unmeasured = [system for system in args.systems if system not in systems]
    for system in measured:
        entry = systems[system]
        train = budget.steps * entry["s_per_step"]
        # evaluate-run embeds dev once and the variants' test utterances.
        evaluate = entry["embed_s_per_audio_s"] * (dev + tests)
        total_train += len(args.seeds) * train
        total_eval += len(args.seeds) * evaluate
        lines.append(
            f"| {system} | {entry['s_per_step']:.2f} | {train:.0f} | "
            f"{1000 * entry['embed_s_per_audio_s']:.1f} | {evaluate:.0f} |"
        )
    hours = (total_train + total_eval) / 3600 / args.jobs
    lines += [
        "",
        f"Measured with `throughput` (compute only, random waveforms, one "
        f"thread, median of {args.throughput_steps} steps after one warm-up; "
        f"load average {throughput['load_average']:.1f} on the 2 cores, "
        "which other jobs share). Evaluation per run = embedding cost x "
        f"({dev / 3600:.2f} h of dev audio + {tests / 3600:.2f} h of "
        "test-side variants). Total = seeds x sum over systems of (steps x "
        f"s/step + evaluation) = {len(args.seeds)} x "
        f"{(total_train + total_eval) / len(args.seeds) / 60:.0f} min = "
        f"{(total_train + total_eval) / 3600:.1f} CPU-hours, i.e. "
        f"{hours:.1f} h wall with {args.jobs} runs at once, plus data "
        "loading (decoded WAV: about 15 ms per batch) and start-up.",
    ]
    if unmeasured:
        lines.append(
            f"\nNo throughput measured for {', '.join(unmeasured)}: they are "
            "left out of this total (run `throughput` with `--systems "
            f"{' '.join(unmeasured)}` to add them)."
        )
    walls = [
        sum(v for k, v in run["wall_time"].items() if k.endswith("_s"))
        for entry in summary["systems"].values()
        for run in entry["runs"].values()
        if run["wall_time"]
    ]
    if walls:
        n_runs = len(args.systems) * len(args.seeds)
        lines.append(
            f"\nMeasured: {np.mean(walls) / 60:.0f} min wall per finished run "
            f"({len(walls)} runs, training + evaluation, at the machine's "
            f"load then), so {n_runs} runs take about "
            f"{n_runs * np.mean(walls) / 3600 / args.jobs:.1f} h wall with "
            f"{args.jobs} at once."
        )
    return "\n".join(lines)
