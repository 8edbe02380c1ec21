"""Where things are on disk: the corpus layout, the files of a model and
of a training run.

The one owner of these facts; data preparation (``recipes.folder_prepare``),
trial lists and scoring (``scoring``), model I/O and export import them, and
this module imports nothing of the package.

Corpus layout (``<ext>`` is one of :data:`AUDIO_EXTENSIONS`, or of
:data:`CONVERTED_EXTENSIONS`, which preparation converts to FLAC first)::

    <root>/wav/<spk>/<utt>.<ext>
    <root>/<spk>/<utt>.<ext>
    <root>/wav/<spk>/<session>/<utt>.<ext>      (VoxCeleb1)
    <root>/aac/<spk>/<session>/<utt>.m4a        (VoxCeleb2 as distributed)

The audio root is ``<root>/wav`` (or ``<root>/aac``) when it exists, else
``<root>`` (:func:`audio_root`); its sub-folders are the speakers. An
utterance is identified by its path relative to the audio root without the
extension of its last component (:func:`utterance_id`): the IDs of the data
CSV files and the paths of trial lists follow the same rule, and
:func:`find_audio` goes back from an ID to its file.

A ``train.py`` output folder (:func:`is_run_folder`) holds the
``hyperparams.yaml`` of its first run and its :data:`SAVE_FOLDER`
(checkpoints, data CSV files, label encoder); an exported model folder
(:func:`is_model_folder`) holds a ``hyperparams.yaml`` and no save folder.

Authors
 * speaker_metric_learning developers
"""

import os
import pathlib

import ruamel.yaml

#: Extensions of the audio files soundfile reads, tried in this order for
#: an utterance ID.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3")
#: Extensions of audio files soundfile cannot read, converted to FLAC by
#: ffmpeg before preparation (``recipes.audio_conversion``).
CONVERTED_EXTENSIONS = (".m4a", ".aac", ".mp4")
#: Folders of a corpus split that hold its speaker folders, when present.
AUDIO_FOLDERS = ("wav", "aac")
#: The accepted layouts, in words, for error messages.
LAYOUTS = (
    "<root>/wav/<spk>/<utt>.<ext>, <root>/<spk>/<utt>.<ext> or "
    "<root>/wav/<spk>/<session>/<utt>.<ext> (or aac/ instead of wav/), "
    "with <ext> in "
    + ", ".join(ext[1:] for ext in AUDIO_EXTENSIONS + CONVERTED_EXTENSIONS)
)

#: The resolved hyperparameters of a run, or the definition of a model
#: folder.
HYPERPARAMS_FILE = "hyperparams.yaml"
#: The embedding network's state dict, in a checkpoint or a model folder.
WEIGHTS_FILE = "embedding_model.ckpt"
#: The training speakers of a run (in save/) or of a model folder.
LABEL_ENCODER_FILE = "label_encoder.txt"
#: The sub-folder of a run with its checkpoints, data CSV files and label
#: encoder (the ``save_folder`` of every recipe yaml).
SAVE_FOLDER = "save"
#: A run's per-epoch statistics (the ``train_log`` of every recipe yaml).
TRAIN_LOG_FILE = "train_log.txt"
#: The description of an exported model folder.
MODEL_CARD_FILE = "MODEL_CARD.md"
#: The waveform -> embedding ONNX graph of an exported model folder.
ONNX_FILE = "embedding_model.onnx"


def utterance_id(path):
    """The utterance ID of an audio path relative to the audio root.

    The extension starts at the last dot of the last component, unless that
    dot is the component's first character (``.profile`` has none, ``..wav``
    has ``.wav``).

    Arguments
    ---------
    path : str or os.PathLike
        Path such as ``spk0041/utt0002.wav``.

    Returns
    -------
    str
        The path without its extension, ``/`` separated.

    Example
    -------
    >>> utterance_id("id10270/5r0dWxy17C8/00001.wav")
    'id10270/5r0dWxy17C8/00001'
    >>> utterance_id("spk1/a.b.wav"), utterance_id("spk1/.hidden")
    ('spk1/a.b', 'spk1/.hidden')
    >>> utterance_id("spk1/..wav")
    'spk1/.'
    """
    relative = os.fspath(path).replace(os.sep, "/")
    dot = relative.rfind(".")
    return relative[:dot] if dot > relative.rfind("/") + 1 else relative


def audio_root(folder):
    """The folder utterance IDs are relative to: ``folder/wav`` (or
    ``folder/aac``) if it exists, else ``folder``.

    Arguments
    ---------
    folder : str or os.PathLike
        A corpus split (``<root>``) or its audio folder.

    Returns
    -------
    pathlib.Path
        The absolute audio root.

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist.

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> audio_root(folder) == folder.resolve()
    True
    >>> (folder / "wav").mkdir()
    >>> audio_root(folder).name
    'wav'
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Audio folder {folder} does not exist: expected {LAYOUTS}."
        )
    for name in AUDIO_FOLDERS:
        if (folder / name).is_dir():
            return (folder / name).resolve()
    return folder.resolve()


def find_audio(folder, utterance):
    """The audio file of an utterance ID (or of a path with its extension).

    Arguments
    ---------
    folder : str or os.PathLike
        The folder the IDs are relative to.
    utterance : str
        Utterance ID, e.g. ``spk0041/utt0002``.

    Returns
    -------
    pathlib.Path or None
        ``folder / utterance`` itself if it is a file, else the first of
        ``folder / (utterance + extension)`` that exists for the extensions
        of :data:`AUDIO_EXTENSIONS`; None if there is none.

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "spk").mkdir()
    >>> (folder / "spk" / "a.flac").touch()
    >>> find_audio(folder, "spk/a").name, find_audio(folder, "spk/b")
    ('a.flac', None)
    """
    path = pathlib.Path(folder) / utterance
    if path.is_file():
        return path
    for extension in AUDIO_EXTENSIONS:
        candidate = path.with_name(path.name + extension)
        if candidate.is_file():
            return candidate
    return None


def speaker_audio_files(folder):
    """The audio files of each speaker folder of a corpus split.

    Arguments
    ---------
    folder : str or os.PathLike
        A corpus split (see :func:`audio_root`).

    Returns
    -------
    dict
        ``{speaker: [paths]}``, speakers and paths sorted; speakers without
        audio files are left out.

    Example
    -------
    >>> import tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["aac/s1/b.wav", "aac/s1/a.mp3", "aac/s2/x/c.txt"]:
    ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
    ...     (root / name).touch()
    >>> {s: [p.name for p in f] for s, f in speaker_audio_files(root).items()}
    {'s1': ['a.mp3', 'b.wav']}
    """
    speakers = {}
    for speaker in sorted(audio_root(folder).iterdir()):
        if not speaker.is_dir():
            continue
        files = sorted(
            path
            for path in speaker.rglob("*")
            if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file()
        )
        if files:
            speakers[speaker.name] = files
    return speakers


def is_run_folder(folder):
    """Whether a folder is a ``train.py`` output folder.

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / HYPERPARAMS_FILE).write_text("")
    >>> is_model_folder(folder), is_run_folder(folder)
    (True, False)
    >>> (folder / SAVE_FOLDER).mkdir()
    >>> is_model_folder(folder), is_run_folder(folder)
    (False, True)
    """
    folder = pathlib.Path(folder)
    return (folder / HYPERPARAMS_FILE).is_file() and (
        folder / SAVE_FOLDER
    ).is_dir()


def is_model_folder(folder):
    """Whether a folder is an exported model folder: hyperparameters and
    no save folder (see :func:`is_run_folder` for an example)."""
    folder = pathlib.Path(folder)
    return (folder / HYPERPARAMS_FILE).is_file() and not (
        folder / SAVE_FOLDER
    ).is_dir()


def read_yaml(path):
    """The round-trip YAML data of a file, constructing no object (tags
    are kept on the nodes).

    Arguments
    ---------
    path : str or os.PathLike
        A YAML file.

    Returns
    -------
    object
        ``ruamel.yaml`` round-trip data (a ``CommentedMap`` for a mapping).

    Example
    -------
    >>> import tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / HYPERPARAMS_FILE
    >>> _ = path.write_text("model: !new:torch.nn.Linear [2, 3]\\n")
    >>> read_yaml(path)["model"].tag.value
    '!new:torch.nn.Linear'
    """
    with open(path, encoding="utf-8") as stream:
        return ruamel.yaml.YAML().load(stream)
