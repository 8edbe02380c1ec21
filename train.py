#!/usr/bin/env python3
"""Trains and evaluates a speaker embedding network with one of six losses.

    python train.py hparams/aam.yaml                       # generated corpus
    python train.py hparams/aam.yaml --data_folder TRAIN \\
        --eval_folder DEV --trials_file DEV/trials.txt

    python train.py hparams/aam.yaml --train_csv save/train.csv \\
        --enrol_csv save/enrol.csv --test_csv save/test.csv \\
        --trials_file veri_test2.txt     # SpeechBrain's VoxCeleb CSV files

Steps, top to bottom: resolve the settings of the hyperparameter file
without building anything (unknown options are refused with the closest
known names); get the data (generate the default synthetic corpus when
neither --data_folder nor --train_csv is given) and write its CSV files;
load the file once, as SpeechBrain's load_hyperpyyaml does, with the number
of training speakers; train with SpeakerBrain (checkpoints and resume come
from SpeechBrain's Checkpointer); embed the evaluation utterances, score the
trial list by cosine similarity and write EER / minDCF to results.json in
the output folder.

Authors
 * speaker_metric_learning developers
"""

import csv
import dataclasses
import logging
import os
import pydoc
import sys

import speechbrain as sb
import torch

from recipes.folder_prepare import (
    prepare_folder,
    prepare_noise_folder,
    split_validation,
)
from recipes.synthetic_corpus import generate_corpus
from recipes.voxceleb_prepare import trial_list_path
from speaker_metric_learning.augment import waveform_augmenter
from speaker_metric_learning.brain import NonFiniteLossError, SpeakerBrain
from speaker_metric_learning.checkpoints import checkpoints_in_saving_order
from speaker_metric_learning.command_line import exit_on
from speaker_metric_learning.data import (
    AudioReadError,
    check_data_csv,
    evaluation_dataset,
    training_dataset,
)
from speaker_metric_learning.hyperparams import (
    HparamsError,
    load_hparams,
    parse_overrides,
    preview_hparams,
    resolved_hparams_text,
)
from speaker_metric_learning.layout import (
    HYPERPARAMS_FILE,
    LABEL_ENCODER_FILE,
    audio_root,
)
from speaker_metric_learning.model_io import load_pretrained_embedding_model
from speaker_metric_learning.run_guard import (
    RunGuardError,
    check_options,
    check_resume,
    describe_changes,
    lock_output_folder,
    record_hyperparams,
    recorded_speakers,
)
from speaker_metric_learning.sampling import BatchShare
from speaker_metric_learning.scoring.audio import trial_audio
from speaker_metric_learning.scoring.evaluation import (
    evaluate,
    evaluation_settings,
)
from speaker_metric_learning.scoring.trials import read_trials

logger = logging.getLogger(__name__)


#: Options naming CSV files prepared elsewhere (see the hparams files).
CSV_OPTIONS = ("train_csv", "valid_csv", "eval_csv", "enrol_csv", "test_csv")
#: Pairs of options of which one at most may be given.
EXCLUSIVE_OPTIONS = (
    ("train_csv", "data_folder"),
    ("valid_csv", "valid_fraction"),
    ("train_csv", "valid_fraction"),
    ("eval_csv", "eval_folder"),
    ("enrol_csv", "eval_folder"),
    ("eval_csv", "enrol_csv"),
)


def check_data_options(settings):
    """Refuses data options that contradict each other or name nothing."""
    for first, second in EXCLUSIVE_OPTIONS:
        if settings[first] and settings[second]:
            raise ValueError(f"give --{first} or --{second}, not both")
    if bool(settings["enrol_csv"]) != bool(settings["test_csv"]):
        raise ValueError("give --enrol_csv and --test_csv together")
    for name in ("data_folder", "eval_folder", *CSV_OPTIONS):
        path = settings[name]
        if path is not None and not os.path.exists(path):
            raise FileNotFoundError(f"--{name} {path} does not exist")


def checkable_settings(settings):
    """The settings ``check_options`` can check before anything is built:
    the plain values, and the class a ``!new:`` loss names."""
    checkable = {
        name: value
        for name, value in settings.items()
        if getattr(getattr(value, "tag", None), "value", None) is None
    }
    tag = str(getattr(getattr(settings.get("loss"), "tag", None), "value", ""))
    loss_class = (
        pydoc.locate(tag[len("!new:") :]) if tag.startswith("!new:") else None
    )
    if isinstance(loss_class, type):
        checkable["loss"] = loss_class
    return checkable


def scoring_mismatch(loss):
    """Why the trials will be scored in another geometry than the loss
    trains in, or None.

    Validation and evaluation score by cosine similarity; a pair loss with
    ``distance: euclidean`` trains the raw (unnormalised) distances.

    Arguments
    ---------
    loss : torch.nn.Module
        The training loss.

    Returns
    -------
    str or None
        The warning to log.

    Example
    -------
    >>> from speaker_metric_learning.losses import TripletLoss
    >>> scoring_mismatch(TripletLoss()) is None
    True
    >>> print(scoring_mismatch(TripletLoss(distance="euclidean")))
    TripletLoss trains with the euclidean distance, but validation and \
evaluation score trials by cosine similarity: the scores do not use the \
geometry the embeddings were trained in
    """
    distance = getattr(loss, "distance", "cosine")
    if distance == "cosine":
        return None
    return (
        f"{type(loss).__name__} trains with the {distance} distance, but "
        "validation and evaluation score trials by cosine similarity: the "
        "scores do not use the geometry the embeddings were trained in"
    )


def locate_data(settings):
    """Training folder, evaluation folder and trial list of this run.

    With neither ``data_folder`` nor ``train_csv`` the default synthetic
    corpus is generated (once) and used. The trial list is a file or an
    official name (``vox1-o``, ``vox1-e``, ``vox1-h``: see
    ``recipes.voxceleb_prepare``).
    """
    if settings["data_folder"] is None and settings["train_csv"] is None:
        root = settings["default_corpus_folder"]
        sb.utils.distributed.run_on_main(generate_corpus, args=[root])
        dev = os.path.join(root, "dev")
        return (
            os.path.join(root, "train"),
            dev,
            os.path.join(dev, "trials.txt"),
        )
    trials_file = settings["trials_file"]
    return (
        settings["data_folder"],
        settings["eval_folder"],
        None if trials_file is None else trial_list_path(trials_file),
    )


def merge_csvs(paths, merged_csv):
    """Writes the rows of CSV files with the same columns to one file, each
    ID once (an utterance may be both enrolment and test)."""
    ids = set()
    with open(merged_csv, "w", encoding="utf-8", newline="") as merged:
        writer = None
        for path in paths:
            with open(path, encoding="utf-8", newline="") as csv_file:
                reader = csv.DictReader(csv_file)
                if writer is None:
                    writer = csv.DictWriter(merged, reader.fieldnames)
                    writer.writeheader()
                for row in reader:
                    if row["ID"] not in ids:
                        ids.add(row["ID"])
                        writer.writerow(row)


def prepare_csvs(settings, train_folder, eval_folder):
    """Writes the CSV files of the folders (once); returns the paths of the
    training, validation (None without ``valid_fraction`` or
    ``valid_csv``) and evaluation (None without ``eval_folder`` or
    evaluation CSV files) CSV files; CSV files given are used as they
    are."""
    save_folder = settings["save_folder"]
    train_csv, valid_csv = settings["train_csv"], settings["valid_csv"]
    if train_folder is not None:
        train_csv = os.path.join(save_folder, "train.csv")
        data_csv = train_csv
        if settings["valid_fraction"]:
            data_csv = os.path.join(save_folder, "data.csv")
            valid_csv = os.path.join(save_folder, "valid.csv")
        sb.utils.distributed.run_on_main(
            prepare_folder,
            args=[train_folder, data_csv],
            kwargs={
                "converted_folder": settings["converted_audio_folder"],
                "chunk_seconds": settings["chunk_seconds"],
            },
        )
        if settings["valid_fraction"]:
            sb.utils.distributed.run_on_main(
                split_validation,
                args=[
                    data_csv,
                    train_csv,
                    valid_csv,
                    settings["valid_fraction"],
                ],
                kwargs={
                    "by": settings["valid_split"],
                    "seed": settings["seed"],
                },
            )
    eval_csv = settings["eval_csv"]
    if settings["enrol_csv"]:
        eval_csv = os.path.join(save_folder, "eval.csv")
        sb.utils.distributed.run_on_main(
            merge_csvs,
            args=[[settings["enrol_csv"], settings["test_csv"]], eval_csv],
        )
    elif eval_folder:
        eval_csv = os.path.join(save_folder, "eval.csv")
        sb.utils.distributed.run_on_main(
            prepare_folder,
            args=[eval_folder, eval_csv],
            kwargs={"converted_folder": settings["converted_audio_folder"]},
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


def count_speakers(csv_path):
    """Number of distinct speakers of a data CSV file (checked first)."""
    check_data_csv(csv_path)
    with open(csv_path, encoding="utf-8", newline="") as csv_file:
        return len({row["spk_id"] for row in csv.DictReader(csv_file)})


def has_checkpoint(save_folder):
    """Whether a run's save folder holds a checkpoint to resume from."""
    return bool(checkpoints_in_saving_order(save_folder))


def check_evaluation(trials_file, eval_folder, eval_csvs=()):
    """Checks the trial list and its audio before training, with the
    messages of ``score-model``: the file is read (columns, labels), has
    both classes, and every utterance it names is in the evaluation
    folder, or in the evaluation CSV files given instead."""
    trials = read_trials(trials_file)
    if eval_folder is not None:
        trial_audio(trials, audio_root(eval_folder))
        return
    if not eval_csvs:
        raise ValueError(
            "--trials_file needs --eval_folder, the folder of its audio "
            "files (or --eval_csv, or --enrol_csv and --test_csv)"
        )
    listed = set()
    for path in eval_csvs:
        check_data_csv(path)
        with open(path, encoding="utf-8", newline="") as csv_file:
            listed.update(row["ID"] for row in csv.DictReader(csv_file))
    missing = [name for name in trials.utterances if name not in listed]
    if missing:
        raise ValueError(
            f"{trials_file} names {len(missing)} utterances that "
            f"{' and '.join(eval_csvs)} do not list, e.g. {missing[0]}"
        )


def evaluate_run(brain, hparams, eval_csv, trials_file):
    """Embeds the evaluation utterances and scores the trial list."""
    trials = read_trials(trials_file)
    clipped_list = fresh_listing(hparams, "eval_clipped.txt")
    try:
        results, _ = evaluate(
            brain.modules.embedding_model,
            evaluation_dataset(eval_csv, hparams["sample_rate"], clipped_list),
            trials,
            hparams["output_folder"],
            hparams["experiment"],
            extra={
                "hparams": os.path.join(
                    hparams["output_folder"], HYPERPARAMS_FILE
                )
            },
            device=brain.device,
            **evaluation_settings(hparams),
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
    # The data is prepared from the resolved settings, before anything is
    # built, so that the file is loaded once, with the speaker count.
    overrides = parse_overrides(overrides)
    settings = preview_hparams(hparams_file, overrides)
    check_options(checkable_settings(settings), run_opts.device)
    check_data_options(settings)
    if sb.utils.distributed.if_main_process():
        lock_output_folder(settings["output_folder"])
    resumable = has_checkpoint(settings["save_folder"])
    if resumable:  # the run's own speaker count, then its options
        overrides = {
            **recorded_speakers(settings["output_folder"]),
            **overrides,
        }
    changes = check_resume(
        settings["output_folder"],
        resolved_hparams_text(hparams_file, overrides),
        resumable,
    )
    train_folder, eval_folder, trials_file = locate_data(settings)
    if trials_file is not None:
        given = ("eval_csv", "enrol_csv", "test_csv")
        check_evaluation(
            trials_file,
            eval_folder,
            [settings[n] for n in given if settings[n]],
        )
    os.makedirs(settings["save_folder"], exist_ok=True)
    train_csv, valid_csv, eval_csv = prepare_csvs(
        settings, train_folder, eval_folder
    )
    n_speakers = count_speakers(train_csv)
    trained_on = overrides.get("n_train_speakers", n_speakers)
    if resumable and n_speakers != trained_on:
        raise RunGuardError(
            f"{train_folder or train_csv} now has {n_speakers} speakers, but "
            f"the run in {settings['output_folder']} was trained on "
            f"{trained_on}: give another --output_folder for a new run"
        )
    overrides["n_train_speakers"] = n_speakers
    hparams = load_hparams(hparams_file, overrides)
    check_options(
        {name: hparams[name] for name in ("loss", "chunks_per_speaker")}
    )
    sb.create_experiment_directory(hparams["output_folder"])
    mismatch = scoring_mismatch(hparams["loss"])
    if mismatch:
        logger.warning(mismatch)
    if changes:
        logger.warning(
            "Resuming with changed options, which do not change the trained "
            "network (recorded in %s): %s",
            HYPERPARAMS_FILE,
            describe_changes(changes),
        )
    if sb.utils.distributed.if_main_process() and (changes or not resumable):
        record_hyperparams(
            hparams["output_folder"],
            resolved_hparams_text(hparams_file, overrides),
        )
    logger.info(
        "Training on %s: %d speakers, device %s",
        train_folder or train_csv,
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
        args=[os.path.join(hparams["save_folder"], LABEL_ENCODER_FILE)],
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
    return evaluate_run(brain, hparams, eval_csv, trials_file)


if __name__ == "__main__":
    with exit_on(
        AudioReadError,
        HparamsError,
        NonFiniteLossError,
        OSError,
        ValueError,
        interrupted="interrupted: run the same command again to resume from "
        "the last checkpoint",
    ):
        main(sys.argv[1:])
