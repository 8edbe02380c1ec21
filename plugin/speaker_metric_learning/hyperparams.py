"""Loading the recipe's layered hyperpyyaml files with checked overrides.

A loss file under ``hparams/`` holds only what differs from the shared
recipe: it has one top-level key whose value is SpeechBrain's
``!include:`` of the shared file, and the mapping under it overrides the
shared file's entries::

    recipe: !include:base.yaml
        experiment: aam
        loss: !new:speaker_metric_learning.losses.AdditiveAngularMarginLoss
            embedding_dim: !ref <embedding_dim>
            n_classes: !ref <n_train_speakers>

The loss file's entries replace the shared file's before anything is
resolved, so their ``!ref`` see the shared names (``<embedding_dim>``), and
the result is one flat set of hyperparameters. Command-line overrides
(``--number_of_epochs 3``) then apply to it, checked first: an unknown name
ends in one message listing the closest known names rather than a
``KeyError`` deep inside hyperpyyaml. Plain files without an include are
loaded as they are, with the same check.

Authors
 * speaker_metric_learning developers
"""

import difflib
import inspect
import io
import os
import pydoc
import re

import ruamel.yaml
import yaml
from hyperpyyaml import load_hyperpyyaml, resolve_references
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.tag import Tag

INCLUDE_TAG = "!include:"


class HparamsError(ValueError):
    """Raised for an unknown override or a malformed hyperparameter file."""


def _yaml():
    return ruamel.yaml.YAML()


def _read_yaml(path):
    try:
        with open(path, encoding="utf-8") as stream:
            return _yaml().load(stream)
    except FileNotFoundError:
        raise HparamsError(f"hyperparameter file not found: {path}") from None
    except ruamel.yaml.YAMLError as error:
        raise HparamsError(f"{path} is not valid YAML: {error}") from None


def _include_entry(document):
    """Returns (key, node) of the document's single top-level include."""
    includes = [
        (key, node)
        for key, node in document.items()
        if str(getattr(getattr(node, "tag", None), "value", "")).startswith(
            INCLUDE_TAG
        )
    ]
    if len(includes) > 1:
        raise HparamsError("a recipe file may include one shared file only")
    return includes[0] if includes else (None, None)


def _check_known(overrides, known, path):
    for name in overrides:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise HparamsError(
                f"unknown option --{name} for {path}.{hint} Options are the "
                "top-level names of the hyperparameter files."
            )


class _OverrideLoader(yaml.SafeLoader):
    """PyYAML's safe loader (the last of repeated keys wins), keeping
    hyperpyyaml tags (``!new:``, ``!ref`` ...) as ruamel.yaml nodes."""


def _tagged_node(loader, suffix, node):
    """A ruamel.yaml node with the tag ``!<suffix>`` and the node's value."""
    tag = "!" + suffix
    if isinstance(node, yaml.MappingNode):
        value = CommentedMap(loader.construct_mapping(node, deep=True))
    elif isinstance(node, yaml.SequenceNode):
        value = CommentedSeq(loader.construct_sequence(node, deep=True))
    else:
        return TaggedScalar(loader.construct_scalar(node), tag=tag)
    value.yaml_set_ctag(Tag(suffix=tag))
    return value


_OverrideLoader.add_multi_constructor("!", _tagged_node)


def parse_overrides(text):
    """The command-line overrides as a mapping.

    Values are read as YAML, the last of repeated options winning; values
    with a hyperpyyaml tag (``--loss '!new:...'``) are kept as tagged nodes
    for :func:`load_hparams`.

    Arguments
    ---------
    text : str or None
        YAML text, as returned by ``speechbrain.parse_arguments``.

    Returns
    -------
    dict
        Top-level names to values.

    Raises
    ------
    HparamsError
        If the text is not YAML.

    Example
    -------
    >>> parse_overrides("lr: 0.5\\nlr: 0.25\\n")
    {'lr': 0.25}
    >>> parse_overrides("loss: !new:torch.nn.MSELoss\\n")["loss"].tag
    Tag('!new:torch.nn.MSELoss')
    """
    try:
        return dict(yaml.load(text or "", Loader=_OverrideLoader) or {})
    except yaml.YAMLError as error:
        message = " ".join(str(error).split())
        raise HparamsError(
            f"the command-line options are not valid YAML: {message}"
        ) from None


def _layered_text(path, overrides):
    """The file with its include merged and checked overrides applied."""
    if isinstance(overrides, str):
        overrides = _yaml().load(overrides) if overrides.strip() else None
    overrides = dict(overrides or {})
    document = _read_yaml(path)
    if not isinstance(document, dict):
        raise HparamsError(f"{path} must hold a mapping of names to values")
    key, include = _include_entry(document)
    if key is not None:
        if len(document) > 1:
            raise HparamsError(
                f"{path}: put every entry under the include '{key}', "
                "so that it reaches the shared file"
            )
        shared_path = os.path.join(
            os.path.dirname(os.path.abspath(path)),
            include.tag.value[len(INCLUDE_TAG) :],
        )
        shared = _read_yaml(shared_path)
        entries = include if isinstance(include, dict) else {}
        _check_known(set(entries), set(shared), path)
        for name, value in entries.items():
            shared[name] = value
        document = shared
    _check_known(overrides, set(document), path)
    for name, value in overrides.items():
        document[name] = value
    text = io.StringIO()
    _yaml().dump(document, text)
    text.seek(0)
    return text


def load_hparams(path, overrides=None):
    """Loads a recipe hyperparameter file, applying checked overrides.

    Arguments
    ---------
    path : str
        A hyperpyyaml file, plain or with one top-level ``!include:``.
    overrides : str or dict, optional
        YAML text (as returned by ``speechbrain.parse_arguments``) or a
        mapping of top-level names to new values.

    Returns
    -------
    dict
        The loaded hyperparameters (for a layered file, the shared file's
        with the file's own entries applied).

    Raises
    ------
    HparamsError
        If an override names no known entry or a file is missing/invalid.

    Example
    -------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "base.yaml"), "w") as f:
    ...     _ = f.write("epochs: 10\\nlr: 0.1\\nloss: null\\n")
    >>> with open(os.path.join(folder, "child.yaml"), "w") as f:
    ...     _ = f.write("recipe: !include:base.yaml\\n    loss: aam\\n")
    >>> hparams = load_hparams(os.path.join(folder, "child.yaml"), "lr: 0.5")
    >>> hparams["epochs"], hparams["lr"], hparams["loss"]
    (10, 0.5, 'aam')
    >>> load_hparams(os.path.join(folder, "child.yaml"), {"epoch": 3})
    Traceback (most recent call last):
    ...
    speaker_metric_learning.hyperparams.HparamsError: unknown option --epoch \
for ...child.yaml. Did you mean: epochs? Options are the top-level names of \
the hyperparameter files.
    """
    text = _layered_text(path, overrides)
    try:
        return load_hyperpyyaml(text)
    except (ImportError, TypeError, ValueError) as error:
        message = _construction_message(path, error)
        if message is None:
            raise
        raise HparamsError(message) from None


def _source_files(path):
    """The file and the shared file it includes, if any."""
    files = [path]
    _, include = _include_entry(_read_yaml(path))
    if include is not None:
        files.append(
            os.path.join(
                os.path.dirname(os.path.abspath(path)),
                include.tag.value[len(INCLUDE_TAG) :],
            )
        )
    return files


def _location(path, pattern):
    """``file, line N`` of the first line matching ``pattern`` in the file
    or its shared file, else the file name."""
    for name in _source_files(path):
        with open(name, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if re.search(pattern, line):
                    return f"{name}, line {number}"
    return str(path)


def _construction_message(path, error):
    """One line for a ``!new:``/``!name:`` entry that names an unknown
    class or function, or gives it an unknown argument (None for other
    errors)."""
    text = str(error.args[0]) if error.args else ""
    if isinstance(error, ImportError) and text.startswith("There is no such"):
        dotted = text.rsplit(" ", 1)[-1]
        module_name, _, name = dotted.rpartition(".")
        module = pydoc.locate(module_name) if module_name else None
        close = difflib.get_close_matches(name, dir(module) if module else [])
        hint = f" Did you mean {module_name}.{close[0]}?" if close else ""
        where = _location(path, re.escape(dotted) + r"\b")
        return f"{where}: {text}.{hint}"
    if isinstance(error, TypeError) and text.startswith("Invalid argument"):
        dotted = text.rsplit(" ", 1)[-1]
        detail = str(error.args[1]) if len(error.args) > 1 else ""
        unknown = re.search(r"unexpected keyword argument '(\w+)'", detail)
        target = pydoc.locate(dotted)
        if unknown is None or target is None:
            where = _location(path, re.escape(dotted) + r"\b")
            return f"{where}: {dotted}: {detail}"
        argument = unknown.group(1)
        known = list(inspect.signature(target).parameters)
        close = difflib.get_close_matches(argument, known)
        hint = f" Did you mean {close[0]}?" if close else ""
        where = _location(path, rf"^\s*{re.escape(argument)}\s*:")
        return (
            f"{where}: {dotted} has no argument '{argument}'.{hint} "
            f"Its arguments are: {', '.join(known)}."
        )
    reference = re.fullmatch(r'The reference "([^"]+)" is not valid', text)
    if isinstance(error, ValueError) and reference is not None:
        name = reference.group(1)
        known = _yaml().load(_layered_text(path, None)) or {}
        close = difflib.get_close_matches(name.split("[")[0], list(known))
        hint = f" Did you mean <{close[0]}>?" if close else ""
        where = _location(path, f"<{re.escape(name)}>")
        return f"{where}: !ref <{name}> names no entry.{hint}"
    return None


def resolved_hparams_text(path, overrides=None):
    """The hyperparameters as one self-contained YAML text, for the record.

    Includes are expanded, references resolved and overrides applied, so
    the text saved beside a run says exactly what the run used.

    Arguments
    ---------
    path : str
        A hyperpyyaml file, plain or with one top-level ``!include:``.
    overrides : str or dict, optional
        As for :func:`load_hparams`.

    Returns
    -------
    str

    Example
    -------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "base.yaml"), "w") as f:
    ...     _ = f.write("epochs: 10\\ntwice: !ref <epochs> * 2\\n")
    >>> with open(os.path.join(folder, "child.yaml"), "w") as f:
    ...     _ = f.write("recipe: !include:base.yaml\\n    epochs: 3\\n")
    >>> print(resolved_hparams_text(os.path.join(folder, "child.yaml")))
    epochs: 3
    twice: 6
    <BLANKLINE>
    """
    return resolve_references(_layered_text(path, overrides)).getvalue()
