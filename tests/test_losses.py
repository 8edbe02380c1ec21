"""Tests of the losses: hand-computed values, gradients, cross-checks."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from speaker_metric_learning.losses import (
    AdditiveAngularMarginLoss,
    CenterLoss,
    CongenerousCosineLoss,
    SoftmaxLoss,
)

CLASSIFICATION_LOSSES = [
    SoftmaxLoss,
    CenterLoss,
    CongenerousCosineLoss,
    AdditiveAngularMarginLoss,
]


def with_weights(loss, **tensors):
    """Copies the given tensors into the loss's parameters."""
    with torch.no_grad():
        for name, value in tensors.items():
            getattr(loss, name).copy_(value)
    return loss


def random_batch(batch, dim, n_classes, seed, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch, dim, generator=generator, dtype=dtype)
    labels = torch.randint(0, n_classes, (batch,), generator=generator)
    return embeddings, labels


# ----------------------------------------------------------------- contract


@pytest.mark.parametrize("loss_class", CLASSIFICATION_LOSSES)
def test_speechbrain_shapes_give_same_value(loss_class):
    loss = loss_class(4, 3)
    x, y = random_batch(5, 4, 3, seed=0)
    flat = loss(x, y)
    assert torch.allclose(loss(x.unsqueeze(1), y.unsqueeze(1)), flat)
    assert flat.dim() == 0


@pytest.mark.parametrize("loss_class", CLASSIFICATION_LOSSES)
def test_bad_inputs_raise_clear_errors(loss_class):
    loss = loss_class(4, 3)
    x, y = random_batch(5, 4, 3, seed=0)
    with pytest.raises(ValueError, match="batch size: 5 != 4"):
        loss(x, y[:4])
    with pytest.raises(ValueError, match="embeddings of size 4, got 2"):
        loss(x[:, :2], y)
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        loss(x, torch.tensor([0, 1, 2, 3, 0]))
    with pytest.raises(ValueError, match="integer class indices"):
        loss(x, y.float())
    with pytest.raises(ValueError, match=r"\[batch, dim\]"):
        loss(x.reshape(5, 2, 2), y)
    with pytest.raises(ValueError, match="empty"):
        loss(x[:0], y[:0])


@pytest.mark.parametrize("loss_class", CLASSIFICATION_LOSSES)
def test_statistics_are_python_floats(loss_class):
    loss = loss_class(4, 3)
    x, y = random_batch(6, 4, 3, seed=1)
    loss(x, y)
    assert {"accuracy", "embedding_norm"} <= set(loss.statistics)
    assert all(type(v) is float for v in loss.statistics.values())
    assert loss.statistics["embedding_norm"] == pytest.approx(
        x.norm(dim=1).mean().item(), rel=1e-6
    )


def test_every_loss_declares_cosine_scoring():
    for loss_class in CLASSIFICATION_LOSSES:
        assert loss_class.scoring == "cosine"


# ------------------------------------------------------- hand-computed values


def test_softmax_by_hand():
    loss = with_weights(SoftmaxLoss(2, 2), weight=torch.eye(2))
    x = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 0, 1])
    # logits are x itself:
    # [2, 0] target 0: log(1 + e^-2); [0, 1] target 0: log(1 + e^1);
    # [1, 1] target 1: log(2).
    expected = (
        math.log(1 + math.exp(-2)) + math.log(1 + math.e) + math.log(2)
    ) / 3
    assert loss(x, y).item() == pytest.approx(expected, rel=1e-6)
    # argmax: class 0 (right), class 1 (wrong), tie broken to 0 (wrong)
    assert loss.statistics["accuracy"] == pytest.approx(1 / 3)


def test_congenerous_cosine_by_hand():
    loss = CongenerousCosineLoss(2, 2, scale=2.0)
    loss = with_weights(loss, weight=torch.tensor([[3.0, 0.0], [0.0, 0.5]]))
    x = torch.tensor([[1.0, 1.0], [0.0, 4.0]])
    y = torch.tensor([0, 0])
    # cosines: [1/sqrt2, 1/sqrt2] and [0, 1]; logits twice that.
    # first: logits equal, log(2); second: logits [0, 2], log(1 + e^2)
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert loss(x, y).item() == pytest.approx(expected, rel=1e-6)


def test_additive_angular_margin_by_hand():
    loss = AdditiveAngularMarginLoss(2, 2, margin=0.5, scale=2.0)
    loss = with_weights(loss, weight=torch.eye(2))
    x = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    y = torch.tensor([0, 0])
    # first: theta = 0, target logit 2 cos(0.5), other 2 cos(pi / 2) = 0
    first = math.log(1 + math.exp(-2 * math.cos(0.5)))
    # second: theta = pi / 3, target 2 cos(pi / 3 + 0.5), other 2 cos(pi / 6)
    target = 2 * math.cos(math.pi / 3 + 0.5)
    other = 2 * math.cos(math.pi / 6)
    second = math.log(1 + math.exp(other - target))
    assert loss(x, y).item() == pytest.approx((first + second) / 2, rel=1e-6)
    # predictions use cosines without margin: class 0, then class 1
    assert loss.statistics["accuracy"] == 0.5
    assert loss.statistics["margin"] == 0.5


def test_additive_angular_margin_beyond_pi_by_hand():
    margin = 0.5
    loss = AdditiveAngularMarginLoss(2, 2, margin=margin, scale=1.0)
    loss = with_weights(loss, weight=torch.eye(2))
    # theta = pi - 0.2 > pi - margin: target cos(theta) - (1 - cos(margin))
    theta = math.pi - 0.2
    x = torch.tensor([[math.cos(theta), math.sin(theta)]], dtype=torch.float64)
    loss = loss.double()
    target = math.cos(theta) - (1 - math.cos(margin))
    other = math.sin(theta)  # cosine with the second axis
    expected = math.log(1 + math.exp(other - target))
    assert loss(x, torch.tensor([0])).item() == pytest.approx(expected)


def target_logit(loss, theta):
    """Target logit of AAM for an embedding at angle theta from class 0."""
    x = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    labels = torch.zeros(len(theta), dtype=torch.long)
    logits, _ = loss.logits(x, labels)
    return logits[:, 0]


def test_additive_angular_margin_target_decreases_continuously():
    margin = 0.5
    loss = AdditiveAngularMarginLoss(2, 2, margin=margin, scale=1.0).double()
    loss = with_weights(loss, weight=torch.eye(2, dtype=torch.float64))
    theta = torch.linspace(0.01, math.pi - 0.01, 2001, dtype=torch.float64)
    logits = target_logit(loss, theta)
    steps = logits[1:] - logits[:-1]
    assert (steps < 0).all()
    # no jump: the largest step is that of a smooth curve of slope <= 1
    assert steps.abs().max() < 2 * (theta[1] - theta[0])
    # continuity at the switch theta = pi - margin, both sides equal -1
    around = torch.tensor(
        [math.pi - margin - 1e-9, math.pi - margin + 1e-9],
        dtype=torch.float64,
    )
    assert torch.allclose(
        target_logit(loss, around), torch.tensor([-1.0, -1.0]).double()
    )


def test_center_loss_by_hand():
    loss = CenterLoss(2, 2, center_weight=0.5)
    loss = with_weights(
        loss,
        weight=torch.eye(2),
        centers=torch.tensor([[1.0, 1.0], [0.0, -2.0]]),
    )
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1])
    # CE: [1, 0] target 0: log(1 + e^-1); [0, 1] target 1: log(1 + e^-1)
    cross_entropy = math.log(1 + math.exp(-1))
    # cos to own centre: 1/sqrt2 and -1
    center = ((1 - 1 / math.sqrt(2)) ** 2 / 2 + (1 + 1) ** 2 / 2) / 2
    value = loss(x, y).item()
    assert value == pytest.approx(cross_entropy + 0.5 * center, rel=1e-6)
    assert loss.statistics["center_term"] == pytest.approx(center, rel=1e-6)
    assert loss.statistics["cross_entropy"] == pytest.approx(cross_entropy)


# ------------------------------------------------------ equivalences


def scaled_normalised_softmax(x, weight, labels, scale):
    logits = scale * F.normalize(x, dim=1) @ F.normalize(weight, dim=1).t()
    return F.cross_entropy(logits, labels)


def test_additive_angular_margin_zero_is_normalised_softmax():
    loss = AdditiveAngularMarginLoss(8, 5, margin=0.0, scale=10.0)
    x, y = random_batch(16, 8, 5, seed=2)
    expected = scaled_normalised_softmax(x, loss.weight, y, 10.0)
    assert torch.allclose(loss(x, y), expected, atol=1e-6)


def test_congenerous_cosine_is_scaled_cosine_cross_entropy():
    loss = CongenerousCosineLoss(8, 5, scale=6.25)
    x, y = random_batch(16, 8, 5, seed=3)
    expected = scaled_normalised_softmax(x, loss.weight, y, 6.25)
    assert torch.allclose(loss(x, y), expected, atol=1e-6)


def test_center_weight_zero_is_softmax():
    center = CenterLoss(8, 5, center_weight=0.0)
    softmax = with_weights(SoftmaxLoss(8, 5), weight=center.weight)
    x, y = random_batch(16, 8, 5, seed=4)
    assert torch.allclose(center(x, y), softmax(x, y))


def test_margin_can_be_reassigned_between_batches():
    loss = AdditiveAngularMarginLoss(8, 5, margin=0.0, scale=10.0)
    x, y = random_batch(16, 8, 5, seed=5)
    without = loss(x, y)
    loss.margin = 0.3
    assert loss(x, y) > without
    assert loss.statistics["margin"] == 0.3


# ------------------------------------------------------------- gradients


@pytest.mark.parametrize("loss_class", CLASSIFICATION_LOSSES)
def test_gradcheck_embeddings_and_parameters(loss_class):
    loss = loss_class(3, 3).double()
    x, y = random_batch(5, 3, 3, seed=6, dtype=torch.float64)
    names = [name for name, _ in loss.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in loss.parameters()]

    def call(embeddings, *parameters):
        return functional_call(
            loss, dict(zip(names, parameters, strict=True)), (embeddings, y)
        )

    assert torch.autograd.gradcheck(call, (x.requires_grad_(), *params))


@pytest.mark.parametrize("loss_class", CLASSIFICATION_LOSSES)
def test_gradients_reach_owned_parameters(loss_class):
    loss = loss_class(4, 3)
    x, y = random_batch(6, 4, 3, seed=7)
    x.requires_grad_()
    loss(x, y).backward()
    for name, parameter in loss.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name
        assert name in loss.state_dict()
    assert x.grad.abs().sum() > 0


# -------------------------------------- pytorch-metric-learning cross-checks


def compare_with_reference(ours, reference, x, y):
    """Same loss value and gradients (embeddings, class weights)."""
    x_ours = x.clone().requires_grad_()
    x_reference = x.clone().requires_grad_()
    value = ours(x_ours, y)
    expected = reference(x_reference, y)
    assert torch.allclose(value, expected, atol=1e-10)
    value.backward()
    expected.backward()
    assert torch.allclose(x_ours.grad, x_reference.grad, atol=1e-10)
    assert torch.allclose(ours.weight.grad, reference.W.grad.t(), atol=1e-10)


def test_additive_angular_margin_matches_pml_arcface():
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    margin, scale = 0.3, 7.0
    ours = AdditiveAngularMarginLoss(6, 4, margin=margin, scale=scale)
    reference = pml.ArcFaceLoss(
        num_classes=4, embedding_size=6, margin=math.degrees(margin), scale=7
    )
    ours, reference = ours.double(), reference.double()
    with torch.no_grad():
        reference.W.copy_(ours.weight.t())
    for seed in range(3):
        x, y = random_batch(12, 6, 4, seed=10 + seed, dtype=torch.float64)
        # PML has no special case beyond pi: stay below pi - margin
        cosines = F.normalize(x, dim=1) @ F.normalize(ours.weight, dim=1).t()
        assert cosines.gather(1, y[:, None]).min() > -math.cos(margin)
        ours.zero_grad()
        reference.zero_grad()
        compare_with_reference(ours, reference, x, y)


def test_congenerous_cosine_matches_pml_normalized_softmax():
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    ours = CongenerousCosineLoss(6, 4, scale=6.25).double()
    reference = pml.NormalizedSoftmaxLoss(
        num_classes=4, embedding_size=6, temperature=1 / 6.25
    ).double()
    with torch.no_grad():
        reference.W.copy_(ours.weight.t())
    x, y = random_batch(12, 6, 4, seed=20, dtype=torch.float64)
    compare_with_reference(ours, reference, x, y)
