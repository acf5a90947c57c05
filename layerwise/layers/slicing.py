"""Slice: split one blob into several along an axis (Caffe's Slice, ONNX's Split)."""
from __future__ import annotations

from collections.abc import Sequence

from ..backend import Array, Shape, get_array_module
from ..core import Layer, register

__all__ = ["Slice"]


@register("layer", "Slice")
class Slice(Layer):
    """Cut x along ``axis`` at ``points`` into len(points) + 1 outputs (or into ``num_outputs`` equal parts).

    Forward:  y_k = x[..., p_k : p_{k+1}, ...] (p_0 = 0, p_last = the axis length).
    Backward: dx = concat_k(dy_k) along the axis (a missing dy_k counts as zeros).
    Shapes: x (N, *) -> y_k with the axis length p_{k+1} - p_k.
    Caches: nothing (the boundaries).

    Args:
        points: increasing cut positions (Caffe's slice_point), or None for equal parts.
        axis: the axis to cut (negative counts from the end).
        num_outputs: the number of equal parts when ``points`` is None.

    Example:
        >>> import numpy as np
        >>> [y.shape for y in Slice([1, 3]).forward(np.zeros((2, 4, 5)))]
        [(2, 1, 5), (2, 2, 5), (2, 1, 5)]
    """

    def __init__(self, points: Sequence[int] | None = None, axis: int = 1, *, num_outputs: int | None = None,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        if points is None and (num_outputs is None or int(num_outputs) < 1):
            raise ValueError("Slice: give points (cut positions) or num_outputs >= 1 (equal parts)")
        self.points = None if points is None else tuple(int(p) for p in points)
        if self.points is not None and (any(b <= a for a, b in zip(self.points, self.points[1:]))
                                        or (self.points and self.points[0] <= 0)):
            raise ValueError(f"Slice: points must be positive and strictly increasing, got {self.points}")
        self.axis = int(axis)
        self.num_outputs = None if num_outputs is None else int(num_outputs)

    def _bounds(self, shape: Shape) -> tuple[int, list[int]]:
        axis = self.axis + len(shape) if self.axis < 0 else self.axis
        if not 0 <= axis < len(shape):
            raise self.error(f"axis {self.axis} is out of range for an input of shape {tuple(shape)}")
        n = shape[axis]
        if self.points is None:
            parts = self.num_outputs
            assert parts is not None   # __init__ requires num_outputs when there are no points
            if n % parts:
                raise self.error(f"axis {axis} has length {n}, not divisible into {parts} equal parts; "
                                 "give explicit points")
            step = n // parts
            pts = [step * i for i in range(1, parts)]
        else:
            pts = list(self.points)
            if pts and pts[-1] >= n:
                raise self.error(f"cut points {self.points} must be smaller than the axis length {n} of input "
                                 f"shape {tuple(shape)}")
        return axis, [0] + pts + [n]

    def _output_shape(self, shape: Shape):
        axis, b = self._bounds(shape)
        outs = tuple(tuple(shape[:axis]) + (hi - lo,) + tuple(shape[axis + 1:]) for lo, hi in zip(b, b[1:]))
        return outs if len(outs) > 1 else outs[0]

    def _forward(self, x: Array):
        axis, b = self._bounds(x.shape)
        idx = [slice(None)] * x.ndim
        outs = []
        for lo, hi in zip(b, b[1:]):
            idx[axis] = slice(lo, hi)
            outs.append(x[tuple(idx)])
        self.save()
        return tuple(outs) if len(outs) > 1 else outs[0]

    def _backward(self, *dys: Array) -> Array:
        assert self._in_shapes is not None   # set by the forward that backward follows
        shape = self._in_shapes[0]
        axis, b = self._bounds(shape)
        ref = next(d for d in dys if d is not None)
        xp = get_array_module(ref)
        dx = xp.zeros(shape, dtype=ref.dtype)
        idx = [slice(None)] * len(shape)
        for (lo, hi), d in zip(zip(b, b[1:]), dys):
            if d is not None:
                idx[axis] = slice(lo, hi)
                dx[tuple(idx)] = d
        return dx
