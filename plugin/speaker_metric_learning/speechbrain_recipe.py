"""Adapters that put our losses inside SpeechBrain's own VoxCeleb script.

SpeechBrain's ``recipes/VoxCeleb/SpeakerRec/train_speaker_embeddings.py``
trains with a fixed sequence of yaml entries::

    feats = modules.mean_var_norm(modules.compute_features(wavs), lens)
    embeddings = modules.embedding_model(feats)
    outputs = modules.classifier(embeddings)
    loss = hparams.compute_cost(outputs, spkid, lens)
    error_metrics.append(ids, outputs, spkid, lens)  # validation only

and optimises and checkpoints ``modules``. With the objects of this module
any loss of :mod:`speaker_metric_learning.losses` trains there from the
yaml alone (``hparams/speechbrain_recipe/``):

- ``classifier``: a :class:`LossHead` that owns the loss, so that the loss's
  weights are among ``modules`` (optimizer, device, checkpoint), and passes
  the embeddings through;
- ``compute_cost``: a :class:`LossCost` that applies the loss to them;
- ``error_stats``: SpeechBrain's ``MetricStats`` with
  :func:`classification_error` for the classification losses, or
  :class:`PairVerificationStats` (the EER of all pairs of validation
  chunks) for any loss;
- ``compute_features`` and ``mean_var_norm``:
  :class:`~speaker_metric_learning.model_io.PassThrough`, so that ``SincTDNN``
  receives the waveforms.

The script draws its batches with a plain shuffled sampler: a pair loss sees
the same-speaker pairs a random batch happens to hold (see
:class:`LossCost`).

Authors
 * Speaker metric learning contributors 2025
"""

import torch
from torch import nn

from speaker_metric_learning.losses import (
    ClassificationLoss,
    PairLoss,
    flatten_batch,
    same_label_pairs,
)
from speaker_metric_learning.scoring.cosine import pairwise_eer


class LossHead(nn.Module):
    """The ``classifier`` of SpeechBrain's script: owns a loss, passes the
    embeddings through.

    Registering the loss as a submodule puts its learnable weights (class
    weights, centres) among the Brain's ``modules``: the optimizer updates
    them, the device move reaches them and the checkpointer saves them
    with ``classifier``. The forward returns its input, which
    :class:`LossCost` and the validation statistics then read.

    Arguments
    ---------
    loss : speaker_metric_learning.losses.MetricLoss
        The training loss (also given to :class:`LossCost`).

    Example
    -------
    >>> from speaker_metric_learning.losses import SoftmaxLoss
    >>> head = LossHead(SoftmaxLoss(embedding_dim=4, n_classes=3))
    >>> sorted(head.state_dict())
    ['loss.weight']
    >>> x = torch.randn(2, 1, 4)
    >>> head(x) is x
    True
    """

    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def forward(self, embeddings):
        """Returns the embeddings unchanged.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[batch, 1, dim]`` (or ``[batch, dim]``).

        Returns
        -------
        torch.Tensor
            ``embeddings``.
        """
        return embeddings


class LossCost:
    """The ``compute_cost`` of SpeechBrain's script: applies one of our
    losses to the embeddings that :class:`LossHead` passed through.

    The relative lengths are ignored: the script trains on chunks of one
    length (``sentence_len``), and every loss reads one embedding per chunk.

    Pair losses see the batches of the script's shuffled sampler, in which
    most speakers appear once. Their miners only form pairs and triplets
    from the labels, so a speaker with one chunk only enters as a negative.
    A batch without any same-speaker pair, or with one speaker only, has
    no term a pair loss was made for: it gets a loss of exactly zero that
    is still part of the graph (``backward`` runs, every gradient is zero),
    for every pair loss alike (a contrastive batch made only of negatives
    would push embeddings apart and pull none together).

    The loss is applied here, outside the ``classifier`` module: under
    SpeechBrain's DDP wrapping its weights' gradients would not be
    averaged across processes, so the script is for one process.

    Arguments
    ---------
    loss : speaker_metric_learning.losses.MetricLoss
        The loss owned by the :class:`LossHead` of the yaml.

    Example
    -------
    >>> from speaker_metric_learning.losses import TripletLoss
    >>> cost = LossCost(TripletLoss(margin=0.4))
    >>> x = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]], [[0.0, 1.0]]])
    >>> cost(x, torch.tensor([[0], [0], [1]]), torch.ones(3))
    tensor(0.2000)
    >>> _ = x.requires_grad_()  # every speaker once: zero, in the graph
    >>> zero = cost(x, torch.tensor([[0], [1], [2]]), torch.ones(3))
    >>> zero.backward()
    >>> float(zero.detach()), float(x.grad.abs().sum())
    (0.0, 0.0)
    """

    def __init__(self, loss):
        self.loss = loss

    def __call__(self, outputs, labels, lengths=None):
        """The loss of a batch.

        Arguments
        ---------
        outputs : torch.Tensor
            Embeddings ``[batch, 1, dim]`` (or ``[batch, dim]``).
        labels : torch.Tensor
            ``[batch, 1]`` (or ``[batch]``) speaker indices.
        lengths : torch.Tensor, optional
            Relative chunk lengths (ignored).

        Returns
        -------
        torch.Tensor
            The scalar loss.
        """
        embeddings, flat_labels = flatten_batch(outputs, labels)
        if isinstance(self.loss, PairLoss) and not has_pairs(flat_labels):
            return embeddings.sum() * 0.0
        return self.loss(embeddings, flat_labels)


def has_pairs(labels):
    """Whether a batch holds a same-speaker pair and two speakers.

    Arguments
    ---------
    labels : torch.Tensor
        ``[batch]`` integer labels.

    Returns
    -------
    bool

    Example
    -------
    >>> has_pairs(torch.tensor([3, 1, 3])), has_pairs(torch.tensor([3, 1]))
    (True, False)
    >>> has_pairs(torch.tensor([2, 2]))  # one speaker: no negative
    False
    """
    positive, negative = same_label_pairs(labels)
    return bool(positive.any() and negative.any())


def classification_error(predictions, targets, length=None, *, loss):
    """Per-chunk errors of a classification loss's speaker prediction.

    The metric of SpeechBrain's ``MetricStats`` for ``error_stats``: the
    predicted speaker is the one of highest score, without the margin a
    loss adds to the target during training
    (:meth:`~speaker_metric_learning.losses.ClassificationLoss.logits`).

    Arguments
    ---------
    predictions : torch.Tensor
        Embeddings ``[batch, 1, dim]`` from :class:`LossHead`.
    targets : torch.Tensor
        ``[batch, 1]`` speaker indices.
    length : torch.Tensor, optional
        Relative lengths (ignored).
    loss : speaker_metric_learning.losses.ClassificationLoss
        The loss whose class weights score the speakers.

    Returns
    -------
    torch.Tensor
        ``[batch]``: 1.0 where the prediction is wrong, else 0.0.

    Example
    -------
    >>> from speaker_metric_learning.losses import AdditiveAngularMarginLoss
    >>> loss = AdditiveAngularMarginLoss(embedding_dim=2, n_classes=2)
    >>> with torch.no_grad():
    ...     _ = loss.weight.copy_(torch.eye(2))
    >>> x = torch.tensor([[[2.0, 0.1]], [[0.3, 1.0]], [[1.0, 0.2]]])
    >>> classification_error(x, torch.tensor([[0], [1], [1]]), loss=loss)
    tensor([0., 0., 1.])
    """
    if not isinstance(loss, ClassificationLoss):
        raise TypeError(
            f"classification_error needs a classification loss, got "
            f"{type(loss).__name__}: use PairVerificationStats for pair losses"
        )
    embeddings, labels = flatten_batch(predictions, targets)
    with torch.no_grad():
        _, scores = loss.logits(embeddings, labels)
    return (scores.argmax(dim=1) != labels).float()


class PairVerificationStats:
    """Validation ``error_stats`` for SpeechBrain's script: the EER of all
    pairs of the validation chunks.

    Collects the embeddings of every validation batch; ``summarize`` scores
    every pair of them by cosine similarity (a pair is a target when its
    speakers match) and returns the equal error rate, as ``train.py``
    validates (:func:`~speaker_metric_learning.scoring.cosine.pairwise_eer`,
    random pairs beyond its maximum). It applies to any loss; it is the one for
    pair losses, which have no classes to predict. The script stores the
    value as ``ErrorRate`` and keeps the checkpoint where it is lowest.

    Example
    -------
    >>> stats = PairVerificationStats()
    >>> x = torch.tensor([[[1.0, 0.1]], [[1.0, -0.1]], [[0.1, 1.0]]])
    >>> stats.append(["a", "b", "c"], x, torch.tensor([[0], [0], [1]]))
    >>> stats.summarize("average")
    0.0
    >>> stats.append(["d"], torch.tensor([[[1.0, 0.0]]]), torch.tensor([[1]]))
    >>> stats.summarize()  # "d" (speaker 1) is nearer "a" and "b" than "c"
    {'EER': 0.5, 'chunks': 4}
    """

    def __init__(self):
        self.ids = []
        self.embeddings = []
        self.labels = []

    def append(self, ids, predictions, targets, length=None):
        """Adds a batch.

        Arguments
        ---------
        ids : list of str
            Chunk ids.
        predictions : torch.Tensor
            Embeddings ``[batch, 1, dim]`` from :class:`LossHead`.
        targets : torch.Tensor
            ``[batch, 1]`` speaker indices.
        length : torch.Tensor, optional
            Relative lengths (ignored).
        """
        embeddings, labels = flatten_batch(predictions, targets)
        self.ids.extend(ids)
        self.embeddings.append(embeddings.detach().cpu())
        self.labels.append(labels.cpu())

    def summarize(self, field=None):
        """The EER of all pairs (NaN without target or non-target pairs).

        Arguments
        ---------
        field : str, optional
            ``"EER"``, or ``"average"`` (the field SpeechBrain's script asks
            of its error statistics): the EER. None: a dict of the EER and
            the number of chunks.

        Returns
        -------
        float or dict
        """
        if not self.embeddings:
            raise ValueError("PairVerificationStats received no batch")
        eer = pairwise_eer(torch.cat(self.embeddings), torch.cat(self.labels))
        if field in ("EER", "average"):
            return eer
        if field is None:
            return {"EER": eer, "chunks": len(self.ids)}
        raise ValueError(
            f"unknown field {field!r}: 'EER', 'average' (the same) or None"
        )


def nothing_to_prepare():
    """Stands for the noise and impulse-response preparation of the script.

    SpeechBrain's script calls ``hparams["prepare_noise_data"]()`` and
    ``hparams["prepare_rir_data"]()`` (downloads) whatever its yaml
    augments; a yaml without augmentation names this function there.

    Example
    -------
    >>> print(nothing_to_prepare())
    None
    """
