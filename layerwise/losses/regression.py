"""Regression losses: Euclidean (Caffe), MSE, L1, smooth L1 (Fast R-CNN) and Huber.

All take a prediction and a float target of the same shape (N, ...) and return a 0-d loss.
"""
from __future__ import annotations

from ..backend import Array, get_array_module
from ..core.registry import register
from ._base import ElementwiseLoss

__all__ = ["EuclideanLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss"]


@register("loss", "EuclideanLoss", "euclidean")
class EuclideanLoss(ElementwiseLoss):
    """Caffe's EuclideanLoss: half the squared error, divided by the batch size.

    Forward:  L = 1/(2 D) sum_i (p_i - t_i)^2, D = N by default (reduction='batch_size').
    Backward: dL/dp = (p - t) / D.

    This is 1/2 * MSE * (elements per sample) relative to PyTorch's ``mse_loss``;
    use MSELoss for PyTorch's convention.

    Shapes: pred (N, ...), target the same shape -> ().
    Caches: g = p - t, div = D.

    Example:
        >>> import numpy as np
        >>> float(EuclideanLoss().forward(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]])))
        2.5
    """

    def __init__(self, *, reduction: str = "batch_size", loss_weight: float = 1.0, name: str | None = None) -> None:
        super().__init__(reduction=reduction, loss_weight=loss_weight, name=name)

    def _pointwise(self, pred: Array, target: Array, need_grad: bool):
        d = pred - target
        return 0.5 * d * d, d if need_grad else None


@register("loss", "MSELoss", "mse")
class MSELoss(ElementwiseLoss):
    """Mean squared error (PyTorch's ``mse_loss``).

    Forward:  L = 1/D sum_i (p_i - t_i)^2, D = number of elements (reduction='mean').
    Backward: dL/dp = 2 (p - t) / D.

    Shapes: pred (N, ...), target the same shape -> ().  Caches: g = 2 (p - t), div = D.
    """

    def _pointwise(self, pred: Array, target: Array, need_grad: bool):
        d = pred - target
        return d * d, 2 * d if need_grad else None


@register("loss", "L1Loss", "l1")
class L1Loss(ElementwiseLoss):
    """Mean absolute error (PyTorch's ``l1_loss``).

    Forward:  L = 1/D sum_i |p_i - t_i|.
    Backward: dL/dp = sign(p - t) / D (0 where p == t, as PyTorch).

    Shapes: pred (N, ...), target the same shape -> ().  Caches: g = sign(p - t), div (the reduction's divisor).
    """

    def _pointwise(self, pred: Array, target: Array, need_grad: bool):
        xp = get_array_module(pred)
        d = pred - target
        return xp.abs(d), xp.sign(d) if need_grad else None


def _smooth_l1(d: Array, beta: float, need_grad: bool):
    """Pointwise smooth L1 of d and its derivative: 0.5 d^2 / beta inside |d| < beta, |d| - beta/2 outside."""
    xp = get_array_module(d)
    a = xp.abs(d)
    if beta == 0:
        return a, xp.sign(d) if need_grad else None
    quad = a < beta
    loss = xp.where(quad, (0.5 / beta) * d * d, a - 0.5 * beta)
    g = xp.where(quad, d / beta, xp.sign(d)) if need_grad else None
    return loss, g


@register("loss", "SmoothL1Loss", "smooth_l1")
class SmoothL1Loss(ElementwiseLoss):
    """Smooth L1 of Fast R-CNN (PyTorch's ``smooth_l1_loss``).

    Forward:  l(d) = 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta, d = p - t;
              L = 1/D sum_i l(d_i).  beta = 0 is L1.
    Backward: dl/dd = d / beta if |d| < beta else sign(d).

    Caffe's SmoothL1Loss (py-faster-rcnn) writes it with sigma: beta = 1 / sigma^2, and
    divides by the batch size (reduction='batch_size'); Fast R-CNN uses beta = 1.

    Shapes: pred (N, ...), target the same shape -> ().  Caches: g = dl/dd, div (the reduction's divisor).
    """

    def __init__(self, *, beta: float = 1.0, reduction: str = "mean", loss_weight: float = 1.0,
                 name: str | None = None) -> None:
        super().__init__(reduction=reduction, loss_weight=loss_weight, name=name)
        if not beta >= 0:
            raise ValueError(f"SmoothL1Loss: beta must be >= 0, got {beta!r}")
        self.beta = float(beta)

    def _pointwise(self, pred: Array, target: Array, need_grad: bool):
        return _smooth_l1(pred - target, self.beta, need_grad)


@register("loss", "HuberLoss", "huber")
class HuberLoss(ElementwiseLoss):
    """Huber loss (PyTorch's ``huber_loss``): quadratic near 0, linear with slope delta outside.

    Forward:  l(d) = 0.5 d^2 if |d| <= delta else delta (|d| - 0.5 delta), d = p - t.
    Backward: dl/dd = d if |d| <= delta else delta sign(d).
    Huber(delta) = delta * SmoothL1(beta=delta).

    Shapes: pred (N, ...), target the same shape -> ().  Caches: g = dl/dd, div (the reduction's divisor).
    """

    def __init__(self, *, delta: float = 1.0, reduction: str = "mean", loss_weight: float = 1.0,
                 name: str | None = None) -> None:
        super().__init__(reduction=reduction, loss_weight=loss_weight, name=name)
        if not delta > 0:
            raise ValueError(f"HuberLoss: delta must be > 0, got {delta!r}")
        self.delta = float(delta)

    def _pointwise(self, pred: Array, target: Array, need_grad: bool):
        loss, g = _smooth_l1(pred - target, self.delta, need_grad)   # Huber(delta) = delta * SmoothL1(delta)
        return self.delta * loss, (self.delta * g if need_grad else None)
