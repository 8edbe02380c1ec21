#!/usr/bin/env python3
"""Trains and evaluates a speaker embedding network with one of six losses.

    python train.py hparams/aam.yaml                       # generated corpus
    python train.py hparams/aam.yaml --data_folder TRAIN \\
        --eval_folder DEV --trials_file DEV/trials.txt

Steps, top to bottom: load the hyperparameters (unknown options are refused
with the closest known names); get the data (generate the default synthetic
corpus when no --data_folder is given) and write its CSV files; train with
SpeakerBrain (checkpoints and resume come from SpeechBrain's Checkpointer);
embed the evaluation utterances, score the trial list by cosine similarity
and write EER / minDCF to results.json in the output folder.

Authors
 * speaker_metric_learning developers
"""

import csv
import dataclasses
import logging
import os
import sys

import speechbrain as sb
import torch
import yaml

from recipes.folder_prepare import (
    audio_root,
    prepare_folder,
    prepare_noise_folder,
    split_validation,
)
from recipes.synthetic_corpus import generate_corpus
from recipes.voxceleb_prepare import trial_list_path
from speaker_metric_learning.augment import waveform_augmenter
from speaker_metric_learning.brain import NonFiniteLossError, SpeakerBrain
from speaker_metric_learning.checkpoints import checkpoints_in_saving_order
from speaker_metric_learning.data import (
    AudioReadError,
    evaluation_dataset,
    training_dataset,
)
from speaker_metric_learning.export import load_pretrained_embedding_model
from speaker_metric_learning.hyperparams import (
    HparamsError,
    load_hparams,
    parse_overrides,
    resolved_hparams_text,
)
from speaker_metric_learning.run_guard import (
    RunGuardError,
    check_options,
    check_resume,
    lock_output_folder,
)
from speaker_metric_learning.sampling import BatchShare
from speaker_metric_learning.scoring.cli import trial_audio
from speaker_metric_learning.scoring.compare import evaluate_scores
from speaker_metric_learning.scoring.embeddings import extract_embeddings
from speaker_metric_learning.scoring.trials import cosine_scores, read_trials

logger = logging.getLogger(__name__)


def locate_data(hparams):
    """Training folder, evaluation folder and trial list of this run.

    With no ``data_folder`` the default synthetic corpus is generated (once)
    and used; otherwise the folders given are checked for existence. The
    trial list is a file or an official name (``vox1-o``, ``vox1-e``,
    ``vox1-h``: see ``recipes.voxceleb_prepare``).
    """
    if hparams["data_folder"] is None:
        root = hparams["default_corpus_folder"]
        sb.utils.distributed.run_on_main(generate_corpus, args=[root])
        dev = os.path.join(root, "dev")
        return (
            os.path.join(root, "train"),
            dev,
            os.path.join(dev, "trials.txt"),
        )
    for name in ("data_folder", "eval_folder"):
        path = hparams[name]
        if path is not None and not os.path.exists(path):
            raise FileNotFoundError(f"--{name} {path} does not exist")
    trials_file = hparams["trials_file"]
    return (
        hparams["data_folder"],
        hparams["eval_folder"],
        None if trials_file is None else trial_list_path(trials_file),
    )


def prepare_csvs(hparams, train_folder, eval_folder):
    """Writes the CSV files of the folders (once); returns the paths of the
    training, validation (None without ``valid_fraction``) and evaluation
    (None without ``eval_folder``) CSV files."""
    save_folder = hparams["save_folder"]
    options = {
        "converted_folder": hparams["converted_audio_folder"],
        "chunk_seconds": hparams["chunk_seconds"],
    }
    train_csv = os.path.join(save_folder, "train.csv")
    valid_csv = os.path.join(save_folder, "valid.csv")
    data_csv = os.path.join(save_folder, "data.csv")
    if not hparams["valid_fraction"]:
        data_csv, valid_csv = train_csv, None
    sb.utils.distributed.run_on_main(
        prepare_folder, args=[train_folder, data_csv], kwargs=options
    )
    if valid_csv:
        sb.utils.distributed.run_on_main(
            split_validation,
            args=[data_csv, train_csv, valid_csv, hparams["valid_fraction"]],
            kwargs={"by": hparams["valid_split"], "seed": hparams["seed"]},
        )
    eval_csv = os.path.join(save_folder, "eval.csv") if eval_folder else None
    if eval_csv:
        sb.utils.distributed.run_on_main(
            prepare_folder,
            args=[eval_folder, eval_csv],
            kwargs={"converted_folder": hparams["converted_audio_folder"]},
        )
    return train_csv, valid_csv, eval_csv


def waveform_augmentation(hparams):
    """The training augmenter of the noise and impulse-response folders
    given (their lists are prepared once), or None."""
    lists = {}
    for name, impulse_responses in (("noise", False), ("rir", True)):
        folder = hparams[f"{name}_folder"]
        if folder is not None:
            lists[name] = os.path.join(hparams["save_folder"], f"{name}.csv")
            sb.utils.distributed.run_on_main(
                prepare_noise_folder,
                args=[folder, lists[name]],
                kwargs={
                    "impulse_responses": impulse_responses,
                    "sample_rate": hparams["sample_rate"],
                },
            )
    return waveform_augmenter(
        noise_csv=lists.get("noise"),
        rir_csv=lists.get("rir"),
        snr_low=hparams["snr_low"],
        snr_high=hparams["snr_high"],
        sample_rate=hparams["sample_rate"],
        augment_prob=hparams["augment_prob"],
    )


def tensorboard_writer(hparams):
    """A TensorBoard writer on the main process when ``use_tensorboard``."""
    if not hparams["use_tensorboard"]:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError(
            "--use_tensorboard needs TensorBoard: pip install tensorboard "
            "(or pip install -e '.[tensorboard]')"
        ) from None
    if not sb.utils.distributed.if_main_process():
        return None
    return SummaryWriter(hparams["tensorboard_folder"])


def init_distributed(run_opts):
    """Joins the process group under torchrun, with gloo when there is no
    GPU; returns the run options (with that backend)."""
    if not torch.cuda.is_available():
        run_opts = dataclasses.replace(
            run_opts,
            distributed_backend="gloo",
            overridden_args={*run_opts.overridden_args, "distributed_backend"},
        )
    sb.utils.distributed.ddp_init_group(run_opts)
    return run_opts


def distributed_batch_sampler(hparams, labels):
    """The P x K batch sampler, or this process's share of it under DDP.

    ``speakers_per_batch`` and ``batches_per_epoch`` are global: with N
    processes each takes ``speakers_per_batch / N`` speakers of every batch
    (``BatchShare``), so an epoch has the same optimizer steps, and each step
    the same speakers and chunks, whatever N.
    """
    if not torch.distributed.is_initialized():
        return hparams["batch_sampler"](labels)
    world = torch.distributed.get_world_size()
    if hparams["speakers_per_batch"] % world:
        raise ValueError(
            f"speakers_per_batch={hparams['speakers_per_batch']} is the "
            f"batch of all {world} processes together: make it a multiple "
            "of the process count"
        )
    sampler = hparams["batch_sampler"](labels, num_replicas=1, rank=0)
    return BatchShare(sampler, torch.distributed.get_rank(), world)


def report_listing(listing, message):
    """Logs how many distinct files a listing written by data loading
    (``path<TAB>reason`` lines, possibly from several processes) names:
    ``message`` is formatted with that count and the listing's path."""
    if not os.path.exists(listing):
        return
    with open(listing, encoding="utf-8") as lines:
        paths = {line.split("\t", 1)[0] for line in lines if line.strip()}
    logger.warning(message, len(paths), listing)


def fresh_listing(hparams, name):
    """Path of a listing file in the save folder, emptied for this run."""
    listing = os.path.join(hparams["save_folder"], name)
    if sb.utils.distributed.if_main_process() and os.path.exists(listing):
        os.remove(listing)
    return listing


def error_line(error):
    """The one-line message for an error that stops the recipe.

    An error raised in a DataLoader worker process reaches the main
    process with the worker's traceback in its message; only the original
    message is kept.

    Arguments
    ---------
    error : Exception
        The error.

    Returns
    -------
    str
        ``error: <message>``.

    Example
    -------
    >>> error_line(ValueError("bad"))
    'error: bad'
    >>> error_line(ValueError(
    ...     "Caught ValueError in DataLoader worker process 0.\\n"
    ...     "Original Traceback (most recent call last):\\n"
    ...     '  File "x.py", line 1, in f\\n'
    ...     "ValueError: file a.wav is bad\\n"))
    'error: file a.wav is bad'
    """
    message = str(error)
    if "\nOriginal Traceback" in message:
        last = message.strip().splitlines()[-1]
        message = last.split(": ", 1)[-1]
    return f"error: {message}"


def count_speakers(csv_path):
    """Number of distinct speakers of a prepared CSV file."""
    with open(csv_path, encoding="utf-8", newline="") as csv_file:
        return len({row["spk_id"] for row in csv.DictReader(csv_file)})


def has_checkpoint(save_folder):
    """Whether a run's save folder holds a checkpoint to resume from."""
    return bool(checkpoints_in_saving_order(save_folder))


def recorded_speakers(hparams):
    """``{"n_train_speakers": N}`` of the run's ``hyperparams.yaml`` (empty
    if it records none)."""
    record = os.path.join(hparams["output_folder"], "hyperparams.yaml")
    if not os.path.isfile(record):
        return {}
    with open(record, encoding="utf-8") as text:
        recorded = yaml.safe_load(
            "".join(line for line in text if line.startswith("n_train_"))
        )
    return recorded or {}


def check_evaluation(trials_file, eval_folder):
    """Checks the trial list and its audio before training, with the
    messages of ``score-model``: the file is read (columns, labels), has
    both classes, and every utterance it names is in the evaluation
    folder."""
    trials = read_trials(trials_file)
    if eval_folder is None:
        raise ValueError(
            "--trials_file needs --eval_folder, the folder of its audio files"
        )
    trial_audio(trials, audio_root(eval_folder))


def evaluate(brain, hparams, eval_csv, trials_file):
    """Embeds the evaluation utterances and scores the trial list."""
    trials = read_trials(trials_file)
    clipped_list = fresh_listing(hparams, "eval_clipped.txt")
    try:
        embeddings = extract_embeddings(
            brain.modules.embedding_model,
            evaluation_dataset(eval_csv, hparams["sample_rate"], clipped_list),
            batch_size=hparams["eval_batch_size"],
            window=hparams["eval_window_seconds"],
            step=hparams["eval_step_seconds"],
            max_seconds=hparams["eval_max_seconds"],
            sample_rate=hparams["sample_rate"],
            device=brain.device,
        )
    except AudioReadError as error:
        raise AudioReadError(
            f"{error} (an evaluation utterance of {eval_csv}): replace or "
            "delete the file (and the trials naming it), then run the same "
            "command again: training is not repeated, only the evaluation"
        ) from None
    report_listing(
        clipped_list,
        "%d evaluation utterances look clipped (at least 1 %% of their "
        "samples at full scale) and were used as they are: listed in %s",
    )
    results = evaluate_scores(
        cosine_scores(trials, embeddings),
        trials,
        hparams["output_folder"],
        hparams["experiment"],
        extra={
            "hparams": os.path.join(
                hparams["output_folder"], "hyperparams.yaml"
            )
        },
    )
    min_dcf = results["min_dcf"][0]
    interval = results["eer"]["ci"]
    logger.info(
        "%s on %s: EER %.2f %%%s, minDCF(%g) %.4f -> %s",
        hparams["experiment"],
        trials.fingerprint,
        100 * results["eer"]["value"],
        f" (95 % CI {100 * interval[0]:.2f}-{100 * interval[1]:.2f})"
        if interval
        else "",
        min_dcf["p_target"],
        min_dcf["value"],
        hparams["output_folder"],
    )
    return results


def main(argv):
    """Runs the recipe; returns the evaluation results (or None)."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    run_opts = init_distributed(run_opts)
    overrides = parse_overrides(overrides)
    hparams = load_hparams(hparams_file, overrides)
    check_options(hparams, run_opts.device)
    if sb.utils.distributed.if_main_process():
        lock_output_folder(hparams["output_folder"])
    resumable = has_checkpoint(hparams["save_folder"])
    if resumable:  # the run's own speaker count, then its options
        overrides = {**recorded_speakers(hparams), **overrides}
        hparams = load_hparams(hparams_file, overrides)
    changes = check_resume(
        hparams["output_folder"],
        resolved_hparams_text(hparams_file, overrides),
        resumable,
    )
    train_folder, eval_folder, trials_file = locate_data(hparams)
    if trials_file is not None:
        check_evaluation(trials_file, eval_folder)
    os.makedirs(hparams["save_folder"], exist_ok=True)
    train_csv, valid_csv, eval_csv = prepare_csvs(
        hparams, train_folder, eval_folder
    )
    n_speakers = count_speakers(train_csv)
    if n_speakers != hparams["n_train_speakers"]:
        if resumable:
            raise RunGuardError(
                f"{train_folder} now has {n_speakers} speakers, but the run "
                f"in {hparams['output_folder']} was trained on "
                f"{hparams['n_train_speakers']}: give another --output_folder "
                "for a new run"
            )
        overrides["n_train_speakers"] = n_speakers
        hparams = load_hparams(hparams_file, overrides)
    sb.create_experiment_directory(hparams["output_folder"])
    if changes:
        logger.warning(
            "Resuming with changed options, which do not change the trained "
            "network (recorded in hyperparams.yaml): %s",
            "; ".join(
                f"{k}: {old} -> {new}" for k, (old, new) in changes.items()
            ),
        )
    if sb.utils.distributed.if_main_process() and (changes or not resumable):
        with open(
            os.path.join(hparams["output_folder"], "hyperparams.yaml"), "w"
        ) as record:
            record.write(resolved_hparams_text(hparams_file, overrides))
    logger.info(
        "Training on %s: %d speakers, device %s",
        train_folder,
        n_speakers,
        run_opts.device or sb.utils.distributed.infer_device(),
    )

    label_encoder = hparams["label_encoder"]
    label_encoder.expect_len(n_speakers)
    unreadable_list = fresh_listing(hparams, "unreadable.txt")
    clipped_list = fresh_listing(hparams, "clipped.txt")
    train_set = training_dataset(
        train_csv,
        hparams["chunker"],
        label_encoder,
        unreadable_list,
        clipped_list,
    )
    sb.utils.distributed.run_on_main(
        label_encoder.save,
        args=[os.path.join(hparams["save_folder"], "label_encoder.txt")],
    )
    labels = [
        label_encoder.encode_label(train_set.data[uid]["spk_id"])
        for uid in train_set.data_ids
    ]
    valid_set = None
    if valid_csv:
        valid_set = training_dataset(
            valid_csv,
            hparams["valid_chunker"],
            label_encoder
            if hparams["valid_split"] == "utterance"
            else sb.dataio.encoder.CategoricalEncoder(),
            unreadable_list,
            clipped_list,
        )
    if hparams["pretrained"]:
        load_pretrained_embedding_model(
            hparams["embedding_model"], hparams["pretrained"]
        )
    hparams["wav_augment"] = waveform_augmentation(hparams)
    hparams["tensorboard_writer"] = tensorboard_writer(hparams)
    brain = SpeakerBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        hparams["epoch_counter"],
        train_set,
        valid_set,
        train_loader_kwargs={
            "batch_sampler": distributed_batch_sampler(hparams, labels),
            **hparams["train_loader_options"],
        },
        valid_loader_kwargs=hparams["valid_loader_options"],
    )
    report_listing(
        unreadable_list,
        "%d training files could not be read and were replaced by other "
        "utterances of their speakers: listed in %s (fix or remove them)",
    )
    report_listing(
        clipped_list,
        "%d training files look clipped (at least 1 %% of the samples read at "
        "full scale) and were used as they are: listed in %s",
    )
    if trials_file is None:
        logger.warning("No --trials_file: training done, nothing evaluated.")
        return None
    return evaluate(brain, hparams, eval_csv, trials_file)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        print(
            "interrupted: run the same command again to resume from the "
            "last checkpoint",
            file=sys.stderr,
        )
        sys.exit(130)
    except (
        AudioReadError,
        HparamsError,
        NonFiniteLossError,
        OSError,
        ValueError,
    ) as error:
        sys.exit(error_line(error))
