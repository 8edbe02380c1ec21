"""Model I/O: weights, locating runs and checkpoints, loading a model.

One place for what scoring, export, fine-tuning and SpeechBrain's own
scripts read: weights files (always ``torch.load(..., weights_only=True)``
and checked against the network, names and shapes), the checkpoint of a
``train.py`` output folder, the inference definition of a run's network
(the ``hyperparams.yaml`` an exported folder carries), and a
``SpeakerRecognition`` built from an exported folder, a run or one of its
checkpoints, each definition checked by
:func:`~speaker_metric_learning.hparams_safety.check_hyperparams_safe`
first.

Authors
 * speaker_metric_learning developers
"""

import pathlib

import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.inference.speaker import SpeakerRecognition
from torch import nn

from speaker_metric_learning.checkpoints import (
    AtomicCheckpointer,
    checkpoints_in_saving_order,
    describe,
    is_checkpoint_folder,
    warn_about_modified_checkpoints,
)
from speaker_metric_learning.hparams_safety import (
    SAFE_TARGETS,
    check_hyperparams_safe,
    checked_targets,
)
from speaker_metric_learning.inference_definition import (
    describe_node,
    exported_hyperparams,
    recorded_sample_rate,
)
from speaker_metric_learning.layout import (
    HYPERPARAMS_FILE,
    SAVE_FOLDER,
    WEIGHTS_FILE,
    is_model_folder,
    is_run_folder,
    read_yaml,
)


class PassThrough(nn.Module):
    """Returns its input: a no-op feature or normalisation stage.

    SpeechBrain's ``EncoderClassifier.encode_batch`` calls
    ``compute_features(wavs)`` and ``mean_var_norm(feats, lengths)`` before
    the embedding model; a model that reads raw waveforms (``SincTDNN``)
    gets these pass-throughs.

    Example
    -------
    >>> x = torch.randn(2, 5)
    >>> PassThrough()(x, torch.ones(2)) is x
    True
    """

    def forward(self, x, lengths=None):
        """Returns ``x`` unchanged (``lengths`` is ignored).

        Arguments
        ---------
        x : torch.Tensor
            Anything.
        lengths : torch.Tensor, optional
            Ignored.

        Returns
        -------
        torch.Tensor
            ``x``.
        """
        return x


def read_state_dict(path):
    """A state dict of tensors read with ``weights_only=True``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"weights file not found: {path}") from None
    except Exception as error:  # unpickling refused or corrupt file
        raise ValueError(
            f"{path} is not a weights-only state dict (torch.load with "
            f"weights_only=True refused it: {error})"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise ValueError(
            f"{path} does not hold a state dict (a mapping of parameter "
            "names to tensors)"
        )
    return state


def _mismatch_report(model, state):
    """Lines describing how ``state`` does not fit ``model`` (empty: fits)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{key}: saved {list(state[key].shape)}, model "
        f"{list(expected[key].shape)}"
        for key in sorted(set(expected) & set(state))
        if state[key].shape != expected[key].shape
    ]
    report = []
    for label, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("shape mismatches", shapes),
    ):
        if items:
            shown = "; ".join(items[:3]) + ("; ..." if len(items) > 3 else "")
            report.append(f"{len(items)} {label} ({shown})")
    return report


def load_weights(model, path):
    """Loads a weights file into ``model``, strictly and without pickle code.

    Used as the Pretrainer hook of exported folders and for fine-tuning.

    Arguments
    ---------
    model : torch.nn.Module
        The model to fill.
    path : str or pathlib.Path
        A state dict saved with ``torch.save``.

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    ValueError
        If the file is not a plain state dict or does not fit the model
        (names and shapes are listed).

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.ckpt")
    >>> torch.save(nn.Linear(2, 3).state_dict(), path)
    >>> model = load_weights(nn.Linear(2, 3), path)
    >>> torch.equal(model.weight, torch.load(path)["weight"])
    True
    >>> load_weights(nn.Linear(2, 4), path)
    Traceback (most recent call last):
    ...
    ValueError: .../weights.ckpt does not fit Linear: 2 shape mismatches \
(bias: saved [3], model [4]; weight: saved [3, 2], model [4, 2])
    """
    state = read_state_dict(path)
    report = _mismatch_report(model, state)
    if report:
        raise ValueError(
            f"{path} does not fit {type(model).__name__}: " + ", ".join(report)
        )
    model.load_state_dict(state)
    return model


def check_weights(folder):
    """Checks a model folder's weights: read without running pickled code,
    a state dict, and fitting the network its (checked) hyperparameters
    build.

    Arguments
    ---------
    folder : str or pathlib.Path
        A model folder (or its ``hyperparams.yaml``).

    Returns
    -------
    str
        A one-line summary.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file and what is wrong with it.

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / HYPERPARAMS_FILE).write_text("")
    >>> check_weights(folder)
    Traceback (most recent call last):
    ...
    FileNotFoundError: weights file not found: .../embedding_model.ckpt
    """
    folder = pathlib.Path(folder)
    if folder.is_file():
        folder = folder.parent
    state = read_state_dict(folder / WEIGHTS_FILE)
    model = load_exported(folder).mods.embedding_model
    values = sum(tensor.numel() for tensor in state.values())
    return (
        f"{folder / WEIGHTS_FILE}: {len(state)} tensors, {values:,} values, "
        f"fit {type(model).__name__}"
    )


def load_exported(folder, savedir=None, run_opts=None, allowed=SAFE_TARGETS):
    """Checks an exported model folder, then loads it for verification.

    Arguments
    ---------
    folder : str or pathlib.Path
        A model folder (see ``speaker_metric_learning.export``); read
        offline.
    savedir : str or pathlib.Path, optional
        Where SpeechBrain links the files (default: none, read in place);
        refused if it holds another model's files.
    run_opts : dict, optional
        SpeechBrain run options, e.g. ``{"device": "cpu"}``.
    allowed : sequence of str
        Passed to :func:`check_hyperparams_safe`.

    Returns
    -------
    speechbrain.inference.speaker.SpeakerRecognition
        With ``encode_batch``, ``verify_batch`` and ``verify_files``.

    Example
    -------
    >>> load_exported("/no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no model folder /no/such/folder: give a folder \
written by speaker_metric_learning.export
    """
    folder = pathlib.Path(folder)
    if not (folder / HYPERPARAMS_FILE).is_file():
        raise FileNotFoundError(
            f"no model folder {folder}: give a folder written by "
            "speaker_metric_learning.export"
        )
    check_hyperparams_safe(folder / HYPERPARAMS_FILE, allowed)
    if savedir is not None:
        # SpeechBrain uses a file already in savedir instead of the model's
        for name in (HYPERPARAMS_FILE, WEIGHTS_FILE):
            kept = pathlib.Path(savedir) / name
            if kept.exists() and kept.resolve() != (folder / name).resolve():
                raise ValueError(
                    f"{kept} belongs to another model and SpeechBrain would "
                    "load it instead of this one: give an empty savedir"
                )
    return SpeakerRecognition.from_hparams(
        source=str(folder.resolve()),
        savedir=None if savedir is None else str(savedir),
        run_opts=run_opts,
    )


def latest_checkpoint(save_folder):
    """The most recent intact SpeechBrain checkpoint holding model weights;
    a warning names every checkpoint changed since its save, and the one
    used instead."""
    checkpoints = [
        checkpoint
        for checkpoint in checkpoints_in_saving_order(save_folder)
        if (checkpoint.path / WEIGHTS_FILE).is_file()
    ]
    latest = checkpoints[-1] if checkpoints else None
    warn_about_modified_checkpoints(save_folder, latest)
    return latest


def locate_run(source):
    """(run folder, checkpoint, whether it is the run's latest) of a run
    output folder or a checkpoint folder."""
    source = pathlib.Path(source).resolve()
    if is_run_folder(source):
        checkpoint = latest_checkpoint(source / SAVE_FOLDER)
        if checkpoint is None:
            raise FileNotFoundError(
                f"{source / SAVE_FOLDER} holds no checkpoint with "
                f"{WEIGHTS_FILE}: has the run finished an epoch?"
            )
        return source, checkpoint, True
    if (source / WEIGHTS_FILE).is_file() and is_checkpoint_folder(source):
        run = source.parent.parent
        if (run / HYPERPARAMS_FILE).is_file():
            latest = latest_checkpoint(source.parent)
            for checkpoint in AtomicCheckpointer(
                source.parent
            ).list_checkpoints():
                if checkpoint.path.resolve() == source:
                    return run, checkpoint, checkpoint == latest
    raise FileNotFoundError(
        f"{source} is neither a train.py output folder (with "
        f"{HYPERPARAMS_FILE} and {SAVE_FOLDER}/) nor one of its "
        f"{SAVE_FOLDER}/CKPT+* folders"
    )


def weights_source(source):
    """Which weights ``source`` stands for, in words, for the command lines.

    Arguments
    ---------
    source : str or pathlib.Path
        An exported model folder, a ``train.py`` output folder or a
        ``save/CKPT+*`` folder.

    Returns
    -------
    str
        The folder, and for a run the checkpoint used, when it was saved
        and whether it is the run's latest intact one.

    Example
    -------
    >>> weights_source("/no/such/run")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /no/such/run is neither a train.py output folder \
(with hyperparams.yaml and save/) nor one of its save/CKPT+* folders
    """
    folder = pathlib.Path(source)
    if is_model_folder(folder):
        return f"exported model {folder}"
    run, checkpoint, is_latest = locate_run(folder)
    which = "its latest intact checkpoint" if is_latest else "not its latest"
    return f"{checkpoint.path.name} of {run} ({describe(checkpoint)}; {which})"


def weights_file(source):
    """The weights file of a model folder, a run or a checkpoint.

    Arguments
    ---------
    source : str or pathlib.Path
        An exported model folder, a ``train.py`` output folder (its latest
        checkpoint is used), a ``save/CKPT+*`` folder, or a weights file.

    Returns
    -------
    str
        The path, as the ``paths`` of SpeechBrain's ``Pretrainer`` take it
        (``hparams/verification.yaml``).

    Example
    -------
    >>> weights_file("/no/such/run")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no weights in /no/such/run: give a weights file, a \
folder holding embedding_model.ckpt or a train.py output folder (with \
hyperparams.yaml and save/)
    """
    path = pathlib.Path(source)
    if path.is_file():
        return str(path)
    if (path / WEIGHTS_FILE).is_file():
        return str(path / WEIGHTS_FILE)
    if not is_run_folder(path):
        raise FileNotFoundError(
            f"no weights in {path}: give a weights file, a folder holding "
            f"{WEIGHTS_FILE} or a train.py output folder (with "
            f"{HYPERPARAMS_FILE} and {SAVE_FOLDER}/)"
        )
    _, checkpoint, _ = locate_run(path)
    return str(checkpoint.path / WEIGHTS_FILE)


def _architecture_hint(source):
    """How the saved model was built, from its hyperparameters, or ''."""
    folder = pathlib.Path(source)
    for candidate in (folder, folder.parent, folder.parent.parent.parent):
        path = candidate / HYPERPARAMS_FILE
        if path.is_file():
            node = (read_yaml(path) or {}).get("embedding_model")
            if node is not None:
                return f" It was built as {describe_node(node)} ({path})."
    return ""


def load_pretrained_embedding_model(model, source):
    """Starts ``model`` from pretrained weights, e.g. to fine-tune it.

    The weights come from an exported model folder, a ``train.py`` output
    folder (latest checkpoint), a checkpoint folder or a weights file; they
    are read with ``weights_only=True`` and must fit exactly. The loss head
    is not loaded: a new one is built for the new speakers.

    Arguments
    ---------
    model : torch.nn.Module
        A freshly built embedding model of the same architecture.
    source : str or pathlib.Path
        Where the weights are (see :func:`weights_file`).

    Returns
    -------
    torch.nn.Module
        ``model``, loaded.

    Raises
    ------
    ValueError
        If the architectures differ; the message lists the differences and
        how the saved model was built.

    Example
    -------
    >>> import os, tempfile
    >>> from speaker_metric_learning.models import SincTDNN
    >>> folder = tempfile.mkdtemp()
    >>> trained = SincTDNN(scale=0.125)
    >>> torch.save(trained.state_dict(), os.path.join(folder, WEIGHTS_FILE))
    >>> model = load_pretrained_embedding_model(SincTDNN(scale=0.125), folder)
    >>> torch.equal(model.embedding.weight, trained.embedding.weight)
    True
    >>> load_pretrained_embedding_model(SincTDNN(scale=0.25), folder)
    Traceback (most recent call last):
    ...
    ValueError: cannot start from the pretrained model in ...: ... shape \
mismatches (...)...
    """
    path = weights_file(source)
    try:
        return load_weights(model, path)
    except ValueError as error:
        raise ValueError(
            f"cannot start from the pretrained model in {source}: {error}."
            f"{_architecture_hint(pathlib.Path(path).parent)} Build the same "
            "architecture (e.g. the same --model_scale and --embedding_dim)."
        ) from None


def embedding_architecture(source, allowed=SAFE_TARGETS):
    """The embedding network of a model folder, a run or a checkpoint,
    built from its own definition, without its weights.

    The verification yaml for SpeechBrain's VoxCeleb scoring scripts
    (``hparams/verification.yaml``) builds its ``embedding_model`` with
    this and has its Pretrainer load the weights (:func:`weights_file`),
    so that one yaml serves every model family. The definition is checked
    as by :func:`check_hyperparams_safe` before anything is built.

    Arguments
    ---------
    source : str or pathlib.Path
        An exported model folder, a ``train.py`` output folder or one of
        its ``save/CKPT+*`` folders.
    allowed : sequence of str
        Passed to :func:`check_hyperparams_safe`.

    Returns
    -------
    torch.nn.Module

    Example
    -------
    >>> import os, tempfile, ruamel.yaml
    >>> node = ruamel.yaml.YAML().load(
    ...     "m: !new:speaker_metric_learning.models.SincTDNN {scale: 0.125}"
    ... )["m"]
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, HYPERPARAMS_FILE), "w") as f:
    ...     _ = f.write(exported_hyperparams(node))
    >>> type(embedding_architecture(folder)).__name__
    'SincTDNN'
    """
    folder = pathlib.Path(source)
    if is_model_folder(folder):
        definition = folder / HYPERPARAMS_FILE
        text = definition.read_text(encoding="utf-8")
        checked_targets(text, definition, allowed)
    else:
        text = _checked_definition(locate_run(folder)[0], allowed)
    return load_hyperpyyaml(text)["embedding_model"]


def _checked_definition(run, allowed=SAFE_TARGETS):
    """The inference ``hyperparams.yaml`` text of a run's network, checked
    against ``allowed``."""
    definition = run / HYPERPARAMS_FILE
    hparams = read_yaml(definition)
    text = exported_hyperparams(
        hparams["embedding_model"], recorded_sample_rate(hparams)
    )
    checked_targets(text, definition, allowed)
    return text


def embedding_size(model, sample_rate=16000):
    """The size of the embeddings of a network, from one second of silence.

    Arguments
    ---------
    model : torch.nn.Module
        A waveform-to-embedding network (``[batch, time]`` in).
    sample_rate : int
        Its input rate.

    Returns
    -------
    int

    Example
    -------
    >>> from speaker_metric_learning.models import SincTDNN
    >>> embedding_size(SincTDNN(embedding_dim=24, scale=0.125))
    24
    """
    training = model.training
    model.eval()
    with torch.no_grad():
        size = model(torch.zeros(1, sample_rate)).shape[-1]
    model.train(training)
    return int(size)


def load_model(source, run_opts=None):
    """Loads an exported model folder, a run or a checkpoint for verification.

    An exported folder is checked and loaded with :func:`load_exported`. For
    a ``train.py`` output folder (its latest checkpoint) or a ``save/CKPT+*``
    folder, only the run's ``embedding_model`` is built, from the same
    checked inference definition an export would write
    (:func:`exported_hyperparams`), and the checkpoint's weights are read
    with ``weights_only=True``.

    Arguments
    ---------
    source : str or pathlib.Path
        An exported model folder, a run folder or a checkpoint folder.
    run_opts : dict, optional
        SpeechBrain run options, e.g. ``{"device": "cpu"}``.

    Returns
    -------
    speechbrain.inference.speaker.SpeakerRecognition
        Its ``mods.embedding_model`` is the network, ``hparams.sample_rate``
        its input rate.

    Example
    -------
    >>> load_model("/no/such/run")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /no/such/run is neither a train.py output folder \
(with hyperparams.yaml and save/) nor one of its save/CKPT+* folders
    """
    folder = pathlib.Path(source)
    if is_model_folder(folder):
        return load_exported(folder, run_opts=run_opts)
    run, checkpoint, _ = locate_run(folder)
    hparams = load_hyperpyyaml(_checked_definition(run))
    load_weights(hparams["embedding_model"], checkpoint.path / WEIGHTS_FILE)
    return SpeakerRecognition(hparams["modules"], hparams, run_opts=run_opts)
