"""Reading a hyperparameter file before running it: the allow-list check.

SpeechBrain builds a model by running what its ``hyperparams.yaml`` names
(``!new:``, ``!name:``, ``!apply:``, ``!module:`` tags, and the YAML
loader's own ``!!python/...`` tags, which hyperpyyaml also executes, even
inside implicit tuples such as ``(a, b)``), so a model folder from someone
else can run any code. :func:`check_hyperparams_safe` reads the file
without constructing anything and refuses every tag whose target is not on
a short allow-list of model-building classes.

Authors
 * speaker_metric_learning developers
"""

import inspect
import pathlib
import pydoc
import re

import ruamel.yaml

from speaker_metric_learning.layout import HYPERPARAMS_FILE

#: Dotted names that exported hyperparameters may construct or call: the
#: name as written and the object's own ``module.qualname`` must both start
#: with one of these (so ``speaker_metric_learning.models.torch.load``, which
#: resolves to ``torch.load``, is refused).
SAFE_TARGETS = (
    "speaker_metric_learning.models",
    "speaker_metric_learning.sincnet.SincNet",
    "speaker_metric_learning.model_io.PassThrough",
    "speaker_metric_learning.model_io.load_weights",
    # the same two, as folders exported before model_io existed name them
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
    speaker_metric_learning.hparams_safety.UnsafeHyperparamsError: .../\
hyperparams.yaml would run code outside the allowed list: line 2: \
!apply:os.system; line 3: tag:yaml.org,2002:python/object/apply:os.getcwd \
inside tuple. Do not load it unless you trust its author; to allow more, \
pass allowed=.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / HYPERPARAMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"hyperparameter file not found: {path}")
    text = path.read_text(encoding="utf-8")
    targets = checked_targets(text, path, allowed)
    if show:
        print(text)
        print("# It builds or calls:", *targets, sep="\n#   ")
    return targets


def checked_targets(text, path, allowed=SAFE_TARGETS):
    """The sorted tags of a hyperparameter text, or UnsafeHyperparamsError
    naming ``path``: :func:`check_hyperparams_safe` on text in memory.

    Arguments
    ---------
    text : str
        Hyperparameter YAML.
    path : str or pathlib.Path
        What the text stands for, for the message.
    allowed : sequence of str
        Allowed dotted names or prefixes.

    Returns
    -------
    list of str

    Example
    -------
    >>> checked_targets("n: !new:torch.nn.ReLU", "inline")
    ['!new:torch.nn.ReLU']
    """
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
