"""Batch normalization as pure functions, over every axis but the channel axis 1.

    y, ctx, mean, var = batch_norm_train_forward(x, weight, bias, eps)        # batch statistics
    y, ctx = batch_norm_eval_forward(x, weight, bias, running_mean, running_var, eps)
    dx, dweight, dbias = batch_norm_backward(dy, ctx)

``x`` is (N, C), (N, C, L) or (N, C, H, W); per channel c, with m = N*H*W values:

    mean = (1/m) sum x          var = (1/m) sum (x - mean)^2    (biased: used to normalise)
    xhat = (x - mean) / sqrt(var + eps)       y = weight * xhat + bias

Backward in training (through mean and var; the compact three-term form)::

    dbias   = sum dy            dweight = sum dy * xhat
    dx      = weight / sqrt(var + eps) * (dy - dbias / m - xhat * dweight / m)

In eval the statistics are constants, so ``dx = weight / sqrt(running_var + eps) * dy``.
Per-channel sums accumulate in float64 across the batch axis (the long one); within a
sample they are float32 BLAS dot products, so float32 inputs stay float32 arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..backend import Array, get_array_module


@dataclass
class BNCtx:
    """What batch_norm_backward needs."""

    xhat: Array          # like x
    invstd: Array        # (C,) 1 / sqrt(var + eps), x's dtype
    weight: Array | None
    training: bool


def _as3d(a: Array) -> Array:
    """(N, C, ...) -> (N, C, L) view (L = 1 for 2-D input)."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def channel_sum(a: Array) -> Array:
    """Per-channel sum over all axes but 1, as float64 (C,)."""
    xp = get_array_module(a)
    a3 = _as3d(a)
    if a3.shape[2] == 1:
        return a3[:, :, 0].sum(axis=0, dtype=xp.float64)
    per_sample = a3 @ xp.ones(a3.shape[2], dtype=a.dtype)                      # (N, C), BLAS
    return per_sample.sum(axis=0, dtype=xp.float64)


def _bcast(v: Array, ndim: int) -> Array:
    """(C,) -> (1, C, 1, ...) for broadcasting against an ndim-D array."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _check(x: Array) -> None:
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected x of shape (N, C, ...), got {tuple(x.shape)}")


def batch_norm_train_forward(x: Array, weight: Array | None, bias: Array | None, eps: float = 1e-5):
    """Normalise with the batch's own statistics.

    Returns:
        ``(y, ctx, mean, var)``: y like x; ctx for the backward; mean and var (C,) float64,
        the biased batch variance (multiply by m/(m-1) for the running estimate).
    """
    _check(x)
    xp = get_array_module(x)
    m = x.size // x.shape[1]
    mean = channel_sum(x) / m                                                   # (C,) float64
    xc = x - _bcast(mean.astype(x.dtype), x.ndim)
    var = channel_sum(xc * xc) / m                                              # (C,) float64
    invstd = (1.0 / xp.sqrt(var + eps)).astype(x.dtype)
    xhat = xc
    xhat *= _bcast(invstd, x.ndim)                                              # in place: xc is ours
    y = _affine(xhat, weight, bias)
    return y, BNCtx(xhat, invstd, weight, True), mean, var


def batch_norm_eval_forward(x: Array, weight: Array | None, bias: Array | None, running_mean: Array,
                            running_var: Array, eps: float = 1e-5, need_ctx: bool = True):
    """Normalise with fixed (running) statistics. Returns ``(y, ctx)`` (ctx None if not needed)."""
    _check(x)
    xp = get_array_module(x)
    invstd = (1.0 / xp.sqrt(running_var.astype(xp.float64) + eps)).astype(x.dtype)
    if not need_ctx:  # fold everything into one scale and shift per channel
        scale = invstd if weight is None else invstd * weight
        shift = -running_mean.astype(x.dtype) * scale + (0 if bias is None else bias)
        return x * _bcast(scale, x.ndim) + _bcast(shift.astype(x.dtype), x.ndim), None
    xhat = (x - _bcast(running_mean.astype(x.dtype), x.ndim)) * _bcast(invstd, x.ndim)
    return _affine(xhat, weight, bias), BNCtx(xhat, invstd, weight, False)


def _affine(xhat: Array, weight: Array | None, bias: Array | None) -> Array:
    if weight is None:
        return xhat.copy()
    return xhat * _bcast(weight, xhat.ndim) + _bcast(bias, xhat.ndim)


def batch_norm_backward(dy: Array, ctx: BNCtx):
    """Gradients from ``dy`` (like x).

    Returns:
        ``(dx, dweight, dbias)``; dweight/dbias (C,) in x's dtype (None when there is no
        affine weight).
    """
    nd = dy.ndim
    m = dy.size // dy.shape[1]
    dbias = channel_sum(dy)                                                     # (C,) float64
    dweight = channel_sum(dy * ctx.xhat)                                        # (C,) float64
    scale = ctx.invstd if ctx.weight is None else ctx.invstd * ctx.weight       # (C,)
    if ctx.training:
        dx = dy - _bcast((dbias / m).astype(dy.dtype), nd)
        dx -= ctx.xhat * _bcast((dweight / m).astype(dy.dtype), nd)
        dx *= _bcast(scale, nd)
    else:
        dx = dy * _bcast(scale, nd)
    if ctx.weight is None:
        return dx, None, None
    return dx, dweight.astype(dy.dtype), dbias.astype(dy.dtype)
