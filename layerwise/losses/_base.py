"""Shared machinery of the loss layers: reductions, input checks, elementwise losses.

Reduction (what the summed loss is divided by), one vocabulary for every loss:

    'mean'        PyTorch's mean: the number of loss terms (elements, or the summed class
                  weights of the valid targets for a weighted cross-entropy)
    'sum'         1 (PyTorch 'sum', Caffe normalization NONE)
    'batch_size'  N, the first dimension (Caffe BATCH_SIZE; Caffe's EuclideanLoss)
    'full'        every position, ignored ones included (Caffe FULL)
    'valid'       the positions whose label is not ignore_index (Caffe VALID)

PyTorch's reduction='none' (a per-element vector) is refused: a loss layer returns a scalar.
A divisor of 0 (every target ignored) gives a loss of 0 and a zero gradient, as Caffe does
(PyTorch returns nan).
"""
from __future__ import annotations

from typing import Any

from ..backend import Array, Shape, get_array_module
from ..core.layer import LossLayer

REDUCTIONS = ("mean", "sum", "batch_size", "full", "valid")


def check_reduction(owner: str, reduction: str, allowed: tuple[str, ...]) -> str:
    """Validate a reduction name for ``owner`` (raises ValueError naming the choices)."""
    if reduction == "none":
        raise ValueError(
            f"{owner}: reduction='none' is not supported, a loss layer returns a scalar; use "
            f"one of {allowed} (Caffe's normalization NONE is reduction='sum')")
    if reduction not in allowed:
        raise ValueError(f"{owner}: reduction must be one of {allowed}, got {reduction!r}")
    return reduction


def as_0d(xp: Any, value: Any, dtype: Any) -> Array:
    """The loss as a 0-d array of ``dtype``."""
    return xp.asarray(value, dtype=dtype).reshape(())


class Loss(LossLayer):
    """Base of layerwise's losses: reduction validation and checks of prediction/labels.

    Subclasses set ``reductions`` (allowed names) and may override ``_output_shape``.
    """

    reductions: tuple[str, ...] = ("mean", "sum", "batch_size")

    def __init__(self, *, reduction: str = "mean", loss_weight: float = 1.0, name: str | None = None) -> None:
        super().__init__(loss_weight=loss_weight, name=name)
        self.reduction = check_reduction(type(self).__name__, reduction, self.reductions)

    def _backward(self, scale: float) -> Array:
        """The common case: ``_forward`` cached the unreduced gradient ``g`` of the summed loss and
        the divisor ``div`` of the reduction, so d(scale * loss)/d(pred) = g * scale / div."""
        return self.cache["g"] * (scale / self.cache["div"])

    # ------------------------------------------------------------------ checks
    def check_float(self, x: Array, what: str = "prediction") -> None:
        """A float array without NaN/Inf, else a LayerError naming this loss."""
        if x.dtype.kind != "f":
            raise self.error(f"the {what} must be a float array, got dtype {x.dtype}; "
                             f"convert it with .astype('float32')")
        xp = get_array_module(x)
        if not bool(xp.isfinite(x).all()):
            bad = int(xp.count_nonzero(~xp.isfinite(x)))
            kind = "NaN" if bool(xp.isnan(x).any()) else "Inf"
            raise self.error(f"the {what} contains {bad} non-finite value(s) ({kind}); the network "
                             "diverged or its input is corrupt: lower the learning rate, clip gradients "
                             "or check the data")

    def check_labels(self, labels: Array, num_classes: int, ignore_index: int | None = None) -> Array:
        """Integer labels in [0, num_classes) (or == ignore_index); returns the valid mask."""
        if labels.dtype.kind not in "iu":
            raise self.error(f"class labels must be an integer array, got dtype {labels.dtype}; "
                             "convert them with .astype('int64') (or pass soft targets of the prediction's shape)")
        xp = get_array_module(labels)
        valid = labels != ignore_index if ignore_index is not None else xp.ones(labels.shape, dtype=bool)
        bad = valid & ((labels < 0) | (labels >= num_classes))
        if bool(bad.any()):
            idx = tuple(int(i[0]) for i in xp.nonzero(bad))
            extra = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
            raise self.error(f"label {int(labels[idx])} at index {idx} is out of range: expected "
                             f"0 <= label < {num_classes} (the number of classes){extra}")
        return valid

    def check_pm1(self, y: Array, what: str = "target") -> None:
        """Binary labels in {-1, +1}."""
        if not bool(((y == 1) | (y == -1)).all()):
            bad = y[(y != 1) & (y != -1)]
            raise self.error(f"the {what} must hold binary labels in {{-1, +1}}, found {bad[:3].tolist()}; "
                             "map {0, 1} labels with 2 * y - 1")

    def same_shape(self, pred: Shape, target: Shape, what: str = "target") -> None:
        if tuple(pred) != tuple(target):
            raise self.error(f"prediction shape {tuple(pred)} and {what} shape {tuple(target)} differ; "
                             f"expected equal shapes")

    def divisor(self, shape: Shape, n_valid: Any = None, weight_sum: Any = None) -> float:
        """What the summed loss is divided by, for ``self.reduction`` (see the module docstring)."""
        r = self.reduction
        count = 1
        for d in shape:
            count *= int(d)
        if r == "sum":
            return 1.0
        if r == "batch_size":
            return float(shape[0]) if len(shape) else 1.0
        if r == "full":
            return float(count)
        if r == "valid":
            return float(count if n_valid is None else n_valid)
        # mean
        if weight_sum is not None:
            return float(weight_sum)
        return float(count if n_valid is None else n_valid)


class ElementwiseLoss(Loss):
    """A loss ``sum_i l(p_i, t_i) / divisor`` with prediction and target of the same shape.

    Subclasses write ``_pointwise(pred, target, need_grad) -> (l, dl/dpred or None)``.
    Reduction: 'mean' and 'full' divide by the number of elements, 'batch_size' by N, 'sum' by 1.

    Caches: g (the elementwise derivative dl/dpred), div (the divisor).
    """

    reductions: tuple[str, ...] = ("mean", "sum", "batch_size", "full")
    target_is_float = True

    def _output_shape(self, pred: Shape, target: Shape):
        self.same_shape(pred, target)
        if len(pred) == 0:
            raise self.error("expected a prediction with a batch dimension (N, ...), got a scalar")
        return ()

    def _check_target(self, target: Array) -> None:
        if self.target_is_float:
            self.check_float(target, "target")

    def _pointwise(self, pred: Array, target: Array, need_grad: bool):
        raise NotImplementedError

    def _forward(self, pred: Array, target: Array) -> Array:
        self.check_float(pred)
        self._check_target(target)
        xp = get_array_module(pred)
        if target.dtype != pred.dtype:
            target = target.astype(pred.dtype)
        loss, g = self._pointwise(pred, target, self.cache_enabled)
        div = self.divisor(pred.shape)
        self.save(g=g, div=div)
        return as_0d(xp, loss.sum() / div, pred.dtype)
