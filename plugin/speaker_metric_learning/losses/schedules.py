"""Margin schedules: change a loss's ``margin`` attribute during training.

The margin losses (:class:`AdditiveAngularMarginLoss`, :class:`TripletLoss`,
:class:`PairContrastiveLoss`) read ``self.margin`` at each forward, so a
schedule only assigns that attribute. Schedules are stateless: the margin is
a function of the optimizer step the Brain passes in, so resuming from a
checkpoint (SpeechBrain saves ``Brain.optimizer_step``) gives back the same
margin.

:class:`~speaker_metric_learning.brain.SpeakerBrain` calls the recipe's
``margin_schedule`` with the number of optimizer steps done, after each
optimizer step and once the checkpoint is recovered; the recipes build a
:class:`LinearMarginWarmup` whose ``warmup_steps`` is their top-level
``margin_warmup_steps`` (0 by default: the margin stays as the loss sets
it).

Authors
 * Speaker metric learning contributors 2025
"""


class LinearMarginWarmup:
    """Raises a loss's margin linearly, then holds it.

    The margin is ``initial_margin`` at step 0, grows linearly to
    ``final_margin`` at ``warmup_steps`` and stays there. Creating the
    schedule sets the loss to the step-0 margin.

    Arguments
    ---------
    loss : torch.nn.Module
        Any loss with a ``margin`` attribute.
    final_margin : float, optional
        Margin after the warm-up, in the loss's units (radians for AAM);
        by default the loss's margin when the schedule is created.
    warmup_steps : int
        Number of steps of the warm-up (0: ``final_margin`` at once, i.e.
        no warm-up).
    initial_margin : float
        Margin at step 0.

    Example
    -------
    >>> from speaker_metric_learning.losses import AdditiveAngularMarginLoss
    >>> loss = AdditiveAngularMarginLoss(4, 3, margin=0.2)
    >>> warmup = LinearMarginWarmup(loss, final_margin=0.2, warmup_steps=4)
    >>> loss.margin
    0.0
    >>> [round(warmup(step), 3) for step in (1, 2, 4, 100)]
    [0.05, 0.1, 0.2, 0.2]
    >>> loss.margin
    0.2
    >>> _ = LinearMarginWarmup(loss, warmup_steps=0)  # no warm-up
    >>> loss.margin
    0.2
    """

    def __init__(
        self, loss, final_margin=None, warmup_steps=0, initial_margin=0.0
    ):
        if not hasattr(loss, "margin"):
            raise ValueError(
                f"{type(loss).__name__} has no margin attribute to schedule"
            )
        if final_margin is None:
            final_margin = loss.margin
        if warmup_steps < 0:
            raise ValueError(
                f"warmup_steps must be non-negative, got {warmup_steps}"
            )
        self.loss = loss
        self.final_margin = final_margin
        self.warmup_steps = warmup_steps
        self.initial_margin = initial_margin
        self(0)

    def margin_at(self, step):
        """The margin of the schedule after ``step`` optimizer steps.

        Arguments
        ---------
        step : int
            Number of optimizer steps done.

        Returns
        -------
        float
            The margin.

        Example
        -------
        >>> class Margin:
        ...     margin = 0.0
        >>> warmup = LinearMarginWarmup(Margin(), 1.0, 10, initial_margin=0.5)
        >>> warmup.margin_at(0), warmup.margin_at(5), warmup.margin_at(20)
        (0.5, 0.75, 1.0)
        """
        if step >= self.warmup_steps:
            return self.final_margin
        progress = max(step, 0) / self.warmup_steps
        return self.initial_margin + progress * (
            self.final_margin - self.initial_margin
        )

    def __call__(self, step):
        """Sets the loss's margin for ``step`` and returns it.

        Arguments
        ---------
        step : int
            Number of optimizer steps done (``Brain.optimizer_step``).

        Returns
        -------
        float
            The margin now in use.

        Example
        -------
        >>> class Margin:
        ...     margin = 0.0
        >>> loss = Margin()
        >>> LinearMarginWarmup(loss, 0.4, 2)(1)
        0.2
        >>> loss.margin
        0.2
        """
        self.loss.margin = self.margin_at(step)
        return self.loss.margin
