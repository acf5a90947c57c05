"""Classification losses: softmax cross-entropy on logits, cross-entropy on probabilities,
sigmoid cross-entropy on logits and the Kullback-Leibler divergence.

Class layout is PyTorch's: the class axis is axis 1, so logits are (N, C) or (N, C, d1, ...);
hard labels are integers of shape (N,) or (N, d1, ...), soft targets have the logits' shape.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import Array, Shape, get_array_module
from ..core.registry import register
from ..functional.logistic import sigmoid as _sigmoid
from ..functional.logistic import softplus
from ._base import ElementwiseLoss, Loss, as_0d

__all__ = ["SoftmaxCrossEntropyLoss", "CrossEntropyLoss", "SigmoidCrossEntropyLoss", "BCEWithLogitsLoss",
           "KLDivLoss"]


class _ClassTargetLoss(Loss):
    """Shared part of the two cross-entropies: targets -> per-class weights q (M, C).

    For a hard label y with class weights w and label smoothing eps (PyTorch's convention):
        q_c = (1 - eps) w_y [c == y] + eps w_c / C,   0 for ignored positions;
    for a soft target t: q_c = w_c ((1 - eps) t_c + eps / C).  The loss is -sum_c q_c log p_c.
    'mean' divides by sum of w_y over valid positions (hard) or by the number of positions (soft).
    """

    reductions = ("mean", "sum", "batch_size", "full", "valid")

    def __init__(self, *, reduction: str = "mean", ignore_index: int = -100,
                 weight: Sequence[float] | Array | None = None, label_smoothing: float = 0.0,
                 loss_weight: float = 1.0, name: str | None = None) -> None:
        super().__init__(reduction=reduction, loss_weight=loss_weight, name=name)
        cls = type(self).__name__
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"{cls}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)
        if weight is not None:
            w = np.asarray(weight if not hasattr(weight, "get") else weight.get(), dtype=np.float64)
            if w.ndim != 1 or not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError(f"{cls}: weight must be a 1-D array of C non-negative class weights, got {weight!r}")
            weight = w
        self.weight = weight

    def _output_shape(self, pred: Shape, target: Shape):
        if len(pred) < 2:
            raise self.error(f"expected a prediction of shape (N, C) or (N, C, d1, ...), got shape {tuple(pred)}")
        hard = tuple(pred[:1]) + tuple(pred[2:])
        if tuple(target) not in (hard, tuple(pred)):
            raise self.error(f"target shape {tuple(target)} does not fit prediction shape {tuple(pred)}: "
                             f"expected integer labels of shape {hard} or soft targets of shape {tuple(pred)}")
        if self.weight is not None and self.weight.shape[0] != pred[1]:
            raise self.error(f"weight has {self.weight.shape[0]} class weights but the prediction has "
                             f"C = {pred[1]} classes; pass one weight per class")
        return ()

    def _q(self, pred: Array, target: Array):
        """Per-class target weights q, class axis last, and the divisor."""
        xp = get_array_module(pred)
        C = pred.shape[1]
        eps = self.label_smoothing
        w = None if self.weight is None else xp.asarray(self.weight, dtype=pred.dtype)
        if target.shape == pred.shape:                        # soft targets
            self.check_float(target, "soft target")
            t = xp.moveaxis(target.astype(pred.dtype, copy=False), 1, -1)   # (N, d..., C)
            if eps:
                t = t * (1 - eps) + eps / C
            q = t * w if w is not None else t
            pos_shape = t.shape[:-1]
            return q, self.divisor(pos_shape)
        valid = self.check_labels(target, C, self.ignore_index)
        y = xp.where(valid, target, 0)
        onehot = y[..., None] == xp.arange(C)                   # (N, d..., C) bool
        wy = w[y] if w is not None else xp.ones(y.shape, dtype=pred.dtype)
        wy = wy * valid
        q = onehot * ((1 - eps) * wy)[..., None]
        if eps:
            q = q + (eps / C) * (w if w is not None else 1.0) * valid[..., None]
        q = q.astype(pred.dtype, copy=False)
        n_valid = int(valid.sum())
        div = self.divisor(target.shape, n_valid=n_valid,
                           weight_sum=float(wy.sum()) if w is not None else None)
        return q, div


@register("loss", "SoftmaxCrossEntropyLoss", "SoftmaxWithLoss", "cross_entropy")
class SoftmaxCrossEntropyLoss(_ClassTargetLoss):
    """Softmax followed by the negative log-likelihood, on logits (PyTorch's ``cross_entropy``,
    Caffe's SoftmaxWithLoss).

    Forward:  log p = z - logsumexp(z) over the class axis (max-shifted, finite for any finite z);
              L = -1/D sum_positions sum_c q_c log p_c  (q: see below).
    Backward: dL/dz_c = (p_c sum_k q_k - q_c) / D;  for a hard label without smoothing or
              weights this is (p - onehot(y)) / D.
    Targets: q_c = (1 - eps) w_y [c == y] + eps w_c / C for integer labels y (ignore_index
              positions contribute nothing); q_c = w_c ((1 - eps) t_c + eps / C) for soft targets t.
    Reduction (divisor D): 'mean' = sum of w_y over non-ignored labels (their count without
              weights; the number of positions for soft targets), 'valid' = count of
              non-ignored labels (Caffe's default), 'batch_size' = N, 'full' = N*d1*...,
              'sum' = 1.  All ignored: loss 0.

    Args:
        reduction: see above.
        ignore_index: label value that contributes neither loss nor gradient.
        weight: optional (C,) class weights (PyTorch's ``weight``).
        label_smoothing: eps in [0, 1].

    Shapes: logits (N, C) or (N, C, d1, ...); labels int (N,) / (N, d1, ...) or soft (N, C, ...).
    Caches: g = dL/dz * D (the unscaled gradient), div = D.

    Example:
        >>> import numpy as np
        >>> loss = SoftmaxCrossEntropyLoss()
        >>> round(float(loss.forward(np.zeros((2, 4)), np.array([0, 3]))), 6)  # log 4
        1.386294
    """

    def _forward(self, logits: Array, target: Array) -> Array:
        self.check_float(logits, "logits")
        xp = get_array_module(logits)
        q, div = self._q(logits, target)
        z = xp.moveaxis(logits, 1, -1)                          # (N, d..., C)
        zs = z - z.max(axis=-1, keepdims=True)
        e = xp.exp(zs)
        se = e.sum(axis=-1, keepdims=True)
        logp = zs - xp.log(se)
        total = -(q * logp).sum()
        if div == 0:
            total, div = total * 0, 1.0
        if self.cache_enabled:
            g = (e / se) * q.sum(axis=-1, keepdims=True) - q
            self.save(g=xp.moveaxis(g, -1, 1), div=div)
        return as_0d(xp, total / div, logits.dtype)


@register("loss", "CrossEntropyLoss", "MultinomialLogisticLoss", "nll_probs")
class CrossEntropyLoss(_ClassTargetLoss):
    """Cross-entropy on probabilities (Caffe's MultinomialLogisticLoss; PyTorch's
    ``nll_loss(log(p), y)``), for a network that ends in Softmax.

    Forward:  L = -1/D sum_positions sum_c q_c log(max(p_c, clamp))   (q as in
              SoftmaxCrossEntropyLoss; clamp = 1e-20 is Caffe's kLOG_THRESHOLD).
    Backward: dL/dp_c = -q_c / max(p_c, clamp) / D (Caffe's convention: the clamped value
              is used, so a zero probability still gets a finite push up).
    Prefer SoftmaxCrossEntropyLoss on logits: it is exact where this one clamps.

    Shapes: probabilities (N, C, ...) in [0, 1]; labels int (N, ...) or soft (N, C, ...).
    Caches: g = dL/dp * D, div = D.
    """

    def __init__(self, *, clamp: float = 1e-20, reduction: str = "mean", ignore_index: int = -100,
                 weight: Sequence[float] | Array | None = None, label_smoothing: float = 0.0,
                 loss_weight: float = 1.0, name: str | None = None) -> None:
        super().__init__(reduction=reduction, ignore_index=ignore_index, weight=weight,
                         label_smoothing=label_smoothing, loss_weight=loss_weight, name=name)
        if not clamp > 0:
            raise ValueError(f"CrossEntropyLoss: clamp must be > 0, got {clamp!r}")
        self.clamp = float(clamp)

    def _forward(self, prob: Array, target: Array) -> Array:
        self.check_float(prob, "probabilities")
        xp = get_array_module(prob)
        if bool((prob < 0).any()) or bool((prob > 1).any()):
            raise self.error(f"expected probabilities in [0, 1], got values in [{float(prob.min()):g}, "
                             f"{float(prob.max()):g}]; for logits use SoftmaxCrossEntropyLoss")
        q, div = self._q(prob, target)
        pc = xp.maximum(xp.moveaxis(prob, 1, -1), self.clamp)
        total = -(q * xp.log(pc)).sum()
        if div == 0:
            total, div = total * 0, 1.0
        if self.cache_enabled:
            self.save(g=xp.moveaxis(-q / pc, -1, 1), div=div)
        return as_0d(xp, total / div, prob.dtype)


@register("loss", "SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLoss(ElementwiseLoss):
    """Binary cross-entropy on logits, per element, targets in [0, 1], with Caffe's defaults
    (Caffe's SigmoidCrossEntropyLoss; ``BCEWithLogitsLoss`` is the same loss with PyTorch's).

    Forward:  l = -t log s(z) - (1 - t) log(1 - s(z)) = max(z, 0) - z t + log(1 + exp(-|z|)),
              L = 1/D sum l  (the stable form: finite for any finite z).
    Backward: dl/dz = s(z) - t.
    Reduction: 'batch_size' (the default, as Caffe's: a layer without ``normalization`` or
              ``normalize`` divides by N, sigmoid_cross_entropy_loss_layer.cpp) divides by N;
              'mean' (PyTorch's default, Caffe's ``normalize: true`` / VALID without ignored
              labels) and 'full' by the number of elements; 'sum' by 1.

    Args:
        pos_weight: optional weight of the positive term (PyTorch's ``pos_weight``): a scalar
            or an array that broadcasts against the logits, e.g. (C,) for (N, C) logits;
            l = (1 - t) z + (1 + (pw - 1) t) softplus(-z).

    Shapes: logits (N, ...), targets the same shape -> ().  Caches: g = dl/dz, div (the reduction's divisor).
    """

    def __init__(self, *, pos_weight: Any = None, reduction: str = "batch_size", loss_weight: float = 1.0,
                 name: str | None = None) -> None:
        super().__init__(reduction=reduction, loss_weight=loss_weight, name=name)
        if pos_weight is not None:
            pos_weight = np.asarray(pos_weight, dtype=np.float64)
            if not np.all(pos_weight > 0):
                raise ValueError(f"{type(self).__name__}: pos_weight must be > 0, got {pos_weight!r}")
        self.pos_weight = pos_weight

    def _check_target(self, target: Array) -> None:
        self.check_float(target, "target")
        if bool((target < 0).any()) or bool((target > 1).any()):
            raise self.error("targets must be probabilities in [0, 1]; for {-1, +1} labels use "
                             "LogisticLoss or map them with (y + 1) / 2")

    def _pointwise(self, z: Array, t: Array, need_grad: bool):
        xp = get_array_module(z)
        sp_neg = softplus(-z)                                        # softplus(-z) = -log s(z)
        s = _sigmoid(z)
        if self.pos_weight is None:
            # -t log s - (1-t) log(1-s) = t softplus(-z) + (1-t)(z + softplus(-z))
            loss = (1 - t) * z + sp_neg
            return loss, (s - t) if need_grad else None
        pw = xp.asarray(self.pos_weight, dtype=z.dtype)
        lw = 1 + (pw - 1) * t
        loss = (1 - t) * z + lw * sp_neg
        # d/dz: (1 - t) - lw (1 - s)
        return loss, ((1 - t) - lw * (1 - s)) if need_grad else None


@register("loss", "BCEWithLogitsLoss", "binary_cross_entropy_with_logits", "bce_with_logits")
class BCEWithLogitsLoss(SigmoidCrossEntropyLoss):
    """Binary cross-entropy on logits with PyTorch's defaults (torch.nn.BCEWithLogitsLoss): the
    loss of ``SigmoidCrossEntropyLoss``, divided by the number of elements unless told otherwise.

    Forward:  l = max(z, 0) - z t + log(1 + exp(-|z|)), L = 1/D sum l, D = the number of elements.
    Backward: dl/dz = s(z) - t, divided by D.
    Shapes: logits (N, ...), targets the same shape -> ().  Caches: g = dl/dz, div (the reduction's divisor).
    """

    def __init__(self, *, pos_weight: Any = None, reduction: str = "mean", loss_weight: float = 1.0,
                 name: str | None = None) -> None:
        super().__init__(pos_weight=pos_weight, reduction=reduction, loss_weight=loss_weight, name=name)


@register("loss", "KLDivLoss", "kl_div")
class KLDivLoss(ElementwiseLoss):
    """Kullback-Leibler divergence KL(t || q) with log q as input (PyTorch's ``kl_div``).

    Forward:  l = t (log t - x) (0 where t = 0), x = log q; with log_target: l = e^t (t - x).
    Backward: dl/dx = -t  (log_target: -e^t).
    Reduction: 'mean' divides by the number of elements (PyTorch's default, which is not the
              KL divergence); 'batchmean' (= 'batch_size') divides by N and is the true mean
              KL per sample; 'sum'.

    Shapes: input (N, ...) log-probabilities, target the same shape -> ().
    Caches: g = -t, div (the reduction's divisor).
    """

    reductions = ("mean", "sum", "batch_size", "full", "batchmean")

    def __init__(self, *, reduction: str = "mean", log_target: bool = False, loss_weight: float = 1.0,
                 name: str | None = None) -> None:
        super().__init__(reduction=reduction, loss_weight=loss_weight, name=name)
        if self.reduction == "batchmean":
            self.reduction = "batch_size"
        self.log_target = bool(log_target)

    def _check_target(self, target: Array) -> None:
        self.check_float(target, "target")
        if not self.log_target and bool((target < 0).any()):
            raise self.error("target probabilities must be >= 0 (pass log_target=True for log-probabilities)")

    def _pointwise(self, x: Array, t: Array, need_grad: bool):
        xp = get_array_module(x)
        if self.log_target:
            et = xp.exp(t)
            return et * (t - x), -et if need_grad else None
        pos = t > 0
        tlogt = xp.where(pos, t * xp.log(xp.where(pos, t, 1)), 0)
        return tlogt - t * x, -t if need_grad else None
