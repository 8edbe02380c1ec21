"""ONNX export of a waveform-to-embedding model, and ONNX Runtime inference.

The whole path from the raw waveform to the embedding is exported, SincNet
included, as one graph with two inputs and one output::

    wavs        float32 [batch, time]     mono waveforms, zero-padded
    lengths     float32 [batch]           relative lengths in (0, 1]
    embeddings  float32 [batch, 1, dim]   as SincTDNN.forward returns

``batch`` and ``time`` are dynamic axes. The graph carries its sample rate,
embedding size and shortest input (``min_samples``) as metadata, which
:class:`OnnxEmbedder` reads to check its inputs.

Two things keep the graph general over every input length: the SincNet
filter bank is computed once, at export, and applied as a plain strided
convolution (:class:`FrozenSincNet`; ONNX has no ``sinc`` operator, and the
training-time polyphase form needs shape arithmetic that a trace would freeze
to the example's length); and the graph is traced with PyTorch's TorchScript
exporter (``dynamo=False``), because ``torch.export`` specialises the time
axis at the first max pooling of the front-end.

``onnx`` and ``onnxruntime`` are optional dependencies
(``pip install onnx onnxruntime``), imported only here.

Authors
 * speaker_metric_learning developers
"""

import copy
import pathlib
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speaker_metric_learning.sincnet import SincNet, waveform_batch

INPUT_NAMES = ("wavs", "lengths")
OUTPUT_NAME = "embeddings"
#: Largest accepted distance between ONNX Runtime's and PyTorch's embedding
#: of one input, relative to the embedding's norm.
PARITY_TOLERANCE = 1e-4


def _require(module_name):
    """Imports an optional dependency, or says how to install it."""
    try:
        return __import__(module_name)
    except ImportError:
        raise ImportError(
            f"ONNX support needs the '{module_name}' package: "
            "pip install onnx onnxruntime"
        ) from None


class FrozenSincNet(nn.Module):
    """A trained SincNet with its filter bank fixed, for inference graphs.

    The kernels are computed once from the cut-off frequencies and applied
    with one strided ``conv1d``: the same outputs as ``SincNet`` (up to
    float rounding), no parameters, and only operators every ONNX runtime
    has. It keeps the attributes that ``SincTDNN`` reads for its length
    arithmetic (``kernel_size``, ``stride``, ``n_filters``,
    ``sample_rate``).

    Arguments
    ---------
    sincnet : SincNet
        The trained filter bank.

    Example
    -------
    >>> sincnet = SincNet(n_filters=8)
    >>> frozen = FrozenSincNet(sincnet)
    >>> wavs = torch.randn(2, 4000)
    >>> torch.allclose(frozen(wavs), sincnet(wavs), atol=1e-5)
    True
    >>> len(list(frozen.parameters()))
    0
    """

    def __init__(self, sincnet):
        super().__init__()
        self.kernel_size = sincnet.kernel_size
        self.stride = sincnet.stride
        self.n_filters = sincnet.n_filters
        self.sample_rate = sincnet.sample_rate
        with torch.no_grad():
            kernels = sincnet.filters().detach().clone().unsqueeze(1)
        self.register_buffer("kernels", kernels)

    def forward(self, waveforms):
        """Filters ``[batch, time]`` waveforms: ``[batch, n_filters, frames]``.

        Arguments
        ---------
        waveforms : torch.Tensor
            ``[batch, time]`` (or ``[batch, 1, time]``).

        Returns
        -------
        torch.Tensor
            Same as ``SincNet.forward``.
        """
        return F.conv1d(
            waveform_batch(waveforms), self.kernels, stride=self.stride
        )


def inference_copy(model):
    """A copy of ``model`` in eval mode with every SincNet frozen.

    Arguments
    ---------
    model : torch.nn.Module
        An embedding model (the original is left untouched).

    Returns
    -------
    torch.nn.Module

    Example
    -------
    >>> from speaker_metric_learning.models import SincTDNN
    >>> model = SincTDNN(scale=0.125)
    >>> type(inference_copy(model).sincnet).__name__
    'FrozenSincNet'
    >>> type(model.sincnet).__name__, model.training
    ('SincNet', True)
    """
    frozen = copy.deepcopy(model).eval()
    for child in list(frozen.modules()):
        for child_name, grandchild in list(child.named_children()):
            if isinstance(grandchild, SincNet):
                setattr(child, child_name, FrozenSincNet(grandchild))
    return frozen


def export_onnx(model, path, sample_rate=16000, opset_version=18):
    """Exports a waveform-to-embedding model to an ONNX file.

    The graph is checked against the PyTorch model on a padded batch with
    ONNX Runtime before the function returns.

    Arguments
    ---------
    model : torch.nn.Module
        ``forward(wavs [batch, time], lengths [batch]) -> [batch, 1, dim]``;
        a ``min_samples`` attribute, if present, is recorded.
    path : str
        Output ``.onnx`` file.
    sample_rate : int
        Sampling rate the model expects, recorded in the metadata.
    opset_version : int
        ONNX operator set.

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    RuntimeError
        If ONNX Runtime's embedding of an input is further from PyTorch's
        than ``PARITY_TOLERANCE`` of its norm; the file is then removed
        (as on any failure).

    Example
    -------
    >>> import os, tempfile, pytest
    >>> _ = pytest.importorskip("onnxruntime"), pytest.importorskip("onnx")
    >>> from speaker_metric_learning.models import SincTDNN
    >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> export_onnx(SincTDNN(scale=0.125), path) == path
    True
    >>> OnnxEmbedder(path).min_samples
    2881
    """
    onnx = _require("onnx")
    graph = inference_copy(model)
    min_samples = int(getattr(graph, "min_samples", 1))
    # A padded example, so that the trace records the masked (general) path
    # of every length-aware layer.
    example = torch.randn(2, max(2 * min_samples, sample_rate))
    example_lengths = torch.tensor([1.0, 0.75])
    try:
        with torch.no_grad():
            expected = graph(example, example_lengths).numpy()
        metadata = {
            "sample_rate": sample_rate,
            "min_samples": min_samples,
            "embedding_dim": expected.shape[-1],
            "producer": "speaker_metric_learning",
        }
        _write_graph(
            onnx,
            graph,
            path,
            (example, example_lengths),
            metadata,
            opset_version,
        )
        error = relative_error(
            OnnxEmbedder(path)(example, example_lengths), expected
        )
        if not error <= PARITY_TOLERANCE:
            raise RuntimeError(
                f"the ONNX graph's embeddings differ from the PyTorch "
                f"model's by {error:.2e} of their norm (more than "
                f"{PARITY_TOLERANCE:g}): it is not written"
            )
    except BaseException:
        pathlib.Path(path).unlink(missing_ok=True)
        raise
    return path


def _write_graph(onnx, graph, path, example, metadata, opset_version):
    """Traces ``graph`` on the example inputs to ``path``, and adds the
    metadata entries."""
    with warnings.catch_warnings():
        # Shape checks of the Python code are constant for a valid input;
        # the exporter warns about each, and about its own deprecation.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph,
            example,
            path,
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                "wavs": {0: "batch", 1: "time"},
                "lengths": {0: "batch"},
                OUTPUT_NAME: {0: "batch"},
            },
            opset_version=opset_version,
            # ONNX Runtime folds constants itself; the exporter's folding
            # can leave shared initialisers out of topological order.
            do_constant_folding=False,
        )
    proto = onnx.load(path)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, path)


def relative_error(embeddings, reference):
    """The largest distance between two embeddings of one input, relative
    to the norm of the reference embedding (scale-free: trained embeddings
    have norms far from 1).

    Arguments
    ---------
    embeddings : numpy.ndarray
        [batch, ..., dim] embeddings to check.
    reference : numpy.ndarray
        The reference embeddings, same shape.

    Returns
    -------
    float

    Example
    -------
    >>> reference = np.array([[1000.0, 0.0], [0.0, 1.0]])
    >>> shifted = reference + [[0.5, 0.0], [0.0, 0.0]]
    >>> relative_error(shifted, reference)
    0.0005
    """
    reference = reference.reshape(len(reference), -1)
    difference = embeddings.reshape(len(reference), -1) - reference
    norms = np.linalg.norm(reference, axis=1)
    return float(
        (np.linalg.norm(difference, axis=1) / np.maximum(norms, 1e-12)).max()
    )


class OnnxEmbedder:
    """Embeds waveforms with an exported ONNX graph and ONNX Runtime.

    Arguments
    ---------
    path : str
        ``.onnx`` file written by :func:`export_onnx`.
    threads : int, optional
        ONNX Runtime intra-op threads (default: its own choice).

    Example
    -------
    >>> import os, tempfile, pytest
    >>> _ = pytest.importorskip("onnxruntime"), pytest.importorskip("onnx")
    >>> from speaker_metric_learning.models import SincTDNN
    >>> model = SincTDNN(scale=0.125).eval()
    >>> path = export_onnx(model, os.path.join(tempfile.mkdtemp(), "m.onnx"))
    >>> embedder = OnnxEmbedder(path, threads=1)
    >>> wavs = torch.randn(3, 12345)
    >>> embeddings = embedder(wavs, torch.tensor([1.0, 0.5, 0.8]))
    >>> embeddings.shape
    (3, 1, 512)
    >>> with torch.no_grad():
    ...     reference = model(wavs, torch.tensor([1.0, 0.5, 0.8])).numpy()
    >>> bool(np.abs(embeddings - reference).max() < 1e-4)
    True
    >>> embedder(torch.zeros(1, 100))
    Traceback (most recent call last):
    ...
    ValueError: waveforms of 100 samples are too short for this model: it \
needs at least 2881 samples
    """

    def __init__(self, path, threads=None):
        onnxruntime = _require("onnxruntime")
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.sample_rate = int(metadata.get("sample_rate", 16000))
        self.min_samples = int(metadata.get("min_samples", 1))
        self.embedding_dim = int(metadata.get("embedding_dim", 0))

    def __call__(self, wavs, lengths=None):
        """Embeddings of a batch of waveforms.

        Arguments
        ---------
        wavs : torch.Tensor or numpy.ndarray
            ``[batch, time]`` waveforms at ``sample_rate``.
        lengths : torch.Tensor or numpy.ndarray, optional
            ``[batch]`` relative lengths; None means unpadded.

        Returns
        -------
        numpy.ndarray
            ``[batch, 1, embedding_dim]`` float32 embeddings.
        """
        wavs = np.asarray(wavs, dtype=np.float32)
        if wavs.ndim != 2:
            raise ValueError(
                f"expected waveforms shaped [batch, time], got {wavs.shape}"
            )
        if wavs.shape[1] < self.min_samples:
            raise ValueError(
                f"waveforms of {wavs.shape[1]} samples are too short for "
                f"this model: it needs at least {self.min_samples} samples"
            )
        if lengths is None:
            lengths = np.ones(wavs.shape[0], dtype=np.float32)
        feed = {
            "wavs": wavs,
            "lengths": np.asarray(lengths, dtype=np.float32),
        }
        return self.session.run([OUTPUT_NAME], feed)[0]
