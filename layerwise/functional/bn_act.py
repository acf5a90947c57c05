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

from dataclasses import dataclass

import numpy as np

from ..backend import Array, get_array_module
from . import cnhw


def _c(v: Array, ndim: int = 2) -> Array:
    return v.reshape((-1,) + (1,) * (ndim - 1))


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

    # Every map is passed as a 1-D array ``a`` over its memory and its strides ``sa`` (elements)
    # of the C, N, H axes: the row (c, n, h) is ``a[b:b + W]``, b = c*sa[0] + n*sa[1] + h*sa[2].
    # Indexing row slices by the loop counter keeps the inner loop unit-stride without index
    # checks, and it vectorises (on strided 4-D arrays it did not: 3-4x slower on a
    # convolution's grid; indexing the whole 1-D array a[b + w] with signed indices was 10x
    # slower still). forward, backward and apply slice once per image plane instead and index
    # its rows with unsigned offsets h*sa[2] + w (no negative-index check): on the 8-32-value
    # rows of ResNet's maps the per-row slices had cost more than the arithmetic (64@8, batch 64:
    # forward into a grid 0.085 -> 0.047 ms, backward sums with a residual 0.37 -> 0.11 ms,
    # apply 0.12 -> 0.07 ms).
    @njit(parallel=True, fastmath=fm, cache=True)
    def stats(x, sx, N, H, W, mean, var):               # two passes, float64
        C = mean.shape[0]
        m = N * H * W
        for c in prange(C):
            acc = 0.0
            for n in range(N):
                for h in range(H):
                    b = c * sx[0] + n * sx[1] + h * sx[2]
                    xr = x[b:b + W]
                    for w in range(W):
                        acc += xr[w]
            mu = acc / m
            v = 0.0
            for n in range(N):
                for h in range(H):
                    b = c * sx[0] + n * sx[1] + h * sx[2]
                    xr = x[b:b + W]
                    for w in range(W):
                        d = xr[w] - mu
                        v += d * d
            mean[c] = mu
            var[c] = v / m

    @njit(fastmath=fm, cache=True, inline="always")
    def act_row(xp_, ox, rp, orr, op, oo, W, sc, tc, has_r, relu):
        """op[oo + w] = act(xp_[ox + w] * sc + tc [+ rp[orr + w]]) for w < W: one row of a map."""
        zero = xp_.dtype.type(0)
        for w in range(W):
            ww = np.uint64(w)
            v = xp_[ox + ww] * sc + tc
            if has_r:
                v += rp[orr + ww]
            if relu and v < zero:
                v = zero
            op[oo + ww] = v

    @njit(parallel=True, fastmath=fm, cache=True)
    def forward(x, sx, s, t, r, sr, has_r, relu, out, so, N, H, W):
        C = s.shape[0]
        u = np.uint64
        for c in prange(C):
            sc, tc = s[c], t[c]
            for n in range(N):
                bx, br, bo = c * sx[0] + n * sx[1], c * sr[0] + n * sr[1], c * so[0] + n * so[1]
                xp_ = x[bx:bx + (H - 1) * sx[2] + W]
                rp = r[br:br + (H - 1) * sr[2] + W]
                op = out[bo:bo + (H - 1) * so[2] + W]
                for h in range(H):
                    act_row(xp_, u(h * sx[2]), rp, u(h * sr[2]), op, u(h * so[2]), W, sc, tc, has_r, relu)

    @njit(parallel=True, fastmath=fm, cache=True)
    def backward(dy, sd, x, sx, s, t, r, sr, has_r, relu, dr, sdr, has_dr, r1, r2, N, H, W):
        C = s.shape[0]
        zero = dy.dtype.type(0)
        u = np.uint64
        for c in prange(C):
            sc, tc = s[c], t[c]
            p = 0.0
            q = 0.0
            for n in range(N):
                bd, bx = c * sd[0] + n * sd[1], c * sx[0] + n * sx[1]
                br, bdr = c * sr[0] + n * sr[1], c * sdr[0] + n * sdr[1]
                dyp = dy[bd:bd + (H - 1) * sd[2] + W]
                xp_ = x[bx:bx + (H - 1) * sx[2] + W]
                rp = r[br:br + (H - 1) * sr[2] + W]
                drp = dr[bdr:bdr + (H - 1) * sdr[2] + W]
                for h in range(H):
                    od, ox, orr, odr = u(h * sd[2]), u(h * sx[2]), u(h * sr[2]), u(h * sdr[2])
                    if has_dr:     # (two loops: a store under a flag inside one kept it from vectorising)
                        for w in range(W):
                            ww = u(w)
                            d = dyp[od + ww]
                            xv = xp_[ox + ww]
                            if relu:   # the ReLU's mask, recomputed (the same test in apply below)
                                v = xv * sc + tc
                                if has_r:
                                    v += rp[orr + ww]
                                if not v > 0:
                                    d = zero
                            drp[odr + ww] = d
                            p += d
                            q += d * xv
                    else:
                        for w in range(W):
                            ww = u(w)
                            d = dyp[od + ww]
                            xv = xp_[ox + ww]
                            if relu:
                                v = xv * sc + tc
                                if has_r:
                                    v += rp[orr + ww]
                                if not v > 0:
                                    d = zero
                            p += d
                            q += d * xv
            r1[c] = p
            r2[c] = q

    @njit(parallel=True, fastmath=fm, cache=True)
    def apply(dy, sd, x, sx, s, t, r, sr, has_r, relu, alpha, beta, has_ab, out, so, N, H, W):
        C = s.shape[0]
        zero = x.dtype.type(0)
        u = np.uint64
        for c in prange(C):
            sc, tc = s[c], t[c]
            al = alpha[c] if has_ab else zero
            be = beta[c] if has_ab else zero
            for n in range(N):
                bd, bx = c * sd[0] + n * sd[1], c * sx[0] + n * sx[1]
                br, bo = c * sr[0] + n * sr[1], c * so[0] + n * so[1]
                dyp = dy[bd:bd + (H - 1) * sd[2] + W]
                xp_ = x[bx:bx + (H - 1) * sx[2] + W]
                rp = r[br:br + (H - 1) * sr[2] + W]
                op = out[bo:bo + (H - 1) * so[2] + W]
                for h in range(H):
                    od, ox, orr, oo = u(h * sd[2]), u(h * sx[2]), u(h * sr[2]), u(h * so[2])
                    for w in range(W):
                        ww = u(w)
                        d = dyp[od + ww]
                        xv = xp_[ox + ww]
                        if relu:
                            v = xv * sc + tc
                            if has_r:
                                v += rp[orr + ww]
                            if not v > 0:
                                d = zero
                        op[oo + ww] = sc * d + al * xv + be

    # The same sums over whole image planes: maps whose rows are W values of a longer row
    # stride (a convolution's output read on its grid, a gradient on its grid) are read as one
    # run of L = (H-1)*row + W values per image, the gap columns multiplied by mask = 0. Rows of
    # 8-16 values ran at 3-5 GB/s row by row (a slice per row); as planes, 1.8-2.1x faster.
    # A gap may hold anything (a computed column that is no output): should it be inf or NaN,
    # 0 * it is NaN, so the callers check the sums and redo them row by row then.
    @njit(parallel=True, fastmath=fm, cache=True)
    def stats_plane(x, sx, N, L, mask, m, mean, var):
        C = mean.shape[0]
        for c in prange(C):
            acc = 0.0
            for n in range(N):
                b = c * sx[0] + n * sx[1]
                xr = x[b:b + L]
                for j in range(L):
                    acc += xr[j] * mask[j]
            mu = acc / m
            v = 0.0
            for n in range(N):
                b = c * sx[0] + n * sx[1]
                xr = x[b:b + L]
                for j in range(L):
                    d = (xr[j] - mu) * mask[j]
                    v += d * d
            mean[c] = mu
            var[c] = v / m

    @njit(parallel=True, fastmath=fm, cache=True)
    def sums_plane(dy, sd, x, sx, s, t, r, sr, has_r, relu, N, L, mask, r1, r2):
        C = s.shape[0]
        zero = dy.dtype.type(0)
        for c in prange(C):
            sc, tc = s[c], t[c]
            p = 0.0
            q = 0.0
            for n in range(N):
                bd = c * sd[0] + n * sd[1]
                bx = c * sx[0] + n * sx[1]
                br = c * sr[0] + n * sr[1]
                dyr, xr, rr = dy[bd:bd + L], x[bx:bx + L], r[br:br + L]
                for j in range(L):
                    d = dyr[j] * mask[j]
                    xv = xr[j]
                    if relu:
                        v = xv * sc + tc
                        if has_r:
                            v += rr[j]
                        if not v > 0:
                            d = zero
                    p += d
                    q += d * xv
            r1[c] = p
            r2[c] = q

    # forward into a fresh grid (``Grid``): every column of each channel's grid row written once,
    # the outputs where they belong and zeros in the gaps, so no separate zeroing pass reads the
    # grid in from memory first (at inference the grids are new each call).
    @njit(parallel=True, fastmath=fm, cache=True)
    def forward_grid(x, sx, s, t, r, sr, has_r, relu, G, lead, Hg, Wg, N, H, W):
        C = s.shape[0]
        zero = x.dtype.type(0)
        L = G.shape[1]
        Sg = Hg * Wg
        u = np.uint64
        for c in prange(C):
            sc, tc = s[c], t[c]
            g = G[c]
            for j in range(lead):
                g[j] = zero
            for j in range(lead + N * Sg, L):
                g[j] = zero
            for n in range(N):
                # one slice per image plane, rows indexed by unsigned offsets: a slice per row
                # cost more than the arithmetic on 8-32-value rows
                bx = c * sx[0] + n * sx[1]
                br = c * sr[0] + n * sr[1]
                xp_ = x[bx:bx + (H - 1) * sx[2] + W]
                rp = r[br:br + (H - 1) * sr[2] + W]
                gp = g[lead + n * Sg:lead + (n + 1) * Sg]
                for h in range(H):
                    og = u(h * Wg)
                    act_row(xp_, u(h * sx[2]), rp, u(h * sr[2]), gp, og, W, sc, tc, has_r, relu)
                    for w in range(W, Wg):
                        gp[og + u(w)] = zero
                for j in range(H * Wg, Sg):
                    gp[j] = zero

    _kernels.update(forward_grid=forward_grid)
    _kernels.update(stats=stats, forward=forward, backward=backward, apply=apply, stats_plane=stats_plane,
                    sums_plane=sums_plane)
    return _kernels


def _plane(*arrays: Array | None) -> tuple[int, int, Array, list[tuple[Array, Array]]] | None:
    """``(N, L, mask, [(flat, strides)])`` to read (C, N, H, W) maps image plane by image plane
    (see ``stats_plane``): when their rows are shorter than one row stride they all share; else None."""
    maps = [a for a in arrays if a is not None]
    ref = maps[0]
    if ref.ndim != 4 or ref.shape[2] < 2:
        return None
    it = ref.itemsize
    C, N, H, W = ref.shape
    row = ref.strides[2]
    if row <= W * it or row % it or any(a.shape != ref.shape or a.strides[2] != row or a.strides[3] != it
                                        for a in maps):
        return None
    row //= it
    L = (H - 1) * row + W
    mask = np.zeros(L, dtype=ref.dtype)
    mask.reshape(-1)[: (H - 1) * row].reshape(H - 1, row)[:, :W] = 1
    mask[(H - 1) * row:] = 1
    flats = []
    for a in arrays:
        m = ref if a is None else a
        f = _flat(m)
        if f is None:
            return None
        flats.append(f)
    return N, L, mask, flats


@dataclass(frozen=True)
class Grid:
    """A zero-gapped grid ``G (C, L)`` whose gaps are not written yet: ``N`` blocks of ``Hg x Wg``
    columns from column ``lead`` (``functional.conv.tap_grid``), the maps at each block's top left."""

    G: Array
    lead: int
    Hg: int
    Wg: int


def _numba(*arrays: Array) -> bool:
    return cnhw._use_numba(*[a for a in arrays if a is not None])


def _flat(a: Array) -> tuple[Array, Array] | None:
    """``(flat, strides)`` of a (C, N, H, W) map for the kernels: a 1-D view over its memory
    starting at its first element, and its C, N, H strides in elements; None when its last
    axis is not unit-stride (or a stride is negative): the caller copies it then."""
    it = a.itemsize
    st = a.strides
    if st[3] != it or any(v < 0 or v % it for v in st):
        return None
    extent = sum((d - 1) * v for d, v in zip(a.shape, st)) // it + 1
    flat = np.lib.stride_tricks.as_strided(a, shape=(extent,), strides=(it,))
    return flat, np.array([v // it for v in st[:3]], dtype=np.int64)


def _maps(*arrays: Array | None) -> tuple[int, int, int, list[tuple[Array, Array]]]:
    """(N, H, W, [(flat, strides) per array]) for the kernels; 2-D (C, M) rows and contiguous
    maps become (C, 1, 1, M) so that their inner loop is one long row. A None array gets the
    first array's pair (a stand-in the kernel is told, by a flag, not to read)."""
    first = next(a for a in arrays if a is not None)
    if all(a is None or a.ndim == 2 or a.flags.c_contiguous for a in arrays):
        C = first.shape[0]
        v4 = [None if a is None else a.reshape(C, 1, 1, -1) for a in arrays]
    else:
        v4 = [None if a is None else (a if a.ndim == 4 else a.reshape(first.shape)) for a in arrays]
    ref = next(a for a in v4 if a is not None)
    N, H, W = ref.shape[1:]
    out: list[tuple[Array, Array]] = []
    for a in v4:
        m = ref if a is None else a
        f = _flat(m)
        if f is None:
            raise ValueError(f"bn_act: a map with strides {m.strides} (last axis not unit-stride); "
                             "pass a copy (np.ascontiguousarray)")
        out.append(f)
    return N, H, W, out


def _unit(a):
    """Kernels want unit-stride rows: a copy of ``a`` when its last axis is not (rare: a reversed view)."""
    if a is None or a.ndim == 2 or _flat(a if a.ndim == 4 else a.reshape(1, 1, 1, -1)) is not None:
        return a
    return get_array_module(a).ascontiguousarray(a)


# ---------------------------------------------------------------- public API
def stats(x: Array, mean: Array, var: Array) -> None:
    """float64 per-channel mean and biased variance of the (C, N, H, W) maps x (any strides)."""
    if _numba(x):
        x = _unit(x)
        pl = _plane(x)
        if pl is not None:
            N, L, mask, ((xf, sx),) = pl
            _compile()["stats_plane"](xf, sx, N, L, mask, float(x[0].size), mean, var)
            if np.isfinite(mean).all() and np.isfinite(var).all():
                return
        N, H, W, ((xf, sx),) = _maps(x)
        _compile()["stats"](xf, sx, N, H, W, mean, var)
        return
    cnhw._np_row_stats(x.reshape(x.shape[0], -1), mean, var)


def forward(x: Array, s: Array, t: Array, r: Array | None, relu: bool, out: Array) -> Array:
    """``out = act(x * s + t [+ r])`` on (C, M) rows or (C, N, H, W) maps (any strides, all of
    one shape); s, t (C,) in x's dtype."""
    if _numba(x, r, out):
        x, r = _unit(x), _unit(r)
        N, H, W, (xv, rv, ov) = _maps(x, r, out)
        _compile()["forward"](xv[0], xv[1], s, t, rv[0], rv[1], r is not None, relu, ov[0], ov[1], N, H, W)
        return out
    return _np_forward(x, s, t, r, relu, out)


def forward_into_grid(x: Array, s: Array, t: Array, r: Array | None, relu: bool, grid: Grid) -> Array:
    """``forward`` into the interior of a fresh zero-gapped grid (``grid``: where its gaps are
    not yet zero), writing the gaps' zeros in the same pass; returns the interior (C, N, H, W).
    The grid's blocks hold the maps at their top left (``functional.conv.input_grid``)."""
    G, lead, Hg, Wg = grid.G, grid.lead, grid.Hg, grid.Wg
    C, N, H, W = x.shape
    if H > Hg or W > Wg or G.shape[0] != C or lead + N * Hg * Wg > G.shape[1]:
        raise ValueError(f"bn_act.forward_into_grid: maps {tuple(x.shape)} do not fit the grid {tuple(G.shape)} "
                         f"of {N} blocks of {Hg}x{Wg} after {lead} columns")
    interior = G[:, lead:lead + N * Hg * Wg].reshape(C, N, Hg, Wg)[:, :, :H, :W]
    if _numba(x, r, G) and G.flags.c_contiguous:
        x, r = _unit(x), _unit(r)
        xv = _flat(x)                            # 4-D strides: the kernel walks the grid's rows
        rv = xv if r is None else _flat(r)
        if xv is not None and rv is not None:
            _compile()["forward_grid"](xv[0], xv[1], s, t, rv[0], rv[1], r is not None, relu, G, lead, Hg, Wg,
                                       N, H, W)
            return interior
    G[:, :lead] = 0
    G[:, lead + N * Hg * Wg:] = 0
    blocks = G[:, lead:lead + N * Hg * Wg].reshape(C, N, Hg, Wg)
    blocks[:, :, H:] = 0
    blocks[:, :, :H, W:] = 0
    return _np_forward(x, s, t, r, relu, interior)


def backward_sums(dy: Array, x: Array, s: Array, t: Array, r: Array | None, relu: bool,
                  r1: Array, r2: Array, dr: Array | None = None) -> None:
    """float64 ``r1 = sum dz``, ``r2 = sum dz * x`` per row (dz: dy through the ReLU, recomputed);
    also ``dr = dz`` when ``dr`` is given."""
    if _numba(dy, x, r, dr):
        dy, x, r = _unit(dy), _unit(x), _unit(r)
        pl = _plane(dy, x, r) if dr is None else None
        if pl is not None:
            N, L, mask, (dv, xv, rv) = pl
            _compile()["sums_plane"](dv[0], dv[1], xv[0], xv[1], s, t, rv[0], rv[1], r is not None, relu, N, L,
                                     mask, r1, r2)
            if np.isfinite(r1).all() and np.isfinite(r2).all():
                return
        N, H, W, (dv, xv, rv, drv) = _maps(dy, x, r, dr)
        _compile()["backward"](dv[0], dv[1], xv[0], xv[1], s, t, rv[0], rv[1], r is not None, relu,
                               drv[0], drv[1], dr is not None, r1, r2, N, H, W)
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
        dy, x, r = _unit(dy), _unit(x), _unit(r)
        N, H, W, (dv, xv, rv, ov) = _maps(dy, x, r, out)
        _compile()["apply"](dv[0], dv[1], xv[0], xv[1], s, t, rv[0], rv[1], r is not None, relu,
                            alpha if has_ab else s, beta if has_ab else s, has_ab, ov[0], ov[1], N, H, W)
        return out
    xp = get_array_module(dy)
    xp.multiply(_np_dz(dy, x, s, t, r, relu), _c(s, x.ndim), out=out)
    if alpha is not None:
        out += x * _c(alpha, x.ndim)
        out += _c(beta, x.ndim)
    return out


__all__ = ["stats", "forward", "forward_into_grid", "Grid", "backward_sums", "backward_apply"]
