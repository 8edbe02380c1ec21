"""Speaker-balanced P x K batch sampling, reproducible and DDP-aware.

Authors
 * Speaker metric learning contributors 2025
"""

import math

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler


class SpeakerBalancedBatchSampler(Sampler):
    """Yields batches of P distinct speakers with K items each.

    A *pass* visits every speaker exactly once, in a random order: the
    speakers are shuffled and cut into batches of ``speakers_per_batch``
    (P), and each speaker contributes ``chunks_per_speaker`` (K) of its
    items drawn at random without replacement. Every speaker thus weighs the
    same in training, whatever its number of utterances. A speaker with
    fewer than K items contributes all of them, completed by draws with
    replacement among its items, so K >= 2 still yields positive pairs
    (possibly of one utterance, of which random chunking usually takes
    different chunks).

    An epoch is one pass, or, with ``batches_per_epoch``, as many passes as
    needed to give that many batches (over all replicas), like the
    reference's fixed-size epochs. When the number of speakers is not a
    multiple of P, each pass drops the last, incomplete batch
    (``drop_last=True``, a different set of speakers at each pass) or keeps
    it with fewer speakers.

    The batches depend only on ``seed`` and the epoch given to
    :meth:`set_epoch`, so every replica computes the same list. Under
    ``torch.distributed``, replica ``rank`` takes batches ``rank``,
    ``rank + num_replicas``, ... so that all replicas get the same number
    of batches. With ``drop_last=True`` the list is cut to a multiple of
    ``num_replicas`` and the shares are disjoint; otherwise it is completed
    by repeating its first batches, which two replicas then both train on.

    Under SpeechBrain's DDP, ``Brain.make_dataloader`` wraps any
    ``batch_sampler`` in its own distributed wrapper: either give this
    sampler ``num_replicas=1, rank=0`` there, or build the ``DataLoader``
    yourself, pass it to ``fit``, and call :meth:`set_epoch` in
    ``on_stage_start``.

    Arguments
    ---------
    labels : sequence
        Speaker of each dataset item (any hashable), in dataset order.
    speakers_per_batch : int
        P, the number of distinct speakers in a batch.
    chunks_per_speaker : int
        K, the number of items of each speaker in a batch.
    seed : int
        Seed of the random order.
    drop_last : bool
        Drop incomplete batches (and cut the batches to a multiple of the
        number of replicas).
    num_replicas : int, optional
        Number of distributed processes; by default the world size of the
        initialised process group, else 1.
    rank : int, optional
        Rank of this process; by default that of the process group, else 0.
    batches_per_epoch : int, optional
        Total number of batches of an epoch over all replicas; by default
        one pass over the speakers.

    Example
    -------
    >>> labels = ["a", "a", "b", "b", "b", "c", "c", "d"]
    >>> sampler = SpeakerBalancedBatchSampler(labels, 2, 2, seed=1)
    >>> len(sampler)
    2
    >>> batches = list(sampler)  # 2 speakers x 2 items; "d" drawn twice
    >>> [len({labels[i] for i in batch}) for batch in batches]
    [2, 2]
    >>> sorted(labels[i] for batch in batches for i in batch)
    ['a', 'a', 'b', 'b', 'c', 'c', 'd', 'd']
    """

    def __init__(
        self,
        labels,
        speakers_per_batch,
        chunks_per_speaker,
        seed=0,
        drop_last=True,
        num_replicas=None,
        rank=None,
        batches_per_epoch=None,
    ):
        if speakers_per_batch < 1 or chunks_per_speaker < 1:
            raise ValueError(
                "speakers_per_batch and chunks_per_speaker must be >= 1, got "
                f"{speakers_per_batch} and {chunks_per_speaker}"
            )
        self.items_of_speaker = group_by_speaker(labels)
        if speakers_per_batch > len(self.items_of_speaker):
            raise ValueError(
                f"speakers_per_batch={speakers_per_batch} but the data has "
                f"only {len(self.items_of_speaker)} speakers: lower it"
            )
        self.speakers_per_batch = speakers_per_batch
        self.chunks_per_speaker = chunks_per_speaker
        self.seed = seed
        self.drop_last = drop_last
        self.num_replicas, self.rank = distributed_position(num_replicas, rank)
        self.batches_per_epoch = batches_per_epoch
        self.epoch = 0
        if len(self) == 0:
            raise ValueError(
                f"{self.batches_in_epoch()} batches of {speakers_per_batch} "
                f"speakers cannot be shared by {self.num_replicas} replicas: "
                "lower speakers_per_batch or set batches_per_epoch"
            )

    def set_epoch(self, epoch):
        """Selects the epoch, hence the random order of the next iteration.

        Arguments
        ---------
        epoch : int
            Epoch number (SpeechBrain's Brain calls this each epoch).
        """
        self.epoch = epoch

    def batches_per_pass(self):
        """Number of batches one pass over the speakers gives.

        Returns
        -------
        int
        """
        full, rest = divmod(len(self.items_of_speaker), self.speakers_per_batch)
        return full + int(rest > 0 and not self.drop_last)

    def batches_in_epoch(self):
        """Number of batches of an epoch, over all replicas.

        Returns
        -------
        int
        """
        if self.batches_per_epoch is not None:
            return self.batches_per_epoch
        return self.batches_per_pass()

    def __len__(self):
        """Number of batches this replica yields in an epoch."""
        if self.drop_last:
            return self.batches_in_epoch() // self.num_replicas
        return math.ceil(self.batches_in_epoch() / self.num_replicas)

    def __iter__(self):
        """Yields this replica's batches, lists of dataset indices."""
        batches = self.epoch_batches()
        total = len(self) * self.num_replicas
        while len(batches) < total:
            batches += batches[: total - len(batches)]
        yield from batches[self.rank : total : self.num_replicas]

    def epoch_batches(self):
        """All the batches of the current epoch, before sharing them.

        Returns
        -------
        list of list of int
        """
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = []
        while True:
            batches += self.pass_batches(rng)
            if len(batches) >= self.batches_in_epoch():
                return batches[: self.batches_in_epoch()]

    def pass_batches(self, rng):
        """The batches of one pass over the speakers.

        Arguments
        ---------
        rng : numpy.random.Generator
            Source of randomness.

        Returns
        -------
        list of list of int
        """
        order = rng.permutation(len(self.items_of_speaker))
        batches = []
        for start in range(0, len(order), self.speakers_per_batch):
            speakers = order[start : start + self.speakers_per_batch]
            if self.drop_last and len(speakers) < self.speakers_per_batch:
                break
            batches.append(
                [
                    item
                    for speaker in speakers
                    for item in self.draw(self.items_of_speaker[speaker], rng)
                ]
            )
        return batches

    def draw(self, items, rng):
        """K items of one speaker: without replacement when it has enough.

        Arguments
        ---------
        items : numpy.ndarray
            Dataset indices of the speaker.
        rng : numpy.random.Generator
            Source of randomness.

        Returns
        -------
        list of int
        """
        k = self.chunks_per_speaker
        if len(items) >= k:
            return rng.choice(items, size=k, replace=False).tolist()
        extra = rng.choice(items, size=k - len(items), replace=True)
        return rng.permutation(np.concatenate([items, extra])).tolist()


def group_by_speaker(labels):
    """Dataset indices of each speaker, in order of first appearance.

    Arguments
    ---------
    labels : sequence
        Speaker of each item (any hashable).

    Returns
    -------
    list of numpy.ndarray
        One int64 array of indices per speaker.

    Example
    -------
    >>> group_by_speaker(["b", "a", "b"])
    [array([0, 2]), array([1])]
    """
    items = {}
    for index, label in enumerate(labels):
        items.setdefault(label, []).append(index)
    if not items:
        raise ValueError("labels is empty: the dataset has no items")
    return [np.array(indices, dtype=np.int64) for indices in items.values()]


def distributed_position(num_replicas=None, rank=None):
    """Number of replicas and rank, from the arguments or the process group.

    Arguments
    ---------
    num_replicas : int, optional
        Given number of replicas.
    rank : int, optional
        Given rank.

    Returns
    -------
    num_replicas : int
    rank : int

    Example
    -------
    >>> distributed_position()  # no process group
    (1, 0)
    >>> distributed_position(4, 2)
    (4, 2)
    """
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(
            f"need num_replicas >= 1 and 0 <= rank < num_replicas, got "
            f"num_replicas={num_replicas}, rank={rank}"
        )
    return num_replicas, rank


class BatchShare(Sampler):
    """This process's share of every batch of a batch sampler.

    Under torchrun each of the N processes takes the n-th of N equal,
    contiguous parts of every batch of the full (single-process) sampler;
    with a P x K sampler, whose batches list each speaker's K items
    together, that is P / N speakers. The N processes together thus train
    on exactly the batches of a single process, one optimizer step each,
    and gradients averaged by DDP equal the single process's for losses
    that average over the batch. The sampler must give batches whose size
    N divides.

    Arguments
    ---------
    sampler : iterable of list
        The full batch sampler (with ``set_epoch``), not sharded itself.
    rank : int
        This process's rank.
    num_replicas : int
        Number of processes.

    Example
    -------
    >>> share = BatchShare([[0, 1, 2, 3], [4, 5, 6, 7]], rank=1,
    ...                    num_replicas=2)
    >>> list(share), len(share)
    ([[2, 3], [6, 7]], 2)
    """

    def __init__(self, sampler, rank, num_replicas):
        self.sampler = sampler
        self.rank = rank
        self.num_replicas = num_replicas

    def set_epoch(self, epoch):
        """Passes the epoch on to the full sampler."""
        self.sampler.set_epoch(epoch)

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        for batch in self.sampler:
            size, rest = divmod(len(batch), self.num_replicas)
            if rest:
                raise ValueError(
                    f"a batch of {len(batch)} items cannot be shared by "
                    f"{self.num_replicas} processes: make speakers_per_batch "
                    "a multiple of the process count (and keep drop_last)"
                )
            yield batch[self.rank * size : (self.rank + 1) * size]
