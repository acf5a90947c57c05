"""Margin losses of linear classifiers: hinge (SVM; binary, Caffe one-vs-all, Weston-Watkins,
Crammer-Singer), perceptron, exponential (AdaBoost), logistic, and PyTorch's hinge embedding.

Binary losses take a score z and labels y in {-1, +1} of the same shape; the margin is y z.
"""
from __future__ import annotations

import numpy as np

from ..backend import Array, Shape, get_array_module
from ..core.registry import register
from ._base import ElementwiseLoss, Loss, as_0d

__all__ = ["HingeLoss", "PerceptronLoss", "ExponentialLoss", "LogisticLoss", "HingeEmbeddingLoss"]

_MODES = ("binary", "ovr", "weston_watkins", "crammer_singer")


class _BinaryLoss(ElementwiseLoss):
    """Elementwise loss of the margin y z with y in {-1, +1}."""

    target_is_float = False

    def _check_target(self, target: Array) -> None:
        if target.dtype.kind == "f":
            self.check_float(target, "target")
        self.check_pm1(target)


@register("loss", "HingeLoss", "hinge")
class HingeLoss(Loss):
    """The SVM hinge loss, binary or multiclass, with norm p = 1 (hinge) or 2 (squared hinge).

    Forward: L = (1/D) sum_i l_i, per mode (m = margin, default 1; h^p means max(0, .)^p):
      'ovr' (Caffe's HingeLoss, one-vs-all): for every class c, s_c = -z_y if c == y else z_c;
            l_i = sum_c max(0, m + s_c)^p.
      'weston_watkins': l_i = sum_{c != y} max(0, m + z_c - z_y)^p (PyTorch's multi_margin_loss
            divides this by C as well: use reduction='full' to match it).
      'crammer_singer': l_i = max(0, m + max_{c != y} z_c - z_y)^p (scikit-learn's
            multiclass ``hinge_loss``).
      'binary': z and y in {-1, +1} of the same shape; l_i = max(0, m - y_i z_i)^p.
    Backward: with a_i = p h^(p-1) (1 where the hinge is active for p = 1), each active term
      adds +a to dz of the class it raises and -a to dz_y (binary: dz = -a y).
    Reduction (divisor D): 'mean' = number of samples N (binary: number of elements),
      'batch_size' = N (Caffe), 'full' = all scores N*C (PyTorch's multi_margin_loss), 'sum' = 1.

    Shapes: multiclass: scores (N, C), labels int (N,); binary: scores and labels of one shape.
    Caches: g = dL/dz * D, div = D.
    """

    reductions = ("mean", "sum", "batch_size", "full")

    def __init__(self, *, mode: str = "ovr", norm: int = 1, margin: float = 1.0, reduction: str = "mean",
                 loss_weight: float = 1.0, name: str | None = None) -> None:
        super().__init__(reduction=reduction, loss_weight=loss_weight, name=name)
        if mode not in _MODES:
            raise ValueError(f"HingeLoss: mode must be one of {_MODES}, got {mode!r}")
        if norm not in (1, 2):
            raise ValueError(f"HingeLoss: norm must be 1 or 2 (Caffe's L1/L2), got {norm!r}")
        self.mode, self.norm, self.margin = mode, int(norm), float(margin)

    def _output_shape(self, pred: Shape, target: Shape):
        if self.mode == "binary":
            self.same_shape(pred, target, "label")
        elif len(pred) != 2 or tuple(target) != (pred[0],):
            raise self.error(f"mode {self.mode!r} expects scores (N, C) and integer labels (N,), got "
                             f"shapes {tuple(pred)} and {tuple(target)} (use mode='binary' for +-1 labels)")
        return ()

    def _powers(self, h: Array):
        """h^p and its derivative p h^(p-1) (0 where h == 0)."""
        if self.norm == 1:
            return h, (h > 0).astype(h.dtype)
        return h * h, 2 * h

    def _forward(self, z: Array, target: Array) -> Array:
        self.check_float(z, "scores")
        xp = get_array_module(z)
        m = self.margin
        if self.mode == "binary":
            if target.dtype.kind == "f":
                self.check_float(target, "label")
            self.check_pm1(target, "label")
            y = target.astype(z.dtype)
            loss, a = self._powers(xp.maximum(m - y * z, 0))
            g = -a * y
            div = self.divisor(z.shape, n_valid=z.size)
        else:
            N, C = z.shape
            self.check_labels(target, C)
            onehot = target[:, None] == xp.arange(C)            # (N, C)
            zy = z[xp.arange(N), target][:, None]               # (N, 1)
            if self.mode == "ovr":
                sign = xp.where(onehot, -1, 1).astype(z.dtype)
                loss, a = self._powers(xp.maximum(m + sign * z, 0))
                g = a * sign
            elif self.mode == "weston_watkins":
                h = xp.where(onehot, 0, xp.maximum(m + z - zy, 0))
                loss, a = self._powers(h)
                g = a - onehot * a.sum(axis=1, keepdims=True)
            else:  # crammer_singer
                other = xp.where(onehot, -np.inf, z)
                k = other.argmax(axis=1)                        # best wrong class
                h = xp.maximum(m + other[xp.arange(N), k] - zy[:, 0], 0)
                loss, a = self._powers(h)
                g = ((xp.arange(C) == k[:, None]).astype(z.dtype) - onehot) * a[:, None]
            div = self.divisor(z.shape, n_valid=N)
        self.save(g=g, div=div)
        return as_0d(xp, loss.sum() / div, z.dtype)


@register("loss", "PerceptronLoss", "perceptron")
class PerceptronLoss(_BinaryLoss):
    """The perceptron criterion: the loss of misclassified samples only.

    Forward:  l = max(0, -y z)  (0 when y z > 0, the negative margin otherwise).
    Backward: dl/dz = -y where y z < 0, else 0.

    Shapes: scores (N, ...), labels in {-1, +1} of the same shape.  Caches: g = dl/dz, div (the reduction's divisor).
    """

    def _pointwise(self, z: Array, y: Array, need_grad: bool):
        xp = get_array_module(z)
        mis = y * z < 0
        return xp.maximum(-y * z, 0), xp.where(mis, -y, 0) if need_grad else None


@register("loss", "ExponentialLoss", "exponential", "adaboost")
class ExponentialLoss(_BinaryLoss):
    """AdaBoost's exponential loss.

    Forward:  l = exp(-y z).
    Backward: dl/dz = -y exp(-y z).
    NOTE: exp(-y z) overflows for -y z > ~88 (float32) / ~709 (float64); the exponent is clamped
    at log(max float) - 20 (68.7 / 689.8), with the gradient of the clamped value passed
    through, so extreme scores give large but finite losses and gradients.

    Shapes: scores (N, ...), labels in {-1, +1} of the same shape.  Caches: g = dl/dz, div (the reduction's divisor).
    """

    def _pointwise(self, z: Array, y: Array, need_grad: bool):
        xp = get_array_module(z)
        cap = float(np.log(np.finfo(z.dtype).max)) - 20.0
        e = xp.exp(xp.minimum(-y * z, cap))
        return e, -y * e if need_grad else None


@register("loss", "LogisticLoss", "soft_margin")
class LogisticLoss(_BinaryLoss):
    """Logistic loss for y in {-1, +1} (PyTorch's ``soft_margin_loss``).

    Forward:  l = log(1 + exp(-y z)), computed as max(-y z, 0) + log1p(exp(-|y z|)).
    Backward: dl/dz = -y s(-y z), s the logistic sigmoid (computed stably).

    Shapes: scores (N, ...), labels in {-1, +1} of the same shape.  Caches: g = dl/dz, div (the reduction's divisor).
    """

    def _pointwise(self, z: Array, y: Array, need_grad: bool):
        xp = get_array_module(z)
        u = -y * z
        e = xp.exp(-xp.abs(u))
        loss = xp.maximum(u, 0) + xp.log1p(e)
        if not need_grad:
            return loss, None
        s = xp.where(u >= 0, 1 / (1 + e), e / (1 + e))        # sigmoid(u)
        return loss, -y * s


@register("loss", "HingeEmbeddingLoss", "hinge_embedding")
class HingeEmbeddingLoss(_BinaryLoss):
    """PyTorch's ``hinge_embedding_loss`` on distances x with y in {-1, +1}.

    Forward:  l = x if y = 1, max(0, margin - x) if y = -1.
    Backward: dl/dx = 1 if y = 1; -1 if y = -1 and x < margin; else 0.

    Shapes: x (N, ...), labels the same shape.  Caches: g = dl/dx, div (the reduction's divisor).
    """

    def __init__(self, *, margin: float = 1.0, reduction: str = "mean", loss_weight: float = 1.0,
                 name: str | None = None) -> None:
        super().__init__(reduction=reduction, loss_weight=loss_weight, name=name)
        self.margin = float(margin)

    def _pointwise(self, x: Array, y: Array, need_grad: bool):
        xp = get_array_module(x)
        pos = y > 0
        loss = xp.where(pos, x, xp.maximum(self.margin - x, 0))
        g = xp.where(pos, 1, xp.where(x < self.margin, -1, 0)).astype(x.dtype) if need_grad else None
        return loss, g
