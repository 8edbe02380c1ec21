"""One SpeechBrain ``Brain`` that trains an embedding network with any loss.

Every loss of :mod:`speaker_metric_learning.losses` takes
``(embeddings, labels)`` and returns a scalar, so the same Brain trains the
classification losses (whose class weights live in the loss module) and the
pair losses (which mine the batch). Both the embedding network and the loss
are entries of ``modules``, so the optimizer and the checkpointer see the
loss parameters.

Expected hyperparameters (see ``hparams/aam.yaml``): ``modules`` with
``embedding_model`` and ``loss``; ``epoch_counter``; ``checkpointer``;
``train_logger``; optionally ``chunker`` (re-seeded every epoch, like a
``batch_sampler`` given in ``train_loader_kwargs``),
``lr_scheduler`` (called at the end of every epoch with the epoch's
watched value and returning ``(old_lr, new_lr)``, as SpeechBrain's
``NewBobScheduler``, which :func:`new_bob_annealing` builds; registered with
the checkpointer so that a resumed run continues its schedule),
``margin_schedule`` (called with the optimizer step count after each
optimizer step, and once the checkpoint is recovered, so that a resumed
run trains on the margin of its step: e.g.
:class:`speaker_metric_learning.losses.LinearMarginWarmup`),
``wav_augment`` (``(wavs, lengths) -> (wavs, lengths)`` applied to
training batches, e.g. :func:`speaker_metric_learning.augment.
waveform_augmenter`), ``valid_split`` (``"speaker"``: validation speakers
are not training classes, so only the EER is computed on validation
batches), ``tensorboard_writer`` (a ``SummaryWriter``).

Validation, when ``fit`` is given a validation set, reports the loss (not
for speaker-disjoint validation) and ``eer``, the equal error rate of the
cosine scores of all pairs of validation embeddings (at most 2,000,000,
drawn at random beyond: ``scoring.cosine.pairwise_eer``); the EER is then
the value watched by the scheduler and stored in the checkpoint's meta.

Authors
 * speaker_metric_learning developers
"""

import json
import logging
import os
import re

import speechbrain as sb
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel

from speaker_metric_learning.losses import TrainingHealth
from speaker_metric_learning.scoring.cosine import pairwise_eer

logger = logging.getLogger(__name__)

#: Pairs of validation embeddings scored for the validation EER.
#: Entry of the Brain's checkpoint file holding the epoch's statistics so
#: far (intra-epoch checkpoints).
EPOCH_STATE_KEY = "speaker_brain_epoch_state"


class NonFiniteLossError(RuntimeError):
    """Raised when a training batch gives a NaN or infinite loss."""


@sb.utils.checkpoints.register_checkpoint_hooks
class SpeakerBrain(sb.core.Brain):
    """Trains ``modules.embedding_model`` with ``modules.loss``.

    Besides SpeechBrain's loop it: calls ``set_epoch`` on the training
    batch sampler and chunker every epoch (SpeechBrain only does so for
    samplers it wraps itself, under DDP); averages the loss module's
    ``statistics`` over each stage and writes them to the train log, with
    the epoch's health (a warning when embeddings collapse); stops
    with the ids of the batch when the loss is not finite; on recovery,
    drops the train-log lines of epochs that the checkpoint does not hold
    (a kill between logging and saving), so that every epoch is logged
    once, and an epoch resumed from an intra-epoch checkpoint logs the
    statistics of all its batches; and wraps modules
    for CPU (gloo) DDP without the SyncBatchNorm conversion that gloo lacks.

    Example
    -------
    >>> import speechbrain, torch
    >>> class Mean(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.proj = torch.nn.Linear(1, 4)
    ...     def forward(self, wavs, lengths=None):
    ...         return self.proj(wavs.mean(1, keepdim=True)).unsqueeze(1)
    >>> class Dist(torch.nn.Module):
    ...     statistics = {}
    ...     def forward(self, embeddings, labels):
    ...         return embeddings.pow(2).mean()
    >>> brain = SpeakerBrain(
    ...     modules={"embedding_model": Mean(), "loss": Dist()},
    ...     run_opts={"device": "cpu"},
    ... )
    >>> item = {"id": "a", "sig": torch.ones(8)}
    >>> item["spk_id_encoded"] = torch.tensor([0])
    >>> batch = speechbrain.dataio.batch.PaddedBatch([item])
    >>> valid = speechbrain.Stage.VALID
    >>> embeddings = brain.compute_forward(batch, valid)
    >>> embeddings.shape
    torch.Size([1, 1, 4])
    >>> brain.compute_objectives(embeddings, batch, valid).shape
    torch.Size([])
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._valid_embeddings, self._valid_labels = [], []

    def compute_forward(self, batch, stage):
        """Embeds the batch's waveforms (augmented in training):
        ``[batch, 1, dim]``."""
        batch = batch.to(self.device)
        wavs, lengths = batch.sig
        augment = self._hparam("wav_augment")
        if stage == sb.Stage.TRAIN and augment is not None:
            wavs, lengths = augment(wavs, lengths)
        return self.modules.embedding_model(wavs, lengths)

    def compute_objectives(self, predictions, batch, stage):
        """Applies the loss to the embeddings and the speaker labels."""
        labels = batch.spk_id_encoded.data
        augment = self._hparam("wav_augment")
        if stage == sb.Stage.TRAIN and augment is not None:
            labels = augment.replicate_labels(labels)
        if stage == sb.Stage.VALID:
            self._valid_embeddings.append(
                predictions.detach().reshape(len(labels), -1).cpu()
            )
            self._valid_labels.append(labels.reshape(-1).cpu())
            if not self._valid_loss_applies:
                return torch.zeros((), device=self.device)
        loss = self.modules.loss(predictions, labels)
        if stage == sb.Stage.TRAIN and not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss is {loss.item()} on the batch of utterances "
                f"{', '.join(batch.id)}: lower the learning rate or check "
                "this audio. The last checkpoint is left as it was."
            )
        if stage == sb.Stage.TRAIN:
            self.health.update(self._loss_module, predictions)
        self._accumulate(getattr(self._loss_module, "statistics", {}))
        return loss

    @property
    def _loss_module(self):
        loss = self.modules.loss
        return (
            loss.module if isinstance(loss, DistributedDataParallel) else loss
        )

    def _accumulate(self, statistics):
        for name, value in statistics.items():
            total, count = self._stage_statistics.get(name, (0.0, 0))
            self._stage_statistics[name] = (total + float(value), count + 1)

    def stage_statistics(self):
        """Averages of the loss statistics over the batches of this stage.

        Returns
        -------
        dict
            Statistic name to mean value.
        """
        return {
            name: total / count
            for name, (total, count) in self._stage_statistics.items()
        }

    def on_fit_start(self):
        """Starts with empty statistics, registers the learning rate
        scheduler with the checkpointer, recovers the checkpoint, then sets
        the margin of the recovered step."""
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        if (
            scheduler is not None
            and self.checkpointer is not None
            and "lr_scheduler" not in self.checkpointer.recoverables
        ):
            self.checkpointer.add_recoverable("lr_scheduler", scheduler)
        super().on_fit_start()
        schedule = self._hparam("margin_schedule")
        if schedule is not None:
            schedule(self.optimizer_step)
        self._trim_train_log()
        self._stage_statistics = {}
        self.health = getattr(self.hparams, "health", None) or TrainingHealth()

    def _trim_train_log(self):
        """Drops the train-log lines of epochs that the recovered checkpoint
        does not hold: an epoch logged just before the process was killed,
        before its checkpoint was saved, is trained and logged again, so
        every epoch appears once."""
        path = getattr(self._hparam("train_logger"), "save_file", None)
        counter = self._hparam("epoch_counter")
        if (
            path is None
            or counter is None
            or not sb.utils.distributed.if_main_process()
            or not os.path.isfile(path)
        ):
            return
        with open(path, encoding="utf-8") as log:
            lines = log.readlines()
        kept = [
            line
            for line in lines
            if (epoch := logged_epoch(line)) is None or epoch <= counter.current
        ]
        if len(kept) == len(lines):
            return
        logger.warning(
            "%s: removed %d lines of epochs after the checkpoint recovered "
            "(epoch %d); they are trained again",
            path,
            len(lines) - len(kept),
            counter.current,
        )
        partial = f"{path}.partial"
        with open(partial, "w", encoding="utf-8") as log:
            log.writelines(kept)
        os.replace(partial, path)

    @property
    def _valid_loss_applies(self):
        return self._hparam("valid_split") != "speaker"

    def _hparam(self, name):
        """The hyperparameter ``name``, None when absent."""
        return getattr(getattr(self, "hparams", None), name, None)

    @sb.utils.checkpoints.mark_as_saver
    def _save(self, path):
        """SpeechBrain's step counts, plus the training statistics of the
        epoch so far."""
        super()._save(path)
        state = {
            "stage_statistics": {
                name: list(pair)
                for name, pair in getattr(self, "_stage_statistics", {}).items()
            },
            "health": vars(getattr(self, "health", TrainingHealth())),
        }
        plain = json.loads(json.dumps(state, default=float))
        with open(path, "a", encoding="utf-8") as file:
            file.write(
                yaml.safe_dump({EPOCH_STATE_KEY: plain}, sort_keys=False)
            )

    @sb.utils.checkpoints.mark_as_loader
    def _recover(self, path, end_of_epoch):
        """Recovers SpeechBrain's step counts, and after an intra-epoch
        checkpoint the statistics of the epoch so far. An end-of-epoch
        checkpoint, saved when the training stage ends (before SpeechBrain
        resets them), holds the finished epoch's step count and mean loss:
        they are reset, or they would leak into the next epoch's mean."""
        super()._recover(path, end_of_epoch)
        if end_of_epoch:
            self.step, self.avg_train_loss = 0, 0.0
        with open(path, encoding="utf-8") as file:
            saved = yaml.safe_load(file)
        self._resumed_epoch_state = (
            None if end_of_epoch else saved.get(EPOCH_STATE_KEY)
        )

    def on_stage_start(self, stage, epoch=None):
        """Re-seeds the epoch's chunks and batches; resets statistics (or
        restores those of an epoch resumed mid-way)."""
        self._stage_statistics = {}
        self._valid_embeddings, self._valid_labels = [], []
        resumed = getattr(self, "_resumed_epoch_state", None)
        if stage == sb.Stage.TRAIN and resumed:
            self._stage_statistics = {
                name: tuple(pair)
                for name, pair in resumed["stage_statistics"].items()
            }
            vars(self.health).update(resumed["health"])
        self._resumed_epoch_state = None
        if stage == sb.Stage.TRAIN and epoch is not None:
            seeded = (
                getattr(self.hparams, "chunker", None),
                getattr(self, "batch_sampler", None),
            )
            for item in seeded:
                if hasattr(item, "set_epoch"):
                    item.set_epoch(epoch)

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Advances the margin schedule once per optimizer step, and logs
        the step's loss to TensorBoard."""
        schedule = getattr(self.hparams, "margin_schedule", None)
        if should_step and schedule is not None:
            schedule(self.optimizer_step)
        writer = getattr(self.hparams, "tensorboard_writer", None)
        if should_step and writer is not None:
            writer.add_scalar("train/step_loss", loss, self.optimizer_step)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs the stage, anneals the learning rate and checkpoints."""
        statistics = {"loss": stage_loss, **self.stage_statistics()}
        if stage == sb.Stage.VALID:
            if not self._valid_loss_applies:
                del statistics["loss"]
            statistics["eer"] = pairwise_eer(
                torch.cat(self._valid_embeddings),
                torch.cat(self._valid_labels),
            )
            if statistics["eer"] != statistics["eer"]:  # NaN
                logger.warning(
                    "No validation EER: the validation chunks make no "
                    "same-speaker or no different-speaker pair (raise "
                    "valid_fraction)"
                )
        if stage == sb.Stage.TRAIN:
            statistics.update(self.health.check())
            self.train_statistics = statistics
            if not self.has_validation:
                self._end_epoch(epoch, statistics, valid_statistics=None)
        elif stage == sb.Stage.VALID:
            self._end_epoch(epoch, self.train_statistics, statistics)

    def _end_epoch(self, epoch, train_statistics, valid_statistics):
        watched = (
            valid_statistics["eer"]
            if valid_statistics
            else train_statistics["loss"]
        )
        # the epoch's own learning rate is logged, the next one's is set
        lr = self.optimizer.param_groups[0]["lr"]
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        if scheduler is not None:
            _, next_lr = scheduler(watched)
            sb.nnet.schedulers.update_learning_rate(self.optimizer, next_lr)
        self.hparams.train_logger.log_stats(
            stats_meta={"epoch": epoch, "lr": lr},
            train_stats=train_statistics,
            valid_stats=valid_statistics,
        )
        writer = getattr(self.hparams, "tensorboard_writer", None)
        if writer is not None:
            writer.add_scalar("lr", lr, epoch)
            for stage, statistics in (
                ("train", train_statistics),
                ("valid", valid_statistics or {}),
            ):
                for name, value in statistics.items():
                    writer.add_scalar(f"{stage}/{name}", value, epoch)
            writer.flush()
        self.checkpointer.save_and_keep_only(
            meta={"loss": watched, "epoch": epoch},
            num_to_keep=getattr(self.hparams, "checkpoints_to_keep", 2),
        )

    def fit(self, epoch_counter, train_set, valid_set=None, **kwargs):
        """SpeechBrain's ``fit``; logs and checkpoints after each epoch's
        validation, or after each training stage when there is none."""
        self.has_validation = valid_set is not None
        loader_options = kwargs.get("train_loader_kwargs") or {}
        self.batch_sampler = loader_options.get("batch_sampler")
        return super().fit(epoch_counter, train_set, valid_set, **kwargs)

    def _train_loader_specifics(self, dataset, loader_kwargs):
        """Leaves a given batch sampler alone: it shards itself under DDP
        (SpeechBrain would wrap it and split every rank's share again)."""
        if loader_kwargs.get("batch_sampler") is not None:
            return loader_kwargs
        return super()._train_loader_specifics(dataset, loader_kwargs)

    def _wrap_distributed(self):
        """DDP without SyncBatchNorm on CPU, where gloo cannot run it."""
        if not self.distributed_launch or self.device_type != "cpu":
            return super()._wrap_distributed()
        for name, module in self.modules.items():
            if any(p.requires_grad for p in module.parameters()):
                self.modules[name] = DistributedDataParallel(
                    module,
                    device_ids=None,
                    find_unused_parameters=self.find_unused_parameters,
                )


def new_bob_annealing(initial_value, annealing_factor):
    """SpeechBrain's ``NewBobScheduler`` for the Brain's ``lr_scheduler``,
    or None (no annealing) when ``annealing_factor`` is None.

    Called with each epoch's watched value (the validation EER, or the
    training loss without validation), the scheduler multiplies the
    learning rate by ``annealing_factor`` when that value improved by less
    than 0.25 % on the previous epoch's.

    Arguments
    ---------
    initial_value : float
        The learning rate of the first epoch (the optimizer's).
    annealing_factor : float or None
        Factor in (0, 1] applied to the learning rate, or None.

    Returns
    -------
    speechbrain.nnet.schedulers.NewBobScheduler or None
        The scheduler.

    Example
    -------
    >>> new_bob_annealing(0.001, None) is None
    True
    >>> scheduler = new_bob_annealing(0.001, 0.5)
    >>> [scheduler(eer)[1] for eer in (0.30, 0.20, 0.2 * 0.999, 0.25)]
    [0.001, 0.001, 0.0005, 0.00025]
    """
    if annealing_factor is None:
        return None
    return sb.nnet.schedulers.NewBobScheduler(
        initial_value=initial_value, annealing_factor=annealing_factor
    )


def logged_epoch(line):
    """The epoch of a train-log line written by SpeechBrain's
    ``FileTrainLogger`` (``epoch: 3, lr: ... - train loss: ...``).

    Arguments
    ---------
    line : str
        One line of the train log.

    Returns
    -------
    int or None
        The epoch, or None for a line that names none.

    Example
    -------
    >>> logged_epoch("epoch: 12, lr: 1.00e-03 - train loss: 1.5")
    12
    >>> print(logged_epoch("something else"))
    None
    """
    match = re.match(r"epoch: (\d+)\b", line)
    return None if match is None else int(match.group(1))
