"""The inference definition of a network: an exported ``hyperparams.yaml``.

A model folder's ``hyperparams.yaml`` (and the definition ``model_io``
builds a run's network from) is the run's ``embedding_model`` entry, as
the run resolved it, inside a fixed SpeechBrain inference frame: pass-through
feature stages (the network reads waveforms), an audio normaliser and a
``Pretrainer`` whose hook reads the weights with ``weights_only=True``.

Authors
 * speaker_metric_learning developers
"""

import ruamel.yaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from speaker_metric_learning.layout import WEIGHTS_FILE


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


def describe_node(node):
    """``Class(arg=value, ...)`` for a ``!new:`` node."""
    if not isinstance(node, CommentedMap) or node.tag.value is None:
        return str(node)
    name = node.tag.value.split(":", 1)[1].rsplit(".", 1)[-1]
    arguments = ", ".join(f"{k}={v}" for k, v in node.items())
    return f"{name}({arguments})"


_INFERENCE_TEMPLATE = """\
# Speaker embedding model exported by speaker_metric_learning.export
# (see MODEL_CARD.md). Check it, then load it offline:
#   from speaker_metric_learning.model_io import load_exported
#   model = load_exported("<this folder>")   # a SpeakerRecognition
# Input: mono waveforms at {sample_rate} Hz, shaped [batch, time].

sample_rate: {sample_rate}
{embedding_model}
# The network reads raw waveforms: SpeechBrain's feature extraction and
# normalisation stages pass them through unchanged.
compute_features: !new:speaker_metric_learning.model_io.PassThrough
mean_var_norm: !new:speaker_metric_learning.model_io.PassThrough
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
        embedding_model: !name:speaker_metric_learning.model_io.load_weights
"""


def recorded_sample_rate(hparams):
    """The input rate of a run's network, from its resolved hyperparameters
    (16 kHz, every recipe's rate, when they do not say).

    Example
    -------
    >>> recorded_sample_rate({}), recorded_sample_rate({"sample_rate": 8000})
    (16000, 8000)
    """
    return hparams.get("sample_rate", 16000)


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
    return _INFERENCE_TEMPLATE.format(
        sample_rate=sample_rate,
        embedding_model=text.getvalue().rstrip("\n"),
        weights=WEIGHTS_FILE,
    )
