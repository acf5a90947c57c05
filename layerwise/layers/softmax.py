"""Softmax and LogSoftmax along one axis, with Jacobian-vector backward passes."""
from __future__ import annotations

from ..backend import Array, Shape, get_array_module
from ..core import Layer, register

__all__ = ["Softmax", "LogSoftmax"]


class _AxisLayer(Layer):
    def __init__(self, axis: int = 1, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.axis = int(axis)

    def _output_shape(self, shape: Shape) -> Shape:
        if not -len(shape) <= self.axis < len(shape):
            raise self.error(f"axis {self.axis} is out of range for an input of shape {tuple(shape)}; expected "
                             f"an input (N, C, *) with at least {self.axis + 1 if self.axis >= 0 else -self.axis} "
                             "dims, or another axis")
        return shape

    def _check_dtype(self, xs) -> None:
        if xs[0].dtype.kind != "f":
            raise self.error(f"expected a float input, got dtype {xs[0].dtype}; convert it with x.astype('float32')")


@register("layer", "Softmax")
class Softmax(_AxisLayer):
    """Softmax along ``axis`` (default 1, the channels: per pixel for (N, C, H, W), as Caffe).

    Forward: y = exp(x - max(x)) / sum(exp(x - max(x)))  (max subtracted: never overflows).
    Backward: dx = y * (dy - sum(dy * y)), sums along ``axis`` (the Jacobian-vector product with
    J = diag(y) - y y^T).
    Shapes: x (N, C, *) -> y (N, C, *).  Caches: y.

    Example:
        >>> import numpy as np
        >>> Softmax().forward(np.array([[0.0, 0.0], [1e4, 0.0]])).tolist()
        [[0.5, 0.5], [1.0, 0.0]]
    """

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        y = e / e.sum(axis=self.axis, keepdims=True)
        self.save(y=y)
        return y

    def _backward(self, dy: Array) -> Array:
        y = self.cache["y"]
        return y * (dy - (dy * y).sum(axis=self.axis, keepdims=True))


@register("layer", "LogSoftmax")
class LogSoftmax(_AxisLayer):
    """Log of the softmax along ``axis``.

    Forward: y = x - max(x) - log(sum(exp(x - max(x)))).
    Backward: dx = dy - exp(y) * sum(dy)  (exp(y) is the softmax; sum along ``axis``).
    Shapes: x (N, C, *) -> y (N, C, *).  Caches: y.

    Example:
        >>> import numpy as np
        >>> LogSoftmax().forward(np.array([[0.0, 0.0]])).round(6).tolist()
        [[-0.693147, -0.693147]]
    """

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        z = x - x.max(axis=self.axis, keepdims=True)
        y = z - xp.log(xp.exp(z).sum(axis=self.axis, keepdims=True))
        self.save(y=y)
        return y

    def _backward(self, dy: Array) -> Array:
        xp = get_array_module(dy)
        return dy - xp.exp(self.cache["y"]) * dy.sum(axis=self.axis, keepdims=True)
