"""Batch normalization (+ residual add, + ReLU) of (N, C, H, W) activations, computed on their
channels-first rows: the forward and backward of BatchNorm2d and of its fused forms.

    y, ctx = bn_cf_forward(x, weight, bias, running, eps, training, r=None, relu=False, keep=True,
                           update=fn)
    dx, dr, dweight, dbias = bn_cf_backward(dy, ctx, need_dx=True, need_dr=True, need_params=True)

Formulas: ``layerwise.functional.bn_act``. Statistics are computed once per channel in
float64 (two passes over the row); the running estimates are updated through ``update``
(BatchNorm's own rule, so the fused forms move them exactly as the layer does).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..backend import Array, get_array_module
from . import bn_act
from .layout import from_cnhw


@dataclass
class BNCFCtx:
    X: Array             # (C, N, H, W) input maps (a view: maybe strided)
    R: Array | None      # (C, N, H, W) residual maps
    mean: Array          # (C,) float64 statistics used
    invstd: Array        # (C,) float64
    s64: Array           # (C,) float64 scale
    s: Array             # (C,) scale and shift in x's dtype
    t: Array
    training: bool
    relu: bool
    affine: bool
    shape: tuple


def _maps(a: Array) -> Array:
    """(N, C, H, W) -> its (C, N, H, W) view: contiguous when ``a`` is laid out channels-first,
    else a strided view (the kernels read any strides; nothing is copied)."""
    return a.transpose(1, 0, 2, 3)


def bn_cf_forward(x: Array, weight: Array | None, bias: Array | None, running: tuple[Array, Array], eps: float,
                  training: bool, r: Array | None = None, relu: bool = False, keep: bool = True,
                  update: Callable[[Array, Array, int], Any] | None = None,
                  out: Array | bn_act.Grid | None = None) -> tuple[Array, BNCFCtx | None]:
    """``y = act(BN(x) [+ r])`` with batch statistics (training) or ``running`` (mean, var).

    ``out``: an (N, C, H, W) array (or view, e.g. the interior of the next convolution's grid)
    to write y into, or a fresh grid (``bn_act.Grid``) whose interior y becomes, its gaps
    zeroed in the same pass; by default a new channels-first array. Returns ``(y, ctx)``."""
    xp = get_array_module(x)
    X = _maps(x)
    C, N, H, W = X.shape
    M = N * H * W
    R = None if r is None else _maps(r)
    if training:
        mean, var = xp.empty(C), xp.empty(C)
        bn_act.stats(X, mean, var)
        if update is not None:
            update(mean, var, M)
    else:
        mean, var = running[0].astype(xp.float64), running[1].astype(xp.float64)
    invstd = 1.0 / xp.sqrt(var + eps)
    s64 = invstd if weight is None else weight.astype(xp.float64) * invstd
    t64 = -mean * s64 if bias is None else bias.astype(xp.float64) - mean * s64
    s, t = s64.astype(x.dtype), t64.astype(x.dtype)
    if isinstance(out, bn_act.Grid):
        Y = bn_act.forward_into_grid(X, s, t, R, relu, out)
    else:
        Y = xp.empty((C, N, H, W), dtype=x.dtype) if out is None else _maps(out)
        bn_act.forward(X, s, t, R, relu, Y)
    ctx = BNCFCtx(X, R, mean, invstd, s64, s, t, training, relu, weight is not None, X.shape) if keep else None
    return from_cnhw(Y), ctx


def bn_cf_backward(dy: Array, ctx: BNCFCtx, need_dx: bool = True, need_dr: bool = True,
                   need_params: bool = True, out: Array | None = None):
    """``(dx, dr, dweight, dbias)``: dr None without a residual; dweight/dbias in dy's dtype
    (None when not affine or not needed); dx None when not needed, else written into ``out``
    (an (N, C, H, W) array or view, e.g. the interior of the convolution's gradient grid) when
    given."""
    xp = get_array_module(dy)
    C, N, H, W = ctx.X.shape
    M = N * H * W
    dY = _maps(dy)
    r1, r2 = xp.empty(C), xp.empty(C)
    dR = xp.empty((C, N, H, W), dtype=dy.dtype) if (ctx.R is not None and need_dr) else None
    bn_act.backward_sums(dY, ctx.X, ctx.s, ctx.t, ctx.R, ctx.relu, r1, r2, dR)
    dbias = r1
    dweight = ctx.invstd * (r2 - ctx.mean * r1)
    dx = None
    if need_dx:
        alpha = beta = None
        if ctx.training:
            a64 = -ctx.s64 * ctx.invstd * dweight / M
            alpha, beta = a64.astype(dy.dtype), (-ctx.s64 * dbias / M - a64 * ctx.mean).astype(dy.dtype)
        dX = xp.empty((C, N, H, W), dtype=dy.dtype) if out is None else _maps(out)
        bn_act.backward_apply(dY, ctx.X, ctx.s, ctx.t, ctx.R, ctx.relu, alpha, beta, dX)
        dx = from_cnhw(dX)
    dr = None if dR is None else from_cnhw(dR)
    if not (ctx.affine and need_params):
        return dx, dr, None, None
    return dx, dr, dweight.astype(dy.dtype), dbias.astype(dy.dtype)


__all__ = ["bn_cf_forward", "bn_cf_backward", "BNCFCtx"]
