"""Pretrained model folders: export, safe loading, fine-tuning start points.

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

or in one safe step with :func:`load_exported`. Command line::

    python -m speaker_metric_learning.export RUN_OR_CHECKPOINT OUT [--onnx]
    python -m speaker_metric_learning.export --check MODEL_FOLDER

Safety: SpeechBrain builds a model by running what its ``hyperparams.yaml``
names (``!new:``, ``!name:``, ``!apply:``, ``!module:`` tags, and the YAML
loader's own ``!!python/...`` tags, which hyperpyyaml also executes, even
inside implicit tuples such as ``(a, b)``), so a model folder from someone
else can run any code. :func:`check_hyperparams_safe` reads the file without
constructing anything and refuses every tag whose target is not on a short
allow-list of model-building classes. Weights are always read with
``torch.load(..., weights_only=True)``.

Authors
 * speaker_metric_learning developers
"""

import argparse
import datetime
import inspect
import pathlib
import pydoc
import re
import shutil
import sys
import tempfile

import ruamel.yaml
import torch
from hyperpyyaml import load_hyperpyyaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from speechbrain.inference.speaker import SpeakerRecognition
from torch import nn

from speaker_metric_learning.checkpoints import (
    AtomicCheckpointer,
    checkpoints_in_saving_order,
    describe,
    warn_about_modified_checkpoints,
)
from speaker_metric_learning.layout import (
    HYPERPARAMS_FILE,
    WEIGHTS_FILE,
    read_yaml,
)
from speaker_metric_learning.run_guard import refuse_run_folder
from speaker_metric_learning.scoring.compare import RESULTS_FILE, load_results

LABEL_ENCODER_FILE = "label_encoder.txt"
MODEL_CARD_FILE = "MODEL_CARD.md"
ONNX_FILE = "embedding_model.onnx"
MODEL_FILES = (
    HYPERPARAMS_FILE,
    WEIGHTS_FILE,
    LABEL_ENCODER_FILE,
    MODEL_CARD_FILE,
    ONNX_FILE,
)

#: Dotted names that exported hyperparameters may construct or call: the
#: name as written and the object's own ``module.qualname`` must both start
#: with one of these (so ``speaker_metric_learning.models.torch.load``, which
#: resolves to ``torch.load``, is refused).
SAFE_TARGETS = (
    "speaker_metric_learning.models",
    "speaker_metric_learning.sincnet.SincNet",
    "speaker_metric_learning.export.PassThrough",
    "speaker_metric_learning.export.load_weights",
    "speechbrain.utils.parameter_transfer.Pretrainer",
    "speechbrain.dataio.encoder.CategoricalEncoder",
    "speechbrain.dataio.preprocess.AudioNormalizer",
    "speechbrain.processing.features.InputNormalization",
    "speechbrain.lobes.features",
    "speechbrain.lobes.models.Xvector",
    "speechbrain.lobes.models.ECAPA_TDNN",
    "speechbrain.nnet",
    "torch.nn",
)
CALLING_TAGS = ("!new:", "!name:", "!apply:", "!module:")
#: hyperpyyaml tags that construct nothing.
PLAIN_TAGS = ("!ref", "!copy", "!tuple", "!PLACEHOLDER")
#: YAML's own types (no ``python/...`` tag).
CORE_TAGS = tuple(
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "merge")
)
#: Scalars hyperpyyaml parses as tuples with PyYAML's unsafe loader.
_TUPLE_PATTERN = re.compile(r"^\(.*\)$", re.DOTALL)


class UnsafeHyperparamsError(ValueError):
    """Raised when a hyperparameter file would run code not allowed."""


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


def _read_state_dict(path):
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
    state = _read_state_dict(path)
    report = _mismatch_report(model, state)
    if report:
        raise ValueError(
            f"{path} does not fit {type(model).__name__}: " + ", ".join(report)
        )
    model.load_state_dict(state)
    return model


def _tag(node):
    """The tag of a composed YAML node, as a string."""
    tag = node.tag
    return getattr(tag, "value", tag)


def _allowed(name, allowed):
    return any(
        name == entry or name.startswith(entry + ".") for entry in allowed
    )


def _own_name(target):
    """``module.qualname`` of what a dotted name resolves to (None: not
    resolvable). Only called on names that pass the allow-list, so only
    allowed packages are imported."""
    try:
        found = pydoc.locate(target)
    except pydoc.ErrorDuringImport:
        return None
    if found is None:
        return None
    if inspect.ismodule(found):
        return found.__name__
    module = getattr(found, "__module__", None)
    qualname = getattr(found, "__qualname__", None)
    if module is None or qualname is None:
        return None
    return f"{module}.{qualname}"


def _problems(node, allowed, targets, seen):
    """Walks a composed node; collects refusals, records allowed targets."""
    if id(node) in seen:
        return []
    seen.add(id(node))
    tag = _tag(node)
    problems = []
    if tag.startswith(CALLING_TAGS):
        kind, target = tag.split(":", 1)
        own = _own_name(target) if _allowed(target, allowed) else None
        if own is None or not _allowed(own, allowed):
            resolved = f" (resolves to {own})" if own and own != target else ""
            problems.append(f"line {node.start_mark.line + 1}: {tag}{resolved}")
        else:
            targets.add(f"{kind}:{target}")
    elif tag not in PLAIN_TAGS and tag not in CORE_TAGS:
        problems.append(f"line {node.start_mark.line + 1}: {tag}")
    if isinstance(node, ruamel.yaml.nodes.MappingNode):
        for key, value in node.value:
            problems += _problems(key, allowed, targets, seen)
            problems += _problems(value, allowed, targets, seen)
    elif isinstance(node, ruamel.yaml.nodes.SequenceNode):
        for item in node.value:
            problems += _problems(item, allowed, targets, seen)
    elif _TUPLE_PATTERN.match(node.value):
        # hyperpyyaml reads any "(a, b)", even quoted, as the YAML list
        # "[a, b]" with PyYAML's unsafe loader: only YAML's own types.
        line = node.start_mark.line + 1
        try:
            inner = ruamel.yaml.YAML().compose("[" + node.value[1:-1] + "]")
        except ruamel.yaml.YAMLError:
            return [*problems, f"line {line}: unreadable tuple {node.value}"]
        problems += [
            f"line {line}: {problem.split(': ', 1)[1]} inside tuple"
            for problem in _problems(inner, (), set(), set())
        ]
    return problems


def check_hyperparams_safe(path, allowed=SAFE_TARGETS, show=False):
    """Checks, without running it, what a hyperparameter file would run.

    Every ``!new:``, ``!name:``, ``!apply:`` and ``!module:`` target must be
    on ``allowed`` (by the name written and by the object it resolves to);
    ``!include:``, ``!applyref:``, YAML ``!!python/...`` and any other tag
    are refused, also inside implicit tuples. Call it before
    ``SpeakerRecognition.from_hparams`` on a model folder you did not make.

    Arguments
    ---------
    path : str or pathlib.Path
        A ``hyperparams.yaml``, or a folder holding one.
    allowed : sequence of str
        Allowed dotted names or prefixes (default :data:`SAFE_TARGETS`).
    show : bool
        Print the file and the list of what it builds, for you to read.

    Returns
    -------
    list of str
        The tags it uses, e.g. ``"!new:speaker_metric_learning.models.
        SincTDNN"``, sorted.

    Raises
    ------
    UnsafeHyperparamsError
        Listing every refused tag with its line.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "hyperparams.yaml")
    >>> with open(path, "w") as f:
    ...     _ = f.write("model: !new:torch.nn.Linear [2, 3]\\n")
    >>> check_hyperparams_safe(path)
    ['!new:torch.nn.Linear']
    >>> with open(path, "w") as f:
    ...     _ = f.write("a: !new:torch.nn.Linear [2, 3]\\n"
    ...                 "b: !apply:os.system [echo hello]\\n"
    ...                 "c: (1, !!python/object/apply:os.getcwd [])\\n")
    >>> check_hyperparams_safe(path)
    Traceback (most recent call last):
    ...
    speaker_metric_learning.export.UnsafeHyperparamsError: .../hyperparams.\
yaml would run code outside the allowed list: line 2: !apply:os.system; line \
3: tag:yaml.org,2002:python/object/apply:os.getcwd inside tuple. Do not load \
it unless you trust its author; to allow more, pass allowed=.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / HYPERPARAMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"hyperparameter file not found: {path}")
    text = path.read_text(encoding="utf-8")
    targets = _checked_targets(text, path, allowed)
    if show:
        print(text)
        print("# It builds or calls:", *targets, sep="\n#   ")
    return targets


def _checked_targets(text, path, allowed):
    """The sorted tags of a hyperparameter text, or UnsafeHyperparamsError
    naming ``path``."""
    try:
        root = ruamel.yaml.YAML().compose(text)
    except ruamel.yaml.YAMLError as error:
        raise UnsafeHyperparamsError(
            f"{path} is not valid YAML: {error}"
        ) from None
    targets = set()
    problems = [] if root is None else _problems(root, allowed, targets, set())
    if problems:
        raise UnsafeHyperparamsError(
            f"{path} would run code outside the allowed list: "
            + "; ".join(problems)
            + ". Do not load it unless you trust its author; to allow more, "
            "pass allowed=."
        )
    return sorted(targets)


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
    state = _read_state_dict(folder / WEIGHTS_FILE)
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
        A model folder (see :func:`export_model`); read offline.
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


def _latest_checkpoint(save_folder):
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


def _is_exported_folder(folder):
    """Whether ``folder`` is an exported model folder (hyperparameters and
    no ``save/``), not a ``train.py`` output folder."""
    return (folder / HYPERPARAMS_FILE).is_file() and not (
        folder / "save"
    ).is_dir()


def _locate_run(source):
    """(run folder, checkpoint, whether it is the run's latest) of a run
    output folder or a checkpoint folder."""
    source = pathlib.Path(source).resolve()
    if (source / HYPERPARAMS_FILE).is_file() and (source / "save").is_dir():
        checkpoint = _latest_checkpoint(source / "save")
        if checkpoint is None:
            raise FileNotFoundError(
                f"{source / 'save'} holds no checkpoint with {WEIGHTS_FILE}: "
                "has the run finished an epoch?"
            )
        return source, checkpoint, True
    if (source / WEIGHTS_FILE).is_file() and source.name.startswith("CKPT+"):
        run = source.parent.parent
        if (run / HYPERPARAMS_FILE).is_file():
            latest = _latest_checkpoint(source.parent)
            for checkpoint in AtomicCheckpointer(
                source.parent
            ).list_checkpoints():
                if checkpoint.path.resolve() == source:
                    return run, checkpoint, checkpoint == latest
    raise FileNotFoundError(
        f"{source} is neither a train.py output folder (with "
        f"{HYPERPARAMS_FILE} and save/) nor one of its save/CKPT+* folders"
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
    if _is_exported_folder(folder):
        return f"exported model {folder}"
    run, checkpoint, is_latest = _locate_run(folder)
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
    FileNotFoundError: /no/such/run is neither a train.py output folder \
(with hyperparams.yaml and save/) nor one of its save/CKPT+* folders
    """
    path = pathlib.Path(source)
    if path.is_file():
        return str(path)
    if (path / WEIGHTS_FILE).is_file():
        return str(path / WEIGHTS_FILE)
    _, checkpoint, _ = _locate_run(path)
    return str(checkpoint.path / WEIGHTS_FILE)


def _plain_copy(node):
    """A copy of a round-trip YAML value without comments or anchors."""
    if isinstance(node, CommentedMap):
        copy = CommentedMap((k, _plain_copy(v)) for k, v in node.items())
    elif isinstance(node, CommentedSeq):
        copy = CommentedSeq(_plain_copy(item) for item in node)
    else:
        return node
    if node.tag.value is not None:
        copy.yaml_set_ctag(node.tag)
    return copy


def _describe(node):
    """``Class(arg=value, ...)`` for a ``!new:`` node."""
    if not isinstance(node, CommentedMap) or node.tag.value is None:
        return str(node)
    name = node.tag.value.split(":", 1)[1].rsplit(".", 1)[-1]
    arguments = ", ".join(f"{k}={v}" for k, v in node.items())
    return f"{name}({arguments})"


def _architecture_hint(source):
    """How the saved model was built, from its hyperparameters, or ''."""
    folder = pathlib.Path(source)
    for candidate in (folder, folder.parent, folder.parent.parent.parent):
        path = candidate / HYPERPARAMS_FILE
        if path.is_file():
            node = (read_yaml(path) or {}).get("embedding_model")
            if node is not None:
                return f" It was built as {_describe(node)} ({path})."
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


def _percent_interval(interval):
    """The text " (95 % CI a-b)" of an interval of fractions ("": none)."""
    if not interval:
        return ""
    low, high = (100 * bound for bound in interval)
    return f" (95 % CI {low:.2f}-{high:.2f})"


def _evaluation_lines(run, checkpoint, is_latest, hparams):
    """The evaluation section of the model card, from the run's results."""
    try:
        results = load_results(run)
    except FileNotFoundError:
        return ["Not evaluated: the run wrote no results.json."]
    except ValueError as error:
        return [f"The run's results are unreadable ({error})."]
    written = (run / RESULTS_FILE).stat().st_mtime
    if not is_latest or written < checkpoint.meta["unixtime"]:
        return [
            "The run's results.json does not describe this checkpoint (it "
            "is not the latest, or it was saved after the evaluation): "
            "evaluate this model before relying on it."
        ]
    window = hparams.get("eval_window_seconds")
    how = (
        "whole utterances"
        if window is None
        else f"averages of {window} s windows every "
        f"{hparams.get('eval_step_seconds')} s"
    )
    trials, eer = results["trials"], results["eer"]
    lines = [
        f"Measured by `train.py` on this checkpoint: cosine scores of "
        f"embeddings of {how}, on `{trials.get('source')}` "
        f"({trials['n_trials']} trials, {trials['n_targets']} targets, "
        f"{trials['n_utterances']} utterances).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| EER | {100 * eer['value']:.2f} %"
        f"{_percent_interval(eer.get('ci'))} |",
    ]
    for entry in results.get("min_dcf", []):
        lines.append(
            f"| minDCF (p_target {entry['p_target']}, C_miss "
            f"{entry['c_miss']}, C_fa {entry['c_fa']}), normalised | "
            f"{entry['value']:.4f} |"
        )
    for name in ("cllr", "min_cllr"):
        if results.get(name) is not None:
            lines.append(f"| {name} (bits) | {results[name]:.4f} |")
    lines += [
        "",
        f"Score threshold at the EER on these trials: {eer['threshold']:.4f} "
        "(cosine). Trial-list fingerprint (compare only results with the "
        f"same one): sha256 `{trials['sha256']}`.",
    ]
    return lines


def _model_card(run, checkpoint, is_latest, hparams, model, onnx):
    """The text of MODEL_CARD.md."""
    n_parameters = sum(p.numel() for p in model.parameters())
    data_folder = hparams.get("data_folder")
    data = (
        f"`{data_folder}`"
        if data_folder
        else "the generated synthetic corpus (`recipes.synthetic_corpus`, "
        f"`{hparams.get('default_corpus_folder')}`)"
    )
    epoch = checkpoint.meta.get("epoch", "unknown")
    created = datetime.datetime.fromtimestamp(
        checkpoint.meta["unixtime"], tz=datetime.timezone.utc
    )
    lines = [
        f"# Speaker embedding model: {hparams.get('experiment', 'unnamed')}",
        "",
        "Exported by `speaker_metric_learning.export` from the training run "
        f"`{run}`, checkpoint `{checkpoint.path.name}` (epoch {epoch}, "
        f"saved {created:%Y-%m-%d %H:%M} UTC).",
        "",
        "## Model",
        "",
        f"- Network: `{_describe(hparams['embedding_model'])}`, "
        f"{n_parameters:,} parameters.",
        f"- Input: mono waveforms at {hparams.get('sample_rate', 16000)} Hz, "
        "`[batch, time]`, with SpeechBrain relative lengths; padding does "
        "not change an utterance's embedding.",
        "- Output: `[batch, 1, embedding_dim]` embeddings, unnormalised; "
        "compare them by cosine similarity.",
        "",
        "## Training",
        "",
        f"- Loss: `{_describe(hparams.get('loss'))}`.",
        f"- Data: {data}; {hparams.get('n_train_speakers')} speakers "
        f"(listed in `{LABEL_ENCODER_FILE}`), random "
        f"{hparams.get('chunk_seconds')} s chunks.",
        f"- Batches: {hparams.get('speakers_per_batch')} speakers x "
        f"{hparams.get('chunks_per_speaker')} chunks, "
        f"{hparams.get('batches_per_epoch')} batches per epoch; epochs "
        f"planned {hparams.get('number_of_epochs')}; learning rate "
        f"{hparams.get('lr')}; seed {hparams.get('seed')}.",
        "",
        "## Evaluation",
        "",
    ]
    lines += _evaluation_lines(run, checkpoint, is_latest, hparams)
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from speechbrain.inference.speaker import SpeakerRecognition",
        "from speaker_metric_learning.export import check_hyperparams_safe",
        "",
        'check_hyperparams_safe("MODEL_FOLDER", show=True)  # read it first',
        'model = SpeakerRecognition.from_hparams(source="MODEL_FOLDER")',
        'score, same = model.verify_files("a.wav", "b.wav")',
        "embeddings = model.encode_batch(wavs, relative_lengths)",
        "```",
        "",
        "`verify_batch`'s default threshold (0.25) is SpeechBrain's, not "
        "this model's: pass your own (`threshold=`), chosen on your trials. "
        "`encode_batch(normalize=True)` is not available (no embedding "
        "normalisation statistics are shipped).",
        "",
        *(
            [
                f"ONNX: `{ONNX_FILE}` maps `wavs` [batch, time] and relative "
                "`lengths` [batch] to `embeddings` [batch, 1, dim]; "
                "`speaker_metric_learning.onnx_export.OnnxEmbedder` runs it "
                "with ONNX Runtime.",
                "",
            ]
            if onnx
            else []
        ),
        "Fine-tuning on other speakers: "
        "`python train.py hparams/<loss>.yaml --pretrained MODEL_FOLDER` "
        "with the same `--model_scale` (a new loss head is built).",
    ]
    return "\n".join(lines) + "\n"


_EXPORTED_TEMPLATE = """\
# Speaker embedding model exported by speaker_metric_learning.export
# (see MODEL_CARD.md). Check it, then load it offline:
#   from speaker_metric_learning.export import load_exported
#   model = load_exported("<this folder>")   # a SpeakerRecognition
# Input: mono waveforms at {sample_rate} Hz, shaped [batch, time].

sample_rate: {sample_rate}
{embedding_model}
# The network reads raw waveforms: SpeechBrain's feature extraction and
# normalisation stages pass them through unchanged.
compute_features: !new:speaker_metric_learning.export.PassThrough
mean_var_norm: !new:speaker_metric_learning.export.PassThrough
audio_normalizer: !new:speechbrain.dataio.preprocess.AudioNormalizer
    sample_rate: !ref <sample_rate>

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>

# Weights: {weights} beside this file, read with weights_only=True.
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
    custom_hooks:
        embedding_model: !name:speaker_metric_learning.export.load_weights
"""


def exported_hyperparams(embedding_model, sample_rate=16000):
    """The ``hyperparams.yaml`` text of a model folder.

    Arguments
    ---------
    embedding_model : ruamel.yaml.comments.CommentedMap
        The ``embedding_model`` entry of a run's resolved hyperparameters
        (a ``!new:`` node, read with ruamel.yaml).
    sample_rate : int
        Sampling rate of the model's input.

    Returns
    -------
    str

    Example
    -------
    >>> node = ruamel.yaml.YAML().load(
    ...     "m: !new:speaker_metric_learning.models.SincTDNN {scale: 0.5}"
    ... )["m"]
    >>> text = exported_hyperparams(node)
    >>> print(text.splitlines()[7])
    embedding_model: !new:speaker_metric_learning.models.SincTDNN
    >>> from hyperpyyaml import load_hyperpyyaml
    >>> hparams = load_hyperpyyaml(text)
    >>> sorted(hparams["modules"])
    ['compute_features', 'embedding_model', 'mean_var_norm']
    """
    yaml = ruamel.yaml.YAML()
    yaml.indent(mapping=4, sequence=4, offset=2)
    text = ruamel.yaml.compat.StringIO()
    yaml.dump({"embedding_model": _plain_copy(embedding_model)}, text)
    return _EXPORTED_TEMPLATE.format(
        sample_rate=sample_rate,
        embedding_model=text.getvalue().rstrip("\n"),
        weights=WEIGHTS_FILE,
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
    run, checkpoint, is_latest = _locate_run(source)
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
    sample_rate = hparams.get("sample_rate", 16000)
    output.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        (output / name).unlink(missing_ok=True)
    (output / HYPERPARAMS_FILE).write_text(
        exported_hyperparams(hparams["embedding_model"], sample_rate),
        encoding="utf-8",
    )
    state = _read_state_dict(checkpoint.path / WEIGHTS_FILE)
    torch.save(state, output / WEIGHTS_FILE)
    label_encoder = run / "save" / LABEL_ENCODER_FILE
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
        _model_card(
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
    >>> import os, tempfile
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
    if _is_exported_folder(folder):
        definition = folder / HYPERPARAMS_FILE
        text = definition.read_text(encoding="utf-8")
    else:
        run, _, _ = _locate_run(folder)
        definition = run / HYPERPARAMS_FILE
        hparams = read_yaml(definition)
        text = exported_hyperparams(
            hparams["embedding_model"], hparams.get("sample_rate", 16000)
        )
    _checked_targets(text, definition, allowed)
    return load_hyperpyyaml(text)["embedding_model"]


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

    An exported folder is checked and loaded with :func:`load_exported`. A
    ``train.py`` output folder (its latest checkpoint) or a ``save/CKPT+*``
    folder is first exported to a temporary folder with
    :func:`export_model`, so that only the run's ``embedding_model`` is
    built, from the same allow-listed definition, and its weights are read
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
    if _is_exported_folder(folder):
        return load_exported(folder, run_opts=run_opts)
    with tempfile.TemporaryDirectory() as temporary:
        exported = export_model(folder, pathlib.Path(temporary) / "model")
        return load_exported(exported, run_opts=run_opts)


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
    try:
        if args.check:
            check_hyperparams_safe(args.check, show=True)
            print(f"# Weights: {check_weights(args.check)}")
            return
        if not (args.source and args.output):
            parser.error("give SOURCE and OUTPUT, or --check MODEL_FOLDER")
        output = export_model(
            args.source, args.output, onnx=args.onnx, overwrite=args.overwrite
        )
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"model folder written: {output}")


if __name__ == "__main__":
    main(sys.argv[1:])
