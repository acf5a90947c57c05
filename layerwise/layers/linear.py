"""Linear: a fully connected layer (Caffe's InnerProduct), PyTorch's weight layout."""
from __future__ import annotations

import math
from typing import Any

from .. import init as _init
from ..backend import Array, Shape, get_array_module
from ..core import Layer, Param, register
from ._dtype import FloatInputs

__all__ = ["Linear"]


@register("layer", "Linear", "InnerProduct")
class Linear(FloatInputs, Layer):
    """Fully connected layer: y = x W^T + b.

    The input's dimensions from ``axis`` on are flattened into K = in_features (Caffe's
    InnerProduct, so ``(N, C, H, W)`` feeds it directly); ``axis=-1`` applies it to the
    last dimension only, as ``torch.nn.Linear`` does for ``(N, T, K)`` inputs.

    Forward: X = x.reshape(M, K); Y = X W^T + b; y = Y.reshape(x.shape[:axis] + (out,)).
    Backward: dX = dY W;  dW += dY^T X;  db += sum_m dY[m].
    Shapes: x (N, K) or (N, *) with prod(*) = K -> y (N, out); weight (out, K); bias (out,).
    Caches: X (a view of x).

    Init (PyTorch's): W and b ~ U(-1/sqrt(K), 1/sqrt(K)), i.e. kaiming_uniform(a=sqrt(5)).
    ``weight_filler`` / ``bias_filler`` take a filler name or dict for ``layerwise.init.fill``
    instead, e.g. ``{"type": "xavier"}`` or ``{"type": "constant", "value": 0.1}``.

    Args:
        out_features: number of outputs (Caffe's num_output).
        bias: whether to add a learned bias.
        axis: first dimension of x that is flattened into the features (1, or -1).
        weight_filler, bias_filler: optional filler specs (None: PyTorch's default).

    Example:
        >>> import numpy as np
        >>> fc = Linear(3)
        >>> fc.forward(np.ones((2, 4, 5), np.float32)).shape, fc.weight.shape
        ((2, 3), (3, 20))
    """

    def __init__(self, out_features: int, bias: bool = True, *, axis: int = 1,
                 weight_filler: str | dict[str, Any] | None = None,
                 bias_filler: str | dict[str, Any] | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        if isinstance(out_features, bool) or int(out_features) != out_features or out_features < 1:
            raise ValueError(f"Linear: out_features must be a positive integer, got {out_features!r}")
        self.out_features = int(out_features)
        self.has_bias = bool(bias)
        self.axis = int(axis)
        self.weight_filler, self.bias_filler = weight_filler, bias_filler
        self.in_features: int | None = None
        self.bias: Param | None = None

    def _split(self, shape: Shape) -> tuple[Shape, int]:
        """(kept leading dims, flattened feature count) of an input shape; checks the rank."""
        axis = self.axis + len(shape) if self.axis < 0 else self.axis
        if not 1 <= axis < len(shape):
            want = "(N, K)" if self.axis in (1, -1) else f"at least {max(self.axis, -self.axis) + 1} dims"
            raise self.error(f"expected an input of shape {want} (features from axis {self.axis} on), "
                             f"got shape {tuple(shape)}; add a batch dimension or reshape the input")
        return tuple(shape[:axis]), math.prod(shape[axis:])

    def _build(self, shape: Shape) -> None:
        _, k = self._split(shape)
        self.in_features = k
        bound = 1.0 / math.sqrt(k)
        w = (_init.fill(self.weight_filler, (self.out_features, k), self.rng) if self.weight_filler is not None
             else _init.uniform((self.out_features, k), self.rng, -bound, bound))
        self.weight = self.add_param("weight", w)
        if self.has_bias:
            b = (_init.fill(self.bias_filler, (self.out_features,), self.rng) if self.bias_filler is not None
                 else _init.uniform((self.out_features,), self.rng, -bound, bound))
            self.bias = self.add_param("bias", b)

    def _output_shape(self, shape: Shape) -> Shape:
        lead, k = self._split(shape)
        if k != self.in_features:
            raise self.error(f"expected {self.in_features} input features (weight {self.weight.shape}), got "
                             f"{k} from input shape {tuple(shape)}; the layer was built for another input size")
        return lead + (self.out_features,)

    def _forward(self, x: Array) -> Array:
        k = self.in_features
        X = x.reshape(-1, k)  # (M, K)
        self.save(X=X)
        Y = _matmul(X, self.weight.data.T)  # (M, out)
        if self.bias is not None:
            Y += self.bias.data
        return Y.reshape(self._out_shape)

    def _backward(self, dy: Array) -> Array:
        X = self.cache["X"]
        dY = dy.reshape(-1, self.out_features)  # (M, out)
        _matmul(dY.T, X, self.weight.grad)  # (out, K), added into the grad
        if self.bias is not None:
            # float64 accumulator: a float32 column sum over M = N*T rows drifts as M grows
            self.bias.grad += dY.sum(axis=0, dtype=get_array_module(dY).float64).astype(dY.dtype, copy=False)
        assert self._in_shapes is not None   # set by the forward that backward follows
        return _matmul(dY, self.weight.data).reshape(self._in_shapes[0])


def _matmul(A: Array, B: Array, acc: Array | None = None) -> Array:
    """``A @ B``, or ``acc += A @ B``: NumPy arrays through ``blas.matmul`` (our threads, in place
    on transposed views), others (CuPy) through ``@``."""
    import numpy as np
    if isinstance(A, np.ndarray) and isinstance(B, np.ndarray) and (acc is None or isinstance(acc, np.ndarray)):
        from ..functional import blas
        return blas.matmul(A, B, acc, accumulate=acc is not None)
    if acc is None:
        return A @ B
    acc += A @ B
    return acc
