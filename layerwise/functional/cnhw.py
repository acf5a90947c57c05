"""Fused BatchNorm-ReLU kernels on channels-first (C, N, H, W) feature maps.

In the (C, N, H, W) layout ("CNHW") a channel is one contiguous row of the matrix
X (C, M), M = N*H*W: a 1x1 convolution is one plain GEMM ``W (O, C) @ X (C, M)``, and the
per-channel work of batch normalization is a reduction or an update along each row.

Every kernel exists twice with the same meaning:

* a NumPy/CuPy version (``xp``), the readable reference, always available;
* a Numba version (one pass over memory, rows split over the CPU cores), used on NumPy
  arrays when ``numba`` imports. ``set_backend("numpy")`` (or the environment variable
  ``LAYERWISE_NO_NUMBA=1``) switches the Numba kernels off; the tests compare both.

Notation, per row (channel) i, with scale s and shift t (``s = weight * invstd``,
``t = bias - mean * s`` folds batch normalization into one multiply-add):

    bn_relu:        out = max(x * s + t, 0)
    row_stats:      mean = sum x / m,  var = sum (x - mean)^2 / m          (float64)
    relu_bwd_sums:  dz = dA * (a > 0);  r1 = sum dz;  r2 = sum dz * x       (float64)
                    and optionally  G += s * dz  (the part of BN's dx that is not affine in x)
    bn_bwd_apply:   dx = s * dz + alpha * x + beta

BN backward (training), with xhat = (x - mean) * invstd and m values per channel:
    dbias = r1;  dweight = invstd * (r2 - mean * r1)
    dx = s * dz - s * dbias / m - s * invstd * dweight / m * (x - mean)
       = s * dz + alpha * x + beta,   alpha = -s * invstd * dweight / m,
                                      beta  = -s * dbias / m - alpha * mean.
The ``alpha * x + beta`` part is per-channel affine in x, so callers may defer it and apply
the sum of several layers' coefficients once (the dense block does).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..backend import Array, get_array_module


def _load_numba() -> Any:
    """The numba module (optional JIT: a fused one-pass kernel per operation), or None."""
    if os.environ.get("LAYERWISE_NO_NUMBA"):
        return None
    try:
        import numba
    except Exception:  # pragma: no cover - depends on the environment
        return None
    return numba


_nb: Any = _load_numba()

_BACKEND = "numba" if _nb is not None else "numpy"


def set_backend(name: str) -> str:
    """Choose ``"numba"`` or ``"numpy"`` kernels for NumPy arrays; returns the previous choice."""
    global _BACKEND
    if name not in ("numba", "numpy"):
        raise ValueError(f"cnhw.set_backend: expected 'numba' or 'numpy', got {name!r}")
    if name == "numba" and _nb is None:
        raise ValueError("cnhw.set_backend('numba'): numba is not installed; pip install numba")
    old, _BACKEND = _BACKEND, name
    return old


def get_backend() -> str:
    return _BACKEND


_THREADS = [int(os.environ.get("LAYERWISE_KERNEL_THREADS", "1"))]


def set_num_threads(n: int) -> int:
    """Threads of the Numba kernels (default 1, or $LAYERWISE_KERNEL_THREADS); returns the old value.

    One thread is the default because on a 2-core machine Numba's workers and OpenBLAS's
    (which spin for a while after each GEMM) compete for the same cores: measured on
    DenseNet-BC, 2 kernel threads made a training step several times SLOWER.
    """
    old = _THREADS[0]
    _THREADS[0] = max(1, int(n))
    if _nb is not None and _nb_kernels:
        _nb.set_num_threads(min(_THREADS[0], _nb.config.NUMBA_NUM_THREADS))
    return old


def _use_numba(*arrays: Array) -> bool:
    return _BACKEND == "numba" and all(isinstance(a, np.ndarray) for a in arrays)


def _as4(a: Array) -> Array:
    """(C, M) -> (C, 1, 1, M); 4-D arrays unchanged (the kernels loop over 4 axes)."""
    return a if a.ndim == 4 else a.reshape(a.shape[0], 1, 1, -1)


def _col(v: Array, ndim: int) -> Array:
    return v.reshape((-1,) + (1,) * (ndim - 1))


# ----------------------------------------------------------------------- NumPy
def _np_row_stats(x, mean, var):
    xp = get_array_module(x)
    x2 = x.reshape(x.shape[0], -1)
    m = x2.shape[1]
    mean[...] = x2.sum(axis=1, dtype=xp.float64) / m
    xc = x2 - mean.astype(x.dtype)[:, None]
    # second pass about the float32-rounded mean, corrected exactly: var = E[(x-mu')^2] - (mu-mu')^2
    d = mean - mean.astype(x.dtype).astype(xp.float64)
    var[...] = xp.einsum("ij,ij->i", xc, xc, dtype=xp.float64) / m - d * d


def _np_bn_relu(x, s, t, out):
    xp = get_array_module(x)
    xp.multiply(x, _col(s, x.ndim), out=out)
    out += _col(t, x.ndim)
    xp.maximum(out, 0, out=out)


def _np_relu_bwd_sums(dA, a, x, s, G, r1, r2):
    xp = get_array_module(dA)
    dz = dA * (a > 0)
    r1[...] = dz.reshape(dz.shape[0], -1).sum(axis=1, dtype=xp.float64)
    r2[...] = xp.einsum("ij,ij->i", dz.reshape(dz.shape[0], -1), x.reshape(x.shape[0], -1), dtype=xp.float64)
    if G is not None:
        dz *= _col(s, dz.ndim)
        G += dz


def _np_bn_bwd_apply(dA, a, x, s, alpha, beta, out):
    dz = dA * (a > 0)
    dz *= _col(s, dz.ndim)
    dz += x * _col(alpha, x.ndim)
    dz += _col(beta, x.ndim)
    out[...] = dz


# ----------------------------------------------------------------------- Numba
_FM = {"reassoc", "nsz", "contract", "arcp"}
_nb_kernels: dict = {}


def _compile():
    """Build the Numba kernels once (lazily: importing layerwise never compiles)."""
    if _nb_kernels:
        return _nb_kernels
    njit, prange = _nb.njit, _nb.prange

    @njit(parallel=True, fastmath=_FM, cache=True)
    def row_stats(x, mean, var):                       # x (C, N, H, W)
        C, N, H, W = x.shape
        m = N * H * W
        for c in prange(C):
            s = 0.0
            for n in range(N):
                for h in range(H):
                    for w in range(W):
                        s += x[c, n, h, w]
            mu = s / m
            v = 0.0
            for n in range(N):
                for h in range(H):
                    for w in range(W):
                        d = x[c, n, h, w] - mu
                        v += d * d
            mean[c] = mu
            var[c] = v / m

    @njit(parallel=True, fastmath=_FM, cache=True)
    def bn_relu(x, s, t, out):
        C, N, H, W = x.shape
        zero = x.dtype.type(0)
        for c in prange(C):
            sc, tc = s[c], t[c]
            for n in range(N):
                for h in range(H):
                    for w in range(W):
                        v = x[c, n, h, w] * sc + tc
                        out[c, n, h, w] = v if v > zero else zero

    @njit(parallel=True, fastmath=_FM, cache=True)
    def relu_bwd_sums(dA, a, x, s, G, r1, r2, acc):
        C, N, H, W = dA.shape
        zero = dA.dtype.type(0)
        for c in prange(C):
            p = 0.0
            q = 0.0
            sc = s[c]
            for n in range(N):
                for h in range(H):
                    for w in range(W):
                        d = dA[c, n, h, w] if a[c, n, h, w] > zero else zero
                        p += d
                        q += d * x[c, n, h, w]
                        if acc:
                            G[c, n, h, w] += sc * d
            r1[c] = p
            r2[c] = q

    @njit(parallel=True, fastmath=_FM, cache=True)
    def bn_bwd_apply(dA, a, x, s, alpha, beta, out):
        C, N, H, W = dA.shape
        zero = dA.dtype.type(0)
        for c in prange(C):
            sc, al, be = s[c], alpha[c], beta[c]
            for n in range(N):
                for h in range(H):
                    for w in range(W):
                        d = dA[c, n, h, w] if a[c, n, h, w] > zero else zero
                        out[c, n, h, w] = sc * d + al * x[c, n, h, w] + be

    @njit(parallel=True, fastmath=_FM, cache=True)
    def affine_add(G, x, alpha, beta):                 # G += alpha * x + beta
        C, N, H, W = G.shape
        for c in prange(C):
            al, be = alpha[c], beta[c]
            for n in range(N):
                for h in range(H):
                    for w in range(W):
                        G[c, n, h, w] += al * x[c, n, h, w] + be

    @njit(parallel=True, fastmath=_FM, cache=True)
    def bn_relu_pad(x, s, t, P):                      # P[:, :, 1:-1, 1:-1] = max(x * s + t, 0)
        C, N, H, W = x.shape
        zero = x.dtype.type(0)
        for cn in prange(C * N):
            c, n = cn // N, cn % N
            sc, tc = s[c], t[c]
            for h in range(H):
                for w in range(W):
                    v = x[c, n, h, w] * sc + tc
                    P[c, n, h + 1, w + 1] = v if v > zero else zero

    @njit(parallel=True, fastmath=_FM, cache=True)
    def relu_bwd_sums_pad(dP, P, x, r1, r2):
        C, N, H, W = x.shape
        zero = x.dtype.type(0)
        for c in prange(C):
            p = 0.0
            q = 0.0
            for n in range(N):
                for h in range(H):
                    for w in range(W):
                        d = dP[c, n, h + 1, w + 1] if P[c, n, h + 1, w + 1] > zero else zero
                        p += d
                        q += d * x[c, n, h, w]
            r1[c] = p
            r2[c] = q

    @njit(parallel=True, fastmath=_FM, cache=True)
    def bn_bwd_apply_pad(dP, P, x, s, alpha, beta, out):
        C, N, H, W = x.shape
        zero = x.dtype.type(0)
        for cn in prange(C * N):
            c, n = cn // N, cn % N
            sc, al, be = s[c], alpha[c], beta[c]
            for h in range(H):
                for w in range(W):
                    d = dP[c, n, h + 1, w + 1] if P[c, n, h + 1, w + 1] > zero else zero
                    out[c, n, h, w] = sc * d + al * x[c, n, h, w] + be

    _nb.set_num_threads(min(_THREADS[0], _nb.config.NUMBA_NUM_THREADS))
    _nb_kernels.update(bn_relu_pad=bn_relu_pad, relu_bwd_sums_pad=relu_bwd_sums_pad,
                       bn_bwd_apply_pad=bn_bwd_apply_pad)
    _nb_kernels.update(row_stats=row_stats, bn_relu=bn_relu, relu_bwd_sums=relu_bwd_sums,
                       bn_bwd_apply=bn_bwd_apply, affine_add=affine_add)
    return _nb_kernels


# ---------------------------------------------------------------- public API
def row_stats(x: Array, mean: Array, var: Array) -> None:
    """Per-channel mean and biased variance of ``x`` (C, ...) into float64 ``mean``, ``var`` (C,)."""
    if _use_numba(x):
        _compile()["row_stats"](_as4(x), mean, var)
    else:
        _np_row_stats(x, mean, var)


def bn_relu(x: Array, s: Array, t: Array, out: Array) -> Array:
    """``out = max(x * s + t, 0)`` per channel row; ``out`` may be a strided 4-D view."""
    if _use_numba(x, out):
        _compile()["bn_relu"](_as4(x), s, t, _as4(out))
    else:
        _np_bn_relu(x, s, t, out)
    return out


def relu_bwd_sums(dA: Array, a: Array, x: Array, s: Array, G: Array | None, r1: Array, r2: Array) -> None:
    """``dz = dA * (a > 0)``; float64 ``r1 = sum dz``, ``r2 = sum dz * x`` per channel; and
    ``G += s * dz`` when G is given."""
    if _use_numba(dA, a, x):
        acc = G is not None
        _compile()["relu_bwd_sums"](_as4(dA), _as4(a), _as4(x), s, _as4(G) if acc else _as4(dA), r1, r2, acc)
    else:
        _np_relu_bwd_sums(dA, a, x, s, G, r1, r2)


def bn_bwd_apply(dA: Array, a: Array, x: Array, s: Array, alpha: Array, beta: Array, out: Array) -> Array:
    """``out = s * dA * (a > 0) + alpha * x + beta`` per channel."""
    if _use_numba(dA, a, x, out):
        _compile()["bn_bwd_apply"](_as4(dA), _as4(a), _as4(x), s, alpha, beta, _as4(out))
    else:
        _np_bn_bwd_apply(dA, a, x, s, alpha, beta, out)
    return out


def affine_add(G: Array, x: Array, alpha: Array, beta: Array) -> None:
    """``G += alpha * x + beta`` per channel (alpha, beta in G's dtype)."""
    if _use_numba(G, x):
        _compile()["affine_add"](_as4(G), _as4(x), alpha, beta)
    else:
        G += x * _col(alpha, x.ndim)
        G += _col(beta, x.ndim)


def _interior(P: Array) -> Array:
    return P[:, :, 1:-1, 1:-1]


def bn_relu_pad(x: Array, s: Array, t: Array, P: Array) -> None:
    """Write ``max(x * s + t, 0)`` (x (C, N, H, W)) into the interior of ``P`` (C, N, H+2, W+2)."""
    if _use_numba(x, P) and P.flags.c_contiguous and x.flags.c_contiguous:
        _compile()["bn_relu_pad"](x, s, t, P)
    else:
        _np_bn_relu(x, s, t, _interior(P))


def relu_bwd_sums_pad(dP: Array, P: Array, x: Array, r1: Array, r2: Array) -> None:
    """``relu_bwd_sums`` with dA and a read from the interiors of padded dP, P (no G)."""
    if _use_numba(dP, P, x) and dP.flags.c_contiguous and P.flags.c_contiguous and x.flags.c_contiguous:
        _compile()["relu_bwd_sums_pad"](dP, P, x, r1, r2)
    else:
        _np_relu_bwd_sums(_interior(dP), _interior(P), x, None, None, r1, r2)


def bn_bwd_apply_pad(dP: Array, P: Array, x: Array, s: Array, alpha: Array, beta: Array, out: Array) -> Array:
    """``bn_bwd_apply`` with dA and a read from the interiors of padded dP, P."""
    if _use_numba(dP, P, x, out) and dP.flags.c_contiguous and P.flags.c_contiguous and x.flags.c_contiguous:
        _compile()["bn_bwd_apply_pad"](dP, P, x, s, alpha, beta, out)
    else:
        _np_bn_bwd_apply(_interior(dP), _interior(P), x, s, alpha, beta, out)
    return out


def bn_backward_coefficients(r1: Array, r2: Array, mean: Array, invstd: Array, s: Array, m: int):
    """From the sums of ``relu_bwd_sums`` (float64): ``(dweight, dbias, alpha, beta)`` (float64),
    with ``dx = s * dz + alpha * x + beta`` (see the module docstring)."""
    dbias = r1
    dweight = invstd * (r2 - mean * r1)
    alpha = -s * invstd * dweight / m
    beta = -s * dbias / m - alpha * mean
    return dweight, dbias, alpha, beta


__all__ = ["set_backend", "get_backend", "set_num_threads", "row_stats", "bn_relu", "relu_bwd_sums",
           "bn_bwd_apply", "affine_add", "bn_relu_pad", "relu_bwd_sums_pad", "bn_bwd_apply_pad",
           "bn_backward_coefficients"]
