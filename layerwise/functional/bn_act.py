"""Batch normalization with an optional residual add and ReLU, as one pass over memory,
on channels-first rows ``X (C, M)`` (``layerwise.functional.layout``).

    y = act(x * s + t [+ r])           s = weight * invstd,  t = bias - mean * s
                                       (BatchNorm2d, BN + ReLU, BN + Eltwise sum + ReLU)

Backward, with z = x * s + t [+ r] recomputed (nothing but x, r and the (C,) statistics is
kept from the forward) and dz = dy * (z > 0) (or dy without the ReLU):

    r1 = sum dz,  r2 = sum dz * x                                 (per channel, float64)
    dbias = r1,   dweight = invstd * (r2 - mean * r1)
    dx = s * dz + alpha * x + beta                                (training: through the batch
         alpha = -s * invstd * dweight / m                         statistics, see
         beta  = -s * dbias / m - alpha * mean                     ``functional.cnhw``)
    dx = s * dz                                                    (eval: fixed statistics)
    dr = dz                                                        (the residual input)

Each kernel exists as NumPy/CuPy code (the reference) and as a Numba kernel used on NumPy
arrays when numba imports (``cnhw.set_backend`` switches both modules).
"""
from __future__ import annotations

from ..backend import Array, get_array_module
from . import cnhw


def _c(v: Array) -> Array:
    return v.reshape(-1, 1)


# ----------------------------------------------------------------------- NumPy
def _np_forward(x, s, t, r, relu, out):
    xp = get_array_module(x)
    xp.multiply(x, _c(s), out=out)
    out += _c(t)
    if r is not None:
        out += r
    if relu:
        xp.maximum(out, 0, out=out)
    return out


def _np_dz(dy, x, s, t, r, relu):
    """dy through the ReLU, its mask recomputed from x (and r): dz = dy * (x * s + t [+ r] > 0)."""
    if not relu:
        return dy
    z = x * _c(s) + _c(t)
    if r is not None:
        z += r
    return dy * (z > 0)


# ----------------------------------------------------------------------- Numba
_kernels: dict = {}


def _compile():
    if _kernels:
        return _kernels
    nb = cnhw._nb
    njit, prange = nb.njit, nb.prange
    fm = cnhw._FM

    @njit(fastmath=fm, inline="always")
    def dz_at(dy, x, r, c, i, sc, tc, has_r, relu):       # the one place the ReLU mask is recomputed
        d = dy[c, i]
        if relu:
            v = x[c, i] * sc + tc
            if has_r:
                v += r[c, i]
            if not v > 0:
                d = dy.dtype.type(0)
        return d

    @njit(parallel=True, fastmath=fm, cache=True)
    def forward(x, s, t, r, has_r, relu, out):          # (C, M) rows
        C, M = x.shape
        zero = x.dtype.type(0)
        for c in prange(C):
            sc, tc = s[c], t[c]
            for i in range(M):
                v = x[c, i] * sc + tc
                if has_r:
                    v += r[c, i]
                if relu and v < zero:
                    v = zero
                out[c, i] = v

    @njit(parallel=True, fastmath=fm, cache=True)
    def backward(dy, x, s, t, r, has_r, relu, dr, has_dr, r1, r2):   # the sums (and dr = dz)
        C, M = x.shape
        for c in prange(C):
            sc, tc = s[c], t[c]
            p = 0.0
            q = 0.0
            for i in range(M):
                d = dz_at(dy, x, r, c, i, sc, tc, has_r, relu)
                if has_dr:
                    dr[c, i] = d
                p += d
                q += d * x[c, i]
            r1[c] = p
            r2[c] = q

    @njit(parallel=True, fastmath=fm, cache=True)
    def apply(dy, x, s, t, r, has_r, relu, alpha, beta, has_ab, out):   # dx = s * dz + alpha * x + beta
        C, M = x.shape
        zero = x.dtype.type(0)
        for c in prange(C):
            sc, tc = s[c], t[c]
            al = alpha[c] if has_ab else zero
            be = beta[c] if has_ab else zero
            for i in range(M):
                out[c, i] = sc * dz_at(dy, x, r, c, i, sc, tc, has_r, relu) + al * x[c, i] + be

    _kernels.update(forward=forward, backward=backward, apply=apply)
    return _kernels


def _numba(*arrays: Array) -> bool:
    return cnhw._use_numba(*[a for a in arrays if a is not None]) and all(
        a.flags.c_contiguous for a in arrays if a is not None)


# ---------------------------------------------------------------- public API
def forward(x: Array, s: Array, t: Array, r: Array | None, relu: bool, out: Array) -> Array:
    """``out = act(x * s + t [+ r])`` on (C, M) rows; s, t (C,) in x's dtype."""
    if _numba(x, r, out):
        _compile()["forward"](x, s, t, x if r is None else r, r is not None, relu, out)
        return out
    return _np_forward(x, s, t, r, relu, out)


def backward_sums(dy: Array, x: Array, s: Array, t: Array, r: Array | None, relu: bool,
                  r1: Array, r2: Array, dr: Array | None = None) -> None:
    """float64 ``r1 = sum dz``, ``r2 = sum dz * x`` per row (dz: dy through the ReLU, recomputed);
    also ``dr = dz`` when ``dr`` is given."""
    if _numba(dy, x, r, dr):
        _compile()["backward"](dy, x, s, t, x if r is None else r, r is not None, relu,
                               dy if dr is None else dr, dr is not None, r1, r2)
        return
    xp = get_array_module(dy)
    dz = _np_dz(dy, x, s, t, r, relu)
    r1[...] = dz.sum(axis=1, dtype=xp.float64)
    r2[...] = xp.einsum("ij,ij->i", dz, x, dtype=xp.float64)
    if dr is not None:
        dr[...] = dz


def backward_apply(dy: Array, x: Array, s: Array, t: Array, r: Array | None, relu: bool,
                   alpha: Array | None, beta: Array | None, out: Array) -> Array:
    """``out = s * dz + alpha * x + beta`` (or ``s * dz`` when alpha is None)."""
    if _numba(dy, x, r, out):
        has_ab = alpha is not None
        _compile()["apply"](dy, x, s, t, x if r is None else r, r is not None, relu,
                            alpha if has_ab else s, beta if has_ab else s, has_ab, out)
        return out
    xp = get_array_module(dy)
    xp.multiply(_np_dz(dy, x, s, t, r, relu), _c(s), out=out)
    if alpha is not None:
        out += x * _c(alpha)
        out += _c(beta)
    return out


__all__ = ["forward", "backward_sums", "backward_apply"]
