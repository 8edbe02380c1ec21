"""The fair comparison on real speech: six losses and two SpeechBrain baselines.

Every system is trained by ``train.py`` at the same budget on the
speechocean762 training speakers and evaluated on the dev trial list:

* the six losses of Coria et al. (2020) on SincTDNN (``hparams/<loss>.yaml``);
* two baselines built from SpeechBrain's own modules in our recipe, trained
  with the same AAM loss: Fbank + x-vector (``hparams/xvector.yaml``) and
  Fbank + ECAPA-TDNN (``hparams/ecapa.yaml``).

Same data, same chunk length, same number of chunks per batch (P speakers x
K chunks: K = 1 for the classification losses, K = 4 for the pair losses,
as in their yaml files), same number of optimizer steps, same learning rate
and optimizer, same augmentation (none: no noise corpus is available
offline), same evaluation (whole utterances, cosine scoring). Each system is
trained with several seeds. Two reference points are scored on the same
trials, outside the comparison: mean+std log-mel (training-free, see
``benchmarks/logmel_baseline.py``) and ``resemblyzer``'s pretrained GE2E
encoder (``pip install resemblyzer "setuptools<81"``; skipped when absent).

Robustness: every model is also scored with the test side of each trial
replaced by a seeded, deterministic variant: cut to 1 s or 2 s (random
offset per utterance; shorter utterances stay whole) or with white Gaussian
noise added at 5 dB SNR (power of the whole utterance).

Statistics: mean and standard deviation over seeds of EER and minDCF
(p_target 0.01, normalised); 95 % bootstrap CIs of every run
(``results.json``); a paired bootstrap of the difference to AAM (same
resampled trials for every run of both systems, difference of the seed
means; ``speaker_metric_learning.scoring.significance``).

Usage (from the repository root; everything lands in ``--output``)::

    PYTHONPATH=plugin:. python benchmarks/compare_losses.py throughput
    PYTHONPATH=plugin:. python benchmarks/compare_losses.py run --jobs 2
    PYTHONPATH=plugin:. python benchmarks/compare_losses.py report

``run`` resumes: a run whose training finished (``wall_time.json`` records
it) is not trained again, an interrupted training resumes from its last
checkpoint (SpeechBrain's checkpointer), and results folders already written
(clean, robustness, references) are kept. ``train.py`` trains; the
``evaluate-run`` step then scores the run from its last checkpoint exactly as
``train.py`` would (same embedding settings, cosine scoring,
``evaluate_scores``), the clean trials and the modified ones in one process,
so that the clean embeddings serve both. The audio is decoded once into
float32 WAV copies (the same samples as ``soundfile`` decodes from the Opus
files; decoding Opus cost a third of a training step).

``report`` writes ``REPORT.md``, ``summary.json`` and ``det.png`` from
whatever has finished. The decoded audio, the test-side
variants and the reference points do not depend on the budget: they live in
``--shared`` (delete its ``reference`` folder after changing
``--variant_seed``).
"""

import argparse
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import time
import zlib

import numpy as np
import soundfile
import torch

from speaker_metric_learning.scoring.compare import (
    evaluate_scores,
    load_results,
)
from speaker_metric_learning.scoring.significance import paired_bootstrap
from speaker_metric_learning.scoring.trials import (
    embedding_matrix,
    pair_scores,
    read_trials,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000
REFERENCE_SYSTEM = "aam"


@dataclasses.dataclass(frozen=True)
class System:
    """One compared system: P x K layout, description, its yaml file
    (``hparams/<yaml_name>.yaml``; None: the system's own name) and the
    ``train.py`` options it adds to that file."""

    chunks_per_speaker: int
    description: str
    yaml_name: str = None
    options: tuple = ()

    def hparams_file(self, name):
        """The yaml file of the system called ``name``."""
        return ROOT / "hparams" / f"{self.yaml_name or name}.yaml"


SYSTEMS = {
    "softmax": System(1, "SincTDNN + softmax"),
    "center": System(1, "SincTDNN + center"),
    "coco": System(1, "SincTDNN + CoCo"),
    "aam": System(1, "SincTDNN + AAM"),
    "contrastive": System(4, "SincTDNN + contrastive"),
    "triplet": System(4, "SincTDNN + triplet"),
    "paper": System(
        1,
        "SincTDNN, Coria et al.'s network + AAM",
        "aam",
        (("architecture", "paper"),),
    ),
    "xvector": System(1, "Fbank + x-vector (SpeechBrain) + AAM"),
    "ecapa": System(1, "Fbank + ECAPA-TDNN (SpeechBrain) + AAM"),
}
PAIR_LOSSES = ("contrastive", "triplet")
BASELINES = ("paper", "xvector", "ecapa")  # not among the six losses
AAM_SYSTEMS = ("aam", "paper", "xvector", "ecapa")  # also scored AS-normed
# Adaptive s-norm as Coria et al. report it: the top 400 of 1,170 training
# speaker centroids, i.e. the same share of our 125 training speakers.
AS_NORM_TOP_K = round(125 * 400 / 1170)
AS_NORM_UTTERANCES = 10  # per training speaker, averaged into its centroid


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every system gets: the same for all."""

    model_scale: float = 0.125
    chunk_seconds: float = 2.0
    chunks_per_batch: int = 32
    batches_per_epoch: int = 20
    number_of_epochs: int = 10
    lr: float = 0.001

    @property
    def steps(self):
        """Optimizer steps of one run."""
        return self.batches_per_epoch * self.number_of_epochs

    def overrides(self, system):
        """``train.py`` options of this budget for ``system``."""
        per_speaker = SYSTEMS[system].chunks_per_speaker
        if self.chunks_per_batch % per_speaker:
            raise ValueError(
                f"--chunks_per_batch {self.chunks_per_batch} is not a "
                f"multiple of the {per_speaker} chunks per speaker of {system}"
            )
        return {
            **dict(SYSTEMS[system].options),
            "model_scale": self.model_scale,
            "chunk_seconds": self.chunk_seconds,
            "speakers_per_batch": self.chunks_per_batch // per_speaker,
            "chunks_per_speaker": per_speaker,
            "batches_per_epoch": self.batches_per_epoch,
            "number_of_epochs": self.number_of_epochs,
            "lr": self.lr,
        }


@dataclasses.dataclass(frozen=True)
class Variant:
    """A modification of the test side of every trial."""

    seconds: float = None  # cut to this length (random offset)
    snr_db: float = None  # add white noise at this SNR


VARIANTS = {
    "test 2 s": Variant(seconds=2.0),
    "test 1 s": Variant(seconds=1.0),
    "noise 5 dB": Variant(snr_db=5.0),
}


def variant_folder_name(name):
    """File-system name of a variant ("test 2 s" -> "test_2_s")."""
    return name.replace(" ", "_")


class Layout:
    """Paths of one comparison under the output folder."""

    def __init__(self, output, data, shared):
        self.output = pathlib.Path(output).resolve()
        self.data = pathlib.Path(data).resolve()
        self.shared = pathlib.Path(shared).resolve()
        self.audio = self.shared / "audio"
        self.trials = self.data / "dev" / "trials.txt"

    def decoded(self, part):
        """Decoded copy of ``train`` or ``dev``."""
        return self.audio / part

    def variant(self, name):
        """Folder of the test-side variant ``name``."""
        return self.audio / "variants" / variant_folder_name(name)

    def run(self, system, seed):
        """Output folder of one training run."""
        return self.output / system / str(seed)

    def reference(self, name):
        """Output folder of one reference point (budget-independent)."""
        return self.shared / "reference" / name


def runs_robustness_folder(folder, variant):
    """Results folder of one variant under a run or reference folder."""
    return pathlib.Path(folder) / "robustness" / variant_folder_name(variant)


# ---------------------------------------------------------------- audio


def utterance_rng(seed, stream, utterance_id):
    """Generator of one utterance: a function of (seed, stream, id).

    Example
    -------
    >>> a = utterance_rng(1, 0, "spk/utt").integers(1000)
    >>> bool(a == utterance_rng(1, 0, "spk/utt").integers(1000))
    True
    """
    return np.random.default_rng(
        [seed, stream, zlib.crc32(utterance_id.encode())]
    )


def modify(waveform, variant, rng, sample_rate=SAMPLE_RATE):
    """Applies a ``Variant`` to a 1-D float waveform.

    Example
    -------
    >>> wav = np.ones(48000, dtype=np.float32)
    >>> modify(wav, Variant(seconds=1.0), np.random.default_rng(0)).shape
    (16000,)
    >>> noisy = modify(wav, Variant(snr_db=0.0), np.random.default_rng(0))
    >>> round(float(np.mean((noisy - wav) ** 2)), 6)  # noise power = signal
    1.0
    """
    if variant.seconds is not None:
        size = round(variant.seconds * sample_rate)
        if len(waveform) > size:
            start = int(rng.integers(0, len(waveform) - size + 1))
            waveform = waveform[start : start + size]
    if variant.snr_db is not None:
        noise = rng.standard_normal(len(waveform))
        signal_power = np.mean(np.square(waveform, dtype=np.float64))
        noise *= np.sqrt(
            signal_power / np.mean(noise**2) / 10 ** (variant.snr_db / 10)
        )
        waveform = (waveform + noise).astype(np.float32)
    return waveform


def audio_files(folder):
    """``{utterance id: path}`` of ``<folder>/wav/<spk>/<utt>.<ext>``."""
    wav = pathlib.Path(folder) / "wav"
    return {
        path.relative_to(wav).with_suffix("").as_posix(): path
        for path in sorted(wav.glob("*/*.*"))
    }


def decode_corpus(layout):
    """Float32 WAV copies of the train and dev audio (once)."""
    for part in ("train", "dev"):
        target = layout.decoded(part)
        done = target / "DONE"
        if done.exists():
            continue
        sources = audio_files(layout.data / part)
        if not sources:
            raise FileNotFoundError(
                f"no audio in {layout.data / part / 'wav'}: give --data, the "
                "corpus root holding train/wav and dev/wav"
            )
        print(f"decoding {len(sources)} files of {part} into {target}")
        for utterance, path in sources.items():
            samples, rate = soundfile.read(path, dtype="float32")
            out = target / "wav" / f"{utterance}.wav"
            out.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(out, samples, rate, subtype="FLOAT")
        done.write_text(f"{len(sources)} files from {layout.data / part}\n")


def write_variants(layout, seed):
    """The test-side variants of the dev trials, as audio folders (once)."""
    trials = read_trials(layout.trials)
    tests = sorted(set(trials.test.tolist()))
    dev = audio_files(layout.decoded("dev"))
    for stream, (name, variant) in enumerate(VARIANTS.items()):
        folder = layout.variant(name)
        done = folder / "DONE"
        settings = json.dumps({**dataclasses.asdict(variant), "seed": seed})
        if done.exists() and done.read_text() == settings:
            continue
        print(f"writing the '{name}' variant of {len(tests)} test utterances")
        for utterance in tests:
            samples, rate = soundfile.read(dev[utterance], dtype="float32")
            changed = modify(
                samples, variant, utterance_rng(seed, stream, utterance), rate
            )
            out = folder / "wav" / f"{utterance}.wav"
            out.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(out, changed, rate, subtype="FLOAT")
        done.write_text(settings)


def variant_csv(layout, variant):
    """Data CSV of a variant folder (written once, before any job)."""
    from recipes.folder_prepare import prepare_folder

    csv_file = layout.shared / "csv" / f"{variant_folder_name(variant)}.csv"
    if not csv_file.exists():
        prepare_folder(layout.variant(variant), csv_file, progress=False)
    return csv_file


# ---------------------------------------------------------------- scoring


def cross_scores(trials, enrol_embeddings, test_embeddings):
    """Cosine scores of clean enrolment against (modified) test embeddings.

    Arguments
    ---------
    trials : TrialList
        The trials.
    enrol_embeddings, test_embeddings : dict or (ids, matrix)
        Embeddings of every enrolment / every test utterance.

    Returns
    -------
    numpy.ndarray
        One score per trial.

    Example
    -------
    >>> from speaker_metric_learning.scoring.trials import TrialList
    >>> trials = TrialList.from_lines(["1 a b", "0 b c"])
    >>> clean = {"a": [1.0, 0.0], "b": [0.0, 1.0]}
    >>> cut = {"b": [1.0, 1.0], "c": [0.0, 3.0]}
    >>> [round(float(x), 4) for x in cross_scores(trials, clean, cut)]
    [0.7071, 1.0]
    """
    enrol_rows = np.unique(trials.enrol_index)
    test_rows = np.unique(trials.test_index)
    utterances = np.array(trials.utterances, dtype=object)
    enrol = embedding_matrix(
        enrol_embeddings, utterances[enrol_rows].tolist(), trials
    )
    test = embedding_matrix(test_embeddings, utterances[test_rows].tolist())
    position = np.full(len(utterances), -1)
    position[enrol_rows] = np.arange(len(enrol_rows))
    first = position[trials.enrol_index]
    position[test_rows] = len(enrol_rows) + np.arange(len(test_rows))
    second = position[trials.test_index]
    return pair_scores(torch.cat([enrol, test]).numpy(), first, second)


def score_all(folder, name, trials, embed_folder, extra=None):
    """Clean and variant results folders of one system (those missing).

    ``embed_folder(None)`` gives the clean embeddings of every dev utterance,
    ``embed_folder(variant)`` those of the variant's test utterances. The
    clean results go to ``folder``, each variant's to its robustness folder.
    """
    clean = None
    targets = [(None, pathlib.Path(folder), name)]
    for variant in VARIANTS:
        targets.append(
            (
                variant,
                runs_robustness_folder(folder, variant),
                f"{name} ({variant})",
            )
        )
    for variant, target, system_name in targets:
        if (target / "results.json").exists():
            continue
        if clean is None:
            clean = embed_folder(None)
        tests = clean if variant is None else embed_folder(variant)
        evaluate_scores(
            cross_scores(trials, clean, tests),
            trials,
            target,
            system_name,
            extra=extra,
        )
    return clean


def cohort_csv(layout):
    """Data CSV of the first ``AS_NORM_UTTERANCES`` files of every training
    speaker, the adaptive s-norm cohort (written once)."""
    from speaker_metric_learning.scoring.cli import cohort_files

    csv_file = layout.shared / "csv" / f"cohort_{AS_NORM_UTTERANCES}.csv"
    if not csv_file.exists():
        rows = ["ID,duration,wav,spk_id"]
        for speaker, path in cohort_files(
            layout.decoded("train"), AS_NORM_UTTERANCES
        ):
            duration = soundfile.info(path).duration
            rows.append(f"{speaker}/{path.stem},{duration},{path},{speaker}")
        csv_file.parent.mkdir(parents=True, exist_ok=True)
        csv_file.write_text("\n".join(rows) + "\n")
    return csv_file


def as_norm_folder(run):
    """Results folder of a run's adaptive s-normalised clean trials."""
    return pathlib.Path(run) / f"asnorm_top{AS_NORM_TOP_K}"


def score_as_norm(run, name, trials, clean, embed_csv, layout):
    """Clean trials of a run, adaptive s-normalised with the top
    ``AS_NORM_TOP_K`` of the training speakers' centroids."""
    from speaker_metric_learning.scoring.normalization import (
        normalized_cosine_scores,
        speaker_centroids,
    )

    ids, matrix = embed_csv(cohort_csv(layout))
    speakers, cohort = speaker_centroids(
        matrix, [utterance.split("/")[0] for utterance in ids]
    )
    _, normalized = normalized_cosine_scores(
        trials, clean, cohort, AS_NORM_TOP_K
    )
    evaluate_scores(
        normalized,
        trials,
        as_norm_folder(run),
        f"{name} AS-norm top {AS_NORM_TOP_K}",
        extra={
            "normalization": f"asnorm-top{AS_NORM_TOP_K}",
            "cohort_speakers": len(speakers),
            "cohort_utterances": len(ids),
        },
    )


def evaluate_run(run, layout):
    """Clean and robustness results of one trained run (last checkpoint),
    scored like ``train.py`` scores a run (its embedding settings read by
    the same ``evaluation_settings``, cosine scoring, ``evaluate_scores``)."""
    from speaker_metric_learning.data import evaluation_dataset
    from speaker_metric_learning.hyperparams import load_hparams
    from speaker_metric_learning.scoring.embeddings import extract_embeddings
    from speaker_metric_learning.scoring.evaluation import evaluation_settings

    run = pathlib.Path(run)
    hparams = load_hparams(str(run / "hyperparams.yaml"))
    if hparams["checkpointer"].recover_if_possible() is None:
        raise FileNotFoundError(f"no checkpoint in {run / 'save'}")
    model = hparams["embedding_model"].eval()
    trials = read_trials(layout.trials)

    def embed_csv(csv_file):
        return extract_embeddings(
            model,
            evaluation_dataset(str(csv_file), hparams["sample_rate"]),
            progress=False,
            **evaluation_settings(hparams),
        )

    def embed_folder(variant):
        if variant is None:
            return embed_csv(run / "save" / "eval.csv")
        return embed_csv(variant_csv(layout, variant))

    clean = score_all(
        run,
        hparams["experiment"],
        trials,
        embed_folder,
        extra={"hparams": str(run / "hyperparams.yaml")},
    )
    normalise = run.parent.name in AAM_SYSTEMS
    if normalise and not (as_norm_folder(run) / "results.json").exists():
        if clean is None:
            clean = embed_folder(None)
        score_as_norm(
            run, hparams["experiment"], trials, clean, embed_csv, layout
        )


# ------------------------------------------------------------ references


def logmel_embedder():
    """Mean and std of 40 log-mel energies (the training-free baseline)."""
    from logmel_baseline import SYSTEMS as LOGMEL_SYSTEMS
    from speechbrain.lobes.features import Fbank

    _, summarise, _ = LOGMEL_SYSTEMS["mean+std log-mel (80), cosine"]
    fbank = Fbank(n_mels=40)

    def embed(waveform):
        with torch.no_grad():
            log_mel = fbank(torch.from_numpy(waveform)[None])[0].numpy()
        return summarise(log_mel)

    return embed


def resemblyzer_embedder():
    """resemblyzer's pretrained GE2E encoder (weights ship in its wheel)."""
    from resemblyzer import VoiceEncoder, preprocess_wav

    encoder = VoiceEncoder("cpu", verbose=False)

    def embed(waveform):
        processed = preprocess_wav(waveform, source_sr=SAMPLE_RATE)
        if len(processed) < SAMPLE_RATE // 2:  # VAD left (almost) nothing
            processed = waveform
        return encoder.embed_utterance(processed)

    return embed


REFERENCES = {
    "logmel": ("mean+std log-mel, training-free", logmel_embedder),
    "resemblyzer": ("resemblyzer GE2E, pretrained", resemblyzer_embedder),
}


def evaluate_reference(name, layout):
    """Clean and robustness results of one reference point."""
    folder = layout.reference(name)
    label, make_embedder = REFERENCES[name]
    trials = read_trials(layout.trials)
    embed = make_embedder()

    def embed_folder(variant):
        source = (
            layout.decoded("dev")
            if variant is None
            else (layout.variant(variant))
        )
        files = audio_files(source)
        return {
            utterance: embed(soundfile.read(path, dtype="float32")[0])
            for utterance, path in files.items()
        }

    score_all(folder, label, trials, embed_folder)


# -------------------------------------------------------------- running


def train_command(system, seed, budget, layout):
    """``train.py`` command line of one run (training only: no trial list,
    ``evaluate-run`` scores the clean and modified trials afterwards)."""
    options = {
        "data_folder": layout.decoded("train"),
        "eval_folder": layout.decoded("dev"),
        "seed": seed,
        "output_folder": layout.run(system, seed),
        "num_workers": 0,
        **budget.overrides(system),
    }
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        str(SYSTEMS[system].hparams_file(system).relative_to(ROOT)),
    ]
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    return command


def single_thread_env():
    """Environment of the child processes: one thread each, our PYTHONPATH."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "plugin"), str(ROOT), env.get("PYTHONPATH", "")]
    )
    return env


def run_logged(command, log_file):
    """Runs a command, appending its output to ``log_file``; wall seconds."""
    start = time.perf_counter()
    with open(log_file, "a") as log:
        log.write(f"$ {' '.join(map(str, command))}\n")
        log.flush()
        result = subprocess.run(
            command,
            cwd=ROOT,
            env=single_thread_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if result.returncode:
        raise RuntimeError(f"exit {result.returncode}: see {log_file}")
    return time.perf_counter() - start


def self_command(*arguments, layout, args):
    """Command line of this script for one sub-step."""
    return [
        sys.executable,
        str(pathlib.Path(__file__).resolve()),
        *arguments,
        "--output",
        str(layout.output),
        "--data",
        str(layout.data),
        "--shared",
        str(layout.shared),
        "--variant_seed",
        str(args.variant_seed),
    ]


def train_and_evaluate(system, seed, budget, layout, args):
    """One run: train (unless done), then its clean and robustness results."""
    run = layout.run(system, seed)
    run.mkdir(parents=True, exist_ok=True)
    log_file = run / "compare.log"
    timing_file = run / "wall_time.json"
    timing = json.loads(timing_file.read_text()) if timing_file.exists() else {}
    if "train_s" not in timing:
        timing["train_s"] = run_logged(
            train_command(system, seed, budget, layout), log_file
        )
        timing["load_average"] = os.getloadavg()[0]
        timing_file.write_text(json.dumps(timing, indent=1))
    if not all_results_exist(run):
        timing["evaluation_s"] = run_logged(
            self_command("evaluate-run", str(run), layout=layout, args=args),
            log_file,
        )
        timing_file.write_text(json.dumps(timing, indent=1))
    return f"{system}/{seed}"


def reference_job(name, layout, args):
    """One reference point, in its own process."""
    folder = layout.reference(name)
    folder.mkdir(parents=True, exist_ok=True)
    seconds = run_logged(
        self_command("evaluate-reference", name, layout=layout, args=args),
        folder / "compare.log",
    )
    (folder / "wall_time.json").write_text(json.dumps({"total_s": seconds}))
    return f"reference/{name}"


def check_budget(layout, budget):
    """Refuses to mix runs of different budgets in one output folder."""
    path = layout.output / "budget.json"
    wanted = dataclasses.asdict(budget)
    if path.exists():
        recorded = json.loads(path.read_text())
        if recorded != wanted:
            raise ValueError(
                f"{layout.output} holds runs of another budget {recorded}; "
                "give another --output (or the same budget options)"
            )
    layout.output.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(wanted, indent=1))


def run_all(args, budget, layout):
    """Trains and evaluates every system x seed, then the references."""
    check_budget(layout, budget)
    decode_corpus(layout)
    write_variants(layout, args.variant_seed)
    for variant in VARIANTS:
        variant_csv(layout, variant)
    jobs = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for name in args.references:
            if name == "resemblyzer" and not resemblyzer_available():
                print(
                    "resemblyzer not installed: pip install resemblyzer "
                    '"setuptools<81" (skipped)'
                )
                continue
            if not all_results_exist(layout.reference(name)):
                jobs.append(pool.submit(reference_job, name, layout, args))
        for seed in args.seeds:  # seed-major: every system gets seed 1 first
            for system in args.systems:
                jobs.append(
                    pool.submit(
                        train_and_evaluate, system, seed, budget, layout, args
                    )
                )
        for job in concurrent.futures.as_completed(jobs):
            try:
                print(
                    f"{time.strftime('%H:%M:%S')} done {job.result()}",
                    flush=True,
                )
            except RuntimeError as error:
                print(f"{time.strftime('%H:%M:%S')} FAILED {error}", flush=True)


def resemblyzer_available():
    """Whether ``resemblyzer`` can be imported."""
    import importlib.util

    return importlib.util.find_spec("resemblyzer") is not None


def all_results_exist(folder):
    """Clean and every robustness ``results.json`` are in ``folder`` (and
    the adaptive s-normalised one for a run of an AAM system)."""
    folder = pathlib.Path(folder)
    folders = [folder, *(runs_robustness_folder(folder, v) for v in VARIANTS)]
    if folder.parent.name in AAM_SYSTEMS:
        folders.append(as_norm_folder(folder))
    return all((f / "results.json").exists() for f in folders)


# ------------------------------------------------------------ throughput


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


# --------------------------------------------------------------- report


def mean_sd(values, scale=1.0, digits=2):
    """ "mean ± sd" of a list (sd over runs, n - 1), or "mean" for one run.

    Example
    -------
    >>> mean_sd([0.1, 0.2, 0.3], scale=100)
    '20.00 ± 10.00'
    """
    values = scale * np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def min_dcf_entry(results, p_target=0.01):
    """The minDCF entry of ``results`` at ``p_target``."""
    return next(d for d in results["min_dcf"] if d["p_target"] == p_target)


def run_summary(folder):
    """Compact metrics of one results folder (or None if unfinished)."""
    folder = pathlib.Path(folder)
    if not (folder / "results.json").exists():
        return None
    results = load_results(folder)
    dcf = min_dcf_entry(results)
    return {
        "eer": results["eer"]["value"],
        "eer_ci": results["eer"]["ci"],
        "min_dcf": dcf["value"],
        "min_dcf_ci": dcf["ci"],
    }


def load_scores(folder):
    """Scores and labels of a results folder."""
    with np.load(pathlib.Path(folder) / "scores.npz") as saved:
        return saved["scores"], saved["labels"]


def train_losses(train_log):
    """Training loss of the first and of the last epoch in a
    ``train_log.txt`` (None when there is none).

    Example
    -------
    >>> import tempfile
    >>> log = pathlib.Path(tempfile.mkdtemp()) / "train_log.txt"
    >>> _ = log.write_text("epoch: 1 - train loss: 4.9\\nepoch: 2 - train "
    ...                    "loss: 4.5, train accuracy: 0.1\\n")
    >>> train_losses(log)
    (4.9, 4.5)
    """
    if not pathlib.Path(train_log).exists():
        return None
    values = [
        float(line.split("train loss: ")[1].split(",")[0])
        for line in pathlib.Path(train_log).read_text().splitlines()
        if "train loss: " in line
    ]
    return (values[0], values[-1]) if values else None


def collect(layout, systems, seeds):
    """Everything finished: per-run, per-system and reference summaries."""
    summary = {"systems": {}, "references": {}}
    for system in systems:
        runs = {}
        for seed in seeds:
            run = layout.run(system, seed)
            clean = run_summary(run)
            if clean is None:
                continue
            timing_file = run / "wall_time.json"
            runs[seed] = {
                "clean": clean,
                "as_norm": run_summary(as_norm_folder(run)),
                "robustness": {
                    v: run_summary(runs_robustness_folder(run, v))
                    for v in VARIANTS
                },
                "wall_time": json.loads(timing_file.read_text())
                if timing_file.exists()
                else {},
                "train_loss_first_last": train_losses(run / "train_log.txt"),
            }
        if runs:
            summary["systems"][system] = {"runs": runs}
    for name in REFERENCES:
        folder = layout.reference(name)
        clean = run_summary(folder)
        if clean is not None:
            summary["references"][name] = {
                "label": REFERENCES[name][0],
                "clean": clean,
                "robustness": {
                    v: run_summary(runs_robustness_folder(folder, v))
                    for v in VARIANTS
                },
            }
    return summary


def significance(layout, summary, condition=None, n_replicates=1000):
    """Paired bootstrap of every system against AAM (seeds both have)."""
    tests = {}
    systems = summary["systems"]
    if REFERENCE_SYSTEM not in systems:
        return tests

    def folder(system, seed):
        run = layout.run(system, seed)
        return (
            run if condition is None else runs_robustness_folder(run, condition)
        )

    def available(system):
        return [
            seed
            for seed in systems[system]["runs"]
            if (folder(system, seed) / "results.json").exists()
        ]

    reference_seeds = available(REFERENCE_SYSTEM)
    if not reference_seeds:
        return tests
    reference = [
        load_scores(folder(REFERENCE_SYSTEM, s))[0] for s in reference_seeds
    ]
    _, labels = load_scores(folder(REFERENCE_SYSTEM, reference_seeds[0]))
    for system in systems:
        seeds = available(system)
        if system == REFERENCE_SYSTEM or not seeds:
            continue
        other = [load_scores(folder(system, s))[0] for s in seeds]
        tests[system] = paired_bootstrap(
            reference, other, labels, n_replicates=n_replicates
        )
        tests[system]["seeds"] = {
            "reference": reference_seeds,
            "other": seeds,
        }
    return tests


def median_run(runs):
    """Seed of the run with the median EER."""
    ordered = sorted(runs, key=lambda seed: runs[seed]["clean"]["eer"])
    return ordered[(len(ordered) - 1) // 2]


def plot_all(layout, summary, path):
    """Overlaid DET curves: median-EER run of each system + references."""
    from speaker_metric_learning.scoring.metrics import split_scores
    from speaker_metric_learning.scoring.plots import plot_det

    curves = {}
    for system, entry in summary["systems"].items():
        seed = median_run(entry["runs"])
        scores, labels = load_scores(layout.run(system, seed))
        curves[f"{system} (seed {seed})"] = split_scores(scores, labels)
    for name, entry in summary["references"].items():
        scores, labels = load_scores(layout.reference(name))
        curves[entry["label"]] = split_scores(scores, labels)
    if curves:
        plot_det(
            curves,
            path,
            title="speechocean762 dev: median-EER run of each system",
        )


def format_ci(interval, scale=100, digits=1):
    """ "[low, high]" of an interval.

    Example
    -------
    >>> format_ci([0.1, 0.125])
    '[10.0, 12.5]'
    """
    low, high = interval
    return f"[{scale * low:.{digits}f}, {scale * high:.{digits}f}]"


def format_p(p_value, n_replicates):
    """A bootstrap p-value in a table cell; at the resolution of the
    bootstrap (``2 / (n_replicates + 1)``), "≤" that resolution.

    Example
    -------
    >>> format_p(2 / 1001, 1000), format_p(0.25, 1000)
    ('≤ 0.002', '0.25')
    """
    floor = 2 / (n_replicates + 1)
    if p_value <= floor * (1 + 1e-9):
        return f"≤ {floor:.3f}"
    return f"{p_value:.3f}" if p_value < 0.01 else f"{p_value:.2f}"


def audio_seconds(folder):
    """Total duration of the audio files of ``<folder>/wav``."""
    return sum(
        soundfile.info(path).duration for path in audio_files(folder).values()
    )


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
    for system in args.systems:
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


def report_tables(summary, tests, robustness_tests, throughput):
    """The Markdown tables of the report."""
    lines = [
        "| System | params | EER % (mean ± sd) | minDCF 0.01 (mean ± sd) "
        "| EER % per seed [95 % CI] | ΔEER vs AAM, pts [95 % CI] | p "
        "| last train loss | wall min / run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for system, entry in summary["systems"].items():
        runs = entry["runs"]
        eers = [runs[s]["clean"]["eer"] for s in runs]
        dcfs = [runs[s]["clean"]["min_dcf"] for s in runs]
        per_seed = "; ".join(
            f"{100 * runs[s]['clean']['eer']:.1f} "
            f"{format_ci(runs[s]['clean']['eer_ci'])}"
            for s in runs
        )
        test = tests.get(system)
        delta = p = "—"
        if test is not None:
            delta = (
                f"{100 * test['eer']['difference']:+.1f} "
                f"{format_ci(test['eer']['ci'])}"
            )
            p = format_p(test["eer"]["p_value"], test["n_replicates"])
        walls = [
            sum(v for k, v in runs[s]["wall_time"].items() if k.endswith("_s"))
            / 60
            for s in runs
        ]
        losses = [
            runs[s]["train_loss_first_last"][1]
            for s in runs
            if runs[s]["train_loss_first_last"] is not None
        ]
        parameters = throughput.get(system, {}).get("parameters")
        lines.append(
            f"| {SYSTEMS[system].description} | "
            f"{'—' if parameters is None else f'{parameters / 1e3:.0f} k'} | "
            f"{mean_sd(eers, 100)} | {mean_sd(dcfs, 1, 3)} | {per_seed} | "
            f"{delta} | {p} | {mean_sd(losses, 1, 2) if losses else '—'} | "
            f"{mean_sd(walls, 1, 1)} |"
        )
    for entry in summary["references"].values():
        clean = entry["clean"]
        lines.append(
            f"| *{entry['label']}* | — | {100 * clean['eer']:.2f} | "
            f"{clean['min_dcf']:.3f} | {100 * clean['eer']:.1f} "
            f"{format_ci(clean['eer_ci'])} | — | — | — | — |"
        )
    robustness = [
        "| System | clean | " + " | ".join(VARIANTS) + " |",
        "|---|---|" + "---|" * len(VARIANTS),
    ]
    for system, entry in summary["systems"].items():
        runs = entry["runs"]
        cells = [mean_sd([runs[s]["clean"]["eer"] for s in runs], 100)]
        for variant in VARIANTS:
            values = [
                runs[s]["robustness"][variant]["eer"]
                for s in runs
                if runs[s]["robustness"][variant] is not None
            ]
            cell = mean_sd(values, 100) if values else "—"
            test = robustness_tests[variant].get(system)
            if test is not None and test["eer"]["p_value"] < 0.05:
                cell += " †"
            cells.append(cell)
        robustness.append(
            f"| {SYSTEMS[system].description} | " + " | ".join(cells) + " |"
        )
    for entry in summary["references"].values():
        cells = [f"{100 * entry['clean']['eer']:.2f}"]
        for variant in VARIANTS:
            result = entry["robustness"][variant]
            cells.append(
                "—" if result is None else f"{100 * result['eer']:.2f}"
            )
        robustness.append(f"| *{entry['label']}* | " + " | ".join(cells) + " |")
    return "\n".join(lines), "\n".join(robustness)


def as_norm_table(summary):
    """Raw and adaptive s-normalised EER of the AAM systems, side by side.

    Example
    -------
    >>> run = {"clean": {"eer": 0.10}, "as_norm": {"eer": 0.09}}
    >>> print(as_norm_table({"systems": {"aam": {"runs": {1: run}}}}))
    | System | EER % raw | EER % AS-norm | difference, pts |
    |---|---|---|---|
    | SincTDNN + AAM | 10.00 | 9.00 | -1.00 |
    """
    lines = [
        "| System | EER % raw | EER % AS-norm | difference, pts |",
        "|---|---|---|---|",
    ]
    for system, entry in summary["systems"].items():
        runs = [r for r in entry["runs"].values() if r.get("as_norm")]
        if system not in AAM_SYSTEMS or not runs:
            continue
        raw = [r["clean"]["eer"] for r in runs]
        normalised = [r["as_norm"]["eer"] for r in runs]
        change = [b - a for a, b in zip(raw, normalised, strict=True)]
        lines.append(
            f"| {SYSTEMS[system].description} | {mean_sd(raw, 100)} | "
            f"{mean_sd(normalised, 100)} | {mean_sd(change, 100)} |"
        )
    return "\n".join(lines)


def ordinal(n):
    """English ordinal of a small positive integer.

    Example
    -------
    >>> [ordinal(n) for n in (1, 2, 3, 4, 11)]
    ['1st', '2nd', '3rd', '4th', '11th']
    """
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{'th' if 10 <= n % 100 <= 20 else suffix}"


def ranking_text(summary, tests):
    """Plain statements of where the ranking agrees with the paper."""
    systems = summary["systems"]
    if REFERENCE_SYSTEM not in systems:
        return "AAM has no finished run yet: no ranking."
    means = {
        system: np.mean([r["clean"]["eer"] for r in e["runs"].values()])
        for system, e in systems.items()
    }
    losses = [s for s in means if s not in BASELINES]
    order = sorted(losses, key=means.get)
    rank = order.index(REFERENCE_SYSTEM) + 1
    lines = [
        "Ranking of the losses on SincTDNN by mean EER: "
        + " < ".join(f"{s} {100 * means[s]:.1f}" for s in order)
        + f" %. AAM ranks {rank} of {len(order)}; the paper ranks it first.",
    ]
    better, worse, unclear = [], [], []
    for system, test in tests.items():
        difference, p_value = test["eer"]["difference"], test["eer"]["p_value"]
        text = (
            f"{system} ({100 * difference:+.1f} pts, "
            f"CI {format_ci(test['eer']['ci'])}, "
            f"p {format_p(p_value, test['n_replicates'])})"
        )
        if p_value >= 0.05:
            unclear.append(text)
        elif difference > 0:
            better.append(text)
        else:
            worse.append(text)
    if better:
        lines.append(
            "AAM is significantly better (paired bootstrap, p < 0.05) than "
            + ", ".join(better)
            + "."
        )
    if worse:
        lines.append(
            "AAM is significantly worse than " + ", ".join(worse) + "."
        )
    if unclear:
        lines.append(
            "No significant difference from AAM: " + ", ".join(unclear) + "."
        )
    for variant in VARIANTS:
        degraded = {}
        for system in losses:
            pairs = [
                (run["robustness"][variant]["eer"], run["clean"]["eer"])
                for run in systems[system]["runs"].values()
                if run["robustness"][variant] is not None
            ]
            if pairs:
                degraded[system] = np.mean([v - c for v, c in pairs])
        if REFERENCE_SYSTEM in degraded:
            order = sorted(degraded, key=degraded.get)
            rank = ordinal(order.index(REFERENCE_SYSTEM) + 1)
            lines.append(
                f"{variant}: EER increase over clean (mean over seeds) "
                + ", ".join(f"{s} {100 * degraded[s]:+.1f}" for s in order)
                + f" pts; AAM ranks {rank}"
                f" of {len(order)} losses (1st = least degraded; the paper "
                "finds AAM the most robust; a system near chance cannot "
                "degrade much, so read this with the clean EER)."
            )
    best = min(means, key=means.get)
    for entry in summary["references"].values():
        eer = entry["clean"]["eer"]
        verdict = "beats" if means[best] < eer else "does not beat"
        lines.append(
            f"Best system here, {best} ({100 * means[best]:.1f} %), "
            f"{verdict} the {entry['label']} reference "
            f"({100 * eer:.1f} % {format_ci(entry['clean']['eer_ci'])})."
        )
    return "\n\n".join(lines)


def write_report(args, budget, layout):
    """REPORT.md, summary.json and det.png from the finished results."""
    summary = collect(layout, args.systems, args.seeds)
    tests = significance(layout, summary)
    robustness_tests = {v: significance(layout, summary, v) for v in VARIANTS}
    throughput_file = layout.output / "throughput.json"
    throughput = (
        json.loads(throughput_file.read_text())
        if throughput_file.exists()
        else {"systems": {}}
    )
    plot_all(layout, summary, layout.output / "det.png")
    main_table, robustness_table = report_tables(
        summary, tests, robustness_tests, throughput["systems"]
    )
    n_runs = sum(len(e["runs"]) for e in summary["systems"].values())
    command = (
        "PYTHONPATH=plugin:. python benchmarks/compare_losses.py run "
        + " ".join(
            f"--{name} {value}"
            for name, value in dataclasses.asdict(budget).items()
        )
        + f" --seeds {' '.join(map(str, args.seeds))} --jobs {args.jobs}"
    )
    text = f"""## {args.title}

Six losses on SincTDNN (its default architecture), the network of Coria et
al. (2020) with AAM (`--architecture paper`), and two baselines from
SpeechBrain's own modules (Fbank + `Xvector`, Fbank + `ECAPA_TDNN`, both
with our AAM loss), trained by
`train.py` at one budget on the 125 training speakers of speechocean762
(2,646 utterances, 3.1 h) and scored on its dev trials (63 other speakers,
12,299 trials). {n_runs} of {len(args.systems) * len(args.seeds)} runs
finished (systems x seeds {", ".join(map(str, args.seeds))}).

    {command}

Budget, the same for every system: model_scale {budget.model_scale},
{budget.chunk_seconds:g} s chunks, {budget.chunks_per_batch} chunks per
batch (32 speakers x 1 chunk for the classification losses and the
baselines, 8 x 4 for contrastive and triplet), {budget.steps} optimizer steps
({budget.number_of_epochs} epochs x {budget.batches_per_epoch} batches),
Adam lr {budget.lr:g}, no augmentation (no noise corpus offline), whole
utterances at test, cosine scoring. One thread per run.

{main_table}

EER per seed with its 95 % bootstrap CI over trials; ΔEER = mean EER of the
system minus mean EER of AAM, in percentage points, with the 95 % interval
and two-sided p-value of a paired bootstrap (1,000 replicates; the same
resampled trials for every run of both systems; seeds paired by trial, not
by seed). minDCF normalised, p_target 0.01. Last train loss: mean over
seeds of the last epoch's training loss (for softmax, center's
cross-entropy and CoCo, ln 125 = 4.83 is the loss of a uniform guess over
the 125 speakers; AAM's includes its margin). Wall time: training + dev
evaluation + robustness evaluation of one run, on the shared 2-core machine
(other jobs running). Italic rows: reference points outside the comparison.

{ranking_text(summary, tests)}

Adaptive s-norm of the AAM systems as Coria et al. report it: the
{AS_NORM_TOP_K} closest of the 125 training speakers' centroids (the
paper's top 400 of 1,170; each centroid the mean of the normalised
embeddings of the speaker's first {AS_NORM_UTTERANCES} utterances), mean ±
sd over seeds:

{as_norm_table(summary)}

Budget arithmetic:

{budget_arithmetic(throughput, budget, args, layout, summary)}

Robustness (EER %, mean ± sd over seeds; test side of every trial cut to
2 s / 1 s at a seeded random offset, or with white noise at 5 dB SNR;
enrolment side clean; † = differs from AAM under the same condition,
paired bootstrap p < 0.05):

{robustness_table}

![DET curves](det.png)
"""
    (layout.output / "REPORT.md").write_text(text)
    (layout.output / "summary.json").write_text(
        json.dumps(
            {
                "budget": dataclasses.asdict(budget),
                "seeds": args.seeds,
                "throughput": throughput,
                **summary,
                "significance_vs_aam": {"clean": tests, **robustness_tests},
            },
            indent=1,
        )
    )
    print(text)
    if args.benchmarks_file:
        update_section(args.benchmarks_file, text, layout.output / "det.png")


def update_section(path, text, figure):
    """Puts the report (its first heading and what follows) into a Markdown
    file, replacing the section of the same heading, or appending it; the
    figure link is made relative to the file.

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> page = folder / "B.md"
    >>> _ = page.write_text("# B\\n\\n## A\\nold\\n\\n## C\\nkept\\n")
    >>> report = "## A\\nnew ![x](det.png)\\n"
    >>> update_section(page, report, folder / "out" / "det.png")
    >>> print(page.read_text())
    # B
    <BLANKLINE>
    ## A
    new ![x](out/det.png)
    <BLANKLINE>
    ## C
    kept
    <BLANKLINE>
    """
    path = pathlib.Path(path)
    heading = text.splitlines()[0]
    relative = os.path.relpath(figure, path.resolve().parent)
    text = text.replace("](det.png)", f"]({pathlib.Path(relative).as_posix()})")
    old = path.read_text() if path.exists() else ""
    if heading in old.splitlines():
        start = old.index(heading + "\n")
        following = old.find("\n## ", start + len(heading))
        rest = "" if following < 0 else old[following + 1 :]
        new = (
            old[:start]
            + text.rstrip("\n")
            + "\n"
            + ("\n" + rest if rest else "")
        )
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


# ------------------------------------------------------------------ main


def corpus_arguments(parser, output_name):
    """``--data``, ``--output`` (``benchmarks/results/<output_name>``) and
    ``--shared`` of the benchmark scripts trained on speechocean762."""
    parser.add_argument(
        "--data",
        default=str(ROOT.parent / "shared" / "data" / "speechocean762"),
        help="corpus root with train/wav, dev/wav, dev/trials.txt",
    )
    parser.add_argument(
        "--output",
        default=str(ROOT / "benchmarks" / "results" / output_name),
    )
    parser.add_argument(
        "--shared",
        default=str(ROOT / "benchmarks" / "results" / "compare_shared"),
        help="decoded audio, test-side variants and reference points "
        "(independent of the budget, shared by output folders)",
    )


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "command",
        choices=[
            "run",
            "report",
            "throughput",
            "evaluate-run",
            "evaluate-reference",
        ],
    )
    parser.add_argument("target", nargs="?", help="run folder / reference")
    corpus_arguments(parser, "compare")
    parser.add_argument(
        "--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS)
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument(
        "--references",
        nargs="*",
        default=list(REFERENCES),
        choices=list(REFERENCES),
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="runs at once (one thread each)"
    )
    parser.add_argument("--variant_seed", type=int, default=0)
    parser.add_argument(
        "--title",
        default="Loss comparison on speechocean762",
        help="heading of the report (and of its BENCHMARKS.md section)",
    )
    parser.add_argument("--throughput_steps", type=int, default=5)
    parser.add_argument(
        "--benchmarks_file",
        help="also put the report into this Markdown file (e.g. "
        "BENCHMARKS.md), replacing its section of the same heading",
    )
    for field in dataclasses.fields(Budget):
        parser.add_argument(
            f"--{field.name}", type=type(field.default), default=field.default
        )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    budget = Budget(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(Budget)}
    )
    layout = Layout(args.output, args.data, args.shared)
    torch.set_num_threads(1)
    if args.command == "run":
        run_all(args, budget, layout)
        write_report(args, budget, layout)
    elif args.command == "report":
        write_report(args, budget, layout)
    elif args.command == "throughput":
        table = measure_throughput(budget, args.systems, args.throughput_steps)
        layout.output.mkdir(parents=True, exist_ok=True)
        (layout.output / "throughput.json").write_text(
            json.dumps(
                {
                    "budget": dataclasses.asdict(budget),
                    "threads": 1,
                    "load_average": os.getloadavg()[0],
                    "systems": table,
                },
                indent=1,
            )
        )
    elif args.command == "evaluate-run":
        evaluate_run(args.target, layout)
    elif args.command == "evaluate-reference":
        evaluate_reference(args.target, layout)


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
