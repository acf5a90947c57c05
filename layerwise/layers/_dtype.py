"""The dtype rule for layers with parameters (docs/failures.md, "Input dtypes").

A layer with parameters computes in its parameters' dtype (float32 by default, float64 after
``astype``/``setup(dtype=...)``) and accepts only inputs of exactly that dtype. Any other input,
an integer or bool array included, is refused with a LayerError that names the layer and the fix
(``x.astype(...)``): a silent cast would either hide a float64 slowdown (int @ float32 gives
float64 in NumPy) or, for images stored as uint8, skip the scaling the data set should apply.
Parameter-free layers compute in their input's dtype.
"""
from __future__ import annotations

from typing import Any


def require_param_dtype(layer: Any, xs: tuple) -> None:
    """Raise ``layer.error(...)`` unless every input has the dtype of ``layer``'s first param.

    Float inputs of another float dtype are already refused by ``Layer.forward``; this adds the
    integer and bool inputs, which it lets through.
    """
    params = getattr(layer, "_params", None)
    if not params:
        return
    dtype = next(iter(params.values())).dtype
    for i, x in enumerate(xs):
        if x.dtype.kind != "f":
            raise layer.error(f"input {i} has dtype {x.dtype}, but the layer computes in its params' dtype {dtype}; "
                              f"convert the input with x.astype('{dtype}') (and scale images, e.g. uint8 / 255)")


__all__ = ["require_param_dtype"]
