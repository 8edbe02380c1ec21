"""Audio reading, random chunking and SpeechBrain dataset pipelines.

The recipe's data preparation writes CSV files with the columns
``ID,duration,wav,spk_id``; SpeechBrain's VoxCeleb preparation writes
``ID,duration,wav,start,stop,spk_id``, whose rows are segments ``[start,
stop)`` of the files, in samples (``duration`` is then the file's). This
module turns both into ``speechbrain.dataio.dataset.DynamicItemDataset``
objects:

* training items are random fixed-length chunks, drawn anew every epoch
  from a seeded generator, so a run is reproducible and resumable;
* evaluation items are whole utterances.

Audio is read with ``soundfile`` (only the requested frames are decoded),
mixed down to mono and resampled when the file's rate differs from the
model's.

One file: it is the one path from a CSV row to a training or evaluation
item, in order: the CSV check, the segment of a row, the seeded random
chunk, reading its frames, the substitute chunk when a file cannot be
read, the clipping monitor, and the two datasets that chain them. Its
parts are small and each is used by the next (``read_audio`` is also
imported alone, by scoring and augmentation).

Authors
 * speaker_metric_learning developers
"""

import csv
import logging
import math
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
    # One channel: a view, so that a long file is not copied once more.
    mono = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1)
    waveform = torch.from_numpy(mono)
    if file_rate != sample_rate:
        waveform = torchaudio.functional.resample(
            waveform, file_rate, sample_rate
        )
    return waveform


#: A sample of at least this magnitude is taken to be at full scale (16-bit
#: full scale is 32767 / 32768; resampling rounds clipped plateaus a little).
FULL_SCALE = 0.99
#: Audio with at least this fraction of full-scale samples is reported as
#: clipped.
CLIPPED_FRACTION = 0.01


def clipped_fraction(waveform, full_scale=FULL_SCALE):
    """Fraction of the samples at full scale (``abs(x) >= full_scale``).

    Arguments
    ---------
    waveform : torch.Tensor
        Samples in [-1, 1], any shape.
    full_scale : float
        Magnitude from which a sample counts as clipped.

    Returns
    -------
    float
        Between 0 and 1 (0 for an empty waveform).

    Example
    -------
    >>> clipped_fraction(torch.tensor([0.1, -1.0, 1.0, 0.5]))
    0.5
    """
    if waveform.numel() == 0:
        return 0.0
    # two boolean masks rather than abs(): no float copy of a long file
    count = torch.count_nonzero(waveform >= full_scale)
    count += torch.count_nonzero(waveform <= -full_scale)
    return count.item() / waveform.numel()


class FileListing:
    """Files noted once per process, each appended to a listing file.

    Arguments
    ---------
    path : str or os.PathLike, optional
        File to which ``path<TAB>note`` of every new file is appended; with
        None, files are only remembered.

    Example
    -------
    >>> import os, tempfile
    >>> listing = FileListing(os.path.join(tempfile.mkdtemp(), "bad.txt"))
    >>> listing.add("a.wav", "empty"), listing.add("a.wav", "empty")
    (True, False)
    >>> "a.wav" in listing, open(listing.path).read().splitlines()
    (True, ['a.wav\\tempty'])
    """

    def __init__(self, path=None):
        self.path = path
        self.noted = set()

    def __contains__(self, file):
        return file in self.noted

    def add(self, file, note):
        """Notes ``file``; returns False if it was noted before."""
        if file in self.noted:
            return False
        self.noted.add(file)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as listing:
                listing.write(f"{file}\t{note}\n")
        return True


class ClippingMonitor:
    """Reports audio files whose samples look clipped, once per file.

    Clipped audio is used as it is (it is still speech); each file with at
    least ``min_fraction`` of its samples read at full scale is logged and
    appended, with that fraction, to ``listing``, once per process, so that
    the recipe can count them at the end. Only the samples read are
    checked: for training, the chunks drawn so far.

    Arguments
    ---------
    listing : str or os.PathLike, optional
        File to which ``path<TAB>note`` of every clipped file is appended.
    min_fraction : float
        Fraction of full-scale samples from which a file counts as clipped.

    Example
    -------
    >>> import os, tempfile
    >>> listing = os.path.join(tempfile.mkdtemp(), "clipped.txt")
    >>> monitor = ClippingMonitor(listing)
    >>> loud = torch.tensor([0.2, 1.0, -1.0, 0.3])
    >>> monitor("loud.wav", loud) is loud
    True
    >>> _ = monitor("quiet.wav", torch.tensor([0.2, -0.3]))
    >>> open(listing).read().splitlines()
    ['loud.wav\\t50.0 % of the samples read are at full scale']
    """

    def __init__(self, listing=None, min_fraction=CLIPPED_FRACTION):
        self.clipped = FileListing(listing)
        self.min_fraction = min_fraction

    def __call__(self, path, waveform):
        """Checks ``waveform`` read from ``path``; returns it unchanged."""
        if path in self.clipped:
            return waveform
        fraction = clipped_fraction(waveform)
        if fraction >= self.min_fraction:
            note = (
                f"{100 * fraction:.1f} % of the samples read are at full scale"
            )
            self.clipped.add(path, note)
            logger.warning("audio file %s looks clipped: %s", path, note)
        return waveform


#: Columns of the data CSV files written by the recipe's preparation.
DATA_CSV_COLUMNS = ("ID", "duration", "wav", "spk_id")
#: Columns of the segments of SpeechBrain's VoxCeleb CSV files.
SEGMENT_COLUMNS = ("start", "stop")


def segment(row, sample_rate=16000):
    """Start and duration, in seconds, of the audio of a data CSV row.

    A row with ``start`` and ``stop`` (SpeechBrain's VoxCeleb CSV files,
    sample indices at ``sample_rate``) is that segment of its file;
    otherwise it is the whole file, of ``duration`` seconds.

    Arguments
    ---------
    row : dict
        A CSV row (strings or numbers).
    sample_rate : int
        Rate of the ``start`` and ``stop`` sample indices.

    Returns
    -------
    start, duration : float

    Example
    -------
    >>> segment({"duration": "7.5", "start": "48000", "stop": "96000"})
    (3.0, 3.0)
    >>> segment({"duration": "7.5"})
    (0.0, 7.5)
    """
    if "start" in row and "stop" in row:
        start, stop = int(row["start"]), int(row["stop"])
        return start / sample_rate, (stop - start) / sample_rate
    return 0.0, float(row["duration"])


def check_data_csv(path):
    """Checks a data CSV file before SpeechBrain reads it.

    Arguments
    ---------
    path : str or os.PathLike
        CSV with the columns ``ID,duration,wav,spk_id`` (more are allowed;
        ``start`` and ``stop``, when there, are checked too).

    Returns
    -------
    int
        Number of rows.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Naming the file and line of the first problem: not UTF-8 text, a
        missing column, a row with a missing field, an empty ID, wav path
        or speaker, a duplicate ID, a duration that is not a positive
        number, a segment that is not ``0 <= start < stop`` in whole
        samples; or no row at all.

    Example
    -------
    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/data.csv"
    >>> _ = open(path, "w").write("ID,duration,wav,spk_id\\ns/a,x,a.wav,s\\n")
    >>> check_data_csv(path)
    Traceback (most recent call last):
    ...
    ValueError: .../data.csv, line 2: duration 'x' is not a positive number \
of seconds. Delete the file to prepare the data again.
    """
    redo = "Delete the file to prepare the data again."
    try:
        with open(path, encoding="utf-8", newline="") as csv_file:
            rows = list(csv.reader(csv_file))
    except FileNotFoundError:
        raise FileNotFoundError(f"data CSV file not found: {path}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(
            f"{path} is not a CSV text file ({error}). {redo}"
        ) from None
    if not rows:
        raise ValueError(f"{path} is empty: no header line. {redo}")
    header = rows[0]
    missing = [name for name in DATA_CSV_COLUMNS if name not in header]
    if missing:
        raise ValueError(
            f"{path}, line 1: the header lacks the columns {missing} "
            f"(expected {','.join(DATA_CSV_COLUMNS)}). {redo}"
        )
    columns = [header.index(name) for name in DATA_CSV_COLUMNS]
    bounds = [header.index(name) for name in SEGMENT_COLUMNS if name in header]
    seen = set()
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(
                f"{path}, line {number}: {len(row)} fields where the header "
                f"has {len(header)}. {redo}"
            )
        uid, duration, wav, speaker = (row[column] for column in columns)
        if not (uid and wav and speaker):
            raise ValueError(
                f"{path}, line {number}: empty ID, wav or spk_id. {redo}"
            )
        if uid in seen:
            raise ValueError(
                f"{path}, line {number}: duplicate ID {uid}. {redo}"
            )
        seen.add(uid)
        try:
            seconds = float(duration)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(
                f"{path}, line {number}: duration {duration!r} is not a "
                f"positive number of seconds. {redo}"
            )
        if len(bounds) == 2 and not _is_segment(*(row[i] for i in bounds)):
            raise ValueError(
                f"{path}, line {number}: start {row[bounds[0]]!r} and stop "
                f"{row[bounds[1]]!r} are not sample indices with "
                f"0 <= start < stop. {redo}"
            )
    if len(rows) == 1:
        raise ValueError(f"{path} holds no utterance. {redo}")
    return len(rows) - 1


def _is_segment(start, stop):
    """Whether two CSV fields are sample indices ``0 <= start < stop``."""
    if not (start.isdigit() and stop.isdigit()):
        return False
    return int(start) < int(stop)


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

    def __call__(self, utterance_id, path, duration, start=0.0):
        """The chunk of the utterance of ``duration`` seconds that starts
        ``start`` seconds into the file ``path``."""
        start += self.offset(utterance_id, duration)
        waveform = read_audio(
            path, self.sample_rate, start=start, duration=self.chunk_seconds
        )
        n_samples = int(round(self.chunk_seconds * self.sample_rate))
        if waveform.shape[0] < n_samples:
            repeats = -(-n_samples // waveform.shape[0])
            waveform = waveform.repeat(repeats)
        return waveform[:n_samples]


class SpeakerSubstitutes:
    """The chunk of an utterance, or of another utterance of its speaker
    when its audio cannot be read.

    Arguments
    ---------
    rows : dict
        Utterance id to its CSV row (``wav``, ``duration``, ``spk_id``,
        optionally ``start`` and ``stop``: see :func:`segment`), in CSV
        order (``DynamicItemDataset.data``).
    chunker : RandomChunker
        ``chunker(utterance_id, wav, duration, start) -> waveform``.
    unreadable_list : str or os.PathLike, optional
        File to which ``path<TAB>reason`` of every unreadable file is
        appended, once per process.
    monitor : callable, optional
        ``monitor(path, waveform)`` is called with every chunk read (e.g.
        a :class:`ClippingMonitor`).

    Example
    -------
    >>> import tempfile, numpy as np, soundfile
    >>> folder = tempfile.mkdtemp()
    >>> soundfile.write(f"{folder}/good.wav", np.ones(8000), 16000)
    >>> _ = open(f"{folder}/bad.wav", "wb").write(b"not audio")
    >>> rows = {
    ...     "s/bad": {"wav": f"{folder}/bad.wav", "duration": "1.0",
    ...               "spk_id": "s"},
    ...     "s/good": {"wav": f"{folder}/good.wav", "duration": "0.5",
    ...                "spk_id": "s"},
    ... }
    >>> substitutes = SpeakerSubstitutes(rows, RandomChunker(0.25),
    ...                                  f"{folder}/unreadable.txt")
    >>> substitutes("s/bad").shape
    torch.Size([4000])
    >>> open(f"{folder}/unreadable.txt").read().startswith(
    ...     f"{folder}/bad.wav")
    True
    """

    def __init__(self, rows, chunker, unreadable_list=None, monitor=None):
        self.rows = rows
        self.chunker = chunker
        self.unreadable = FileListing(unreadable_list)
        self.monitor = monitor
        self.by_speaker = {}
        for utterance_id, row in rows.items():
            self.by_speaker.setdefault(row["spk_id"], []).append(utterance_id)

    def _chunk(self, utterance_id):
        row = self.rows[utterance_id]
        start, duration = segment(row, self.chunker.sample_rate)
        chunk = self.chunker(utterance_id, row["wav"], duration, start)
        if self.monitor is not None:
            self.monitor(row["wav"], chunk)
        return chunk

    def __call__(self, utterance_id):
        try:
            return self._chunk(utterance_id)
        except AudioReadError as error:
            first_error = error
            self._report(utterance_id, error)
        speaker = self.rows[utterance_id]["spk_id"]
        others = self.by_speaker[speaker]
        position = others.index(utterance_id)
        for other in others[position + 1 :] + others[:position]:
            try:
                waveform = self._chunk(other)
            except AudioReadError as error:
                self._report(other, error)
                continue
            return waveform
        raise AudioReadError(
            f"no audio of speaker {speaker} can be read ({len(others)} "
            f"files; {first_error}): fix or remove these files and prepare "
            "the data again"
        )

    def _report(self, utterance_id, error):
        """Logs and lists an unreadable file, once per process."""
        if not self.unreadable.add(self.rows[utterance_id]["wav"], error):
            return
        logger.warning(
            "%s; training uses other utterances of speaker %s instead%s",
            error,
            self.rows[utterance_id]["spk_id"],
            f" (listed in {self.unreadable.path})"
            if self.unreadable.path
            else "",
        )


def training_dataset(
    csv_path, chunker, label_encoder, unreadable_list=None, clipped_list=None
):
    """Dataset of random chunks with their encoded speaker labels.

    An utterance whose audio cannot be read (undecodable, NaN/Inf samples:
    :class:`AudioReadError`) does not stop training: the chunk of the next
    readable utterance of the same speaker (in CSV order) is used instead,
    so labels and batch shapes are unchanged and runs stay reproducible.
    Each such file is logged once per process and appended to
    ``unreadable_list``; when no utterance of the speaker can be read, the
    error is raised. Chunks that look clipped are used as they are and
    listed (:class:`ClippingMonitor`).

    Arguments
    ---------
    csv_path : str
        CSV with columns ``ID,duration,wav,spk_id`` (chunks are drawn from
        whole files), or ``ID,duration,wav,start,stop,spk_id`` (from the
        segments).
    chunker : RandomChunker
        Draws the chunk of each utterance.
    label_encoder : speechbrain.dataio.encoder.CategoricalEncoder
        Maps speaker ids to integers; filled from this CSV if empty.
    unreadable_list : str or os.PathLike, optional
        File to which ``path<TAB>reason`` of every unreadable file is
        appended (once per process).
    clipped_list : str or os.PathLike, optional
        File to which the files whose chunks look clipped are appended
        (once per process).

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
    check_data_csv(csv_path)
    dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path)
    substitute = SpeakerSubstitutes(
        dataset.data, chunker, unreadable_list, ClippingMonitor(clipped_list)
    )

    @sb.utils.data_pipeline.takes("id")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(utterance_id):
        return substitute(utterance_id)

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


def evaluation_dataset(csv_path, sample_rate=16000, clipped_list=None):
    """Dataset of whole utterances, sorted by duration to limit padding.

    Utterances that look clipped are used as they are and listed
    (:class:`ClippingMonitor`).

    Arguments
    ---------
    csv_path : str
        CSV with columns ``ID,duration,wav,spk_id`` (whole files), or
        ``ID,duration,wav,start,stop,spk_id`` (segments).
    sample_rate : int
        Sample rate of the returned signals (and of ``start``/``stop``).
    clipped_list : str or os.PathLike, optional
        File to which the utterances that look clipped are appended.

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
    check_data_csv(csv_path)
    dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path)
    monitor = ClippingMonitor(clipped_list)

    @sb.utils.data_pipeline.takes("id", "wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(utterance_id, wav):
        row = dataset.data[utterance_id]
        # a whole file is read to its end, whatever its header said
        start, duration = (
            segment(row, sample_rate) if "stop" in row else (0, None)
        )
        return monitor(wav, read_audio(wav, sample_rate, start, duration))

    sb.dataio.dataset.add_dynamic_item([dataset], audio_pipeline)
    sb.dataio.dataset.set_output_keys([dataset], ["id", "sig"])
    return dataset.filtered_sorted(sort_key="duration")
