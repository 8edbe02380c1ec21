"""Training losses sharing one contract: ``loss(embeddings, labels)``.

Every loss takes embeddings ``[batch, dim]`` (or ``[batch, 1, dim]``) and
integer labels ``[batch]`` (or ``[batch, 1]``), returns a scalar and keeps
the batch's ``statistics`` (python floats). Classification losses own their
class weights; pair losses take a distance and a miner. Margins are plain
attributes that :class:`LinearMarginWarmup` may schedule, and
:class:`TrainingHealth` watches the statistics over an epoch.

Authors
 * Speaker metric learning contributors 2025
"""

from speaker_metric_learning.losses.base import (
    MetricLoss,
    flatten_batch,
    flatten_embeddings,
)
from speaker_metric_learning.losses.classification import (
    AdditiveAngularMarginLoss,
    CenterLoss,
    ClassificationLoss,
    CongenerousCosineLoss,
    SoftmaxLoss,
)
from speaker_metric_learning.losses.distances import (
    cosine_similarity_matrix,
    distance_matrix,
)
from speaker_metric_learning.losses.health import TrainingHealth
from speaker_metric_learning.losses.mining import (
    MINERS,
    AllMiner,
    HardNegativeMiner,
    Miner,
    SemiHardNegativeMiner,
    all_triplets,
    make_miner,
    same_label_pairs,
)
from speaker_metric_learning.losses.pairs import (
    PairContrastiveLoss,
    PairLoss,
    TripletLoss,
)
from speaker_metric_learning.losses.schedules import LinearMarginWarmup

__all__ = [
    "MINERS",
    "AdditiveAngularMarginLoss",
    "AllMiner",
    "CenterLoss",
    "ClassificationLoss",
    "CongenerousCosineLoss",
    "HardNegativeMiner",
    "LinearMarginWarmup",
    "MetricLoss",
    "Miner",
    "PairContrastiveLoss",
    "PairLoss",
    "SemiHardNegativeMiner",
    "SoftmaxLoss",
    "TrainingHealth",
    "TripletLoss",
    "all_triplets",
    "cosine_similarity_matrix",
    "distance_matrix",
    "flatten_batch",
    "flatten_embeddings",
    "make_miner",
    "same_label_pairs",
]
