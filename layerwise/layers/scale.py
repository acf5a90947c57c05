"""Scale: a learned per-channel (or per-block) multiplier with an optional bias (Caffe's Scale + Bias)."""
from __future__ import annotations

from .. import init
from ..backend import Array, Shape
from ..core import Layer, Param, register

__all__ = ["Scale"]


@register("layer", "Scale")
class Scale(Layer):
    """y = x * w + b with w, b broadcast over the axes outside ``axis .. axis+num_axes-1``.

    Caffe puts a Scale (bias_term: true) after each BatchNorm, whose own output has no affine part.
    Forward:  y[n, c, ...] = w[c] * x[n, c, ...] + b[c]    (axis 1, num_axes 1, the usual case).
    Backward: dx = dy * w;  dw += sum over the broadcast axes of dy * x;  db += sum of dy there.
    Shapes: x (N, C, *) -> y of the same shape; w, b of shape x.shape[axis:axis+num_axes].
    Caches: x.

    Args:
        axis: first axis the params cover (1: channels).
        num_axes: how many axes they cover (-1: all from ``axis`` on; 0: a scalar).
        bias: learn b too (Caffe's bias_term).

    Example:
        >>> import numpy as np
        >>> s = Scale()
        >>> s.forward(np.ones((2, 3, 4, 4))).shape, s.weight.shape
        ((2, 3, 4, 4), (3,))
    """

    def __init__(self, axis: int = 1, num_axes: int = 1, bias: bool = False, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if int(num_axes) < -1:
            raise ValueError(f"Scale: num_axes must be >= -1, got {num_axes}")
        self.axis, self.num_axes, self.use_bias = int(axis), int(num_axes), bool(bias)
        self.bias: Param | None = None

    def _span(self, shape: Shape) -> tuple[int, int]:
        a = self.axis + len(shape) if self.axis < 0 else self.axis
        e = len(shape) if self.num_axes == -1 else a + self.num_axes
        if not 0 <= a <= len(shape) or e > len(shape):
            raise self.error(f"axis {self.axis} with num_axes {self.num_axes} does not fit an input of shape "
                             f"{tuple(shape)}")
        return a, e

    def _build(self, shape: Shape) -> None:
        a, e = self._span(shape)
        pshape = tuple(shape[a:e])
        self.weight = self.add_param("weight", init.constant(pshape, value=1.0))
        if self.use_bias:
            self.bias = self.add_param("bias", init.constant(pshape))

    def _output_shape(self, shape: Shape) -> Shape:
        a, e = self._span(shape)
        if tuple(shape[a:e]) != self.weight.shape:
            raise self.error(f"input shape {tuple(shape)} covers {tuple(shape[a:e])} at axes {a}..{e - 1}, but the "
                             f"params have shape {self.weight.shape}; build a new layer for this input")
        return shape

    def _view(self, p: Array, shape: Shape) -> Array:
        a, e = self._span(shape)
        return p.reshape((1,) * a + p.shape + (1,) * (len(shape) - e))

    def _forward(self, x: Array) -> Array:
        self.save(x=x)
        y = x * self._view(self.weight.data, x.shape)
        if self.bias is not None:
            y += self._view(self.bias.data, x.shape)
        return y

    def _backward(self, dy: Array) -> Array:
        x = self.cache["x"]
        a, e = self._span(x.shape)
        red = tuple(range(a)) + tuple(range(e, x.ndim))
        self.weight.grad += (dy * x).sum(axis=red).reshape(self.weight.shape)
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=red).reshape(self.bias.shape)
        return dy * self._view(self.weight.data, x.shape)
