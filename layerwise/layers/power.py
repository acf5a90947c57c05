"""Caffe's affine-then-nonlinear neurons: Power, Exp, Log, and the Threshold step."""
from __future__ import annotations

import math

from ..backend import Array, get_array_module
from ..core import register
from .activations import _Elementwise

__all__ = ["Power", "Exp", "Log", "Threshold"]


def _base_log(base: float) -> float:
    if base == -1.0:
        return 1.0                                  # Caffe: base -1 means e
    if not base > 0:
        raise ValueError(f"base must be > 0 (or -1 for e), got {base}")
    return math.log(base)


@register("layer", "Power")
class Power(_Elementwise):
    """y = (shift + scale * x) ^ power.

    Forward:  u = shift + scale * x;  y = u^power.
    Backward: dx = dy * power * scale * u^(power - 1)   (0 when power = 0).

    Args:
        power, scale, shift: as in the formula (Caffe's power_param).

    Shapes: x (N, *) -> y (N, *).  Caches: u (nothing when power is 0 or 1).

    Example:
        >>> import numpy as np
        >>> Power(2.0, scale=2.0, shift=1.0).forward(np.array([1.0, 2.0])).tolist()
        [9.0, 25.0]
    """

    def __init__(self, power: float = 1.0, scale: float = 1.0, shift: float = 0.0, *, name: str | None = None):
        super().__init__(name=name)
        self.power, self.scale, self.shift = float(power), float(scale), float(shift)

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        u = x * self.scale + self.shift if (self.scale != 1 or self.shift != 0) else x
        if self.power not in (0.0, 1.0):
            self.save(u=u)
        else:
            self.save()
        if self.power == 0:
            return xp.ones_like(x)
        return u ** self.power if self.power != 1 else (u if u is not x else x.copy())

    def _backward(self, dy: Array) -> Array:
        xp = get_array_module(dy)
        if self.power == 0:
            return xp.zeros_like(dy)
        if self.power == 1:
            return dy * self.scale
        return dy * (self.power * self.scale) * self.cache["u"] ** (self.power - 1)


@register("layer", "Exp")
class Exp(_Elementwise):
    """y = base ^ (shift + scale * x) (base e by default: Caffe's base -1).

    Forward:  y = exp(ln(base) * (shift + scale * x)).
    Backward: dx = dy * y * ln(base) * scale.

    Args:
        base: > 0, or -1 for e.
        scale, shift: the affine map inside.

    Shapes: x (N, *) -> y (N, *).  Caches: y.

    Example:
        >>> import numpy as np
        >>> Exp(base=2.0).forward(np.array([3.0])).round(12).tolist()
        [8.0]
    """

    def __init__(self, base: float = -1.0, scale: float = 1.0, shift: float = 0.0, *, name: str | None = None):
        super().__init__(name=name)
        self.base, self.scale, self.shift = float(base), float(scale), float(shift)
        self._k = _base_log(self.base) * self.scale

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        y = xp.exp(x * self._k + _base_log(self.base) * self.shift)
        self.save(y=y)
        return y

    def _backward(self, dy: Array) -> Array:
        return dy * self.cache["y"] * self._k


@register("layer", "Log")
class Log(_Elementwise):
    """y = log_base(shift + scale * x) (natural log by default: Caffe's base -1).

    Forward:  y = ln(shift + scale * x) / ln(base).
    Backward: dx = dy * scale / ((shift + scale * x) * ln(base)).

    Args:
        base: > 0 and != 1, or -1 for e.
        scale, shift: the affine map inside.

    Shapes: x (N, *) -> y (N, *).  Caches: u = shift + scale * x.

    Example:
        >>> import numpy as np
        >>> Log(base=10.0).forward(np.array([100.0])).round(12).tolist()
        [2.0]
    """

    def __init__(self, base: float = -1.0, scale: float = 1.0, shift: float = 0.0, *, name: str | None = None):
        super().__init__(name=name)
        self.base, self.scale, self.shift = float(base), float(scale), float(shift)
        self._lnb = _base_log(self.base)
        if self._lnb == 0:
            raise ValueError("Log: base 1 has no logarithm; use base -1 (e) or another positive base")

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        u = x * self.scale + self.shift
        self.save(u=u)
        return xp.log(u) / self._lnb

    def _backward(self, dy: Array) -> Array:
        return dy * (self.scale / self._lnb) / self.cache["u"]


@register("layer", "Threshold")
class Threshold(_Elementwise):
    """A step: y = 1 if x > threshold else 0 (Caffe's Threshold layer).

    Forward:  y = [x > t].
    Backward: dx = 0 (the step is flat almost everywhere; Caffe does not back-propagate it).

    Args:
        threshold: t.

    Shapes: x (N, *) -> y (N, *) of x's dtype.  Caches: nothing.

    Example:
        >>> import numpy as np
        >>> Threshold(0.5).forward(np.array([0.2, 0.7])).tolist()
        [0.0, 1.0]
    """

    def __init__(self, threshold: float = 0.0, *, name: str | None = None):
        super().__init__(name=name)
        self.threshold = float(threshold)

    def _forward(self, x: Array) -> Array:
        self.save()
        return (x > self.threshold).astype(x.dtype)

    def _backward(self, dy: Array) -> Array:
        return get_array_module(dy).zeros_like(dy)
