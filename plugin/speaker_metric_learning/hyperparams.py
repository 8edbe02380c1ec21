"""Loading the recipe's hyperpyyaml files with checked overrides.

Every ``hparams/<loss>.yaml`` is a plain, self-contained hyperpyyaml file:
``hyperpyyaml.load_hyperpyyaml(open(path), overrides)`` loads it, as in any
SpeechBrain recipe. :func:`load_hparams` does the same, with messages for
the usual mistakes: an unknown override (``--number_of_epoch 3``) ends in
one line naming the closest known names rather than a ``KeyError`` deep
inside hyperpyyaml, and a misspelt class, argument or reference names the
file and line. :func:`preview_hparams` gives the values of the entries with
references resolved but nothing built, which the recipe reads to prepare
its data before it loads the file once.

Authors
 * speaker_metric_learning developers
"""

import contextlib
import difflib
import inspect
import pydoc
import re

import ruamel.yaml
from hyperpyyaml import load_hyperpyyaml, resolve_references

from speaker_metric_learning.layout import read_yaml


class HparamsError(ValueError):
    """Raised for an unknown override or a malformed hyperparameter file."""


def _read_yaml(path):
    """``layout.read_yaml`` with its errors as HparamsError."""
    try:
        return read_yaml(path)
    except FileNotFoundError:
        raise HparamsError(f"hyperparameter file not found: {path}") from None
    except ruamel.yaml.YAMLError as error:
        raise HparamsError(f"{path} is not valid YAML: {error}") from None


def parse_overrides(overrides):
    """The command-line overrides as a mapping.

    Values are read as ``load_hyperpyyaml`` reads them (ruamel.yaml, YAML
    1.2: ``1e-3`` is a number), the last of repeated options winning;
    values with a hyperpyyaml tag (``--loss '!new:...'``) are kept as
    tagged nodes.

    Arguments
    ---------
    overrides : str or dict or None
        The YAML text of ``speechbrain.parse_arguments`` (one ``name:
        value`` line per option), or a mapping (returned as a dict).

    Returns
    -------
    dict
        Top-level names to values.

    Raises
    ------
    HparamsError
        If an option is not YAML.

    Example
    -------
    >>> parse_overrides("lr: 0.5\\nlr: 1e-3\\n")
    {'lr': 0.001}
    >>> parse_overrides("loss: !new:torch.nn.MSELoss\\n")["loss"].tag
    Tag('!new:torch.nn.MSELoss')
    """
    if not isinstance(overrides, str):
        return dict(overrides or {})
    mapping = {}
    for line in overrides.splitlines():
        if line.strip():
            try:
                mapping.update(ruamel.yaml.YAML().load(line))
            except (ruamel.yaml.YAMLError, TypeError, ValueError) as error:
                message = " ".join(str(error).split())
                raise HparamsError(
                    f"the command-line option {line.strip()!r} is not "
                    f"valid YAML: {message}"
                ) from None
    return mapping


def check_overrides(path, overrides=None):
    """Checks that every override names a top-level entry of the file.

    Arguments
    ---------
    path : str or os.PathLike
        A hyperpyyaml file.
    overrides : str or dict, optional
        YAML text (as returned by ``speechbrain.parse_arguments``) or a
        mapping of top-level names to new values.

    Returns
    -------
    dict
        The overrides as a mapping.

    Raises
    ------
    HparamsError
        For an unknown name (with the closest known names), or a file that
        is missing, not YAML or not a mapping.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "recipe.yaml")
    >>> _ = open(path, "w").write("number_of_epochs: 10\\nlr: 0.1\\n")
    >>> check_overrides(path, "lr: 0.5")
    {'lr': 0.5}
    >>> check_overrides(path, {"number_of_epoch": 3})
    Traceback (most recent call last):
    ...
    speaker_metric_learning.hyperparams.HparamsError: unknown option \
--number_of_epoch for ...recipe.yaml. Did you mean: number_of_epochs? \
Options are the top-level names of the hyperparameter file.
    """
    document = _read_yaml(path)
    if not isinstance(document, dict):
        raise HparamsError(f"{path} must hold a mapping of names to values")
    overrides = parse_overrides(overrides)
    for name in overrides:
        if name not in document:
            close = difflib.get_close_matches(name, sorted(document), n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise HparamsError(
                f"unknown option --{name} for {path}.{hint} Options are the "
                "top-level names of the hyperparameter file."
            )
    return overrides


def load_hparams(path, overrides=None):
    """Loads a hyperpyyaml file with ``load_hyperpyyaml``, overrides checked.

    Arguments
    ---------
    path, overrides
        As for :func:`check_overrides`.

    Returns
    -------
    dict
        The loaded hyperparameters.

    Raises
    ------
    HparamsError
        If an override names no entry, the file is missing or invalid, or
        an entry names an unknown class, argument or reference.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "recipe.yaml")
    >>> _ = open(path, "w").write("epochs: 10\\ntwice: !ref <epochs> * 2\\n")
    >>> load_hparams(path, "epochs: 3")
    {'epochs': 3, 'twice': 6}
    >>> load_hparams(path, {"epoch": 3})
    Traceback (most recent call last):
    ...
    speaker_metric_learning.hyperparams.HparamsError: unknown option --epoch \
for ...recipe.yaml. Did you mean: epochs? Options are the top-level names of \
the hyperparameter file.
    """
    overrides = check_overrides(path, overrides)
    with _explained(path), open(path, encoding="utf-8") as stream:
        return load_hyperpyyaml(stream, overrides)


def preview_hparams(path, overrides=None):
    """The entries of a hyperpyyaml file with references resolved and
    overrides applied, without building or calling anything.

    Plain values (numbers, strings, paths) are as ``load_hyperpyyaml``
    would give them; ``!new:``/``!name:``/``!apply:`` entries stay unbuilt
    YAML nodes.

    Arguments
    ---------
    path, overrides
        As for :func:`check_overrides`.

    Returns
    -------
    dict

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "recipe.yaml")
    >>> _ = open(path, "w").write(
    ...     "out: results\\nsave: !ref <out>/save\\n"
    ...     "model: !new:torch.nn.Linear [2, 2]\\n")
    >>> preview = preview_hparams(path, {"out": "here"})
    >>> preview["save"], preview["model"].tag.value
    ('here/save', '!new:torch.nn.Linear')
    """
    return dict(ruamel.yaml.YAML().load(resolved_hparams_text(path, overrides)))


def resolved_hparams_text(path, overrides=None):
    """The hyperparameters as one self-contained YAML text, for the record:
    references resolved and overrides applied, as SpeechBrain saves them.

    Arguments
    ---------
    path, overrides
        As for :func:`check_overrides`.

    Returns
    -------
    str

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "recipe.yaml")
    >>> _ = open(path, "w").write("epochs: 10\\ntwice: !ref <epochs> * 2\\n")
    >>> print(resolved_hparams_text(path, {"epochs": 3}))
    epochs: 3
    twice: 6
    <BLANKLINE>
    """
    overrides = check_overrides(path, overrides)
    with _explained(path), open(path, encoding="utf-8") as stream:
        return resolve_references(stream, overrides).getvalue()


@contextlib.contextmanager
def _explained(path):
    """Turns an error of a misspelt class, argument or reference of the
    file into one line (:func:`_construction_message`); other errors pass
    as they are."""
    try:
        yield
    except (ImportError, TypeError, ValueError) as error:
        message = _construction_message(path, error)
        if message is None:
            raise
        raise HparamsError(message) from None


def _location(path, pattern):
    """``file, line N`` of the first line matching ``pattern``, else the
    file name."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if re.search(pattern, line):
                return f"{path}, line {number}"
    return str(path)


def _construction_message(path, error):
    """One line for an entry that names an unknown class or function, gives
    it an unknown argument, or refers to no entry (None for other
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
        known = _read_yaml(path) or {}
        close = difflib.get_close_matches(name.split("[")[0], list(known))
        hint = f" Did you mean <{close[0]}>?" if close else ""
        where = _location(path, f"<{re.escape(name)}>")
        return f"{where}: !ref <{name}> names no entry.{hint}"
    return None
