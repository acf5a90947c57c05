"""The logistic sigmoid and softplus, computed without overflow for any finite input.

    sigmoid(x)  = 1 / (1 + exp(-x))     = e / (1 + e) for x < 0, with e = exp(-|x|) in (0, 1]
    softplus(x) = log(1 + exp(x))        = max(x, 0) + log1p(exp(-|x|))

Neither ever exponentiates a positive number, so |x| = 1e4 gives exact limits and no warning.
(The Sigmoid layer and LogisticLoss keep their own fused forms: they reuse e for the gradient.)
"""
from __future__ import annotations

from ..backend import Array, get_array_module


def sigmoid(x: Array) -> Array:
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softplus(x: Array) -> Array:
    xp = get_array_module(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))
