"""Shape layers: Flatten and Reshape (views; backward reshapes the gradient back)."""
from __future__ import annotations

import math
from collections.abc import Sequence

from ..backend import Array, Shape
from ..core import Layer, register
from ._dtype import FloatInputs

__all__ = ["Flatten", "Reshape"]


@register("layer", "Flatten")
class Flatten(FloatInputs, Layer):
    """Flatten dimensions start_dim..end_dim into one (``torch.nn.Flatten``; Caffe's Flatten).

    Forward: y = x.reshape(x.shape[:s] + (prod(x.shape[s:e+1]),) + x.shape[e+1:]).
    Backward: dx = dy.reshape(x.shape).
    Shapes: x (N, C, H, W) -> y (N, C*H*W) with the defaults.  Caches: nothing (the shape).

    Example:
        >>> import numpy as np
        >>> Flatten().forward(np.zeros((2, 3, 4, 5))).shape
        (2, 60)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def _output_shape(self, shape: Shape) -> Shape:
        n = len(shape)
        s = self.start_dim + n if self.start_dim < 0 else self.start_dim
        e = self.end_dim + n if self.end_dim < 0 else self.end_dim
        if not (0 <= s < n and 0 <= e < n and s <= e):
            raise self.error(f"cannot flatten dims {self.start_dim}..{self.end_dim} of a {n}-D input of shape "
                             f"{tuple(shape)}; expected (N, *) with more than {max(self.start_dim, 0)} dims")
        return tuple(shape[:s]) + (math.prod(shape[s:e + 1]),) + tuple(shape[e + 1:])

    def _forward(self, x: Array) -> Array:
        self.save()
        return x.reshape(self._out_shape)

    def _backward(self, dy: Array) -> Array:
        assert self._in_shapes is not None   # set by the forward that backward follows
        return dy.reshape(self._in_shapes[0])


@register("layer", "Reshape")
class Reshape(FloatInputs, Layer):
    """Reshape each sample, keeping the batch dimension (Caffe's Reshape, ``view(N, *shape)``).

    ``shape`` excludes the batch dimension. One entry may be -1 (inferred from the size);
    0 copies the input's dimension at that position (Caffe's convention).
    Forward: y = x.reshape((N,) + shape).   Backward: dx = dy.reshape(x.shape).
    Shapes: x (N, *) -> y (N, *shape).  Caches: nothing (the shape).

    Example:
        >>> import numpy as np
        >>> Reshape((4, -1)).forward(np.zeros((2, 12))).shape
        (2, 4, 3)
    """

    def __init__(self, shape: Sequence[int], *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.shape = tuple(int(d) for d in shape)
        if sum(d == -1 for d in self.shape) > 1 or any(d < -1 for d in self.shape):
            raise ValueError(f"Reshape: shape may hold at most one -1 and no other negative entry, got {self.shape}")

    def _output_shape(self, shape: Shape) -> Shape:
        if len(shape) < 1:
            raise self.error("expected an input of shape (N, *), got a 0-D array")
        per_sample = math.prod(shape[1:])
        dims = []
        for i, d in enumerate(self.shape):
            if d == 0:
                if i + 1 >= len(shape):
                    raise self.error(f"shape {self.shape}: 0 at position {i} copies input dim {i + 1}, "
                                     f"but the input has shape {tuple(shape)}")
                d = shape[i + 1]
            dims.append(d)
        known = math.prod(d for d in dims if d != -1)
        if -1 in dims:
            if known == 0 or per_sample % known:
                raise self.error(f"cannot reshape samples of shape {tuple(shape[1:])} ({per_sample} values) "
                                 f"to {self.shape}; the sizes must divide")
            dims[dims.index(-1)] = per_sample // known
        elif known != per_sample:
            raise self.error(f"cannot reshape samples of shape {tuple(shape[1:])} ({per_sample} values) to "
                             f"{self.shape} ({known} values); expected the same number of values per sample")
        return (shape[0],) + tuple(dims)

    def _forward(self, x: Array) -> Array:
        self.save()
        return x.reshape(self._out_shape)

    def _backward(self, dy: Array) -> Array:
        assert self._in_shapes is not None   # set by the forward that backward follows
        return dy.reshape(self._in_shapes[0])
