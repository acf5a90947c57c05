"""Gather/scatter kernels over image planes: channels-first im2col and col2im, max pooling.

Each is one pass over memory with short inner loops (a window row, an output row), which
NumPy can only do as kh*kw strided copies whose rows are a few elements long: the per-row
overhead then dominates (LeNet's 5x5 col2im of 8-wide rows took 18 ms in NumPy). Every kernel
exists as NumPy/CuPy code (the reference, always available) and as a Numba kernel used on
NumPy arrays when numba imports and ``cnhw`` is on its Numba backend (``cnhw.set_backend``,
``LAYERWISE_NO_NUMBA=1``); the tests run both.

    im2col(Xp, cols, k, s, d)          cols[c, i, j, n, h, w] = Xp[c, n, h*sh + i*dh, w*sw + j*dw]
    col2im(dcols, dXp, k, s, d)        dXp[c, n, h*sh + i*dh, w*sw + j*dw] += dcols[c, i, j, n, h, w]
    im2col_blocks(X, k, s, d, p)(cols, n0)    the same for the images [n0, n0 + B) of the unpadded X,
    col2im_blocks(dX, k, s, d, p)(dcols, n0)  padding p read as zeros / dropped (serial, nogil:
                                              one block per thread, see functional.conv)
    maxpool_forward(x, k, s, p)        y, arg over (B, H, W) planes; windows read -inf outside x
    maxpool_backward(dy, arg, H, W, k, s, p)   dx (B, H, W): dy routed to each window's arg-max

``arg`` is the window offset ``i*kw + j`` of the first maximum (a NaN wins and propagates,
as in PyTorch); offsets in the padding are never selected unless the window holds nothing
larger than -inf, and then the gradient goes nowhere, like the padding it points at.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..backend import Array, get_array_module
from . import cnhw

Pair = tuple[int, int]


# ----------------------------------------------------------------------- NumPy
def _np_im2col(Xp, cols, k, s, d):
    (kh, kw), (sh, sw), (dh, dw) = k, s, d
    Ho, Wo = cols.shape[4:]
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = Xp[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh, j * dw:j * dw + sw * (Wo - 1) + 1:sw]


def _np_col2im(dcols, dXp, k, s, d):
    (kh, kw), (sh, sw), (dh, dw) = k, s, d
    Ho, Wo = dcols.shape[4:]
    for i in range(kh):
        for j in range(kw):
            dXp[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh, j * dw:j * dw + sw * (Wo - 1) + 1:sw] += dcols[:, i, j]


def _valid(size: int, n: int, s: int, off: int) -> tuple[int, int]:
    """``[lo, hi)``: the output positions o in ``[0, n)`` whose input position ``o*s + off``
    lies in ``[0, size)`` (im2col reads zeros, col2im drops, outside it)."""
    lo = min(n, max(0, -(off // s)))                  # first o with o*s + off >= 0
    hi = min(n, max(lo, -((off - size) // s)))        # first o with o*s + off >= size
    return lo, hi


def _np_im2col_block(X, cols, n0, k, s, d, p):
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = k, s, d, p
    H, W = X.shape[2:]
    nb, Ho, Wo = cols.shape[3:]
    xs = X[:, n0:n0 + nb]
    for i in range(kh):
        h0, h1 = _valid(H, Ho, sh, i * dh - ph)
        for j in range(kw):
            w0, w1 = _valid(W, Wo, sw, j * dw - pw)
            dst = cols[:, i, j]
            if (h0, h1, w0, w1) != (0, Ho, 0, Wo):
                dst[...] = 0
            if h1 > h0 and w1 > w0:
                r, q = h0 * sh + i * dh - ph, w0 * sw + j * dw - pw
                dst[:, :, h0:h1, w0:w1] = xs[:, :, r:r + sh * (h1 - h0 - 1) + 1:sh, q:q + sw * (w1 - w0 - 1) + 1:sw]


def _np_col2im_block(dcols, dX, n0, k, s, d, p):
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = k, s, d, p
    H, W = dX.shape[2:]
    nb, Ho, Wo = dcols.shape[3:]
    dst = dX[:, n0:n0 + nb]
    dst[...] = 0
    for i in range(kh):
        h0, h1 = _valid(H, Ho, sh, i * dh - ph)
        for j in range(kw):
            w0, w1 = _valid(W, Wo, sw, j * dw - pw)
            if h1 > h0 and w1 > w0:
                r, q = h0 * sh + i * dh - ph, w0 * sw + j * dw - pw
                rows, cs = slice(r, r + sh * (h1 - h0 - 1) + 1, sh), slice(q, q + sw * (w1 - w0 - 1) + 1, sw)
                dst[:, :, rows, cs] += dcols[:, i, j, :, h0:h1, w0:w1]


def _np_maxpool_forward(x, y, arg, k, s, p):
    xp = get_array_module(x)
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    B, H, W = x.shape
    Ho, Wo = y.shape[1:]
    Hp, Wp = max(H + 2 * ph, (Ho - 1) * sh + kh), max(W + 2 * pw, (Wo - 1) * sw + kw)
    if (ph, pw) == (0, 0) and (Hp, Wp) == (H, W):
        xpad = x
    else:
        xpad = xp.full((B, Hp, Wp), -xp.inf, dtype=x.dtype)
        xpad[:, ph:ph + H, pw:pw + W] = x
    y[...] = xpad[:, :sh * (Ho - 1) + 1:sh, :sw * (Wo - 1) + 1:sw]
    arg[...] = 0
    for i in range(kh):
        for j in range(kw):
            if i == 0 and j == 0:
                continue
            v = xpad[:, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw]
            better = (v > y) | xp.isnan(v)     # strict: ties keep the first offset; NaN wins
            xp.copyto(y, v, where=better)
            xp.copyto(arg, xp.asarray(i * kw + j, dtype=arg.dtype), where=better)


def _np_maxpool_backward(dy, arg, dx, k, s, p):
    xp = get_array_module(dy)
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    B, H, W = dx.shape
    Ho, Wo = dy.shape[1:]
    Hp, Wp = max(H + 2 * ph, (Ho - 1) * sh + kh), max(W + 2 * pw, (Wo - 1) * sw + kw)
    dxpad = xp.zeros((B, Hp, Wp), dtype=dy.dtype)
    zero = xp.zeros((), dtype=dy.dtype)
    for i in range(kh):
        for j in range(kw):
            dxpad[:, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] += xp.where(arg == i * kw + j, dy, zero)
    dx[...] = dxpad[:, ph:ph + H, pw:pw + W]


# ----------------------------------------------------------------------- Numba
_started: list[bool] = []


def _start() -> None:
    """Once: the Numba kernels run on ``cnhw``'s thread count (see ``cnhw.set_num_threads``)."""
    if not _started:
        nb = cnhw._nb
        nb.set_num_threads(min(cnhw._THREADS[0], nb.config.NUMBA_NUM_THREADS))
        _started.append(True)


_col_kernels: dict = {}


def _col_kernel(kind: str, sh: int, sw: int, dh: int, dw: int):
    """im2col / col2im for one stride and dilation, which are compile-time constants: one
    (Ho, Wo) block per (c, i, j, n), indexed 2-D. With rows of 8 values (LeNet), slicing rows
    or runtime strides in the index arithmetic made these 3-4x slower."""
    key = (kind, sh, sw, dh, dw)
    if key in _col_kernels:
        return _col_kernels[key]
    _start()
    nb = cnhw._nb
    njit, prange = nb.njit, nb.prange
    if kind == "im2col":
        @njit(parallel=True, cache=True)
        def kern(Xp, cols, kh, kw):                    # Xp (C, N, Hp, Wp) -> cols (C, kh, kw, N, Ho, Wo)
            C, N = Xp.shape[0], Xp.shape[1]
            Ho, Wo = cols.shape[4], cols.shape[5]
            for c in prange(C):
                for i in range(kh):
                    for j in range(kw):
                        for n in range(N):
                            src = Xp[c, n]
                            dst = cols[c, i, j, n]
                            for h in range(Ho):
                                for w in range(Wo):
                                    dst[h, w] = src[h * sh + i * dh, w * sw + j * dw]
    else:
        @njit(parallel=True, cache=True)
        def kern(dcols, dXp, kh, kw):                  # dXp (C, N, Hp, Wp) += ...
            C, N = dXp.shape[0], dXp.shape[1]
            Ho, Wo = dcols.shape[4], dcols.shape[5]
            for c in prange(C):
                for n in range(N):
                    dst = dXp[c, n]
                    for i in range(kh):
                        for j in range(kw):
                            src = dcols[c, i, j, n]
                            for h in range(Ho):
                                for w in range(Wo):
                                    dst[h * sh + i * dh, w * sw + j * dw] += src[h, w]
    _col_kernels[key] = kern
    return kern


_block_kernels: dict = {}


def _block_kernel(kind: str, sh: int, sw: int, dh: int, dw: int):
    """im2col / col2im over a block of images of an unpadded input (the padding handled by
    the valid ranges of each tap). Serial and ``nogil``: the callers run one block per thread
    of their own (``functional.conv``), each block's columns staying in that core's cache."""
    key = (kind, sh, sw, dh, dw)
    if key in _block_kernels:
        return _block_kernels[key]
    nb = cnhw._nb
    njit = nb.njit
    # Every index is a sum of loop counters times constants, so Numba's negative-index
    # wraparound checks fold away (indices computed with the padding subtracted made the inner
    # loops 3-7x slower); with padding, each plane is first copied into (or folded out of) a
    # zero-bordered plane of scratch, which costs 1/(kh*kw) of the columns' traffic.
    if kind == "im2col":
        @njit(nogil=True, cache=True)
        def kern(X, cols, n0, kh, kw, ph, pw, nchw):   # X (C, N, H, W), or (N, C, H, W) when nchw
            C, B, Ho, Wo = cols.shape[0], cols.shape[3], cols.shape[4], cols.shape[5]
            H, W = X.shape[2], X.shape[3]
            padded = ph > 0 or pw > 0
            buf = np.zeros((H + 2 * ph if padded else 1, W + 2 * pw if padded else 1), dtype=cols.dtype)
            for c in range(C):
                for n in range(B):
                    src = X[n0 + n, c] if nchw else X[c, n0 + n]
                    if padded:
                        for r in range(H):
                            for q in range(W):
                                buf[r + ph, q + pw] = src[r, q]
                        plane = buf
                    else:
                        plane = src
                    for i in range(kh):
                        for j in range(kw):
                            dst = cols[c, i, j, n]
                            for h in range(Ho):
                                for w in range(Wo):
                                    dst[h, w] = plane[h * sh + i * dh, w * sw + j * dw]
    else:
        @njit(nogil=True, cache=True)
        def kern(dcols, dX, n0, kh, kw, ph, pw, nchw):  # dX (C, N, H, W)[:, n0:n0+B] = fold of dcols
            C, B, Ho, Wo = dcols.shape[0], dcols.shape[3], dcols.shape[4], dcols.shape[5]
            H, W = dX.shape[2], dX.shape[3]
            padded = ph > 0 or pw > 0
            buf = np.empty((H + 2 * ph if padded else 1, W + 2 * pw if padded else 1), dtype=dX.dtype)
            zero = dX.dtype.type(0)
            for c in range(C):
                for n in range(B):
                    dst = dX[c, n0 + n]
                    plane = buf if padded else dst
                    for r in range(plane.shape[0]):
                        for q in range(plane.shape[1]):
                            plane[r, q] = zero
                    for i in range(kh):
                        for j in range(kw):
                            src = dcols[c, i, j, n]
                            for h in range(Ho):
                                for w in range(Wo):
                                    plane[h * sh + i * dh, w * sw + j * dw] += src[h, w]
                    if padded:
                        for r in range(H):
                            for q in range(W):
                                dst[r, q] = buf[r + ph, q + pw]
    _block_kernels[key] = kern
    return kern


_copy_kernels: dict = {}


def _copy_kernel(kind: str):
    """Copies between maps and grids. A grid is a C-contiguous 2-D array ``G (C, L)`` whose
    columns ``[base + n*Sg, base + (n+1)*Sg)`` hold image n as an (Hg, Wg) block; each block is
    reshaped and indexed 2-D (strided 4-D views did not vectorise: rows of 8 values ran at
    1.3 GB/s in NumPy and in Numba alike)."""
    if kind in _copy_kernels:
        return _copy_kernels[kind]
    _start()
    nb = cnhw._nb
    njit, prange = nb.njit, nb.prange
    if kind == "to_grid":
        @njit(parallel=True, cache=True)
        def kern(G, base, N, Hg, Wg, src, src_nchw, has_src, H, W, top, left):
            C = G.shape[0]
            Sg = Hg * Wg
            zero = G.dtype.type(0)
            for c in prange(C):
                for n in range(N):
                    b = G[c, base + n * Sg:base + (n + 1) * Sg].reshape(Hg, Wg)
                    a = src[n, c] if src_nchw else src[c, n]
                    for h in range(Hg):
                        if h >= top and h < top + H:
                            for w in range(left):
                                b[h, w] = zero
                            if has_src:
                                for w in range(W):
                                    b[h, left + w] = a[h - top, w]
                            for w in range(left + W, Wg):
                                b[h, w] = zero
                        else:
                            for w in range(Wg):
                                b[h, w] = zero
    else:
        @njit(parallel=True, cache=True)
        def kern(G, base, N, Hg, Wg, dst, top, left):   # dst (C, N, H, W) = the blocks' [top:, left:] corner
            C, H, W = dst.shape[0], dst.shape[2], dst.shape[3]
            Sg = Hg * Wg
            for c in prange(C):
                for n in range(N):
                    b = G[c, base + n * Sg:base + (n + 1) * Sg].reshape(Hg, Wg)
                    d = dst[c, n]
                    for h in range(H):
                        for w in range(W):
                            d[h, w] = b[top + h, left + w]
    _copy_kernels[kind] = kern
    return kern


def _blocks(G: Array, base: int, N: int, Hg: int, Wg: int) -> Array:
    return G[:, base:base + N * Hg * Wg].reshape(G.shape[0], N, Hg, Wg)


def to_grid(G: Array, base: int, N: int, Hg: int, Wg: int, src: Array | None, H: int, W: int,
            top: int = 0, left: int = 0) -> Array:
    """Fill the blocks of the grid ``G (C, L)`` (see ``_copy_kernel``): ``src (C, N, H, W)`` at
    ``[top:top+H, left:left+W]`` of each block (left unset when src is None), zeros in the rest
    of the block, in one pass. The columns outside the blocks are not touched."""
    nchw = src is not None and not src.flags.c_contiguous and src.transpose(1, 0, 2, 3).flags.c_contiguous
    if _numba(G) and (src is None or (cnhw._use_numba(src) and (src.flags.c_contiguous or nchw))):
        s = G.reshape(1, 1, 1, -1)[:, :, :0, :0] if src is None else (src.transpose(1, 0, 2, 3) if nchw else src)
        _copy_kernel("to_grid")(G, base, N, Hg, Wg, s, nchw, src is not None, H, W, top, left)
        return G
    V = _blocks(G, base, N, Hg, Wg)
    V[:, :, :top] = 0
    V[:, :, top + H:] = 0
    V[:, :, top:top + H, :left] = 0
    V[:, :, top:top + H, left + W:] = 0
    if src is not None:
        V[:, :, top:top + H, left:left + W] = src
    return G


def from_grid(G: Array, base: int, N: int, Hg: int, Wg: int, H: int, W: int, top: int = 0,
              left: int = 0) -> Array:
    """The ``[top:top+H, left:left+W]`` window of every block of ``G`` as a new C-contiguous
    (C, N, H, W) array (a crop of a grid or of a padded map)."""
    xp = get_array_module(G)
    dst = xp.empty((G.shape[0], N, H, W), dtype=G.dtype)
    if _numba(G, dst):
        _copy_kernel("from_grid")(G, base, N, Hg, Wg, dst, top, left)
    else:
        dst[...] = _blocks(G, base, N, Hg, Wg)[:, :, top:top + H, left:left + W]
    return dst


_pool_kernels: dict = {}


def _pool_kernel(kind: str, kh: int, kw: int):
    """A max-pooling kernel for one window size: kh and kw are compile-time constants (a
    loop over a window of runtime size ran 5x slower: LLVM could not unroll it)."""
    key = (kind, kh, kw)
    if key in _pool_kernels:
        return _pool_kernels[key]
    _start()
    nb = cnhw._nb
    njit, prange = nb.njit, nb.prange

    # 2x2 / stride 2, written out. LLVM vectorises the row loop of "fwd_2x2" only when Wo is a
    # multiple of 8; otherwise its branches run scalar and mispredict on real data (LeNet's pools,
    # Wo = 12 and 4: 3.9 and 3.2 ms), where "fwd_2x2_sel" takes 1.2 and 0.9 ms (and 25-40% more
    # than "fwd_2x2" when Wo % 8 == 0).
    if kind == "fwd_2x2":
        @njit(parallel=True, cache=True)
        def kern(x, y, arg, sh, sw, ph, pw):
            B = x.shape[0]
            Ho, Wo = y.shape[1], y.shape[2]
            for b in prange(B):
                for h in range(Ho):
                    for w in range(Wo):
                        best = x[b, 2 * h, 2 * w]
                        a = 0
                        v = x[b, 2 * h, 2 * w + 1]
                        if v > best or v != v:
                            best = v
                            a = 1
                        v = x[b, 2 * h + 1, 2 * w]
                        if v > best or v != v:
                            best = v
                            a = 2
                        v = x[b, 2 * h + 1, 2 * w + 1]
                        if v > best or v != v:
                            best = v
                            a = 3
                        y[b, h, w] = best
                        arg[b, h, w] = a
    elif kind == "max_2x2":      # inference, 2x2 / stride 2: the maxima alone, as selects (no branches)
        @njit(parallel=True, cache=True)
        def kern(x, y, arg, sh, sw, ph, pw):
            B = x.shape[0]
            Ho, Wo = y.shape[1], y.shape[2]
            for b in prange(B):
                for h in range(Ho):
                    for w in range(Wo):
                        v0, v1 = x[b, 2 * h, 2 * w], x[b, 2 * h, 2 * w + 1]
                        v2, v3 = x[b, 2 * h + 1, 2 * w], x[b, 2 * h + 1, 2 * w + 1]
                        m = v1 if (v1 > v0) | (v1 != v1) else v0
                        m = v2 if (v2 > m) | (v2 != v2) else m
                        y[b, h, w] = v3 if (v3 > m) | (v3 != v3) else m
    elif kind == "fwd_2x2_sel":  # 2x2 / stride 2 when Wo % 8: branch-free, arg found from the maximum
        @njit(parallel=True, cache=True)
        def kern(x, y, arg, sh, sw, ph, pw):
            B = x.shape[0]
            Ho, Wo = y.shape[1], y.shape[2]
            for b in prange(B):
                for h in range(Ho):
                    for w in range(Wo):
                        v0, v1 = x[b, 2 * h, 2 * w], x[b, 2 * h, 2 * w + 1]
                        v2, v3 = x[b, 2 * h + 1, 2 * w], x[b, 2 * h + 1, 2 * w + 1]
                        m = v1 if (v1 > v0) | (v1 != v1) else v0
                        m = v2 if (v2 > m) | (v2 != v2) else m
                        m = v3 if (v3 > m) | (v3 != v3) else m
                        y[b, h, w] = m
                        a = 3                            # the first offset holding the maximum
                        a = 2 if v2 == m else a
                        a = 1 if v1 == m else a
                        a = 0 if v0 == m else a
                        n = 0                            # a NaN maximum: the last NaN (as the
                        n = 1 if v1 != v1 else n         # sequential scan above takes it)
                        n = 2 if v2 != v2 else n
                        n = 3 if v3 != v3 else n
                        arg[b, h, w] = n if m != m else a
    elif kind == "max_inside":   # inference: the maxima alone (no arg-max kept)
        @njit(parallel=True, cache=True)
        def kern(x, y, arg, sh, sw, ph, pw):
            B = x.shape[0]
            Ho, Wo = y.shape[1], y.shape[2]
            for b in prange(B):
                for h in range(Ho):
                    for w in range(Wo):
                        r0, q0 = h * sh, w * sw
                        best = x[b, r0, q0]
                        for i in range(kh):
                            for j in range(kw):
                                v = x[b, r0 + i, q0 + j]
                                if v > best or v != v:
                                    best = v
                        y[b, h, w] = best
    elif kind == "fwd_inside":   # every window lies inside x: no bounds to check
        @njit(parallel=True, cache=True)
        def kern(x, y, arg, sh, sw, ph, pw):
            B = x.shape[0]
            Ho, Wo = y.shape[1], y.shape[2]
            for b in prange(B):
                for h in range(Ho):
                    for w in range(Wo):
                        r0, q0 = h * sh, w * sw
                        best = x[b, r0, q0]
                        a = 0
                        for i in range(kh):
                            for j in range(kw):
                                v = x[b, r0 + i, q0 + j]
                                if v > best or v != v:       # strict: ties keep the first; NaN wins
                                    best = v
                                    a = i * kw + j
                        y[b, h, w] = best
                        arg[b, h, w] = a
    elif kind == "fwd":          # windows may reach past x (padding, ceil mode): those read -inf
        @njit(parallel=True, cache=True)
        def kern(x, y, arg, sh, sw, ph, pw):
            B, H, W = x.shape
            Ho, Wo = y.shape[1], y.shape[2]
            for b in prange(B):
                for h in range(Ho):
                    for w in range(Wo):
                        best = -np.inf
                        a = 0
                        for i in range(kh):
                            r = h * sh + i - ph
                            for j in range(kw):
                                q = w * sw + j - pw
                                v = -np.inf
                                if r >= 0 and r < H and q >= 0 and q < W:
                                    v = x[b, r, q]
                                if (i == 0 and j == 0) or v > best or v != v:
                                    best = v
                                    a = i * kw + j
                        y[b, h, w] = best
                        arg[b, h, w] = a
    elif kind == "bwd_tiled":    # the windows tile dx exactly: each dx element is written once
        @njit(parallel=True, cache=True)
        def kern(dy, arg, dx, sh, sw, ph, pw):
            B = dx.shape[0]
            Ho, Wo = dy.shape[1], dy.shape[2]
            for b in prange(B):
                for h in range(Ho):
                    for i in range(kh):
                        r = h * kh + i
                        for w in range(Wo):
                            a = arg[b, h, w]
                            g = dy[b, h, w]
                            for j in range(kw):
                                dx[b, r, w * kw + j] = g if a == i * kw + j else 0
    else:                        # general: zero dx, then add each dy at its arg-max
        @njit(parallel=True, cache=True)
        def kern(dy, arg, dx, sh, sw, ph, pw):
            B, H, W = dx.shape
            Ho, Wo = dy.shape[1], dy.shape[2]
            for b in prange(B):
                for r in range(H):
                    for q in range(W):
                        dx[b, r, q] = 0
                for h in range(Ho):
                    for w in range(Wo):
                        a = arg[b, h, w]
                        r = h * sh + a // kw - ph
                        q = w * sw + a % kw - pw
                        if r >= 0 and r < H and q >= 0 and q < W:
                            dx[b, r, q] += dy[b, h, w]
    _pool_kernels[key] = kern
    return kern


def _numba(*arrays: Array) -> bool:
    return cnhw._use_numba(*arrays) and all(a.flags.c_contiguous for a in arrays)


# ---------------------------------------------------------------- public API
def im2col(Xp: Array, cols: Array, k: Pair, s: Pair, d: Pair) -> Array:
    """Fill ``cols (C, kh, kw, N, Ho, Wo)`` from the padded channels-first ``Xp (C, N, Hp, Wp)``."""
    if _numba(Xp, cols):
        _col_kernel("im2col", s[0], s[1], d[0], d[1])(Xp, cols, k[0], k[1])
    else:
        _np_im2col(Xp, cols, k, s, d)
    return cols


def col2im(dcols: Array, dXp: Array, k: Pair, s: Pair, d: Pair) -> Array:
    """Add ``dcols (C, kh, kw, N, Ho, Wo)`` into ``dXp (C, N, Hp, Wp)`` at the positions im2col read."""
    if _numba(dcols, dXp):
        _col_kernel("col2im", s[0], s[1], d[0], d[1])(dcols, dXp, k[0], k[1])
    else:
        _np_col2im(dcols, dXp, k, s, d)
    return dXp


def block_kernels_available(*arrays: Array) -> bool:
    """Whether ``im2col_block`` / ``col2im_block`` run as Numba kernels on these arrays."""
    return cnhw._use_numba(*arrays)


def im2col_blocks(X: Array, k: Pair, s: Pair, d: Pair, p: Pair) -> Callable[[Array, int], None]:
    """``fill(cols, n0)``: fill ``cols (C, kh, kw, B, Ho, Wo)`` (C-contiguous) from the images
    ``[n0, n0 + B)`` of the unpadded channels-first ``X (C, N, H, W)`` (any memory order), zeros
    where a window reads the padding:
    ``cols[c, i, j, n, h, w] = X[c, n0 + n, h*sh + i*dh - ph, w*sw + j*dw - pw]``.
    The checks and the kernel lookup are done once here, not per block."""
    nchw = not X.flags.c_contiguous and X.transpose(1, 0, 2, 3).flags.c_contiguous
    if cnhw._use_numba(X) and (X.flags.c_contiguous or nchw):
        kern = _block_kernel("im2col", s[0], s[1], d[0], d[1])
        src = X.transpose(1, 0, 2, 3) if nchw else X
        (kh, kw), (ph, pw) = k, p

        def fill(cols: Array, n0: int) -> None:
            kern(src, cols, n0, kh, kw, ph, pw, nchw)
        return fill
    return lambda cols, n0: _np_im2col_block(X, cols, n0, k, s, d, p)


def col2im_blocks(dX: Array, k: Pair, s: Pair, d: Pair, p: Pair) -> Callable[[Array, int], None]:
    """``fold(dcols, n0)``: set the images ``[n0, n0 + B)`` of ``dX (C, N, H, W)`` (C-contiguous)
    to the fold of ``dcols (C, kh, kw, B, Ho, Wo)``: at each position, the sum of the entries
    that ``im2col_blocks`` read from it (entries that read the padding are dropped). Other
    images of dX are not touched."""
    if _numba(dX):
        kern = _block_kernel("col2im", s[0], s[1], d[0], d[1])
        (kh, kw), (ph, pw) = k, p

        def fold(dcols: Array, n0: int) -> None:
            kern(dcols, dX, n0, kh, kw, ph, pw, False)
        return fold
    return lambda dcols, n0: _np_col2im_block(dcols, dX, n0, k, s, d, p)


def im2col_block(X: Array, cols: Array, n0: int, k: Pair, s: Pair, d: Pair, p: Pair) -> Array:
    """One call of ``im2col_blocks(X, k, s, d, p)`` (cols of any memory order)."""
    if cols.flags.c_contiguous:
        im2col_blocks(X, k, s, d, p)(cols, n0)
    else:
        _np_im2col_block(X, cols, n0, k, s, d, p)
    return cols


def col2im_block(dcols: Array, dX: Array, n0: int, k: Pair, s: Pair, d: Pair, p: Pair) -> Array:
    """One call of ``col2im_blocks(dX, k, s, d, p)`` (dcols of any memory order)."""
    if dcols.flags.c_contiguous:
        col2im_blocks(dX, k, s, d, p)(dcols, n0)
    else:
        _np_col2im_block(dcols, dX, n0, k, s, d, p)
    return dX


def maxpool_forward(x: Array, y: Array, arg: Array | None, k: Pair, s: Pair, p: Pair) -> None:
    """Max pooling of the planes ``x (B, H, W)`` into ``y``, ``arg (B, Ho, Wo)`` (windows past the
    input, padding or ceil mode, read -inf); ``arg=None``: the maxima alone (inference)."""
    if _numba(x, y):
        H, W = x.shape[1:]
        Ho, Wo = y.shape[1:]
        inside = p == (0, 0) and (Ho - 1) * s[0] + k[0] <= H and (Wo - 1) * s[1] + k[1] <= W
        if arg is None and inside:
            kind = "max_2x2" if k == s == (2, 2) else "max_inside"
        elif inside and k == s == (2, 2):
            kind = "fwd_2x2" if Wo % 8 == 0 else "fwd_2x2_sel"
        else:
            kind = "fwd_inside" if inside else "fwd"
        if arg is None and not kind.startswith("max"):
            arg = get_array_module(x).empty(y.shape, dtype=np.int32)
        _pool_kernel(kind, *k)(x, y, y if arg is None else arg, s[0], s[1], p[0], p[1])
    else:
        xp = get_array_module(x)
        _np_maxpool_forward(x, y, xp.empty(y.shape, dtype=xp.int32) if arg is None else arg, k, s, p)


def maxpool_backward(dy: Array, arg: Array, dx: Array, k: Pair, s: Pair, p: Pair) -> None:
    """``dx (B, H, W)`` = each ``dy`` routed to its window's arg-max (added where windows overlap)."""
    if _numba(dy, arg, dx):
        B, H, W = dx.shape
        Ho, Wo = dy.shape[1:]
        tiled = k == s and p == (0, 0) and (Ho * k[0], Wo * k[1]) == (H, W)
        _pool_kernel("bwd_tiled" if tiled else "bwd", *k)(dy, arg, dx, s[0], s[1], p[0], p[1])
    else:
        _np_maxpool_backward(dy, arg, dx, k, s, p)


__all__ = ["im2col", "col2im", "im2col_block", "col2im_block", "im2col_blocks", "col2im_blocks",
           "block_kernels_available", "maxpool_forward", "maxpool_backward", "to_grid", "from_grid"]
