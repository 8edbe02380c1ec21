"""Checks that keep a training run's results true.

``train.py`` calls these before it trains, so that a mistake ends in one
line instead of a traceback, a silent wrong result or a damaged run:

* :func:`check_options`: the numeric options are numbers in their range
  (``--lr abc``, ``--number_of_epochs -1``, ``--chunk_seconds 0``,
  ``--speakers_per_batch 2.5`` are refused), the loss is one of the
  package's losses, a pair loss gets at least two chunks per speaker and
  a miner it knows (``--mining``), and a CUDA device exists;
* :func:`lock_output_folder`: one ``train.py`` per output folder;
* :func:`check_resume`: a rerun on a run with checkpoints resumes it, so
  its options must be those the run was trained with. Options that do not
  change the trained network or its training (evaluation, data loading,
  logging, and ``number_of_epochs`` to train longer) may change: they are
  applied, listed in the log and recorded in ``hyperparams.yaml``; any
  other change is refused with the differences listed, and the run's
  files are left as they are.

The command lines that write files (``export``, ``scoring -o``) refuse a
training run's folder as their output (:func:`refuse_run_folder`).

Authors
 * speaker_metric_learning developers
"""

import fcntl
import io
import math
import os
import pathlib

import ruamel.yaml
import torch

from speaker_metric_learning.layout import (
    HYPERPARAMS_FILE,
    SAVE_FOLDER,
    is_run_folder,
)

#: Options that must be whole numbers, with their smallest value.
INTEGER_OPTIONS = {
    "number_of_epochs": 0,  # 0: evaluate (e.g. a pretrained model) only
    "speakers_per_batch": 1,
    "chunks_per_speaker": 1,
    "batches_per_epoch": 1,
    "num_workers": 0,
    "eval_batch_size": 1,
    "sample_rate": 1,
    "embedding_dim": 1,
    "checkpoints_to_keep": 1,
    "seed": 0,
    "margin_warmup_steps": 0,
}
#: Options that must be finite numbers above 0.
POSITIVE_OPTIONS = (
    "chunk_seconds",
    "lr",
    "model_scale",
    "eval_window_seconds",
    "eval_step_seconds",
    "eval_max_seconds",
    "lr_annealing_factor",
)
#: Options that must be finite numbers from 0 up.
NON_NEGATIVE_OPTIONS = ("weight_decay", "ckpt_interval_minutes")
#: Options that must be in [0, 1] (``valid_fraction`` below 1).
FRACTION_OPTIONS = ("augment_prob", "valid_fraction")
#: Options that may be null (their feature off).
NULLABLE_OPTIONS = (
    "batches_per_epoch",
    "eval_window_seconds",
    "eval_step_seconds",
    "lr_annealing_factor",
)
#: Options whose change on resume leaves the trained network as it is:
#: evaluation, data loading, logging, checkpoint cadence, more epochs.
CHANGEABLE_ON_RESUME = (
    "eval_folder",
    "trials_file",
    "eval_batch_size",
    "eval_window_seconds",
    "eval_step_seconds",
    "eval_max_seconds",
    "num_workers",
    "train_loader_options",
    "valid_loader_options",
    "use_tensorboard",
    "tensorboard_folder",
    "ckpt_interval_minutes",
    "checkpoints_to_keep",
    "number_of_epochs",
    "epoch_counter",
    "checkpointer",  # holds the epoch counter; its other parts have entries
    "pretrained",
)
#: Options added to the recipes after runs were recorded without them, with
#: the value that trains as those runs did (``null`` as ``""``): a record
#: without the option resumes when the option has that value (the
#: 80-filter SincNet was the default before ``sinc_filters``).
ADDED_OPTIONS = {
    "sinc_filters": "80",
    "margin_warmup_steps": "0",
    "lr_annealing_factor": "",
    "mining": "",
}
#: Entries added with one of :data:`ADDED_OPTIONS`, built from it alone.
ADDED_WITH = {
    "margin_schedule": "margin_warmup_steps",
    "lr_scheduler": "lr_annealing_factor",
}
LOCK_FILE = ".train.lock"


class RunGuardError(ValueError):
    """Raised when a run would give a wrong result or damage another."""


def _number_problem(name, value):
    """Why ``value`` is not acceptable for option ``name`` (None: it is)."""
    if value is None and name in NULLABLE_OPTIONS:
        return None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if name in INTEGER_OPTIONS:
        low = INTEGER_OPTIONS[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            return f"must be a whole number >= {low}"
        return None
    if not is_number or not math.isfinite(value):
        return "must be a finite number"
    if name in POSITIVE_OPTIONS and value <= 0:
        return "must be above 0"
    if name in NON_NEGATIVE_OPTIONS and value < 0:
        return "must be 0 or more"
    if name == "augment_prob" and not 0 <= value <= 1:
        return "must be in [0, 1]"
    if name == "valid_fraction" and not 0 <= value < 1:
        return "must be in [0, 1)"
    if name == "lr_annealing_factor" and value > 1:
        return "must be in (0, 1]"
    return None


def check_options(hparams, device=None):
    """Refuses options a run cannot use, in one line.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters (names absent from them are not
        checked); ``loss`` may be the loss class, before it is built.
    device : str, optional
        The ``--device`` asked for.

    Raises
    ------
    RunGuardError
        Naming the option, its value and what it must be.

    Example
    -------
    >>> from speaker_metric_learning.losses import TripletLoss
    >>> check_options({"lr": 0.1, "number_of_epochs": 2})
    >>> check_options({"lr": "abc"})
    Traceback (most recent call last):
    ...
    speaker_metric_learning.run_guard.RunGuardError: --lr 'abc': must be a \
finite number
    >>> check_options({"speakers_per_batch": 2.5})
    Traceback (most recent call last):
    ...
    speaker_metric_learning.run_guard.RunGuardError: --speakers_per_batch \
2.5: must be a whole number >= 1
    >>> check_options({"mining": "hardest"})
    Traceback (most recent call last):
    ...
    speaker_metric_learning.run_guard.RunGuardError: --mining 'hardest': \
use null, 'all', 'hard' or 'semihard'
    >>> check_options({"loss": TripletLoss(), "chunks_per_speaker": 1})
    Traceback (most recent call last):
    ...
    speaker_metric_learning.run_guard.RunGuardError: --chunks_per_speaker 1: \
TripletLoss compares chunks of one speaker, so it needs at least 2 chunks \
per speaker in a batch
    """
    names = (
        *INTEGER_OPTIONS,
        *POSITIVE_OPTIONS,
        *NON_NEGATIVE_OPTIONS,
        *FRACTION_OPTIONS,
    )
    for name in names:
        if name in hparams:
            problem = _number_problem(name, hparams[name])
            if problem:
                raise RunGuardError(f"--{name} {hparams[name]!r}: {problem}")
    if "mining" in hparams:
        _check_mining(hparams["mining"])
    if "loss" in hparams:
        _check_loss(hparams["loss"], hparams.get("chunks_per_speaker"))
    if device is not None:
        _check_device(device)


def _check_mining(mining):
    """The ``mining`` option is null or names a miner of the pair losses."""
    from speaker_metric_learning.losses.mining import make_miner

    try:
        make_miner(mining)
    except ValueError as error:
        reason = str(error).rpartition(": ")[2]
        raise RunGuardError(f"--mining {mining!r}: {reason}") from None


def _check_loss(loss, chunks_per_speaker):
    """The loss (or its class, before it is built) is a MetricLoss, and a
    pair loss gets positive pairs."""
    from speaker_metric_learning.losses.base import MetricLoss
    from speaker_metric_learning.losses.pairs import PairLoss

    kind = loss if isinstance(loss, type) else type(loss)
    if not issubclass(kind, MetricLoss):
        shown = loss if isinstance(loss, str) else kind.__name__
        raise RunGuardError(
            f"--loss {shown!r}: the loss must be one of the losses of "
            "speaker_metric_learning.losses (a MetricLoss); choose it with "
            "the hyperparameter file, e.g. hparams/aam.yaml"
        )
    if issubclass(kind, PairLoss) and chunks_per_speaker == 1:
        raise RunGuardError(
            f"--chunks_per_speaker 1: {kind.__name__} compares chunks "
            "of one speaker, so it needs at least 2 chunks per speaker in a "
            "batch"
        )


def _check_device(device):
    """A ``cuda`` device must exist."""
    if not str(device).startswith("cuda"):
        return
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = str(device).partition(":")[2]
    if not available or (index.isdigit() and int(index) >= available):
        raise RunGuardError(
            f"--device {device}: this machine has {available} CUDA GPU(s) "
            "visible to PyTorch; use --device cpu"
            + (f" or cuda:0 to cuda:{available - 1}" if available else "")
        )


#: Descriptors of the lock files this process holds, by folder.
_HELD_LOCKS = {}


def lock_output_folder(folder):
    """Takes an exclusive lock on a run's output folder, held until the
    process ends (a process may take it again).

    Arguments
    ---------
    folder : str or os.PathLike
        The output folder (created if needed).

    Raises
    ------
    RunGuardError
        If another process holds it.

    Example
    -------
    >>> import tempfile, subprocess, sys
    >>> folder = tempfile.mkdtemp()
    >>> lock_output_folder(folder)
    >>> lock_output_folder(folder)  # again in this process: fine
    >>> other = subprocess.run(
    ...     [sys.executable, "-c", "from speaker_metric_learning.run_guard "
    ...      f"import lock_output_folder; lock_output_folder({folder!r})"],
    ...     capture_output=True, text=True)
    >>> print(other.stderr.strip().splitlines()[-1])
    speaker_metric_learning.run_guard.RunGuardError: another train.py \
(process ...) is running on ...: wait for it to end, or give another \
--output_folder
    """
    folder = pathlib.Path(folder)
    key = os.path.realpath(folder)
    if key in _HELD_LOCKS:
        return
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(descriptor, 32).decode(errors="replace").strip()
        os.close(descriptor)
        raise RunGuardError(
            f"another train.py (process {holder or '?'}) is running on "
            f"{folder}: wait for it to end, or give another --output_folder"
        ) from None
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    _HELD_LOCKS[key] = descriptor


def _entries(text):
    """Each top-level entry of a YAML text, as its own YAML text, without
    comments."""
    yaml = ruamel.yaml.YAML()
    document = yaml.load(text) or {}
    entries = {}
    for name, value in document.items():
        stream = io.StringIO()
        yaml.dump({name: value}, stream)
        lines = stream.getvalue().split(":", 1)[1].splitlines()
        kept = [x for x in lines if x.strip() and not x.strip().startswith("#")]
        entries[name] = "\n".join(kept).strip()
    return entries


def _added_at_earlier_value(old, new):
    """The :data:`ADDED_OPTIONS` that entries ``old`` lack and that have,
    in ``new``, the value that trains as before them."""
    return [
        name
        for name, value in ADDED_OPTIONS.items()
        if name not in old and new.get(name) == value
    ]


def _without_added_options(old, new):
    """``new`` without the :data:`ADDED_OPTIONS` that ``old`` lacks and
    that have their earlier behaviour's value: neither the option, nor the
    entries added with it, nor the ``key: !ref <option>`` lines that pass
    it on."""
    unchanged = _added_at_earlier_value(old, new)
    passed_on = tuple(f": !ref <{name}>" for name in unchanged)
    return {
        name: "\n".join(
            x for x in text.splitlines() if not x.rstrip().endswith(passed_on)
        )
        for name, text in new.items()
        if name not in unchanged
        and not (name not in old and ADDED_WITH.get(name) in unchanged)
    }


def changed_options(old_text, new_text):
    """The top-level entries that differ between two resolved
    hyperparameter texts (comments aside; an option added to the recipes
    since ``old_text`` was recorded, at the value that trains as before,
    is no difference: :data:`ADDED_OPTIONS`).

    Arguments
    ---------
    old_text, new_text : str
        Resolved hyperparameters (``hyperparams.yaml`` of a run).

    Returns
    -------
    dict
        ``{name: (old, new)}`` (YAML texts; ``None`` when absent).

    Example
    -------
    >>> changed_options("lr: 0.1\\nseed: 1\\n", "lr: 0.2\\nseed: 1\\n")
    {'lr': ('0.1', '0.2')}
    >>> changed_options("lr: 0.1\\n", "lr: 0.1  # the rate\\nmining:\\n")
    {}
    >>> changed_options("lr: 0.1\\n", "lr: 0.1\\nmining: hard\\n")
    {'mining': (None, 'hard')}
    """
    return _changed_entries(_entries(old_text), _entries(new_text))


def _changed_entries(old, new):
    """:func:`changed_options` of two texts' :func:`_entries`."""
    new = _without_added_options(old, new)
    return {
        name: (old.get(name), new.get(name))
        for name in [*old, *(name for name in new if name not in old)]
        if old.get(name) != new.get(name)
    }


def _is_plain(value):
    """Whether an entry's YAML text is a plain value (no object, mapping or
    list)."""
    return value is None or not (
        value.startswith(("!", "[", "{", "-")) or ": " in value
    )


def _shown(value, width=40):
    text = " ".join(str(value).split()) if value != "" else "null"
    return text if len(text) <= width else text[: width - 3] + "..."


def _recorded(name, value):
    """How a recorded value is shown: an added option the record lacks is
    shown with the value the run was trained as."""
    if value is None and name in ADDED_OPTIONS:
        return f"not recorded, trained as {ADDED_OPTIONS[name] or 'null'}"
    return "not recorded" if value is None else _shown(value)


def describe_changes(changes):
    """Option changes, in words, for a log line or a message.

    Arguments
    ---------
    changes : dict
        ``{name: (recorded, new)}`` as :func:`check_resume` returns them.

    Returns
    -------
    str

    Example
    -------
    >>> describe_changes({"num_workers": ("2", "0"), "mining": (None, "")})
    'num_workers: 2 -> 0; mining: not recorded, trained as null -> null'
    """
    return "; ".join(
        f"{name}: {_recorded(name, old)} -> {_shown(new)}"
        for name, (old, new) in changes.items()
    )


def recorded_speakers(output_folder):
    """The training speaker count a run recorded.

    Arguments
    ---------
    output_folder : str or os.PathLike
        A run's folder.

    Returns
    -------
    dict
        ``{"n_train_speakers": N}``, or empty if the folder records no
        count.

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> recorded_speakers(folder)
    {}
    >>> _ = (folder / HYPERPARAMS_FILE).write_text("n_train_speakers: 7\\n")
    >>> recorded_speakers(folder)
    {'n_train_speakers': 7}
    """
    record = pathlib.Path(output_folder) / HYPERPARAMS_FILE
    if not record.is_file():
        return {}
    count = _entries(record.read_text(encoding="utf-8")).get(
        "n_train_speakers", ""
    )
    # a count that is not a number: check_resume names the difference
    return {"n_train_speakers": int(count)} if count.isdigit() else {}


def record_hyperparams(output_folder, text):
    """Writes the resolved hyperparameters a run trains with to its
    ``hyperparams.yaml``, which :func:`check_resume` compares with."""
    record = pathlib.Path(output_folder) / HYPERPARAMS_FILE
    record.write_text(text, encoding="utf-8")


def check_resume(output_folder, new_text, resumable):
    """Decides what a rerun on an output folder may change.

    Arguments
    ---------
    output_folder : str or os.PathLike
        The run's folder, with the ``hyperparams.yaml`` of its first run.
    new_text : str
        The resolved hyperparameters of this run.
    resumable : bool
        Whether the run has a checkpoint to resume from (without one,
        anything may change).

    Returns
    -------
    dict
        The changed options that are applied (``CHANGEABLE_ON_RESUME``),
        and the :data:`ADDED_OPTIONS` the record lacks, at the value it
        trained as (old None): ``{name: (old, new)}``; the caller records
        ``new_text``.

    Raises
    ------
    RunGuardError
        If another option changed: the run would resume a network trained
        otherwise. The message lists the differences.

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> record = folder / "hyperparams.yaml"
    >>> _ = record.write_text("lr: 0.1\\nnum_workers: 2\\n")
    >>> check_resume(folder, "lr: 0.1\\nnum_workers: 0\\n", resumable=True)
    {'num_workers': ('2', '0')}
    >>> check_resume(folder, "lr: 0.5\\nnum_workers: 2\\n", resumable=True)
    Traceback (most recent call last):
    ...
    speaker_metric_learning.run_guard.RunGuardError: .../hyperparams.yaml \
was trained with other options than this command's (lr: 0.1 -> 0.5), and \
a run resumes with the options it was trained with: repeat its options, or \
give another --output_folder for a new run
    """
    record = pathlib.Path(output_folder) / HYPERPARAMS_FILE
    if not resumable or not record.is_file():
        return {}
    recorded = _entries(record.read_text(encoding="utf-8"))
    wanted = _entries(new_text)
    changes = _changed_entries(recorded, wanted)
    refused = {
        name: change
        for name, change in changes.items()
        if name not in CHANGEABLE_ON_RESUME
    }
    if refused:
        # the options given, not the entries built from them
        given = {
            name: change
            for name, change in refused.items()
            if all(_is_plain(value) for value in change)
        }
        listed = describe_changes(given or refused)
        raise RunGuardError(
            f"{record} was trained with other options than this command's "
            f"({listed}), and a run resumes with the options it was trained "
            "with: repeat its options, or give another --output_folder for "
            "a new run"
        )
    added = _added_at_earlier_value(recorded, wanted)
    return {**changes, **{name: (None, ADDED_OPTIONS[name]) for name in added}}


def refuse_run_folder(folder, what):
    """Refuses to write ``what`` into a training run's own files: the run
    folder itself or anything in its ``save/`` folder.

    Arguments
    ---------
    folder : str or os.PathLike
        The output folder asked for.
    what : str
        What would be written there, for the message.

    Raises
    ------
    RunGuardError
        If ``folder`` is a ``train.py`` output folder or inside its
        ``save/``.

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> refuse_run_folder(folder, "results")
    >>> _ = (folder / "hyperparams.yaml").write_text("")
    >>> (folder / "save").mkdir()
    >>> refuse_run_folder(folder / "exported", "results")
    >>> refuse_run_folder(folder, "results")
    Traceback (most recent call last):
    ...
    speaker_metric_learning.run_guard.RunGuardError: ... is a train.py run \
folder: writing results there would replace the run's own files; give \
another output folder (e.g. a subfolder)
    """
    folder = pathlib.Path(folder).resolve()
    for run in (folder, *folder.parents):
        if is_run_folder(run):
            inside = folder.relative_to(run).parts
            if not inside or inside[0] == SAVE_FOLDER:
                where = (
                    "is a train.py run folder"
                    if not inside
                    else (f"is in the save/ folder of the train.py run {run}")
                )
                raise RunGuardError(
                    f"{folder} {where}: writing {what} there would replace "
                    "the run's own files; give another output folder (e.g. "
                    "a subfolder)"
                )
            return
