"""Tests of the losses: hand-computed values, gradients, cross-checks.

One file: the six losses share one contract, distances, miners and
reducers, and the tests check them against each other (the same contract
cases, parametrised over every loss), which split files would repeat.
"""

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from speaker_metric_learning.losses import (
    MINERS,
    AdditiveAngularMarginLoss,
    CenterLoss,
    CongenerousCosineLoss,
    HardNegativeMiner,
    LinearMarginWarmup,
    PairContrastiveLoss,
    SemiHardNegativeMiner,
    SoftmaxLoss,
    TrainingHealth,
    TripletLoss,
    all_triplets,
    distance_matrix,
)
from speaker_metric_learning.losses.health import mean_pairwise_cosine

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


# =============================================================== pair losses


def speaker_batch(speakers, per_speaker, dim, seed, dtype=torch.float64):
    """Random embeddings of ``speakers`` x ``per_speaker`` items."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(speakers).repeat_interleave(per_speaker)
    embeddings = torch.randn(len(labels), dim, generator=generator)
    return embeddings.to(dtype), labels


def loop_distance(x, i, j, distance):
    """Distance between two rows, written independently of the package."""
    if distance == "cosine":
        return 1 - torch.dot(x[i], x[j]) / (x[i].norm() * x[j].norm())
    return (x[i] - x[j]).norm()


def loop_triplets(labels):
    """All (anchor, positive, negative) triplets by explicit loops."""
    n = len(labels)
    return {
        (a, p, q)
        for a in range(n)
        for p in range(n)
        for q in range(n)
        if a != p and labels[a] == labels[p] and labels[q] != labels[a]
    }


def triplet_set(triplets):
    """Index tensors (anchors, positives, negatives) as a set of tuples."""
    return set(zip(*[t.tolist() for t in triplets], strict=True))


def test_distance_matrix_matches_loops():
    x, _ = speaker_batch(3, 2, 5, seed=30)
    for distance in ("cosine", "euclidean"):
        matrix = distance_matrix(x, distance)
        for i in range(len(x)):
            for j in range(len(x)):
                if i != j:
                    expected = loop_distance(x, i, j, distance)
                    assert torch.isclose(matrix[i, j], expected)


def test_all_triplets_match_loops():
    labels = torch.tensor([2, 0, 2, 1, 0, 2])
    triplets = triplet_set(all_triplets(labels))
    assert triplets == loop_triplets(labels.tolist())
    # P x K batch: B (K - 1) (B - K) triplets
    _, labels = speaker_batch(4, 3, 2, seed=0)
    assert len(all_triplets(labels)[0]) == 12 * 2 * 9


def test_contrastive_by_hand():
    loss = PairContrastiveLoss(margin=0.5, distance="euclidean")
    x = torch.tensor([[0.0, 0.0], [0.6, 0.0], [0.0, 0.3], [0.0, 2.0]])
    y = torch.tensor([0, 0, 1, 1])
    # unordered pairs and distances:
    # (0,1) pos 0.6 -> 0.36 / 2 = 0.18
    # (2,3) pos 1.7 -> 2.89 / 2 = 1.445
    # (0,2) neg 0.3 -> (0.5 - 0.3)^2 / 2 = 0.02
    # (0,3) neg 2.0 -> 0; (1,3) neg sqrt(4.36) > 0.5 -> 0
    # (1,2) neg sqrt(0.45) = 0.6708 > 0.5 -> 0
    expected = (0.18 + 1.445 + 0.02) / 6
    assert loss(x, y).item() == pytest.approx(expected, rel=1e-6)
    statistics = loss.statistics
    assert statistics["active_fraction"] == pytest.approx(3 / 6)
    assert statistics["mean_positive_distance"] == pytest.approx(1.15)
    negatives = (0.3 + 2.0 + math.sqrt(4.36) + math.sqrt(0.45)) / 4
    assert statistics["mean_negative_distance"] == pytest.approx(negatives)
    assert statistics["pairs"] == 12.0  # ordered pairs
    assert statistics["margin"] == 0.5


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_contrastive_matches_loop_derivation(distance):
    # Our formulation (squared hinge on negatives, d^2 on positives, both
    # halved, mean over all pairs) is not pytorch-metric-learning's
    # ContrastiveLoss (plain hinges, positives and negatives averaged over
    # their non-zero terms separately), so compare with explicit loops.
    margin = 0.8 if distance == "cosine" else 3.0
    loss = PairContrastiveLoss(margin=margin, distance=distance)
    x, y = speaker_batch(3, 3, 4, seed=31)
    terms = []
    for i in range(len(y)):
        for j in range(i + 1, len(y)):
            d = loop_distance(x, i, j, distance)
            if y[i] == y[j]:
                terms.append(d**2 / 2)
            else:
                terms.append(torch.clamp(margin - d, min=0) ** 2 / 2)
    expected = sum(terms) / len(terms)
    assert torch.isclose(loss(x, y), expected)
    active = sum(float(t > 0) for t in terms) / len(terms)
    assert loss.statistics["active_fraction"] == pytest.approx(active)


def test_triplet_by_hand():
    loss = TripletLoss(margin=0.5, distance="euclidean")
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.2]])
    y = torch.tensor([0, 0, 1])
    # (a=0, p=1, n=2): 1 - 1.2 + 0.5 = 0.3
    # (a=1, p=0, n=2): 1 - sqrt(1 + 1.44) + 0.5 = 1.5 - 1.5620 < 0 -> 0
    assert loss(x, y).item() == pytest.approx(0.3 / 2, rel=1e-6)
    assert loss.statistics["active_fraction"] == 0.5
    assert loss.statistics["triplets"] == 2.0
    active = TripletLoss(
        margin=0.5, distance="euclidean", average_over="active"
    )
    assert active(x, y).item() == pytest.approx(0.3, rel=1e-6)


def test_triplet_margin_zero_on_separated_data_is_zero():
    loss = TripletLoss(margin=0.0)
    x = torch.tensor(
        [[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [-0.9, -0.1], [0.0, 1.0]]
    )
    y = torch.tensor([0, 0, 1, 1, 2])
    value = loss(x, y)
    assert value.item() == 0.0
    assert loss.statistics["active_fraction"] == 0.0
    assert loss.statistics["triplets"] == 2 * 3 + 2 * 3


@pytest.mark.parametrize("average_over", ["all", "active"])
def test_triplet_matches_pml_over_all_triplets(average_over):
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.reducers import AvgNonZeroReducer, MeanReducer

    reducer = MeanReducer() if average_over == "all" else AvgNonZeroReducer()
    # cosine similarity s = 1 - d: PML's max(0, s_an - s_ap + m) is ours
    reference = pml_losses.TripletMarginLoss(
        margin=0.4, distance=CosineSimilarity(), reducer=reducer
    )
    ours = TripletLoss(margin=0.4, average_over=average_over)
    for seed in range(3):
        x, y = speaker_batch(4, 3, 6, seed=40 + seed)
        x_ours = x.clone().requires_grad_()
        x_reference = x.clone().requires_grad_()
        value = ours(x_ours, y)
        expected = reference(x_reference, y)
        assert 0 < ours.statistics["active_fraction"] < 1
        assert torch.allclose(value, expected, atol=1e-12)
        value.backward()
        expected.backward()
        assert torch.allclose(x_ours.grad, x_reference.grad, atol=1e-12)


@pytest.mark.parametrize(
    "miner, kind",
    [(HardNegativeMiner(), "hard"), (SemiHardNegativeMiner(), "semihard")],
)
def test_miners_match_pml_triplet_margin_miner(miner, kind):
    pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.miners import TripletMarginMiner

    reference = TripletMarginMiner(
        margin=0.3, type_of_triplets=kind, distance=CosineSimilarity()
    )
    x, y = speaker_batch(4, 3, 3, seed=50)
    ours = miner.triplets(distance_matrix(x), y, 0.3)
    expected = reference(x, y)
    assert 0 < len(triplet_set(ours)) < len(all_triplets(y)[0])
    assert triplet_set(ours) == triplet_set(expected)


def test_triplet_loss_with_miner_averages_mined_triplets():
    x, y = speaker_batch(3, 3, 4, seed=51)
    d = distance_matrix(x)
    hinges = [
        max(0.0, float(d[a, p] - d[a, q]) + 0.4)
        for a, p, q in loop_triplets(y.tolist())
        if d[a, q] <= d[a, p]  # hard: negative no farther than positive
    ]
    loss = TripletLoss(margin=0.4, miner=HardNegativeMiner())
    assert len(hinges) > 0
    assert loss(x, y).item() == pytest.approx(sum(hinges) / len(hinges))
    assert loss.statistics["triplets"] == len(hinges)
    assert loss.statistics["active_fraction"] == 1.0  # hard ones all violate


def test_contrastive_with_miner_uses_pairs_of_mined_triplets():
    x, y = speaker_batch(3, 3, 4, seed=52)
    d = distance_matrix(x)
    mined = [
        (a, p, q)
        for a, p, q in loop_triplets(y.tolist())
        if 0 < d[a, q] - d[a, p] <= 0.4
    ]
    positives = {(a, p) for a, p, _ in mined}
    negatives = {(a, q) for a, _, q in mined}
    terms = [d[a, p] ** 2 / 2 for a, p in positives]
    terms += [torch.clamp(0.4 - d[a, q], min=0) ** 2 / 2 for a, q in negatives]
    loss = PairContrastiveLoss(margin=0.4, miner=SemiHardNegativeMiner())
    assert len(mined) > 0
    assert torch.isclose(loss(x, y), sum(terms) / len(terms))
    assert loss.statistics["pairs"] == len(terms)


def test_pair_losses_take_a_miner_by_name():
    x, y = speaker_batch(3, 3, 4, seed=57)
    for loss_class in (TripletLoss, PairContrastiveLoss):
        for name, miner_class in MINERS.items():
            named = loss_class(miner=name)
            assert type(named.miner) is miner_class
            given = loss_class(miner=miner_class())
            assert torch.equal(named(x, y), given(x, y))
        assert type(loss_class(miner=None).miner) is MINERS["all"]
        with pytest.raises(ValueError, match="unknown miner 'hardest'"):
            loss_class(miner="hardest")


def test_empty_mining_gives_zero_loss_that_backpropagates():
    # the negative is far beyond positive + margin: nothing semi-hard
    x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1])
    for loss_class in (TripletLoss, PairContrastiveLoss):
        loss = loss_class(margin=0.1, miner=SemiHardNegativeMiner())
        value = loss(x, y)
        value.backward()
        assert value.item() == 0.0
        assert loss.statistics["active_fraction"] == 0.0
        assert torch.equal(x.grad, torch.zeros_like(x))


def test_pair_losses_reject_unusable_batches():
    x, _ = speaker_batch(3, 1, 4, seed=53)
    with pytest.raises(ValueError, match="two items of one speaker"):
        TripletLoss()(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="two items of one speaker"):
        TripletLoss()(x, torch.tensor([0, 0, 0]))
    with pytest.raises(ValueError, match="at least two embeddings"):
        PairContrastiveLoss()(x[:1], torch.tensor([0]))
    with pytest.raises(ValueError, match="unknown distance 'l1'"):
        TripletLoss(distance="l1")
    with pytest.raises(ValueError, match="average_over"):
        TripletLoss(average_over="some")
    with pytest.raises(ValueError, match="margin must be non-negative"):
        PairContrastiveLoss(margin=-0.1)


def test_contrastive_with_single_items_uses_negatives_only():
    x, _ = speaker_batch(3, 1, 4, seed=54)
    loss = PairContrastiveLoss(margin=2.0)
    value = loss(x, torch.tensor([0, 1, 2]))
    d = distance_matrix(x)
    expected = sum(
        (2.0 - d[i, j]) ** 2 / 2 for i, j in [(0, 1), (0, 2), (1, 2)]
    )
    assert torch.isclose(value, expected / 3)
    assert math.isnan(loss.statistics["mean_positive_distance"])


PAIR_LOSSES = [
    (PairContrastiveLoss, "cosine", None),
    (PairContrastiveLoss, "euclidean", None),
    (PairContrastiveLoss, "cosine", HardNegativeMiner()),
    (TripletLoss, "cosine", None),
    (TripletLoss, "euclidean", None),
    (TripletLoss, "cosine", SemiHardNegativeMiner()),
]


@pytest.mark.parametrize("loss_class, distance, miner", PAIR_LOSSES)
def test_gradcheck_pair_losses(loss_class, distance, miner):
    margin = 0.5 if distance == "cosine" else 2.0
    loss = loss_class(margin=margin, distance=distance, miner=miner)
    x, y = speaker_batch(3, 2, 3, seed=55)
    x.requires_grad_()
    loss(x, y)
    assert loss.statistics["active_fraction"] > 0
    assert torch.autograd.gradcheck(lambda e: loss(e, y), (x,))


@pytest.mark.parametrize("loss_class, distance, miner", PAIR_LOSSES)
def test_pair_statistics_keys(loss_class, distance, miner):
    loss = loss_class(distance=distance, miner=miner)
    x, y = speaker_batch(3, 2, 3, seed=56)
    loss(x.unsqueeze(1), y.unsqueeze(1))
    assert {
        "active_fraction",
        "mean_positive_distance",
        "mean_negative_distance",
        "embedding_norm",
        "margin",
    } <= set(loss.statistics)
    assert all(type(v) is float for v in loss.statistics.values())


# ================================================================= schedules


def test_linear_margin_warmup_values():
    loss = TripletLoss(margin=0.4)
    warmup = LinearMarginWarmup(loss, final_margin=0.4, warmup_steps=10)
    assert loss.margin == 0.0  # set at construction
    assert warmup(5) == pytest.approx(0.2)
    assert loss.margin == pytest.approx(0.2)
    assert warmup(10) == 0.4
    assert warmup(1000) == 0.4
    assert warmup(-3) == 0.0
    assert LinearMarginWarmup(loss, 0.3, 0)(0) == 0.3


def test_warmup_drives_the_loss_margin():
    aam = AdditiveAngularMarginLoss(8, 5, margin=0.3, scale=10.0)
    x, y = random_batch(16, 8, 5, seed=60)
    warmup = LinearMarginWarmup(aam, final_margin=0.3, warmup_steps=4)
    warmup(2)
    fixed = with_weights(
        AdditiveAngularMarginLoss(8, 5, margin=0.15, scale=10.0),
        weight=aam.weight,
    )
    assert torch.allclose(aam(x, y), fixed(x, y))
    assert aam.statistics["margin"] == pytest.approx(0.15)


def test_warmup_rejects_losses_without_margin():
    with pytest.raises(ValueError, match="no margin attribute"):
        LinearMarginWarmup(SoftmaxLoss(4, 3), 0.2, 10)


# ==================================================================== health


def test_health_warns_once_on_collapse(caplog):
    health = TrainingHealth()
    loss = SoftmaxLoss(4, 3)
    base = torch.tensor([1.0, 2.0, 3.0, 4.0])
    for seed in range(3):
        noise = 1e-4 * random_batch(6, 4, 3, seed=seed)[0]
        x = base + noise
        loss(x, torch.tensor([0, 1, 2, 0, 1, 2]))
        health.update(loss, x.unsqueeze(1))
    with caplog.at_level(logging.WARNING):
        summary = health.check()
    collapse = [r for r in caplog.records if "collapsed" in r.getMessage()]
    assert len(collapse) == 1
    assert summary["mean_pairwise_cosine"] > 0.99
    assert summary["batches"] == 3.0
    assert health.batches == 0  # a new epoch starts


def test_health_quiet_on_healthy_batches(caplog):
    health = TrainingHealth()
    loss = TripletLoss(margin=0.4)
    for seed in range(3):
        x, y = speaker_batch(3, 2, 8, seed=seed)
        loss(x, y)
        health.update(loss, x)
    assert health.warnings() == []
    expected = sum(
        mean_pairwise_cosine(speaker_batch(3, 2, 8, seed=s)[0])
        for s in range(3)
    )
    summary = health.check()
    assert summary["mean_pairwise_cosine"] == pytest.approx(expected / 3)
    assert 0 < summary["active_fraction"] <= 1


def test_health_warns_when_all_triplets_inactive(caplog):
    health = TrainingHealth()
    loss = TripletLoss(margin=0.0)
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [-0.9, -0.1]])
    y = torch.tensor([0, 0, 1, 1])
    for _ in range(2):
        loss(x, y)
        health.update(loss, x)
    with caplog.at_level(logging.WARNING):
        health.check()
    assert (
        sum("no pair or triplet" in r.getMessage() for r in caplog.records) == 1
    )
    # one active batch in the epoch is enough to stay quiet
    loss(x, y)
    health.update(loss, x)
    loss.margin = 3.0
    loss(x, y)
    health.update(loss, x)
    assert health.warnings() == []


def test_health_reports_non_finite_embeddings():
    health = TrainingHealth()
    loss = SoftmaxLoss(2, 2)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss(x, torch.tensor([0, 1]))
    health.update(loss, torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]))
    health.update(loss, x)
    (message,) = health.warnings()
    assert message.startswith("1 of 2 batches gave NaN")
