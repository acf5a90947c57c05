"""Fillers: pure functions of (shape, rng) that return a new float32 array.

Fan-in and fan-out follow PyTorch: for a weight of shape (out, in, *k),
fan_in = in * prod(k), fan_out = out * prod(k). Caffe's xavier/msra fillers use the
same definitions with ``variance_norm`` FAN_IN / FAN_OUT / AVERAGE, here ``mode``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .backend import DEFAULT_DTYPE
from .core.registry import lookup, register

_MODES = ("fan_in", "fan_out", "fan_avg")


def fan_in_out(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape (out, in, *kernel); a 1-D shape is (n, n)."""
    if len(shape) < 1:
        raise ValueError("fan_in_out: a filler needs a shape of at least one dimension")
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(shape, mode: str) -> float:
    if mode not in _MODES:
        raise ValueError(f"filler mode must be one of {_MODES}, got {mode!r}")
    fi, fo = fan_in_out(shape)
    return {"fan_in": fi, "fan_out": fo, "fan_avg": (fi + fo) / 2.0}[mode]


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng(0)


@register("filler", "constant")
def constant(shape, rng=None, value: float = 0.0, dtype: Any = DEFAULT_DTYPE) -> np.ndarray:
    return np.full(shape, value, dtype=dtype)


@register("filler", "uniform")
def uniform(shape, rng=None, low: float = 0.0, high: float = 1.0, dtype: Any = DEFAULT_DTYPE) -> np.ndarray:
    return _rng(rng).uniform(low, high, size=shape).astype(dtype)


@register("filler", "gaussian", "normal")
def gaussian(shape, rng=None, mean: float = 0.0, std: float = 1.0, dtype: Any = DEFAULT_DTYPE) -> np.ndarray:
    return (mean + std * _rng(rng).standard_normal(size=shape)).astype(dtype)


@register("filler", "xavier", "glorot_uniform")
def xavier(shape, rng=None, mode: str = "fan_avg", gain: float = 1.0, distribution: str = "uniform",
           dtype: Any = DEFAULT_DTYPE) -> np.ndarray:
    """Glorot & Bengio (2010): Var(W) = gain^2 / fan. Uniform on [-a, a] with a = gain*sqrt(3/fan)
    (mode='fan_avg' is PyTorch's xavier_uniform_; Caffe's default XavierFiller is mode='fan_in')."""
    n = _fan(shape, mode)
    if distribution == "uniform":
        a = gain * math.sqrt(3.0 / n)
        return _rng(rng).uniform(-a, a, size=shape).astype(dtype)
    if distribution == "normal":
        return (gain * math.sqrt(1.0 / n) * _rng(rng).standard_normal(size=shape)).astype(dtype)
    raise ValueError(f"xavier: distribution must be 'uniform' or 'normal', got {distribution!r}")


@register("filler", "msra", "he", "kaiming")
def msra(shape, rng=None, mode: str = "fan_in", gain: float = math.sqrt(2.0), distribution: str = "normal",
         dtype: Any = DEFAULT_DTYPE) -> np.ndarray:
    """He et al. (2015): std = gain / sqrt(fan) with gain sqrt(2) for ReLU. The DenseNet code
    uses normal with mode='fan_out' (std = sqrt(2 / (k*k*out)))."""
    n = _fan(shape, mode)
    std = gain / math.sqrt(n)
    if distribution == "normal":
        return (std * _rng(rng).standard_normal(size=shape)).astype(dtype)
    if distribution == "uniform":
        a = math.sqrt(3.0) * std
        return _rng(rng).uniform(-a, a, size=shape).astype(dtype)
    raise ValueError(f"msra: distribution must be 'normal' or 'uniform', got {distribution!r}")


def fill(spec: str | dict, shape, rng=None, dtype: Any = DEFAULT_DTYPE) -> np.ndarray:
    """Fill from a name or a dict like ``{"type": "gaussian", "std": 0.01}``."""
    if isinstance(spec, str):
        spec = {"type": spec}
    spec = dict(spec)
    kind = spec.pop("type")
    return lookup("filler", kind)(tuple(shape), rng, dtype=dtype, **spec)
