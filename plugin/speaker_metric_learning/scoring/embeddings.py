"""Batched, optionally windowed and cached extraction of utterance embeddings.

The embedding model follows the package contract ``forward(wavs [B, T],
lengths [B]) -> [B, 1, D]`` with SpeechBrain relative lengths. Utterances are
embedded either whole (padded batches with relative lengths) or, as in Coria
et al. (2020), as the average of the embeddings of sliding windows (3 s every
0.1 s in the paper), several windows of several utterances per batch.

Memory stays bounded whatever the audio: an utterance longer than
``max_seconds`` (60 s by default; SincTDNN needs about 2.5 MB per second of
audio, so a 2-hour recording embedded whole would need some 18 GB) is
embedded as the average of the embeddings of consecutive windows of that
length. An utterance shorter than the model's receptive field (its
``min_samples``, 0.157 s for SincTDNN) is repeated to fill it, as training
chunks are. Both are counted and logged.

Results can be cached on disk: the cache file name is a hash of the model
weights, the utterance ids (in order), the extraction settings and, when the
input names its audio files (a SpeechBrain dataset with a ``wav`` column, or
any object with a ``paths`` list), the size and modification time of every
file, so changing any of them recomputes the embeddings. Samples themselves
are not hashed (that would mean reading all the audio).
"""

import hashlib
import json
import logging
import pathlib

import torch
from tqdm import tqdm

logger = logging.getLogger(__name__)

#: Longest utterance (seconds) embedded whole; longer ones are averaged
#: windows of this length.
MAX_WHOLE_SECONDS = 60.0


def extract_embeddings(
    embedding_model,
    utterances,
    batch_size=16,
    window=None,
    step=None,
    sample_rate=16000,
    cache_dir=None,
    device="cpu",
    progress=True,
    max_seconds=MAX_WHOLE_SECONDS,
):
    """Embeds every utterance with ``embedding_model``.

    Arguments
    ---------
    embedding_model : torch.nn.Module
        ``forward(wavs [B, T], lengths [B]) -> [B, 1, D]``.
    utterances : dataset or iterable
        ``(id, waveform)`` pairs, or items ``{"id": ..., "sig": ...}`` such as
        those of ``speaker_metric_learning.data.evaluation_dataset`` (a
        dataset sorted by duration keeps padding small). Waveforms are 1-D.
    batch_size : int
        Utterances (whole) or windows (sliding) per forward pass.
    window : float, optional
        Window length in seconds; None embeds whole utterances. Utterances
        no longer than a window are embedded whole.
    step : float, optional
        Window step in seconds (default: ``window``). Windows start every
        ``step`` seconds; when the last one stops before the end, a last
        window ending at the end of the utterance is added.
    sample_rate : int
        Sample rate of the waveforms.
    cache_dir : str or pathlib.Path, optional
        Folder of cached results (see module docstring); no cache if None.
    device : str or torch.device
        Where to run the model.
    progress : bool
        Show a progress bar.
    max_seconds : float, optional
        Utterances (whole embedding) longer than this are embedded as the
        average of consecutive windows of this length, the last one ending
        at the end; None embeds every utterance whole.

    Returns
    -------
    ids : list of str
        Utterance ids, in input order.
    embeddings : torch.Tensor
        [N, D] float32 embeddings on the CPU (unnormalised).

    Example
    -------
    >>> class MeanModel(torch.nn.Module):
    ...     def forward(self, wavs, lengths):
    ...         n = (lengths * wavs.shape[1]).round().long()
    ...         mask = torch.arange(wavs.shape[1]) < n[:, None]
    ...         mean = (wavs * mask).sum(1) / n
    ...         return torch.stack([mean, 2 * mean], dim=-1)[:, None]
    >>> pairs = [("a", torch.ones(4)), ("b", torch.tensor([1.0, 3.0]))]
    >>> ids, embeddings = extract_embeddings(MeanModel(), pairs, progress=False)
    >>> ids, embeddings.tolist()
    (['a', 'b'], [[1.0, 2.0], [2.0, 4.0]])
    """
    if step is not None and window is None:
        raise ValueError("step is given without window: give both or neither.")
    ids, waveforms = _ids_and_waveforms(utterances)
    waveforms = _LongEnough(
        waveforms, getattr(embedding_model, "min_samples", 1)
    )
    cache_file = None
    if cache_dir is not None:
        settings = {
            "window": window,
            "step": step,
            "sample_rate": sample_rate,
            "max_seconds": max_seconds,
            "audio_files": audio_file_stamps(utterances),
        }
        key = cache_key(embedding_model, ids, settings)
        cache_file = pathlib.Path(cache_dir) / f"embeddings-{key}.pt"
        if cache_file.exists():
            cached = torch.load(cache_file)
            return cached["ids"], cached["embeddings"]
    was_training = embedding_model.training
    embedding_model.eval()
    try:
        with torch.no_grad():
            if window is None:
                longest = None
                if max_seconds is not None:
                    longest = round(max_seconds * sample_rate)
                embeddings = _embed_whole(
                    embedding_model,
                    waveforms,
                    batch_size,
                    device,
                    progress,
                    longest,
                )
            else:
                window_samples = round(window * sample_rate)
                step_samples = round((step or window) * sample_rate)
                embeddings = _embed_windows(
                    embedding_model,
                    waveforms,
                    (window_samples, step_samples),
                    batch_size,
                    device,
                    progress,
                )
    finally:
        embedding_model.train(was_training)
    if waveforms.repeated:
        logger.warning(
            "%d utterances shorter than the model's %.3f s were repeated to "
            "fill it, e.g. %s",
            len(waveforms.repeated),
            waveforms.min_samples / sample_rate,
            ids[waveforms.repeated[0]],
        )
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"ids": ids, "embeddings": embeddings}, cache_file)
    return ids, embeddings


def audio_file_stamps(utterances):
    """Path, size and modification time of the audio files of the input.

    Arguments
    ---------
    utterances : object
        A SpeechBrain dataset whose items have a ``wav`` path, or an object
        with a ``paths`` list; anything else names no file.

    Returns
    -------
    list or None
        ``[path, size, mtime_ns]`` per file in input order; None when the
        input names no files or one of them cannot be examined.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> _ = open(path, "wb").write(b"1234")
    >>> class Files:
    ...     paths = [path]
    >>> [size for _, size, _ in audio_file_stamps(Files())]
    [4]
    >>> audio_file_stamps([("a", None)]) is None
    True
    """
    paths = getattr(utterances, "paths", None)
    data = getattr(utterances, "data", None)
    if paths is None and isinstance(data, dict):
        ids = getattr(utterances, "data_ids", data)
        paths = [data[i].get("wav") for i in ids]
    if not paths or any(path is None for path in paths):
        return None
    try:
        stats = [pathlib.Path(path).stat() for path in paths]
    except OSError:
        return None
    return [
        [str(path), stat.st_size, stat.st_mtime_ns]
        for path, stat in zip(paths, stats, strict=True)
    ]


def _ids_and_waveforms(utterances):
    """Splits the input into ids and a sequence of lazily read waveforms."""
    if hasattr(utterances, "data_ids") and hasattr(utterances, "__getitem__"):
        # A SpeechBrain dataset: ids are known without reading any audio.
        ids = list(utterances.data_ids)
        return ids, _LazyWaveforms(utterances)
    pairs = [_as_pair(item) for item in utterances]
    if not pairs:
        raise ValueError("No utterance to embed.")
    return [i for i, _ in pairs], [w for _, w in pairs]


class _LazyWaveforms:
    """Waveforms of a dataset, read when indexed."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return _as_pair(self.dataset[index])[1]


class _LongEnough:
    """Waveforms repeated (wrapped around) to at least ``min_samples``,
    with the indices of those that were."""

    def __init__(self, waveforms, min_samples):
        self.waveforms = waveforms
        self.min_samples = int(min_samples)
        self.repeated = []

    def __len__(self):
        return len(self.waveforms)

    def __getitem__(self, index):
        waveform = self.waveforms[index]
        if len(waveform) == 0:
            raise ValueError(f"utterance number {index} has no samples")
        if len(waveform) >= self.min_samples:
            return waveform
        if index not in self.repeated:
            self.repeated.append(index)
        repeats = -(-self.min_samples // len(waveform))
        return waveform.repeat(repeats)[: self.min_samples]


def _as_pair(item):
    """``(id, 1-D float waveform)`` from a pair or a ``{"id", "sig"}`` item."""
    if isinstance(item, dict):
        item = (item["id"], item["sig"])
    utterance_id, waveform = item
    waveform = torch.as_tensor(waveform, dtype=torch.float32)
    return utterance_id, waveform.reshape(-1)


def cache_key(embedding_model, ids, settings):
    """Hash of the model weights, the utterance ids and extraction settings.

    Arguments
    ---------
    embedding_model : torch.nn.Module
        The model (its ``state_dict`` is hashed).
    ids : list of str
        Utterance ids, in order.
    settings : dict
        JSON-serialisable extraction settings.

    Returns
    -------
    str
        16 hex digits.

    Example
    -------
    >>> model = torch.nn.Linear(2, 2)
    >>> key = cache_key(model, ["a"], {"window": None})
    >>> key == cache_key(model, ["a"], {"window": None}), len(key)
    (True, 16)
    >>> key == cache_key(model, ["b"], {"window": None})
    False
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(embedding_model.state_dict().items()):
        digest.update(name.encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    digest.update(json.dumps([list(ids), settings], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _embed_whole(model, waveforms, batch_size, device, progress, longest):
    """Embeds whole utterances in padded batches; utterances of more than
    ``longest`` samples (None: no limit) as averaged windows of that
    length."""
    embeddings = [None] * len(waveforms)
    pending, averaged = [], 0

    def flush():
        wavs, lengths = pad_batch([waveform for _, waveform in pending])
        embedded = _forward(model, wavs, lengths, device)
        for (index, _), embedding in zip(pending, embedded, strict=True):
            embeddings[index] = embedding
        pending.clear()

    for index in tqdm(
        range(len(waveforms)), desc="embeddings", disable=not progress
    ):
        waveform = waveforms[index]
        if longest is not None and len(waveform) > longest:
            geometry = (longest, longest)
            embeddings[index] = _embed_windows(
                model, [waveform], geometry, batch_size, device, False
            )[0]
            averaged += 1
            continue
        pending.append((index, waveform))
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    if averaged:
        logger.info(
            "%d utterances longer than %d samples embedded as the average "
            "of windows of that length (memory bound)",
            averaged,
            longest,
        )
    return torch.stack(embeddings)


def pad_batch(waveforms):
    """Pads 1-D waveforms into a batch with SpeechBrain relative lengths.

    Arguments
    ---------
    waveforms : list of torch.Tensor
        1-D waveforms.

    Returns
    -------
    wavs : torch.Tensor
        [B, T] zero-padded waveforms, T the longest length.
    lengths : torch.Tensor
        [B] relative lengths in (0, 1].

    Example
    -------
    >>> wavs, lengths = pad_batch([torch.ones(4), torch.ones(2)])
    >>> wavs.tolist(), lengths.tolist()
    ([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]], [1.0, 0.5])
    """
    longest = max(len(waveform) for waveform in waveforms)
    wavs = torch.zeros(len(waveforms), longest)
    for row, waveform in enumerate(waveforms):
        wavs[row, : len(waveform)] = waveform
    lengths = torch.tensor([len(w) / longest for w in waveforms])
    return wavs, lengths


def _forward(model, wavs, lengths, device):
    """[B, D] float32 CPU embeddings of a batch."""
    embeddings = model(wavs.to(device), lengths.to(device))
    return embeddings.reshape(len(wavs), -1).float().cpu()


def sliding_windows(waveform, window_samples, step_samples):
    """Cuts a waveform into windows, the last one ending at its end.

    Arguments
    ---------
    waveform : torch.Tensor
        1-D waveform.
    window_samples : int
        Window length in samples.
    step_samples : int
        Step between window starts in samples.

    Returns
    -------
    torch.Tensor
        [n_windows, window_samples] windows, or [1, len(waveform)] when the
        waveform is not longer than one window.

    Example
    -------
    >>> sliding_windows(torch.arange(7.0), 4, 2).tolist()
    [[0.0, 1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0], [3.0, 4.0, 5.0, 6.0]]
    """
    if len(waveform) <= window_samples:
        return waveform[None]
    windows = waveform.unfold(0, window_samples, step_samples)
    last_start = (windows.shape[0] - 1) * step_samples
    if last_start + window_samples < len(waveform):
        windows = torch.cat([windows, waveform[None, -window_samples:]])
    return windows


def _embed_windows(model, waveforms, geometry, batch_size, device, progress):
    """Averages window embeddings; windows of equal length share batches."""
    window_samples, step_samples = geometry
    sums, counts = None, torch.zeros(len(waveforms))
    pending, owners = [], []

    def flush():
        # Windows of equal length need no padding; a short utterance (one
        # window shorter than the others) goes through on its own.
        for length in sorted({len(w) for w in pending}):
            rows = [i for i, w in enumerate(pending) if len(w) == length]
            wavs = torch.stack([pending[i] for i in rows])
            embedded = _forward(model, wavs, torch.ones(len(rows)), device)
            nonlocal sums
            if sums is None:
                sums = torch.zeros(len(waveforms), embedded.shape[1])
            index = torch.tensor([owners[i] for i in rows])
            sums.index_add_(0, index, embedded)
            counts.index_add_(0, index, torch.ones(len(rows)))
        pending.clear()
        owners.clear()

    for index in tqdm(
        range(len(waveforms)), desc="embeddings", disable=not progress
    ):
        for window in sliding_windows(
            waveforms[index], window_samples, step_samples
        ):
            pending.append(window)
            owners.append(index)
            if len(pending) == batch_size:
                flush()
    if pending:
        flush()
    return sums / counts[:, None]
