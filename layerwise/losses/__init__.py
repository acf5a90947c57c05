"""layerwise.losses: loss layers, the last layer of a net and the start of back-propagation.

Every loss is a LossLayer: ``forward(pred, target) -> 0-d loss``, ``backward()`` -> the
gradient of ``loss_weight * loss`` w.r.t. the prediction. All are registered under
``"loss"`` (with Caffe's type names as aliases). See docs/losses.md for the formulas.
"""
from .classification import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    KLDivLoss,
    SigmoidCrossEntropyLoss,
    SoftmaxCrossEntropyLoss,
)
from .embedding import CenterLoss, ContrastiveLoss, TripletLoss
from .margin import ExponentialLoss, HingeEmbeddingLoss, HingeLoss, LogisticLoss, PerceptronLoss
from .metrics import accuracy
from .multitask import FastRCNNLoss, MultiTaskLoss
from .regression import EuclideanLoss, HuberLoss, L1Loss, MSELoss, SmoothL1Loss

__all__ = [
    "EuclideanLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss",
    "SoftmaxCrossEntropyLoss", "CrossEntropyLoss", "SigmoidCrossEntropyLoss", "BCEWithLogitsLoss", "KLDivLoss",
    "HingeLoss", "PerceptronLoss", "ExponentialLoss", "LogisticLoss", "HingeEmbeddingLoss",
    "ContrastiveLoss", "TripletLoss", "CenterLoss",
    "MultiTaskLoss", "FastRCNNLoss",
    "accuracy",
]
