"""Batch normalization with an optional residual add and ReLU, as one pass over memory,
on channels-first rows ``X (C, M)`` or channels-first maps ``X (C, N, H, W)`` that may be
strided views (a convolution's output read in place on its computation grid, or an output
written straight into the next convolution's zero-gapped grid: ``functional.conv``).

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


def _c(v: Array, ndim: int = 2) -> Array:
    return v.reshape((-1,) + (1,) * (ndim - 1))


def _v4(a: Array) -> Array:
    """(C, M) or contiguous (C, N, H, W) -> a (C, 1, 1, M) view (long inner loops); a strided
    4-D view stays as it is (the kernels index all four axes)."""
    if a.ndim == 2:
        return a.reshape(a.shape[0], 1, 1, a.shape[1])
    return a.reshape(a.shape[0], 1, 1, -1) if a.flags.c_contiguous else a


# ----------------------------------------------------------------------- NumPy
def _np_forward(x, s, t, r, relu, out):
    xp = get_array_module(x)
    xp.multiply(x, _c(s, x.ndim), out=out)
    out += _c(t, x.ndim)
    if r is not None:
        out += r
    if relu:
        xp.maximum(out, 0, out=out)
    return out


def _np_dz(dy, x, s, t, r, relu):
    """dy through the ReLU, its mask recomputed from x (and r): dz = dy * (x * s + t [+ r] > 0)."""
    if not relu:
        return dy
    z = x * _c(s, x.ndim) + _c(t, x.ndim)
    if r is not None:
        z += r
    return dy * (z > 0)


# ----------------------------------------------------------------------- Numba
# (the ReLU mask test is written out in both backward kernels: a jitted helper called from
# them kept Numba from caching them, which cost 2-4 s of compilation in every process)
_kernels: dict = {}


def _compile():
    if _kernels:
        return _kernels
    nb = cnhw._nb
    njit, prange = nb.njit, nb.prange
    fm = cnhw._FM

    @njit(parallel=True, fastmath=fm, cache=True)
    def forward(x, s, t, r, has_r, relu, out):          # (C, N, H, W), any strides
        C, N, H, W = x.shape
        zero = x.dtype.type(0)
        for c in prange(C):
            sc, tc = s[c], t[c]
            for n in range(N):
                for h in range(H):
                    for w in range(W):
                        v = x[c, n, h, w] * sc + tc
                        if has_r:
                            v += r[c, n, h, w]
                        if relu and v < zero:
                            v = zero
                        out[c, n, h, w] = v

    @njit(parallel=True, fastmath=fm, cache=True)
    def backward(dy, x, s, t, r, has_r, relu, dr, has_dr, r1, r2):   # the sums (and dr = dz)
        C, N, H, W = x.shape
        zero = dy.dtype.type(0)
        for c in prange(C):
            sc, tc = s[c], t[c]
            p = 0.0
            q = 0.0
            for n in range(N):
                for h in range(H):
                    for w in range(W):
                        d = dy[c, n, h, w]
                        if relu:   # the ReLU's mask, recomputed (the same test in apply below)
                            v = x[c, n, h, w] * sc + tc
                            if has_r:
                                v += r[c, n, h, w]
                            if not v > 0:
                                d = zero
                        if has_dr:
                            dr[c, n, h, w] = d
                        p += d
                        q += d * x[c, n, h, w]
            r1[c] = p
            r2[c] = q

    @njit(parallel=True, fastmath=fm, cache=True)
    def apply(dy, x, s, t, r, has_r, relu, alpha, beta, has_ab, out):   # dx = s * dz + alpha * x + beta
        C, N, H, W = x.shape
        zero = x.dtype.type(0)
        for c in prange(C):
            sc, tc = s[c], t[c]
            al = alpha[c] if has_ab else zero
            be = beta[c] if has_ab else zero
            for n in range(N):
                for h in range(H):
                    for w in range(W):
                        d = dy[c, n, h, w]
                        if relu:
                            v = x[c, n, h, w] * sc + tc
                            if has_r:
                                v += r[c, n, h, w]
                            if not v > 0:
                                d = zero
                        out[c, n, h, w] = sc * d + al * x[c, n, h, w] + be

    _kernels.update(forward=forward, backward=backward, apply=apply)
    return _kernels


def _numba(*arrays: Array) -> bool:
    return cnhw._use_numba(*[a for a in arrays if a is not None])


def _same_form(*arrays: Array) -> tuple:
    """The arrays as 4-D views the kernels index alike: all (C, 1, 1, M) when every one is
    contiguous, else all (C, N, H, W) (2-D rows of a strided map are not possible)."""
    if all(a is None or a.ndim == 2 or a.flags.c_contiguous for a in arrays):
        return tuple(None if a is None else _v4(a) for a in arrays)
    return arrays


# ---------------------------------------------------------------- public API
def forward(x: Array, s: Array, t: Array, r: Array | None, relu: bool, out: Array) -> Array:
    """``out = act(x * s + t [+ r])`` on (C, M) rows or (C, N, H, W) maps (any strides, all of
    one shape); s, t (C,) in x's dtype."""
    if _numba(x, r, out):
        x4, r4, o4 = _same_form(x, r, out)
        _compile()["forward"](x4, s, t, x4 if r4 is None else r4, r is not None, relu, o4)
        return out
    return _np_forward(x, s, t, r, relu, out)


def backward_sums(dy: Array, x: Array, s: Array, t: Array, r: Array | None, relu: bool,
                  r1: Array, r2: Array, dr: Array | None = None) -> None:
    """float64 ``r1 = sum dz``, ``r2 = sum dz * x`` per row (dz: dy through the ReLU, recomputed);
    also ``dr = dz`` when ``dr`` is given."""
    if _numba(dy, x, r, dr):
        d4, x4, r4, dr4 = _same_form(dy, x, r, dr)
        _compile()["backward"](d4, x4, s, t, x4 if r4 is None else r4, r is not None, relu,
                               d4 if dr4 is None else dr4, dr is not None, r1, r2)
        return
    xp = get_array_module(dy)
    dz = _np_dz(dy, x, s, t, r, relu)
    C = dz.shape[0]
    dz2, x2 = dz.reshape(C, -1), x.reshape(C, -1)
    r1[...] = dz2.sum(axis=1, dtype=xp.float64)
    r2[...] = xp.einsum("ij,ij->i", dz2, x2, dtype=xp.float64)
    if dr is not None:
        dr[...] = dz


def backward_apply(dy: Array, x: Array, s: Array, t: Array, r: Array | None, relu: bool,
                   alpha: Array | None, beta: Array | None, out: Array) -> Array:
    """``out = s * dz + alpha * x + beta`` (or ``s * dz`` when alpha is None)."""
    if _numba(dy, x, r, out):
        has_ab = alpha is not None
        d4, x4, r4, o4 = _same_form(dy, x, r, out)
        _compile()["apply"](d4, x4, s, t, x4 if r4 is None else r4, r is not None, relu,
                            alpha if has_ab else s, beta if has_ab else s, has_ab, o4)
        return out
    xp = get_array_module(dy)
    xp.multiply(_np_dz(dy, x, s, t, r, relu), _c(s, x.ndim), out=out)
    if alpha is not None:
        out += x * _c(alpha, x.ndim)
        out += _c(beta, x.ndim)
    return out


__all__ = ["forward", "backward_sums", "backward_apply"]
