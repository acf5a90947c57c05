"""The one dtype rule of layerwise's layers (docs/failures.md, "Input dtypes").

Layers take floating-point arrays: float32 or float64, and a layer with parameters exactly its
parameters' dtype (``Layer.forward`` refuses another float dtype). Integer and bool arrays are
refused with a LayerError that names the layer and the fix, ``x.astype('float32')``: layerwise
never casts silently (NumPy would turn ``int @ float32`` into float64, average integers with
truncation, or, for images stored as uint8, skip the scaling the data set should apply). Loss
layers' label inputs are the one place for integers; they check them themselves.

Layers with params (Conv2d among them) get the rule from ``Layer._check_dtype``, which
refuses non-float inputs itself (a loss layer checks its prediction only).
"""
from __future__ import annotations

from typing import Any


def require_float(layer: Any, xs: tuple) -> None:
    """Raise ``layer.error(...)`` when an input is not a floating-point array."""
    params = getattr(layer, "_params", None)
    dtype = next(iter(params.values())).dtype if params else "float32"
    for i, x in enumerate(xs):
        if x.dtype.kind != "f":
            raise layer.error(f"input {i} has dtype {x.dtype}; layers take floating-point arrays"
                              + (f" of their params' dtype {dtype}" if params else "")
                              + f": convert the input with x.astype('{dtype}') (and scale images, e.g. uint8 / 255)")


class FloatInputs:
    """Mixin (before ``Layer`` in the bases): ``_check_dtype`` also refuses integer and bool inputs."""

    def _check_dtype(self, xs: tuple) -> None:
        require_float(self, xs)
        super()._check_dtype(xs)  # type: ignore[misc]


# Kept for callers of the first version of this helper.
require_param_dtype = require_float

__all__ = ["require_float", "FloatInputs"]
