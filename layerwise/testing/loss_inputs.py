"""Random inputs a loss accepts: predictions and targets of the kind each loss takes.

    loss = SoftmaxCrossEntropyLoss()
    gradcheck(loss.eval(grad=True), *loss_inputs(loss, (5,), batch=3))   # d loss / d logits

What ``layerwise gradcheck LOSS`` checks. ``sample_shape`` is one sample's prediction shape:
for a classification loss its first entry is the number of classes (labels are drawn for the
remaining, spatial, dims); losses that only take (N, D) features flatten it to (D,).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.layer import LossLayer

__all__ = ["loss_inputs"]


def loss_inputs(loss: LossLayer, sample_shape: Sequence[int] = (4,), batch: int = 2,
                rng: np.random.Generator | int | None = 0) -> list[np.ndarray]:
    """float64 predictions and suitable targets for ``loss.forward``, drawn from ``rng``.

    Targets by kind of loss:
      class targets (SoftmaxCrossEntropyLoss, CrossEntropyLoss, multiclass HingeLoss, CenterLoss,
      FastRCNNLoss): integer labels in [0, C) (CenterLoss: [0, num_classes));
      binary +-1 labels (Perceptron, Exponential, Logistic, HingeEmbedding, binary HingeLoss);
      SigmoidCrossEntropyLoss: probabilities in [0, 1]; KLDivLoss: log-probabilities against
      probabilities (or log-probabilities with ``log_target``); CrossEntropyLoss takes
      probabilities (a softmax) as its prediction; ContrastiveLoss: two feature arrays and
      0/1 pair labels; TripletLoss: three feature arrays; other elementwise (regression)
      losses: a float target of the prediction's shape; MultiTaskLoss: its children's inputs
      in order.

    Random values keep the kinks of piecewise losses (hinges, L1 at 0) out of reach of a
    finite-difference step with probability ~1. Check the loss in ``eval(grad=True)`` mode: its
    gradient is the same, and CenterLoss's backward does not move its centres there.

    Args:
        loss: the loss layer (its settings decide the kind: HingeLoss's ``mode``, KLDivLoss's
            ``log_target``, CenterLoss's ``num_classes``).
        sample_shape: one sample's prediction shape (C, ...) or (D,).
        batch: N, the number of samples.
        rng: a Generator or a seed.

    Returns:
        The list of ``loss.forward``'s inputs, predictions first.

    Raises:
        TypeError: a loss of a kind not listed above (give gradcheck its inputs yourself).
        ValueError: a sample shape the loss cannot take.

    Example:
        >>> from layerwise.losses import EuclideanLoss, SoftmaxCrossEntropyLoss
        >>> [a.shape for a in loss_inputs(SoftmaxCrossEntropyLoss(), (5, 2), batch=3)]
        [(3, 5, 2), (3, 2)]
        >>> [a.shape for a in loss_inputs(EuclideanLoss(), (4,), batch=3)]
        [(3, 4), (3, 4)]
    """
    from ..losses import (
        CenterLoss,
        ContrastiveLoss,
        CrossEntropyLoss,
        FastRCNNLoss,
        HingeLoss,
        KLDivLoss,
        MultiTaskLoss,
        SigmoidCrossEntropyLoss,
        SoftmaxCrossEntropyLoss,
        TripletLoss,
    )
    from ..losses._base import ElementwiseLoss

    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    shape = tuple(int(d) for d in sample_shape)
    if not shape or min(shape) < 1 or batch < 1:
        raise ValueError(f"loss_inputs: expected a batch >= 1 and a sample shape of positive sizes, got batch {batch} "
                         f"and {shape}")
    n = int(batch)
    full = (n, *shape)
    flat = int(np.prod(shape))

    def normal(*s: int) -> np.ndarray:
        return gen.standard_normal(s)

    def probs(s: tuple[int, ...]) -> np.ndarray:  # a softmax along axis 1: positive, sums to 1
        e = np.exp(gen.standard_normal(s))
        return e / e.sum(axis=1, keepdims=True)

    def pm1(s: tuple[int, ...]) -> np.ndarray:
        return np.where(gen.random(s) < 0.5, -1, 1).astype(np.int64)

    if isinstance(loss, FastRCNNLoss):  # scores (N, C), labels, bbox_pred (N, 4C), bbox_targets (N, 4)
        return [normal(n, flat), gen.integers(0, flat, n), normal(n, 4 * flat), normal(n, 4)]
    if isinstance(loss, MultiTaskLoss):
        out: list[np.ndarray] = []
        for child in loss.children().values():
            if not isinstance(child, LossLayer):
                raise TypeError(f"loss_inputs: MultiTaskLoss child {child!r} is not a LossLayer")
            out += loss_inputs(child, shape, n, gen)
        return out
    if isinstance(loss, (SoftmaxCrossEntropyLoss, CrossEntropyLoss)):
        labels = gen.integers(0, shape[0], (n, *shape[1:]))
        return [probs(full) if isinstance(loss, CrossEntropyLoss) else normal(*full), labels]
    if isinstance(loss, HingeLoss):
        if loss.mode == "binary":
            return [normal(*full), pm1(full)]
        return [normal(n, flat), gen.integers(0, flat, n)]
    if isinstance(loss, CenterLoss):
        return [normal(n, flat), gen.integers(0, loss.num_classes, n)]
    if isinstance(loss, ContrastiveLoss):
        a = normal(*full)
        return [a, a + 0.5 * normal(*full), gen.integers(0, 2, n)]
    if isinstance(loss, TripletLoss):
        return [normal(n, flat), normal(n, flat), normal(n, flat)]
    if isinstance(loss, KLDivLoss):
        t = probs(full)
        return [np.log(probs(full)), np.log(t) if loss.log_target else t]
    if isinstance(loss, SigmoidCrossEntropyLoss):
        return [normal(*full), gen.random(full)]
    if isinstance(loss, ElementwiseLoss):
        return [normal(*full), normal(*full) if loss.target_is_float else pm1(full)]
    raise TypeError(f"loss_inputs: no rule for {type(loss).__name__}; pass its inputs to gradcheck yourself")
