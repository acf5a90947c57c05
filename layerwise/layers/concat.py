"""Concatenation of several inputs along one axis (Caffe's Concat, torch.cat)."""
from __future__ import annotations

from ..backend import Array, Shape, get_array_module
from ..core import Layer, register
from ._dtype import FloatInputs

__all__ = ["Concat"]


@register("layer", "Concat")
class Concat(FloatInputs, Layer):
    """Join inputs along ``axis`` (default 1: channels, the DenseNet pattern).

    Forward:  y = [x_1, x_2, ..., x_K] stacked along ``axis``.
    Backward: dx_k = the slice of dy that x_k occupies (dy split at the same offsets;
              the slices are views of dy, no copy). As every layer, one gradient per input:
              the array itself for one input, a tuple (dx_1, ..., dx_K) for K > 1.

    Args:
        axis: the axis to join along (counting the batch axis; negative counts from the end).

    Shapes: x_k (N, C_k, ...) -> y (N, sum_k C_k, ...) for axis 1; all other axes must match.
    Caches: the sizes of the inputs along ``axis``.

    Example:
        >>> import numpy as np
        >>> Concat().forward(np.zeros((2, 3, 4, 4)), np.zeros((2, 5, 4, 4))).shape
        (2, 8, 4, 4)
    """

    num_inputs = None

    def __init__(self, axis: int = 1, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(f"Concat: axis must be an int, got {axis!r}")
        self.axis = axis

    def _axis(self, ndim: int) -> int:
        if not -ndim <= self.axis < ndim:
            raise self.error(f"axis {self.axis} is out of range for {ndim}-D inputs; use an axis in "
                             f"[{-ndim}, {ndim - 1}]")
        return self.axis % ndim

    def _output_shape(self, *shapes: Shape) -> Shape:
        first = shapes[0]
        ax = self._axis(len(first))
        for i, s in enumerate(shapes[1:], 1):
            if len(s) != len(first) or any(a != b for d, (a, b) in enumerate(zip(s, first)) if d != ax):
                raise self.error(f"input {i} has shape {tuple(s)}, which does not match input 0 {tuple(first)} "
                                 f"on every axis but {ax}; all inputs must agree except along the concat axis")
        out = list(first)
        out[ax] = sum(s[ax] for s in shapes)
        return tuple(out)

    def _forward(self, *xs):
        xp = get_array_module(*xs)
        ax = self._axis(xs[0].ndim)
        self.save(sizes=[x.shape[ax] for x in xs])
        return xp.concatenate(xs, axis=ax)

    def _backward(self, dy: Array) -> Array | tuple[Array, ...]:
        ax = self._axis(dy.ndim)
        out, start = [], 0
        for n in self.cache["sizes"]:
            idx = [slice(None)] * dy.ndim
            idx[ax] = slice(start, start + n)
            out.append(dy[tuple(idx)])
            start += n
        return out[0] if len(out) == 1 else tuple(out)
