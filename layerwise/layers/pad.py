"""Constant padding of the spatial axes (ONNX's Pad, torch's ConstantPad2d)."""
from __future__ import annotations

from collections.abc import Sequence

from ..backend import Array, Shape, get_array_module
from ..core import Layer, register

__all__ = ["ConstantPad2d"]


@register("layer", "ConstantPad2d", "Pad")
class ConstantPad2d(Layer):
    """Pad H and W with a constant.

    Forward:  y = value everywhere; y[:, :, top:top+H, left:left+W] = x.
    Backward: dx = dy[:, :, top:top+H, left:left+W].

    Args:
        padding: int, or (left, right, top, bottom) as torch.nn.ConstantPad2d.
        value: the fill value.

    Shapes: x (N, C, H, W) -> y (N, C, H + top + bottom, W + left + right).
    Caches: nothing (the offsets).

    Example:
        >>> import numpy as np
        >>> ConstantPad2d((1, 0, 0, 2)).forward(np.ones((1, 1, 2, 2))).shape
        (1, 1, 4, 3)
    """

    def __init__(self, padding: int | Sequence[int], value: float = 0.0, *, name: str | None = None) -> None:
        super().__init__(name=name)
        p = (padding,) * 4 if isinstance(padding, int) else tuple(int(v) for v in padding)
        if len(p) != 4 or min(p) < 0:
            raise ValueError(f"ConstantPad2d: padding must be an int or (left, right, top, bottom) >= 0, "
                             f"got {padding!r}")
        self.padding, self.value = p, float(value)

    def _output_shape(self, shape: Shape) -> Shape:
        self.expect_ndim(shape, 4, "(N, C, H, W)")
        l, r, t, b = self.padding
        return (shape[0], shape[1], shape[2] + t + b, shape[3] + l + r)

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        l, _, t, _ = self.padding
        y = xp.full(self._out_shape, self.value, dtype=x.dtype)
        y[:, :, t:t + x.shape[2], l:l + x.shape[3]] = x
        self.save()
        return y

    def _backward(self, dy: Array) -> Array:
        l, r, t, b = self.padding
        H, W = dy.shape[2] - t - b, dy.shape[3] - l - r
        return dy[:, :, t:t + H, l:l + W].copy()
