"""Audio reading, random chunking and SpeechBrain dataset pipelines.

The recipe's data preparation writes CSV files with the columns
``ID,duration,wav,spk_id``; this module turns them into
``speechbrain.dataio.dataset.DynamicItemDataset`` objects:

* training items are random fixed-length chunks, drawn anew every epoch
  from a seeded generator, so a run is reproducible and resumable;
* evaluation items are whole utterances.

Audio is read with ``soundfile`` (only the requested frames are decoded),
mixed down to mono and resampled when the file's rate differs from the
model's.

Authors
 * speaker_metric_learning developers
"""

import logging
import zlib

import numpy as np
import soundfile
import speechbrain as sb
import torch
import torchaudio.functional

logger = logging.getLogger(__name__)


class AudioReadError(RuntimeError):
    """Raised when an audio file cannot be read or holds unusable samples."""


def read_audio(path, sample_rate=16000, start=0.0, duration=None):
    """Reads (part of) an audio file as a mono float32 tensor.

    Arguments
    ---------
    path : str
        Audio file readable by ``soundfile`` (wav, flac, ogg/opus, ...).
    sample_rate : int
        Rate of the returned samples; other rates are resampled.
    start : float
        Offset of the first sample, in seconds.
    duration : float, optional
        Seconds to read; ``None`` reads to the end of the file.

    Returns
    -------
    torch.Tensor
        Samples, shape ``[time]``.

    Raises
    ------
    AudioReadError
        If the file cannot be decoded, is empty, or contains NaN/Inf.

    Example
    -------
    >>> import tempfile, os, numpy as np, soundfile
    >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
    >>> soundfile.write(path, np.zeros(8000, dtype="float32"), 8000)
    >>> read_audio(path, sample_rate=16000).shape
    torch.Size([16000])
    >>> read_audio(path, sample_rate=8000, start=0.25, duration=0.5).shape
    torch.Size([4000])
    """
    try:
        with soundfile.SoundFile(path) as audio_file:
            file_rate = audio_file.samplerate
            first = int(round(start * file_rate))
            frames = (
                -1 if duration is None else int(round(duration * file_rate))
            )
            audio_file.seek(first)
            samples = audio_file.read(frames, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, OSError) as error:
        raise AudioReadError(
            f"cannot read audio file {path}: {error}"
        ) from None
    if samples.shape[0] == 0:
        raise AudioReadError(f"audio file {path} holds no samples")
    if not np.isfinite(samples).all():
        raise AudioReadError(f"audio file {path} contains NaN or Inf samples")
    waveform = torch.from_numpy(samples.mean(axis=1))
    if file_rate != sample_rate:
        waveform = torchaudio.functional.resample(
            waveform, file_rate, sample_rate
        )
    return waveform


class RandomChunker:
    """Reads a random fixed-length chunk of an utterance.

    The chunk offset is a deterministic function of (seed, epoch, utterance
    id), so runs are reproducible whatever the number of data-loading workers
    and a resumed run draws the same chunks as an uninterrupted one. Call
    :meth:`set_epoch` before every epoch. Utterances shorter than the chunk
    are repeated (wrapped around) to fill it.

    Arguments
    ---------
    chunk_seconds : float
        Length of every chunk.
    sample_rate : int
        Sample rate of the chunks.
    seed : int
        Seed of the offsets.

    Example
    -------
    >>> import tempfile, os, numpy as np, soundfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> soundfile.write(path, np.arange(16000) / 16000.0, 16000)
    >>> chunker = RandomChunker(chunk_seconds=0.5, sample_rate=16000, seed=3)
    >>> first = chunker("spk/a", path, 1.0)
    >>> first.shape
    torch.Size([8000])
    >>> torch.equal(first, chunker("spk/a", path, 1.0))
    True
    >>> chunker("spk/a", path, 0.2).shape  # shorter than the chunk
    torch.Size([8000])
    """

    def __init__(self, chunk_seconds, sample_rate=16000, seed=0):
        self.chunk_seconds = float(chunk_seconds)
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch):
        """Chooses the epoch whose chunks are drawn.

        Arguments
        ---------
        epoch : int
            Epoch number.
        """
        self.epoch = int(epoch)

    def offset(self, utterance_id, duration):
        """Start of the chunk of one utterance in this epoch, in seconds.

        Arguments
        ---------
        utterance_id : str
            Utterance identifier.
        duration : float
            Utterance duration in seconds.

        Returns
        -------
        float
        """
        slack = float(duration) - self.chunk_seconds
        if slack <= 0:
            return 0.0
        key = f"{self.seed}:{self.epoch}:{utterance_id}".encode()
        rng = np.random.default_rng(zlib.crc32(key))
        return float(rng.uniform(0.0, slack))

    def __call__(self, utterance_id, path, duration):
        start = self.offset(utterance_id, duration)
        waveform = read_audio(
            path, self.sample_rate, start=start, duration=self.chunk_seconds
        )
        n_samples = int(round(self.chunk_seconds * self.sample_rate))
        if waveform.shape[0] < n_samples:
            repeats = -(-n_samples // waveform.shape[0])
            waveform = waveform.repeat(repeats)
        return waveform[:n_samples]


def training_dataset(csv_path, chunker, label_encoder):
    """Dataset of random chunks with their encoded speaker labels.

    Arguments
    ---------
    csv_path : str
        CSV with columns ``ID,duration,wav,spk_id``.
    chunker : RandomChunker
        Draws the chunk of each utterance.
    label_encoder : speechbrain.dataio.encoder.CategoricalEncoder
        Maps speaker ids to integers; filled from this CSV if empty.

    Returns
    -------
    speechbrain.dataio.dataset.DynamicItemDataset
        Items with keys ``id``, ``sig``, ``spk_id_encoded``.

    Example
    -------
    >>> import tempfile, os, numpy as np, soundfile
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> folder = tempfile.mkdtemp()
    >>> soundfile.write(f"{folder}/a.wav", np.zeros(16000), 16000)
    >>> with open(f"{folder}/train.csv", "w") as f:
    ...     _ = f.write("ID,duration,wav,spk_id\\n")
    ...     _ = f.write(f"s1/a,1.0,{folder}/a.wav,s1\\n")
    >>> chunker = RandomChunker(0.5)
    >>> data = training_dataset(f"{folder}/train.csv", chunker,
    ...                         CategoricalEncoder())
    >>> item = data[0]
    >>> item["sig"].shape, int(item["spk_id_encoded"])
    (torch.Size([8000]), 0)
    """
    dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path)

    @sb.utils.data_pipeline.takes("id", "wav", "duration")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(utterance_id, wav, duration):
        return chunker(utterance_id, wav, float(duration))

    @sb.utils.data_pipeline.takes("spk_id")
    @sb.utils.data_pipeline.provides("spk_id_encoded")
    def label_pipeline(spk_id):
        return torch.LongTensor([label_encoder.encode_label(spk_id)])

    label_encoder.update_from_didataset(dataset, output_key="spk_id")
    sb.dataio.dataset.add_dynamic_item([dataset], audio_pipeline)
    sb.dataio.dataset.add_dynamic_item([dataset], label_pipeline)
    sb.dataio.dataset.set_output_keys(
        [dataset], ["id", "sig", "spk_id_encoded"]
    )
    return dataset


def evaluation_dataset(csv_path, sample_rate=16000):
    """Dataset of whole utterances, sorted by duration to limit padding.

    Arguments
    ---------
    csv_path : str
        CSV with columns ``ID,duration,wav,spk_id``.
    sample_rate : int
        Sample rate of the returned signals.

    Returns
    -------
    speechbrain.dataio.dataset.DynamicItemDataset
        Items with keys ``id`` and ``sig``.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile
    >>> folder = tempfile.mkdtemp()
    >>> soundfile.write(f"{folder}/a.wav", np.zeros(4000), 16000)
    >>> with open(f"{folder}/test.csv", "w") as f:
    ...     _ = f.write("ID,duration,wav,spk_id\\n")
    ...     _ = f.write(f"s1/a,0.25,{folder}/a.wav,s1\\n")
    >>> evaluation_dataset(f"{folder}/test.csv")[0]["sig"].shape
    torch.Size([4000])
    """
    dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path)

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return read_audio(wav, sample_rate)

    sb.dataio.dataset.add_dynamic_item([dataset], audio_pipeline)
    sb.dataio.dataset.set_output_keys([dataset], ["id", "sig"])
    return dataset.filtered_sorted(sort_key="duration")
