"""Eltwise: element-wise sum (with coefficients), product or maximum of several inputs."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..backend import Array, Shape, get_array_module
from ..core import Layer, register

__all__ = ["Eltwise"]

_OPS = ("sum", "prod", "max")


@register("layer", "Eltwise")
class Eltwise(Layer):
    """Element-wise combination of K >= 1 inputs of one shape (Caffe's Eltwise).

    Forward:  sum: y = sum_k c_k x_k (c_k = 1 by default);  prod: y = prod_k x_k;
              max: y = max_k x_k.
    Backward: sum: dx_k = c_k * dy (dy itself when c_k = 1);
              prod: dx_k = dy * prod_{j != k} x_j, from prefix and suffix products (no division,
              so zeros in the inputs are fine);
              max: dx_k = dy where input k holds the maximum (the first one on a tie, as Caffe), else 0.
              One input: dx (an array); several: a tuple (dx_1, ..., dx_K).
    Shapes: K inputs x_k (N, *) -> y (N, *).
    Caches: nothing (sum), xs = the inputs (prod), idx = the arg-max input per element (max).

    Args:
        op: 'sum', 'prod' or 'max'.
        coeffs: one coefficient per input, only for 'sum' (e.g. (1, -1) for a difference).
        num_inputs: how many inputs to expect (None: any number, fixed at setup).

    Example:
        >>> import numpy as np
        >>> Eltwise("sum", coeffs=(1, -1)).forward(np.ones(2), np.full(2, 3.0)).tolist()
        [-2.0, -2.0]
    """

    num_inputs = None

    def __init__(self, op: str = "sum", coeffs: Sequence[float] | None = None, *, num_inputs: int | None = None,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        op = op.lower() if isinstance(op, str) else op
        if op not in _OPS:
            raise ValueError(f"Eltwise: op must be one of {_OPS}, got {op!r}")
        if coeffs is not None and op != "sum":
            raise ValueError(f"Eltwise: coeffs apply to op='sum' only (Caffe's rule), got op={op!r}")
        self.op = op
        self.coeffs = None if coeffs is None else tuple(float(c) for c in coeffs)
        if num_inputs is not None:
            self.num_inputs = int(num_inputs)
        if self.coeffs is not None and num_inputs is not None and len(self.coeffs) != num_inputs:
            raise ValueError(f"Eltwise: {len(self.coeffs)} coeffs for {num_inputs} inputs; give one per input")

    def _output_shape(self, *shapes: Shape) -> Shape:
        for i, s in enumerate(shapes[1:], 1):
            if tuple(s) != tuple(shapes[0]):
                raise self.error(f"input {i} has shape {tuple(s)}, expected the shape of input 0, "
                                 f"{tuple(shapes[0])}; every input of Eltwise must have the same shape")
        if self.coeffs is not None and len(self.coeffs) != len(shapes):
            raise self.error(f"got {len(shapes)} inputs but {len(self.coeffs)} coeffs; give one coeff per input")
        return shapes[0]

    def _check_dtype(self, xs) -> None:
        for i, x in enumerate(xs):
            if x.dtype != xs[0].dtype or x.dtype.kind != "f":
                raise self.error(f"input {i} has dtype {x.dtype}, expected float inputs of one dtype "
                                 f"(input 0 is {xs[0].dtype}); convert them with x.astype('float32')")

    def _forward(self, *xs: Array) -> Array:
        xp = get_array_module(*xs)
        if self.op == "sum":
            c = self.coeffs or (1.0,) * len(xs)
            y = xs[0] * c[0] if c[0] != 1 else xs[0].copy()
            for ck, x in zip(c[1:], xs[1:]):
                y += x * ck if ck != 1 else x
            self.save()
            return y
        if self.op == "prod":
            y = xs[0].copy()
            for x in xs[1:]:
                y *= x
            self.save(xs=xs)
            return y
        y = xs[0].copy()
        idx = xp.zeros(y.shape, np.uint8 if len(xs) < 256 else np.int32)
        for k, x in enumerate(xs[1:], 1):
            bigger = (x > y) | xp.isnan(x)  # the first maximum keeps a tie; NaN propagates (torch.maximum)
            y = xp.where(bigger, x, y)
            idx[bigger] = k
        self.save(idx=idx)
        return y

    def _backward(self, dy: Array):
        xp = get_array_module(dy)
        assert self._in_shapes is not None   # set by the forward that backward follows
        k_in = len(self._in_shapes)
        if self.op == "sum":
            c = self.coeffs or (1.0,) * k_in
            return self._out(tuple(dy if ck == 1 else dy * ck for ck in c))
        if self.op == "prod":
            xs = self.cache["xs"]
            suffix: list = [None] * k_in  # suffix[k] = prod_{j > k} x_j
            acc = None
            for k in range(k_in - 1, -1, -1):
                suffix[k] = acc
                acc = xs[k] if acc is None else acc * xs[k]
            dxs, prefix = [], dy  # prefix = dy * prod_{j < k} x_j
            for k in range(k_in):
                dxs.append(prefix if suffix[k] is None else prefix * suffix[k])
                if k + 1 < k_in:
                    prefix = prefix * xs[k]
            return self._out(tuple(dxs))
        idx = self.cache["idx"]
        return self._out(tuple(xp.where(idx == k, dy, 0) for k in range(k_in)))

    @staticmethod
    def _out(dxs: tuple) -> Array | tuple:
        """One gradient per input, as every layer: the array itself for one input, else the tuple."""
        return dxs[0] if len(dxs) == 1 else dxs
