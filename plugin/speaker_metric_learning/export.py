"""Writing model folders: a training run exported for SpeechBrain.

``export_model`` turns a training run of ``train.py`` (its output folder, or
one of its ``save/CKPT+*`` checkpoint folders) into a self-contained model
folder::

    hyperparams.yaml       SpeechBrain inference definition (no training)
    embedding_model.ckpt   the embedding network's weights (a state dict)
    label_encoder.txt      the training speakers, for the record
    MODEL_CARD.md          loss, training data, EER / minDCF and trial list
    embedding_model.onnx   with --onnx: waveform -> embedding graph

The folder loads offline with SpeechBrain's speaker verification interface::

    from speechbrain.inference.speaker import SpeakerRecognition
    check_hyperparams_safe("model/hyperparams.yaml")   # read it first
    verification = SpeakerRecognition.from_hparams(source="model")
    score, decision = verification.verify_files("a.wav", "b.wav")

or in one safe step with
:func:`~speaker_metric_learning.model_io.load_exported`. Command line::

    python -m speaker_metric_learning.export RUN_OR_CHECKPOINT OUT [--onnx]
    python -m speaker_metric_learning.export --check MODEL_FOLDER

This module only writes folders (and checks one on the command line):
reading weights, finding a run's checkpoint and loading models live in
:mod:`speaker_metric_learning.model_io`, the allow-list check of a
``hyperparams.yaml`` in :mod:`speaker_metric_learning.hparams_safety`, the
card in :mod:`speaker_metric_learning.model_card`.

Authors
 * speaker_metric_learning developers
"""

import argparse
import pathlib
import shutil
import sys

import torch

from speaker_metric_learning.command_line import exit_on
from speaker_metric_learning.hparams_safety import check_hyperparams_safe
from speaker_metric_learning.inference_definition import (
    exported_hyperparams,
    recorded_sample_rate,
)
from speaker_metric_learning.layout import (
    HYPERPARAMS_FILE,
    LABEL_ENCODER_FILE,
    MODEL_CARD_FILE,
    ONNX_FILE,
    SAVE_FOLDER,
    WEIGHTS_FILE,
    read_yaml,
)
from speaker_metric_learning.model_card import model_card
from speaker_metric_learning.model_io import (  # noqa: F401
    # PassThrough and load_weights: folders exported before model_io
    # existed name them speaker_metric_learning.export.*
    PassThrough,
    check_weights,
    load_exported,
    load_weights,
    locate_run,
    read_state_dict,
)
from speaker_metric_learning.run_guard import refuse_run_folder

MODEL_FILES = (
    HYPERPARAMS_FILE,
    WEIGHTS_FILE,
    LABEL_ENCODER_FILE,
    MODEL_CARD_FILE,
    ONNX_FILE,
)


def export_model(source, output_folder, onnx=False, overwrite=False):
    """Writes a self-contained model folder from a training run.

    Arguments
    ---------
    source : str or pathlib.Path
        A ``train.py`` output folder (its latest checkpoint is exported) or
        one of its ``save/CKPT+*`` folders.
    output_folder : str or pathlib.Path
        The model folder to write (see the module docstring).
    onnx : bool
        Also write ``embedding_model.onnx`` (needs ``onnx`` and
        ``onnxruntime``; a ValueError, after the rest is written, if the
        network cannot be exported).
    overwrite : bool
        Replace the files of an existing model folder.

    Returns
    -------
    pathlib.Path
        The model folder; it has been loaded back once through
        :func:`load_exported` to check it.

    Example
    -------
    >>> export_model("/no/such/run", "/tmp/model")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /no/such/run is neither a train.py output folder \
(with hyperparams.yaml and save/) nor one of its save/CKPT+* folders
    """
    run, checkpoint, is_latest = locate_run(source)
    output = pathlib.Path(output_folder)
    refuse_run_folder(output, "a model folder")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{output} exists and is not empty: choose another folder or "
            "pass overwrite=True (--overwrite)"
        )
    hparams = read_yaml(run / HYPERPARAMS_FILE)
    if "embedding_model" not in hparams:
        raise ValueError(
            f"{run / HYPERPARAMS_FILE} defines no embedding_model to export"
        )
    sample_rate = recorded_sample_rate(hparams)
    output.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        (output / name).unlink(missing_ok=True)
    (output / HYPERPARAMS_FILE).write_text(
        exported_hyperparams(hparams["embedding_model"], sample_rate),
        encoding="utf-8",
    )
    state = read_state_dict(checkpoint.path / WEIGHTS_FILE)
    torch.save(state, output / WEIGHTS_FILE)
    label_encoder = run / SAVE_FOLDER / LABEL_ENCODER_FILE
    if label_encoder.is_file():
        shutil.copyfile(label_encoder, output / LABEL_ENCODER_FILE)
    model = load_exported(output).mods.embedding_model
    onnx_error = None
    if onnx:
        from speaker_metric_learning.onnx_export import export_onnx

        try:
            export_onnx(model, str(output / ONNX_FILE), sample_rate)
        except RuntimeError as error:  # exporter or check failure
            onnx_error = str(error).strip().splitlines()[0].split(" [")[0]
    (output / MODEL_CARD_FILE).write_text(
        model_card(
            run, checkpoint, is_latest, hparams, model, onnx and not onnx_error
        ),
        encoding="utf-8",
    )
    if onnx_error:
        raise ValueError(
            f"{output} is written without {ONNX_FILE}: this network cannot "
            f"be exported to ONNX ({onnx_error})"
        )
    return output


def main(argv=None):
    """Command line: export a run, or check a model folder.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``); see ``--help``.

    Example
    -------
    >>> main(["/no/such/run", "/tmp/model"])
    Traceback (most recent call last):
    ...
    SystemExit: 1
    """
    parser = argparse.ArgumentParser(
        prog="python -m speaker_metric_learning.export",
        description="Export a train.py run as a SpeechBrain model folder "
        "(SpeakerRecognition.from_hparams), or check one before loading it.",
    )
    parser.add_argument(
        "source",
        nargs="?",
        help="train.py output folder, or one of its save/CKPT+* folders",
    )
    parser.add_argument("output", nargs="?", help="model folder to write")
    parser.add_argument(
        "--onnx", action="store_true", help="also write embedding_model.onnx"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing folder"
    )
    parser.add_argument(
        "--check",
        metavar="MODEL_FOLDER",
        help="print a model folder's hyperparams.yaml and what it would "
        "build, then check its weights; or refuse it",
    )
    args = parser.parse_args(argv)
    with exit_on(FileExistsError, FileNotFoundError, ValueError):
        if args.check:
            check_hyperparams_safe(args.check, show=True)
            print(f"# Weights: {check_weights(args.check)}")
            return
        if not (args.source and args.output):
            parser.error("give SOURCE and OUTPUT, or --check MODEL_FOLDER")
        output = export_model(
            args.source, args.output, onnx=args.onnx, overwrite=args.overwrite
        )
    print(f"model folder written: {output}")


if __name__ == "__main__":
    main(sys.argv[1:])
