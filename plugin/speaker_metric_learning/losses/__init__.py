"""Training losses sharing one contract: ``loss(embeddings, labels)``.

Authors
 * Speaker metric learning contributors 2025
"""

from speaker_metric_learning.losses.base import MetricLoss, flatten_batch
from speaker_metric_learning.losses.classification import (
    AdditiveAngularMarginLoss,
    CenterLoss,
    ClassificationLoss,
    CongenerousCosineLoss,
    SoftmaxLoss,
)

__all__ = [
    "AdditiveAngularMarginLoss",
    "CenterLoss",
    "ClassificationLoss",
    "CongenerousCosineLoss",
    "MetricLoss",
    "SoftmaxLoss",
    "flatten_batch",
]
