"""2-D convolution (cross-correlation, as in PyTorch and Caffe) as pure functions.

    y, ctx = conv2d_forward(x, W, b, stride, padding, dilation, groups)   # y (N, O, Ho, Wo)
    dx, dW, db = conv2d_backward(dy, ctx)                                 # shapes of x, W, b

Forward::

    y[n, o, h, w] = b[o] + sum_{c in group(o), i, j} W[o, c, i, j] * xpad[n, g*Cg + c, h*sh + i*dh, w*sw + j*dw]

Backward (docs/convolution.md derives both forms)::

    db[o]          = sum_{n, h, w} dy[n, o, h, w]
    dW[o, c, i, j] = sum_{n, h, w} dy[n, o, h, w] * xpad[n, c, h*sh + i*dh, w*sw + j*dw]
    dx             = crop(full correlation of the stride-dilated, zero-padded dy with rot180(W))

Code paths, chosen by ``impl`` and the geometry (``conv2d_method``), all giving the same
numbers; ``impl`` may also name a channels-first method (``METHODS``) where the geometry allows:

* ``"gemm"`` (default, groups 1) works in the channels-first layout ``X (C, N, H, W)``, seen
  as the matrix ``X (C, M)``, M = N*H*W (``layout.to_cnhw``: free when x is the NCHW view of a
  channels-first array, which is what every layer of this kind returns, so a chain of layers
  pays no transposes). The output is returned the same way: an NCHW view of ``Y (O, N, Ho, Wo)``.

  - ``cf1x1``: 1x1 kernel, no padding: ``Y = W (O, C) @ X (C, M)``, one GEMM (stride s: X
    subsampled first).
  - ``cftaps``: stride 1 with at least ``TAPS_MIN_CHANNELS`` input channels, when its grid
    computes at most ``TAPS_MAX_WASTE`` columns per output: one GEMM per kernel tap on shifted
    views, no columns. X is laid on a zero-gapped grid ``Xg (C, Ng)`` (``tap_grid``: images of
    Hg = H + ph rows of Wg = W + pw columns, one gap serving both neighbours); output column p
    is ``Y[:, p] = sum_t W_t (O, C) @ Xg[:, p + off_t]``, off_t = i*dh*Wg + j*dw, computed for
    every column of the output grid (those that are no output are dropped). Backward:
    ``dW_t = sum_p dy[:, p] Xg[:, p + off_t]^T`` and ``dXg[:, q] = sum_t W_t^T dy[:, q - off_t]``
    with dy laid on its grid (zeros off the outputs). The GEMMs accumulate (beta = 1) straight
    into NumPy's BLAS (``functional.blas``), split by columns over threads; ``xp.matmul`` where
    that is not possible (CuPy, no BLAS found). ``crop=False`` / ``dy_grid`` / ``input_grid``
    let the layers around hand over grids instead of copying (``layers.fused``).
  - ``winograd``: 3x3, stride 1, dilation 1 with at least ``WINOGRAD_MIN_CHANNELS`` channels in
    and out on maps of at least ``WINOGRAD_MIN_SIZE`` (padding <= 1; NumPy with the Numba
    kernels on; by name: any 3x3 stride-1 dilation-1 convolution, any padding): Winograd's
    F(2x2, 3x3) (``functional.winograd``: the matrices and the tile layout derived there), 16
    GEMMs ``M[:, a] = U[:, a] (O, C) @ V[:, a] (C, tiles)`` on transformed 4x4 tiles instead of
    9 of the taps' (2.25x fewer multiplications). It reads its 4x4 tiles straight off the
    taps' grid ``Xg`` (padded pixel (r, q) of image n at column ``n*Sg + r*Wg + q``), so it
    takes the same ``input_grid`` and ``dy_grid`` hand-overs. Backward: dx is the same
    algorithm on the dy grid (the correlation of dy padded by (2 - ph, 2 - pw) with
    ``rot180(W)`` transposed); dW is its transpose F(3x3, 2x2), 16 GEMMs summing over the tiles
    (``winograd.weight_grad``).
  - ``cfim2col``: otherwise (few channels, a large border, stride > 1): im2col in the
    channels-first layout, ``cols (C*kh*kw, M)``, ``Y = K @ cols``; backward ``dK = dY cols^T``,
    ``dcols = K^T dY`` folded back by col2im. With BLAS and Numba it runs by blocks of images
    (``COLS_BLOCK_BYTES`` of columns), handed to our threads one at a time: each thread fills a
    block's columns (``cf_kernels.im2col_blocks``), runs its GEMMs and folds its dcols while
    they are in its cache; the backward rebuilds the columns from the saved input, so the full
    cols are never written (LeNet's conv2: 33 MB, page-faulted in afresh every step). Without
    either, the full cols are built once (``cf_kernels.im2col``/``col2im``).
  - ``cfshift`` (by name only; it was the default for stride 1 before ``cftaps``): the padded
    X flattened to ``Xp (C, Np)``; forward stacks the kh*kw shifted slices into
    ``cols (kh*kw*C, L)`` and runs one GEMM (or, when O is much smaller than C,
    ``Z = Wt (kh*kw*O, C) @ Xp`` and kh*kw shifted sums of O rows); backward stacks the shifted
    copies of the padded dy, ``D (kh*kw*O, Np)``: ``dWt = D @ Xp^T`` and ``dXp = Wt^T @ D``
    (tap by tap on slices when O > C).
* ``"im2col"``: docs/convolution.md's route 2 as written, per sample in NCHW: ``cols (N, C*kh*kw,
  Ho*Wo)``, ``Y = K X``, ``dK = dY X^T``, ``dX = col2im(K^T dY)``; also what groups > 1 runs.
* ``"direct"``: docs/convolution.md's route 1 written out, looping over kernel offsets:
  dW as the input correlated with the error map, dx as the zero-padded error correlated
  with the kernel rotated by 180 degrees. It exists to teach and to test.

``need_dx=False`` (Caffe's ``propagate_down``) skips the input gradient, ``need_dW=False``
(a frozen weight) the weight gradient: neither GEMM is run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..backend import Array, get_array_module
from . import blas, cf_kernels, cnhw, winograd
from .im2col import IntPair, col2im, conv_output_size, im2col, pad2d, pair
from .layout import from_cnhw, to_cnhw
from .workspace import Workspace

IMPLS = ("gemm", "im2col", "direct")
METHODS = ("cf1x1", "cftaps", "winograd", "cfshift", "cfim2col")   # the channels-first paths, also selectable by name
GRID_IMPLS = ("gemm", "cftaps", "winograd")   # the impls under which a stride-1 conv may read its input off a grid
# below this many input channels a stride-1 convolution stacks its taps (cfshift/cfim2col)
# instead of running one GEMM of depth C per tap (cftaps)
TAPS_MIN_CHANNELS = 8
TAPS_MAX_WASTE = 1.5   # most grid columns per output the taps may compute (else cfim2col)
# Winograd F(2x2, 3x3) instead of the taps for a 3x3, stride-1, dilation-1 convolution with at
# least this many input AND output channels on maps of at least WINOGRAD_MIN_SIZE (padding <= 1;
# NumPy arrays with the Numba kernels on). Measured on the 2-core EPYC (float32, batch 64, input
# and dy on their grids, CPU time on one core: the machine was shared and 2-thread wall times
# swung 2x between runs), `python benchmarks/bench_conv_methods.py`, taps time / winograd time
# for forward, dx, dW (the forward ratios of an earlier run in brackets):
#   16->16 @32x32  1.16 1.30 1.37 (1.06-1.13)   32->32 @16   1.14 1.30 1.22 (1.15-1.25)
#   64->64 @8      1.42 1.50 1.28 (1.50-1.52)   32->32 @32   1.17 1.26 1.67 (1.35-1.37)
#   32->64 @16     1.11 1.39 1.29 (1.33-1.38)   64->64 @16   1.44 1.58 1.54 (1.52-1.53)
#   64->128 @8     1.53 1.54 1.28 (1.66-1.68)   128->128 @8  1.77 1.80 1.39 (1.88-1.91)
# With fewer channels the forward alone is a wash (48->12 @16 and @8: 0.97-1.09 by run, 16->8
# @32 0.95, 8->8 @32 0.89) while the backward still gains 10-60%: those stay on the taps.
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_SIZE = 8
# dW of the winograd method by F(3x3, 2x2) (True) or by the taps on the same grids (False)
WINOGRAD_DW = True
# cols larger than this (bytes) are rebuilt in the backward instead of being kept from the forward
KEEP_COLS_BYTES = 64 << 20


@dataclass
class ConvCtx:
    """What conv2d_backward needs: the weight, the geometry and the saved input form."""

    W: Array
    x_shape: tuple[int, int, int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    has_bias: bool
    method: str                      # "cf1x1" | "cfshift" | "cfim2col" | "im2col" | "direct"
    saved: dict[str, Any] = field(default_factory=dict)


def conv2d_output_shape(x_shape, w_shape, stride: IntPair = 1, padding: IntPair = 0,
                        dilation: IntPair = 1, groups: int = 1) -> tuple[int, int, int, int]:
    """(N, O, Ho, Wo) of a convolution; ValueError naming the shapes and the fix when invalid."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(f"conv2d: expected x (N, C, H, W) and W (O, C/groups, kh, kw), got x {tuple(x_shape)} "
                         f"and W {tuple(w_shape)}")
    N, C, H, Wd = x_shape
    O, Cg, kh, kw = w_shape
    (sh, sw), (ph, pw), (dh, dw) = pair(stride, "stride"), pair(padding, "padding"), pair(dilation, "dilation")
    if groups < 1 or C % groups or O % groups or C // groups != Cg:
        raise ValueError(f"conv2d: x has {C} channels and W has shape {tuple(w_shape)} with groups={groups}; "
                         f"need C divisible by groups, O divisible by groups and W.shape[1] == C/groups")
    Ho, Wo = conv_output_size(H, kh, sh, ph, dh), conv_output_size(Wd, kw, sw, pw, dw)
    if Ho < 1 or Wo < 1:
        raise ValueError(f"conv2d: the dilated kernel ({dh*(kh-1)+1}x{dw*(kw-1)+1}) is larger than the padded "
                         f"input ({H + 2*ph}x{Wd + 2*pw}) for x {tuple(x_shape)}; use a larger input, "
                         f"more padding or a smaller kernel/dilation")
    return N, O, Ho, Wo


# --------------------------------------------------------------------------- forward
def conv2d_method(x_shape, w_shape, stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                  groups: int = 1, impl: str = "gemm") -> str:
    """The code path a convolution of this geometry runs (see the module docstring).

    ``impl`` is ``"gemm"`` (chosen by geometry), ``"im2col"``, ``"direct"``, or one of the
    channels-first methods by name (``METHODS``), which raises ValueError where that method
    cannot run the geometry."""
    if impl not in IMPLS and impl not in METHODS:
        raise ValueError(f"conv2d: impl must be one of {IMPLS + METHODS}, got {impl!r}")
    if impl in ("im2col", "direct"):
        return impl
    kh, kw = w_shape[2:]
    st, pd = pair(stride), pair(padding)
    if impl != "gemm":
        why = _method_unfit(impl, kh, kw, st, pd, groups, pair(dilation))
        if why:
            raise ValueError(f"conv2d: impl={impl!r} cannot run this convolution ({why}); use impl='gemm'")
        return impl
    if groups != 1:
        return "im2col"
    if (kh, kw) == (1, 1) and pd == (0, 0):
        return "cf1x1"
    if (st == (1, 1) and pair(dilation) == (1, 1) and (kh, kw) == (3, 3) and max(pd) <= 1
            and min(x_shape[1], w_shape[0]) >= WINOGRAD_MIN_CHANNELS and min(x_shape[2:]) >= WINOGRAD_MIN_SIZE
            and cnhw.get_backend() == "numba"):
        return "winograd"
    if st == (1, 1) and x_shape[1] >= TAPS_MIN_CHANNELS:
        # the taps compute every column of their grid; where the border is a large share of it
        # (a 5x5 kernel on 12x12 maps: 2.25x the outputs), im2col's columns are cheaper
        g = tap_grid(x_shape, w_shape, pd, pair(dilation))
        Ho, Wo = x_shape[2] + 2 * pd[0] - g.dh * (kh - 1), x_shape[3] + 2 * pd[1] - g.dw * (kw - 1)
        if g.Hg * g.Wg <= TAPS_MAX_WASTE * Ho * Wo:
            return "cftaps"
    # few input channels (one GEMM over kh*kw*C stacked columns beats kh*kw GEMMs of depth C),
    # a large border, or stride > 1
    return "cfim2col"


def _method_unfit(method: str, kh: int, kw: int, stride, padding, groups: int, dilation=(1, 1)) -> str:
    if groups != 1:
        return f"groups={groups}: the channels-first methods run groups=1 only"
    if method == "cf1x1" and ((kh, kw) != (1, 1) or padding != (0, 0)):
        return "cf1x1 needs a 1x1 kernel without padding"
    if method in ("cftaps", "cfshift") and stride != (1, 1):
        return f"{method} needs stride 1, got {stride}"
    if method == "winograd" and ((kh, kw) != (3, 3) or stride != (1, 1) or dilation != (1, 1)):
        return (f"winograd (F(2x2, 3x3)) needs a 3x3 kernel, stride 1 and dilation 1, got kernel {kh}x{kw}, "
                f"stride {stride}, dilation {dilation}")
    return ""


def conv2d_forward(x: Array, W: Array, b: Array | None = None, stride: IntPair = 1, padding: IntPair = 0,
                   dilation: IntPair = 1, groups: int = 1, *, impl: str = "gemm",
                   need_ctx: bool = True, crop: bool = True,
                   ws: Workspace | None = None, ws_name: str = "conv",
                   epilogue: winograd.Epilogue | None = None) -> tuple[Array, ConvCtx | None]:
    """Convolve ``x (N, C, H, W)`` with ``W (O, C/groups, kh, kw)`` and add ``b (O,)``.

    Args:
        x, W, b: input, weight, bias (``b`` may be None).
        stride, padding, dilation: ints or (h, w) pairs; padding is zeros on both sides.
        groups: channel groups (``groups == C`` is a depthwise convolution).
        impl: ``"gemm"`` (channels-first fast paths), ``"im2col"`` or ``"direct"``.
        need_ctx: False at inference: nothing is saved and ``ctx`` is None.
        crop: False lets ``cftaps`` return y as a strided view of the grid it computed y on
            (no copy; the batch-norm kernels read it in place); other methods ignore it.
        ws: a workspace for scratch that lives only during one call (``winograd``'s chunk
            buffers), forward and backward, and for ``winograd``'s y: named ``ws_name + ".y"``
            when ctx is kept (a name of this layer's own: y lives until the next forward, for
            the backward), else a recycled array (``Workspace.recycled``): the same memory
            every step, no page faults.
        epilogue: (``winograd`` only, at inference: ``need_ctx=False``, no ``b``) what to
            apply to y as it is written, and where (``winograd.Epilogue``: a bias, a residual,
            a ReLU; the grid of the convolution reading y): y is then that grid's interior.

    Returns:
        ``(y, ctx)``: y of shape (N, O, Ho, Wo) (with ``impl="gemm"`` the NCHW view of a
        channels-first array); ctx for ``conv2d_backward``.
    """
    N, O, Ho, Wo = conv2d_output_shape(x.shape, W.shape, stride, padding, dilation, groups)
    st, pd, dl = pair(stride), pair(padding), pair(dilation)
    method = conv2d_method(x.shape, W.shape, st, pd, dl, groups, impl)
    if method == "winograd" and impl == "gemm" and not cnhw._use_numba(x):
        method = "cftaps"      # chosen for its Numba kernels: elsewhere (CuPy) the taps, on the same grids
    if epilogue is not None and (method != "winograd" or need_ctx or b is not None):
        raise ValueError(f"conv2d: an epilogue runs with the winograd method at inference (need_ctx=False, no "
                         f"bias: put it in the epilogue), got method {method!r}, need_ctx={need_ctx}, "
                         f"bias {'given' if b is not None else 'None'}")
    ctx = ConvCtx(W, tuple(x.shape), st, pd, dl, groups, b is not None, method)
    ctx.saved["epilogue"] = epilogue
    ctx.saved["keep"] = need_ctx
    ctx.saved["crop"] = crop
    ctx.saved["ws"] = ws
    ctx.saved["ws_name"] = ws_name
    ctx.saved["b"] = b                  # a method that adds the bias inside its GEMM pops it
    y = _FORWARD[method](x, W, ctx, (Ho, Wo))
    not_added = ctx.saved.pop("b", None) is not None
    if b is not None and not_added:
        Y = y.transpose(1, 0, 2, 3)
        if Y.flags.c_contiguous:
            Y.reshape(O, -1)[...] += b.reshape(O, 1)                           # y is a view of (O, N*Ho*Wo)
        else:
            y += b.reshape(1, O, 1, 1)
    return y, (ctx if need_ctx else None)


def conv2d_grad_buffer(ctx: ConvCtx, ws: Workspace | None = None) -> tuple[Array | None, Array | None]:
    """``(buffer, view)``: where a layer computing this convolution's ``dy`` may write it so the
    backward reads it without a copy (``cftaps``: the zero-gapped grid the backward's GEMMs
    read; ``view`` is its (N, O, Ho, Wo) interior); ``(None, None)`` for the other methods.
    Pass the buffer to ``conv2d_backward(..., dy_grid=buffer)`` once ``view`` is filled."""
    if ctx.method not in ("cftaps", "winograd"):
        return None, None
    return _tap_dy_grid(ctx, ctx.W.dtype, ws=ws)


def conv2d_backward(dy: Array | None, ctx: ConvCtx, need_dx: bool = True, need_dW: bool = True, *,
                    dy_grid: Array | None = None,
                    crop: bool = True) -> tuple[Array | None, Array | None, Array | None]:
    """Gradients of a convolution from ``dy (N, O, Ho, Wo)`` and the forward's ``ctx``.

    Args:
        need_dx: compute the input gradient (False: Caffe's ``propagate_down = false``).
        need_dW: compute the weight gradient (False: a frozen weight).
        dy_grid: the buffer of ``conv2d_grad_buffer(ctx)`` with dy written into its view
            (then ``dy`` may be None).
        crop: False lets ``cftaps`` return dx as a strided view of its grid (no copy).

    Returns:
        ``(dx, dW, db)``: dx (N, C, H, W) (None when not needed), dW like W (None when not
        needed), db (O,) (None when the forward had no bias or ``need_dW`` is False).
        Nothing is accumulated: the caller adds dW/db into its param grads.
    """
    if not (need_dx or need_dW):
        return None, None, None
    if dy_grid is not None:
        ctx.saved["dy_grid"] = dy_grid
        dy = _tap_dy_view(dy_grid, ctx)
    if dy is None:
        raise ValueError("conv2d_backward: give dy, or dy_grid (the buffer of conv2d_grad_buffer with dy in it)")
    ctx.saved["crop_dx"] = crop
    dx, dW = _BACKWARD[ctx.method](dy, ctx, need_dx, need_dW)
    db = ctx.saved.pop("db", None)      # a method that summed dy inside its GEMM left it here
    if db is None and ctx.has_bias and need_dW:
        Y = dy.transpose(1, 0, 2, 3)
        if Y.flags.c_contiguous:
            db = Y.reshape(dy.shape[1], -1).sum(axis=1)
        else:
            db = dy.sum(axis=(0, 2, 3))
    return dx, dW, db


# ------------------------------------------------- channels-first 1x1: one GEMM
def _fwd_cf1x1(x, W, ctx, out):
    xp = get_array_module(x)
    sh, sw = ctx.stride
    X = to_cnhw(x)                                                             # (C, N, H, W)
    if (sh, sw) != (1, 1):
        X = xp.ascontiguousarray(X[:, :, ::sh, ::sw])                          # (C, N, Ho, Wo)
    C, N, Ho, Wo = X.shape
    O = W.shape[0]
    if ctx.saved["keep"]:
        ctx.saved["X"] = X
    Y = W.reshape(O, C) @ X.reshape(C, N * Ho * Wo)                            # (O, M)
    return from_cnhw(Y.reshape(O, N, Ho, Wo))


def _bwd_cf1x1(dy, ctx, need_dx, need_dW):
    xp = get_array_module(dy)
    X, W = ctx.saved["X"], ctx.W
    C, N, Ho, Wo = X.shape
    O = W.shape[0]
    dY = to_cnhw(dy).reshape(O, N * Ho * Wo)                                   # (O, M)
    dW = (dY @ X.reshape(C, -1).T).reshape(W.shape) if need_dW else None       # (O, C, 1, 1)
    if not need_dx:
        return None, dW
    dX = W.reshape(O, C).T @ dY                                                # (C, M)
    if ctx.stride != (1, 1):
        _, _, H, Wd = ctx.x_shape
        full = xp.zeros((C, N, H, Wd), dtype=dy.dtype)
        full[:, :, ::ctx.stride[0], ::ctx.stride[1]] = dX.reshape(C, N, Ho, Wo)
        return from_cnhw(full), dW
    return from_cnhw(dX.reshape(C, N, Ho, Wo)), dW


# --------------------------------- channels-first, stride 1: flat shifted GEMMs
def _flat_geometry(ctx):
    N, C, H, Wd = ctx.x_shape
    O, _, kh, kw = ctx.W.shape
    (ph, pw), (dh, dw) = ctx.padding, ctx.dilation
    Hp, Wp = H + 2 * ph, Wd + 2 * pw
    offsets = [i * dh * Wp + j * dw for i in range(kh) for j in range(kw)]
    Np = N * Hp * Wp
    return Hp, Wp, Np, offsets, Np - offsets[-1]    # every valid output column p has p + offset < Np


def _padded_cnhw(x, ph, pw):
    """``(C, N, H+2ph, W+2pw)`` zero-bordered channels-first copy of x (N, C, H, W)."""
    xp = get_array_module(x)
    N, C, H, Wd = x.shape
    if (ph, pw) == (0, 0):
        return to_cnhw(x)
    Hp, Wp = H + 2 * ph, Wd + 2 * pw
    Xp = xp.empty((C, N, Hp, Wp), dtype=x.dtype)
    cf_kernels.to_grid(Xp.reshape(C, -1), 0, N, Hp, Wp, x.transpose(1, 0, 2, 3), H, Wd, ph, pw)
    return Xp


def _fwd_cfshift(x, W, ctx, out):
    xp = get_array_module(x)
    N, C, H, Wd = x.shape
    O, _, kh, kw = W.shape
    Ho, Wo = out
    Hp, Wp, Np, offsets, L = _flat_geometry(ctx)
    T = kh * kw
    Xp = _padded_cnhw(x, *ctx.padding).reshape(C, Np)                          # (C, Np)
    Y = xp.empty((O, N, Hp, Wp), dtype=x.dtype)
    Yf = Y.reshape(O, Np)
    if T == 1:
        xp.matmul(W.reshape(O, C), Xp, out=Yf)
    elif 3 * O <= C:
        # few outputs: all taps in one GEMM, then T shifted sums of O rows
        Z = xp.ascontiguousarray(W.transpose(2, 3, 0, 1)).reshape(T * O, C) @ Xp   # (T*O, Np)
        acc = Yf[:, :L]
        acc[...] = Z[:O, :L]
        for t in range(1, T):
            acc += Z[t * O:(t + 1) * O, offsets[t]:offsets[t] + L]
    else:
        cols = xp.empty((T, C, L), dtype=x.dtype)
        for t, off in enumerate(offsets):
            cols[t] = Xp[:, off:off + L]                                       # contiguous row slices
        Wk = xp.ascontiguousarray(W.transpose(0, 2, 3, 1)).reshape(O, T * C)   # (O, T*C), tap-major
        xp.matmul(Wk, cols.reshape(T * C, L), out=Yf[:, :L])
    if ctx.saved["keep"]:
        ctx.saved["Xp"] = Xp
    return from_cnhw(cf_kernels.from_grid(Y.reshape(O, -1), 0, N, Hp, Wp, Ho, Wo))   # (O, N, Ho, Wo) -> NCHW view


def _bwd_cfshift(dy, ctx, need_dx, need_dW):
    xp = get_array_module(dy)
    Xp, W = ctx.saved["Xp"], ctx.W
    N, C, H, Wd = ctx.x_shape
    O, _, kh, kw = W.shape
    ph, pw = ctx.padding
    Hp, Wp, Np, offsets, L = _flat_geometry(ctx)
    dYp = xp.empty((O, N, Hp, Wp), dtype=dy.dtype)                            # dy on the padded grid
    Ho, Wo = dy.shape[2:]
    cf_kernels.to_grid(dYp.reshape(O, -1), 0, N, Hp, Wp, dy.transpose(1, 0, 2, 3), Ho, Wo)
    # O > C: stacking kh*kw shifted copies of dy would cost more than the input: go tap by tap
    grads = _grads_by_tap if O > C else _grads_stacked
    dXf, dWk = grads(xp, dYp.reshape(O, Np), Xp, W, offsets, L, need_dx, need_dW)
    dW = xp.ascontiguousarray(dWk.reshape(kh, kw, O, C).transpose(2, 3, 0, 1)) if need_dW else None
    if not need_dx:
        return None, dW
    return from_cnhw(cf_kernels.from_grid(dXf, 0, N, Hp, Wp, H, Wd, ph, pw)), dW


def _grads_stacked(xp, dYf, Xp, W, offsets, L, need_dx, need_dW):
    """``D (T*O, Np)`` stacks dy shifted by each tap (``D_t[:, p] = dy[:, p - off_t]``); then
    ``dW_t = D_t Xp^T`` and ``dXp = sum_t W_t^T D_t`` are one GEMM each. Returns (dXp, dW (T, O, C))."""
    O, C, T = W.shape[0], W.shape[1], len(offsets)
    Np = dYf.shape[1]
    D = xp.empty((T, O, Np), dtype=dYf.dtype)
    D[0] = dYf
    for t in range(1, T):
        off = offsets[t]
        D[t, :, :off] = 0
        D[t, :, off:] = dYf[:, :Np - off]
    Df = D.reshape(T * O, Np)
    dWk = (Df @ Xp.T).reshape(T, O, C) if need_dW else None
    if not need_dx:
        return None, dWk
    Wt = xp.ascontiguousarray(W.transpose(2, 3, 0, 1)).reshape(T * O, C)
    return Wt.T @ Df, dWk                                                      # (C, Np)


def _grads_by_tap(xp, dYf, Xp, W, offsets, L, need_dx, need_dW):
    """The same, tap by tap on column slices (no stack): ``dW_t = dY Xp_t^T``, ``dXp_t += W_t^T dY``."""
    O, C, T = W.shape[0], W.shape[1], len(offsets)
    dY = dYf[:, :L]                                                            # (O, L)
    dWk = None
    if need_dW:
        dWk = xp.empty((T, O, C), dtype=dYf.dtype)
        for t, off in enumerate(offsets):
            xp.matmul(dY, Xp[:, off:off + L].T, out=dWk[t])                    # (O, C)
    if not need_dx:
        return None, dWk
    WkT = xp.ascontiguousarray(W.transpose(2, 3, 1, 0)).reshape(T, C, O)
    dXf = xp.zeros((C, dYf.shape[1]), dtype=dYf.dtype)
    tmp = xp.empty((C, L), dtype=dYf.dtype)
    for t, off in enumerate(offsets):
        xp.matmul(WkT[t], dY, out=tmp)
        dXf[:, off:off + L] += tmp                                             # (C, L), shifted add
    return dXf, dWk


# ------------------------- channels-first, stride 1: kh*kw GEMMs on shifted views, no columns
@dataclass(frozen=True)
class TapGrid:
    """The flat grid the ``cftaps`` method works on (one per geometry; see ``tap_grid``).

    Each image is laid out as Hg rows of Wg columns, images one after another, the whole
    preceded by ``lead`` zeros: x[n, c, h, w] sits at column ``lead + n*Sg + h*Wg + w`` of the
    row ``c`` of ``Xg (C, Ng)``, and zeros fill every other column. y[n, o, h, w] is computed
    at column ``p = n*Sg + h*Wg + w`` as ``sum_t W_t @ Xg[:, p + off_t]``, for every p below
    ``Lout`` (those that are no output are computed and dropped). Zero gaps of ``ph`` rows and
    ``pw`` columns are enough: a tap that reads past a row's end lands in the gap on the right,
    one that reads before its start lands in the previous row's gap, the same for images."""

    Hg: int
    Wg: int
    dh: int
    dw: int
    lead: int
    offsets: tuple[int, ...]
    Lout: int          # output columns computed
    Ng: int            # columns of Xg
    qend: int          # columns [lead, qend) of Xg hold the input


def tap_grid(x_shape, w_shape, padding, dilation) -> TapGrid:
    N, C, H, Wd = x_shape
    _, _, kh, kw = w_shape
    (ph, pw), (dh, dw) = padding, dilation
    Ho, Wo = H + 2 * ph - dh * (kh - 1), Wd + 2 * pw - dw * (kw - 1)
    Hg, Wg = max(H + ph, Ho), max(Wd + pw, Wo)
    Sg = Hg * Wg
    offsets = tuple(i * dh * Wg + j * dw for i in range(kh) for j in range(kw))
    lead = ph * Wg + pw
    Lout = (N - 1) * Sg + (Ho - 1) * Wg + Wo
    qend = lead + (N - 1) * Sg + (H - 1) * Wg + Wd
    return TapGrid(Hg, Wg, dh, dw, lead, offsets, Lout, max(lead + N * Sg, Lout + offsets[-1]), qend)


def _tap_input(x, g: TapGrid):
    """``Xg (C, Ng)``: x on the grid. No copy when x is already laid out so: x's own
    channels-first memory when the grid is x's shape, or the buffer of ``input_grid`` that
    x is the interior of (a layer before wrote its output there; its gaps are checked to be
    zero, so nothing else can be mistaken for one)."""
    xp = get_array_module(x)
    N, C, H, Wd = x.shape
    Sg = g.Hg * g.Wg
    if g.lead == 0 and (g.Hg, g.Wg) == (H, Wd) and g.Ng == N * Sg:
        return to_cnhw(x).reshape(C, g.Ng)
    Xg = _grid_of(x, g)
    if Xg is not None:
        return Xg
    Xg, _ = _new_grid(xp, x.shape, g, x.dtype, x)
    return Xg


def _new_grid(xp, x_shape, g: TapGrid, dtype, x=None, ws: Workspace | None = None, name: str = "",
              zero_gaps: bool = True, recycle: Workspace | None = None):
    """A ``(C, Ng)`` grid with zero gaps, and the (N, C, H, W) view of its interior (x copied
    there when given, else unset). With a workspace the grid is its buffer ``name``, zeroed
    only when its shape changes: nothing writes the gaps, so they stay zero across steps and
    the grid costs neither a zeroing pass nor fresh pages per step. Without one and with
    ``zero_gaps=False`` (and no x) the gaps are left unset too, for a writer that fills the
    whole grid in one pass (``bn_act.forward_into_grid``). Without a workspace, a ``recycle``
    workspace hands out a grid nobody uses any more (``Workspace.recycled``) instead of a new one."""
    N, C, H, Wd = x_shape
    Sg = g.Hg * g.Wg
    if ws is not None:
        Xg = ws.get(name, (C, g.Ng), dtype, xp, zero=True)
    else:
        Xg = xp.empty((C, g.Ng), dtype=dtype) if recycle is None else recycle.recycled((C, g.Ng), dtype, xp)
        Xg[:, :g.lead] = 0
        Xg[:, g.lead + N * Sg:] = 0
    view = from_cnhw(Xg[:, g.lead:g.lead + N * Sg].reshape(C, N, g.Hg, g.Wg)[:, :, :H, :Wd])
    if ws is None and (zero_gaps or x is not None):
        cf_kernels.to_grid(Xg, g.lead, N, g.Hg, g.Wg, None if x is None else x.transpose(1, 0, 2, 3), H, Wd)
    elif x is not None:
        view[...] = x
    return Xg, view


def _grid_of(x, g: TapGrid):
    """The ``(C, Ng)`` grid x is the interior of, if it is one with zero gaps; else None."""
    N, C, H, Wd = x.shape
    owner = x
    while owner.base is not None and hasattr(owner.base, "base") and hasattr(owner.base, "shape"):
        owner = owner.base                     # the array owning the memory (a grid, or a workspace buffer)
    it = x.itemsize
    Sg = g.Hg * g.Wg
    start = _data_ptr(x) - _data_ptr(owner) - g.lead * it     # where the grid would begin in owner
    if (owner.dtype != x.dtype or not owner.flags.c_contiguous or start < 0 or start % it
            or start // it + C * g.Ng > owner.size or x.strides != (Sg * it, g.Ng * it, g.Wg * it, it)):
        return None
    root = owner.reshape(-1)[start // it:start // it + C * g.Ng].reshape(C, g.Ng)
    V = root[:, g.lead:g.lead + N * Sg].reshape(C, N, g.Hg, g.Wg)
    if root[:, :g.lead].any() or root[:, g.lead + N * Sg:].any() or V[:, :, :H, Wd:].any() or V[:, :, H:].any():
        return None
    return root


def _data_ptr(a) -> int:
    return int(a.__array_interface__["data"][0]) if hasattr(a, "__array_interface__") else int(a.data.ptr)


def input_grid(x_shape, w_shape, padding: IntPair = 0, dilation: IntPair = 1, dtype: Any = "float32", xp: Any = None,
               ws: Workspace | None = None, name: str = "grid", zero_gaps: bool = True,
               recycle: Workspace | None = None):
    """``(grid, view)`` for a layer whose output ``x`` (of shape ``x_shape``) feeds a convolution
    of weight shape ``w_shape`` that runs ``cftaps``: writing x into ``view`` (an (N, C, H, W)
    strided view) lays it out as that convolution's input grid, so it reads x without a copy.
    ``(None, None)`` when that convolution would not run ``cftaps`` (nothing gained). With a
    workspace, the grid is its buffer ``name`` (reused across steps; see ``_new_grid``);
    without one, ``zero_gaps=False`` leaves the gaps unset for a writer that fills them."""
    import numpy as np
    if conv2d_method(x_shape, w_shape, 1, padding, dilation) not in ("cftaps", "winograd"):
        return None, None
    g = tap_grid(x_shape, w_shape, pair(padding), pair(dilation))
    if g.lead == 0 and (g.Hg, g.Wg) == tuple(x_shape[2:]):
        return None, None                      # the conv reads a channels-first x in place anyway
    return _new_grid(xp or np, x_shape, g, dtype, ws=ws, name=name, zero_gaps=zero_gaps, recycle=recycle)


def _row_ptr(a) -> tuple[int, int]:
    """(data pointer, row stride in elements) of a 2-D array with unit inner stride."""
    return a.ctypes.data, a.strides[0] // a.itemsize


def _taps_gemm(A, B, shifts, C, n, blas_ok):
    """``C[:, :n] = sum_t A[t] @ B[:, shifts[t]:shifts[t] + n]``; A (T, m, k), B (k, *), C (m, *)."""
    T, m, k = A.shape
    if blas_ok:
        a0, (b0, ldb), (c0, ldc) = A.ctypes.data, _row_ptr(B), _row_ptr(C)
        isz, dt, mk = A.itemsize, A.dtype.name, m * k

        def part(lo, hi, _):
            for t in range(T):
                blas.gemm(False, False, m, hi - lo, k, a0 + t * mk * isz, k, b0 + (shifts[t] + lo) * isz, ldb,
                          0.0 if t == 0 else 1.0, c0 + lo * isz, ldc, dt)
        blas.parallel(part, n)
        return
    xp = get_array_module(B)
    out = C[:, :n]
    xp.matmul(A[0], B[:, shifts[0]:shifts[0] + n], out=out)
    for t in range(1, T):
        out += A[t] @ B[:, shifts[t]:shifts[t] + n]


def _taps_corr(D, B, shifts, n, blas_ok):
    """``G[t] = D[:, :n] @ B[:, shifts[t]:shifts[t] + n]^T`` for every t: G (T, m, k); D (m, *), B (k, *)."""
    xp = get_array_module(D)
    T, m, k = len(shifts), D.shape[0], B.shape[0]
    if blas_ok:
        nparts = blas.parts(n)
        G = xp.empty((nparts, T, m, k), dtype=D.dtype)
        (d0, ldd), (b0, ldb), g0 = _row_ptr(D), _row_ptr(B), G.ctypes.data
        isz, dt, mk = D.itemsize, D.dtype.name, m * k

        def part(lo, hi, i):
            for t in range(T):
                blas.gemm(False, True, m, k, hi - lo, d0 + lo * isz, ldd, b0 + (shifts[t] + lo) * isz, ldb, 0.0,
                          g0 + (i * T + t) * mk * isz, k, dt)
        blas.parallel(part, n, nparts)
        return G[0] if nparts == 1 else G.sum(axis=0)
    Dn = D[:, :n]
    return xp.stack([Dn @ B[:, s:s + n].T for s in shifts])


_told: list[str] = []


def _blas_ok(*arrays) -> bool:
    """Whether the taps' GEMMs go straight to BLAS; when NumPy arrays that could cannot (no
    BLAS found, or switched off), says why once (logger ``layerwise.conv``): they then run
    through ``xp.matmul``, the same numbers, slower."""
    if blas.supports(*arrays):
        return True
    import numpy as np
    if (all(isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) for a in arrays)
            and blas.reason() not in _told):
        _told.append(blas.reason())
        logging.getLogger("layerwise.conv").info("conv2d: GEMMs through numpy.matmul, not BLAS directly: %s",
                                                 blas.reason())
    return False


def _fwd_cftaps(x, W, ctx, out):
    xp = get_array_module(x)
    N, C, H, Wd = x.shape
    O, _, kh, kw = W.shape
    Ho, Wo = out
    g = tap_grid(x.shape, W.shape, ctx.padding, ctx.dilation)
    Xg = _tap_input(x, g)
    Wt = xp.ascontiguousarray(W.transpose(2, 3, 0, 1)).reshape(kh * kw, O, C)   # W_t (O, C), tap-major
    Yg = xp.empty((O, N, g.Hg, g.Wg), dtype=x.dtype)
    _taps_gemm(Wt, Xg, g.offsets, Yg.reshape(O, -1), g.Lout, _blas_ok(x, W))
    if ctx.saved["keep"]:
        ctx.saved["Xg"] = Xg
    if (g.Hg, g.Wg) == (Ho, Wo):
        return from_cnhw(Yg)
    if ctx.saved["crop"]:
        return from_cnhw(cf_kernels.from_grid(Yg.reshape(O, -1), 0, N, g.Hg, g.Wg, Ho, Wo))
    return from_cnhw(Yg[:, :, :Ho, :Wo])


def _tap_dy_grid(ctx, dtype, dy_maps=None, ws: Workspace | None = None):
    """``dYg (O, om + Ng)``: zeros except where dy goes (``_tap_dy_view``), which holds
    ``dy_maps`` (O, N, Ho, Wo) when given, else is left unset. With a workspace the grid is
    its buffer for this shape (one per geometry: a dy grid lives only through one layer's
    backward), zeroed only when first made."""
    xp = get_array_module(ctx.W)
    N = ctx.x_shape[0]
    O = ctx.W.shape[0]
    g = tap_grid(ctx.x_shape, ctx.W.shape, ctx.padding, ctx.dilation)
    om, Sg = g.offsets[-1], g.Hg * g.Wg
    Ho, Wo = conv2d_output_shape(ctx.x_shape, ctx.W.shape, ctx.stride, ctx.padding, ctx.dilation)[2:]
    if ws is not None and dy_maps is None:
        dYg = ws.get(f"conv.dy_grid:{N}x{O}x{g.Hg}x{g.Wg}+{om}:{Ho}x{Wo}", (O, om + g.Ng), dtype, xp, zero=True)
        return dYg, _tap_dy_view(dYg, ctx)
    dYg = xp.empty((O, om + g.Ng), dtype=dtype)
    dYg[:, :om] = 0
    dYg[:, om + N * Sg:] = 0
    cf_kernels.to_grid(dYg, om, N, g.Hg, g.Wg, dy_maps, Ho, Wo)
    return dYg, _tap_dy_view(dYg, ctx)


def _tap_dy_view(dYg, ctx):
    """The (N, O, Ho, Wo) view of dy inside ``dYg``."""
    N = ctx.x_shape[0]
    O = ctx.W.shape[0]
    g = tap_grid(ctx.x_shape, ctx.W.shape, ctx.padding, ctx.dilation)
    om, Sg = g.offsets[-1], g.Hg * g.Wg
    Ho, Wo = conv2d_output_shape(ctx.x_shape, ctx.W.shape, ctx.stride, ctx.padding, ctx.dilation)[2:]
    return from_cnhw(dYg[:, om:om + N * Sg].reshape(O, N, g.Hg, g.Wg)[:, :, :Ho, :Wo])


def _bwd_cftaps(dy, ctx, need_dx, need_dW):
    xp = get_array_module(dy)
    Xg, W = ctx.saved["Xg"], ctx.W
    N, C, H, Wd = ctx.x_shape
    O, _, kh, kw = W.shape
    g = tap_grid(ctx.x_shape, W.shape, ctx.padding, ctx.dilation)
    om = g.offsets[-1]
    ok = _blas_ok(dy, W, Xg)
    # dy on the output grid, preceded by om zeros (the gather below reads up to om columns back)
    dYg = ctx.saved.pop("dy_grid", None)
    if dYg is None:
        dYg, _ = _tap_dy_grid(ctx, dy.dtype, dy.transpose(1, 0, 2, 3))
    dW = None
    if need_dW:   # dW_t = sum_p dy[:, p] Xg[:, p + off_t]^T
        dWt = _taps_corr(dYg[:, om:], Xg, g.offsets, g.Lout, ok)                     # (T, O, C)
        dW = xp.ascontiguousarray(dWt.reshape(kh, kw, O, C).transpose(2, 3, 0, 1))
    if not need_dx:
        return None, dW
    # dXg[:, q] = sum_t W_t^T dy[:, q - off_t], for the input columns q in [lead, qend)
    WtT = xp.ascontiguousarray(W.transpose(2, 3, 1, 0)).reshape(kh * kw, C, O)
    dXg = xp.empty((C, N, g.Hg, g.Wg), dtype=dy.dtype)
    shifts = [om + g.lead - off for off in g.offsets]
    _taps_gemm(WtT, dYg, shifts, dXg.reshape(C, -1), g.qend - g.lead, ok)
    if (g.Hg, g.Wg) == (H, Wd):
        return from_cnhw(dXg), dW
    if ctx.saved.get("crop_dx", True):
        return from_cnhw(cf_kernels.from_grid(dXg.reshape(C, -1), 0, N, g.Hg, g.Wg, H, Wd)), dW
    return from_cnhw(dXg[:, :, :H, :Wd]), dW


# ------------------------- channels-first, 3x3 stride 1: Winograd F(2x2, 3x3) on the taps' grids
def _fwd_winograd(x, W, ctx, out):
    N = x.shape[0]
    g = tap_grid(x.shape, W.shape, ctx.padding, ctx.dilation)
    Xg = _tap_input(x, g)                              # padded pixel (r, q) at column n*Sg + r*Wg + q
    tl = winograd.Tiling(N, out[0], out[1], 0, g.Hg * g.Wg, g.Wg)
    if ctx.saved["keep"]:
        ctx.saved["Xg"] = Xg
    ws = ctx.saved["ws"]
    shape, xp = (W.shape[0], N, out[0], out[1]), get_array_module(x)
    ep = ctx.saved.pop("epilogue", None)
    if ws is None or ep is not None:
        Y = None
    elif ctx.saved["keep"]:
        Y = ws.get(ctx.saved["ws_name"] + ".y", shape, W.dtype, xp)
    else:
        Y = ws.recycled(shape, W.dtype, xp)
    return from_cnhw(winograd.conv(Xg, tl, winograd.weight_transform(W), ws, Y, epilogue=ep))


def _bwd_winograd(dy, ctx, need_dx, need_dW):
    """dW by F(3x3, 2x2) (``winograd.weight_grad``: dy's 2x2 blocks against the forward's input
    tiles, summed over the tiles by 16 GEMMs; OpenBLAS alone ran those slower than the taps at
    16 channels, the Numba GEMM for thin products is 1.3x faster than the taps there); dx by
    Winograd: the correlation of dy padded by (2 - ph, 2 - pw) with ``W'[c, o] = rot180(W[o, c])``.
    On the dy grid, dy[n, h, w] is column ``om + n*Sg + h*Wg + w`` and padded-dy pixel (r, q) of
    image n column ``om - 2*Wg - 2 + lead + n*Sg + r*Wg + q = lead + n*Sg + r*Wg + q`` (om = 2*Wg + 2)."""
    xp = get_array_module(dy)
    Xg, W = ctx.saved["Xg"], ctx.W
    N, C, H, Wd = ctx.x_shape
    O = W.shape[0]
    g = tap_grid(ctx.x_shape, W.shape, ctx.padding, ctx.dilation)
    om = g.offsets[-1]
    dYg = ctx.saved.pop("dy_grid", None)
    if dYg is None:
        dYg, _ = _tap_dy_grid(ctx, dy.dtype, dy.transpose(1, 0, 2, 3))
    dW = None
    if need_dW and WINOGRAD_DW:                        # F(3x3, 2x2): dy's 2x2 blocks against the input tiles
        Ho, Wo = dy.shape[2:]
        dW = winograd.weight_grad(Xg, winograd.Tiling(N, Ho, Wo, 0, g.Hg * g.Wg, g.Wg), dYg, om, ctx.saved.get("ws"))
    elif need_dW:
        dWt = _taps_corr(dYg[:, om:], Xg, g.offsets, g.Lout, _blas_ok(dy, W, Xg))    # (9, O, C)
        dW = xp.ascontiguousarray(dWt.reshape(3, 3, O, C).transpose(2, 3, 0, 1))
    if not need_dx:
        return None, dW
    Wr = xp.ascontiguousarray(W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))               # (C, O, 3, 3)
    tl = winograd.Tiling(N, H, Wd, g.lead, g.Hg * g.Wg, g.Wg)
    # dx stays a new array: recycling it too (it lives from here to the layer below's backward)
    # doubled the page faults per ResNet-56 step (3,800 -> 7,500): glibc then had fewer freed
    # blocks of its own to hand to the next forward's arrays
    return from_cnhw(winograd.conv(dYg, tl, winograd.weight_transform(Wr), ctx.saved.get("ws"))), dW


def _mm(A, B):
    """``A @ B`` for 2-D A (m, k) and B (k, n) with unit inner strides: through ``blas`` split by
    columns over our threads (OpenBLAS's own threads ran the backward of a stride-2 conv at
    10 or 18 ms by turns, waking and spinning between calls), else ``xp.matmul``."""
    xp = get_array_module(B)
    C = xp.empty((A.shape[0], B.shape[1]), dtype=B.dtype)
    if _blas_ok(A, B) and B.strides[1] == B.itemsize and A.flags.c_contiguous:
        _taps_gemm(A[None], B, [0], C, B.shape[1], True)
    else:
        xp.matmul(A, B, out=C)
    return C


def _mm_nt(D, B):
    """``D @ B^T`` (D (m, n), B (k, n)): the reduction over n split over our threads (as ``_mm``)."""
    if _blas_ok(D, B) and B.strides[1] == B.itemsize and D.strides[1] == D.itemsize:
        return _taps_corr(D, B, [0], B.shape[1], True)[0]
    return D @ B.T


# ------------------------------------- channels-first im2col: one GEMM per block of images
# bytes of one block of columns: each thread fills a block this size with im2col, runs the GEMMs
# on it and folds it back while it is in cache (here 1 MiB of L2 per core, 32 MiB of shared L3);
# the full cols (33 MB for LeNet's conv2) are never written to memory, nor page-faulted in every
# step. Measured on LeNet's and ResNet's im2col convolutions: 1 MiB beat 256 KiB, 512 KiB and
# 2 MiB (smaller blocks pay more per-call overhead, small-K GEMMs most)
COLS_BLOCK_BYTES = 1 << 20


def _cf_cols(x, ctx, out):
    xp = get_array_module(x)
    N, C, H, Wd = ctx.x_shape
    _, _, kh, kw = ctx.W.shape
    Ho, Wo = out
    Xp = _padded_cnhw(x, *ctx.padding)                                         # (C, N, Hp, Wp)
    cols = xp.empty((C, kh, kw, N, Ho, Wo), dtype=x.dtype)
    cf_kernels.im2col(xp.ascontiguousarray(Xp), cols, (kh, kw), ctx.stride, ctx.dilation)
    return cols.reshape(C * kh * kw, N * Ho * Wo)                              # (C*kh*kw, M)


def _by_blocks(*arrays) -> bool:
    """Whether cfim2col runs by blocks of images: GEMMs straight to BLAS and the nogil Numba
    block kernels (the NumPy form of a block's im2col is kh*kw small copies under the GIL)."""
    return _blas_ok(*arrays) and cf_kernels.block_kernels_available(*arrays)


def _blocking(ctx, out, itemsize: int) -> tuple[int, int]:
    """(images per block, number of blocks) for a cfim2col of this geometry."""
    N, C = ctx.x_shape[:2]
    kh, kw = ctx.W.shape[2:]
    per_image = C * kh * kw * out[0] * out[1] * itemsize
    nb = max(1, min(N, COLS_BLOCK_BYTES // per_image))
    return nb, -(-N // nb)


def _blocks_input(x):
    """x as the (C, N, H, W) array the block kernels read: a view when x is laid out NCHW or
    CNHW in memory, else a channels-first copy."""
    X = x.transpose(1, 0, 2, 3)
    return X if X.flags.c_contiguous or x.flags.c_contiguous else to_cnhw(x)


def _fwd_cfim2col(x, W, ctx, out):
    if _by_blocks(x, W):
        return _fwd_cfim2col_blocks(x, W, ctx, out)
    cols = _cf_cols(x, ctx, out)
    O = W.shape[0]
    if ctx.saved["keep"]:
        if cols.nbytes <= KEEP_COLS_BYTES:
            ctx.saved["cols"] = cols
        else:
            ctx.saved["x"] = x
    Y = _mm(W.reshape(O, -1), cols)                                            # (O, M)
    return from_cnhw(Y.reshape(O, ctx.x_shape[0], *out))


def _block_views(buf, nb, N, shape6, ones):
    """Per-thread views of the scratch ``buf (threads, size)``: ``views[t][last]`` is
    ``(cols, mat)``, the block's columns as ``(C, kh, kw, B, Ho, Wo)`` and the matrix the GEMMs
    read, ``(C*kh*kw + ones, B*Ho*Wo)`` (with ``ones``, a last row the caller sets to 1: the
    bias column of the weight multiplies it, or it sums dy), for B = nb (``last`` False) or
    the images of the last block."""
    C, kh, kw, _, Ho, Wo = shape6
    K, L = C * kh * kw, Ho * Wo
    out = []
    for b in buf:
        pair = []
        for B in (nb, N - (N - 1) // nb * nb):
            pair.append((b[:K * B * L].reshape(C, kh, kw, B, Ho, Wo), b[:(K + ones) * B * L].reshape(K + ones, B * L)))
        out.append(tuple(pair))
    return out


def _fwd_cfim2col_blocks(x, W, ctx, out):
    """``Y[:, block] = [K | b] @ [cols(block); 1]`` for each block of images, on our threads (the
    bias rides in the GEMM); only the input is kept for the backward, which rebuilds each
    block's columns."""
    import numpy as np
    N, C = ctx.x_shape[:2]
    O, _, kh, kw = W.shape
    L = out[0] * out[1]
    K = C * kh * kw
    b = ctx.saved.pop("b", None)
    ones = int(b is not None)
    nb, nblocks = _blocking(ctx, out, x.itemsize)
    nt = min(blas.num_threads(), nblocks)
    X = _blocks_input(x)
    Km = np.empty((O, K + ones), dtype=x.dtype)
    Km[:, :K] = W.reshape(O, K)
    if b is not None:
        Km[:, K] = b
    Y = np.empty((O, N * L), dtype=x.dtype)
    views = _block_views(np.empty((nt, (K + ones) * nb * L), dtype=x.dtype), nb, N, (C, kh, kw, nb, *out), ones)
    for v in views:
        v[0][1][K:] = 1
    fill = cf_kernels.im2col_blocks(X, (kh, kw), ctx.stride, ctx.dilation, ctx.padding)
    gemm, k0, y0, step, ld = blas.gemm, Km.ctypes.data, Y.ctypes.data, nb * L * x.itemsize, N * L
    dt = x.dtype.name

    def block(i, t):
        last = i == nblocks - 1
        cols, mat = views[t][last]
        if last:
            mat[K:] = 1
        fill(cols, i * nb)
        n = mat.shape[1]
        gemm(False, False, O, n, K + ones, k0, K + ones, mat.ctypes.data, n, 0.0, y0 + i * step, ld, dt)
    blas.parallel_chunks(block, nblocks, nt)
    if ctx.saved["keep"]:
        ctx.saved["X"] = X
    return from_cnhw(Y.reshape(O, N, *out))


def _bwd_cfim2col(dy, ctx, need_dx, need_dW):
    if "X" in ctx.saved:
        if _by_blocks(dy, ctx.W, ctx.saved["X"]):
            return _bwd_cfim2col_blocks(dy, ctx, need_dx, need_dW)
        ctx.saved["x"] = from_cnhw(ctx.saved.pop("X"))      # BLAS or Numba switched off since the forward
    xp = get_array_module(dy)
    W = ctx.W
    N, C, H, Wd = ctx.x_shape
    O, _, kh, kw = W.shape
    ph, pw = ctx.padding
    Ho, Wo = dy.shape[2:]
    dY = to_cnhw(dy).reshape(O, N * Ho * Wo)
    dW = None
    if need_dW:
        cols = ctx.saved["cols"] if "cols" in ctx.saved else _cf_cols(ctx.saved["x"], ctx, (Ho, Wo))
        dW = _mm_nt(dY, cols).reshape(W.shape)                                 # dK = dY cols^T
    if not need_dx:
        return None, dW
    dcols = _mm(xp.ascontiguousarray(W.reshape(O, -1).T), dY).reshape(C, kh, kw, N, Ho, Wo)   # K^T dY
    dXp = xp.zeros((C, N, H + 2 * ph, Wd + 2 * pw), dtype=dy.dtype)    # every window lies inside
    cf_kernels.col2im(dcols, dXp, (kh, kw), ctx.stride, ctx.dilation)
    if (ph, pw) == (0, 0):
        return from_cnhw(dXp), dW
    Hp, Wp = H + 2 * ph, Wd + 2 * pw
    return from_cnhw(cf_kernels.from_grid(dXp.reshape(C, -1), 0, N, Hp, Wp, H, Wd, ph, pw)), dW


def _bwd_cfim2col_blocks(dy, ctx, need_dx, need_dW):
    """Per block of images: rebuild its columns, ``[dK | db] += dY[:, block] [cols; 1]^T`` (one
    sum per thread; db only with a bias), ``dcols = K^T dY[:, block]`` folded straight into that
    block's images of dX."""
    import numpy as np
    X, W = ctx.saved["X"], ctx.W
    N, C, H, Wd = ctx.x_shape
    O, _, kh, kw = W.shape
    out = dy.shape[2:]
    L = out[0] * out[1]
    K = C * kh * kw
    ones = int(ctx.has_bias and need_dW)
    dY = to_cnhw(dy).reshape(O, N * L)
    nb, nblocks = _blocking(ctx, out, dy.itemsize)
    nt = min(blas.num_threads(), nblocks)
    shape6, geo = (C, kh, kw, nb, *out), ((kh, kw), ctx.stride, ctx.dilation, ctx.padding)
    cols = None
    if need_dW:
        cols = _block_views(np.empty((nt, (K + ones) * nb * L), dtype=dy.dtype), nb, N, shape6, ones)
        for v in cols:
            v[0][1][K:] = 1
    dcols = _block_views(np.empty((nt, K * nb * L), dtype=dy.dtype), nb, N, shape6, 0) if need_dx else None
    G = np.zeros((nt, O, K + ones), dtype=dy.dtype) if need_dW else None
    dX = np.empty((C, N, H, Wd), dtype=dy.dtype) if need_dx else None
    fill = cf_kernels.im2col_blocks(X, *geo) if need_dW else None
    fold = cf_kernels.col2im_blocks(dX, *geo) if dX is not None else None
    Km = np.ascontiguousarray(W.reshape(O, K))
    gemm, k0, d0, step, ld, dt = blas.gemm, Km.ctypes.data, dY.ctypes.data, nb * L * dy.itemsize, N * L, dy.dtype.name
    g0 = [] if G is None else [g.ctypes.data for g in G]

    def block(i, t):
        last, dyb = i == nblocks - 1, d0 + i * step
        if cols is not None and fill is not None:
            c, mat = cols[t][last]
            if last:
                mat[K:] = 1
            fill(c, i * nb)
            n = mat.shape[1]
            gemm(False, True, O, K + ones, n, dyb, ld, mat.ctypes.data, n, 1.0, g0[t], K + ones, dt)
        if dcols is not None and fold is not None:
            c, mat = dcols[t][last]
            n = mat.shape[1]
            gemm(True, False, K, n, O, k0, K, dyb, ld, 0.0, mat.ctypes.data, n, dt)
            fold(c, i * nb)
    blas.parallel_chunks(block, nblocks, nt)
    dW = None
    if G is not None:
        Gs = G[0] if nt == 1 else G.sum(axis=0)
        dW = np.ascontiguousarray(Gs[:, :K]).reshape(W.shape)
        if ones:
            ctx.saved["db"] = Gs[:, K].copy()
    return (None if dX is None else from_cnhw(dX)), dW


# ---------------------------------------------------------- im2col + batched GEMM
def _fwd_im2col(x, W, ctx, out):
    N, C = x.shape[:2]
    O, Cg, kh, kw = W.shape
    G = ctx.groups
    cols = im2col(x, (kh, kw), ctx.stride, ctx.padding, ctx.dilation)         # (N, C, kh, kw, Ho, Wo)
    cols = cols.reshape(N, G, Cg * kh * kw, out[0] * out[1])                  # (N, G, K, L)
    ctx.saved["cols"] = cols
    y = W.reshape(G, O // G, Cg * kh * kw) @ cols                             # (N, G, O/G, L)
    return y.reshape(N, O, *out)


def _bwd_im2col(dy, ctx, need_dx, need_dW=True):
    cols, W = ctx.saved["cols"], ctx.W
    N, G, K, L = cols.shape
    O = W.shape[0]
    dyg = dy.reshape(N, G, O // G, L)
    dW = (dyg @ cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(W.shape) if need_dW else None  # dK = dY X^T
    if not need_dx:
        return None, dW
    dcols = W.reshape(G, O // G, K).transpose(0, 2, 1) @ dyg                   # (N, G, K, L) = K^T dY
    kh, kw = W.shape[2:]
    dcols = dcols.reshape(N, ctx.x_shape[1], kh, kw, *dy.shape[2:])
    return col2im(dcols, ctx.x_shape, ctx.stride, ctx.padding, ctx.dilation), dW


# ------------------------------------------------ direct: the reference derivation
def _correlate(xpad, Wt, out, stride, dilation, groups):
    """``y[n,o,h,w] = sum_{c in group(o), i, j} Wt[o,c,i,j] * xpad[n, c', h*sh + i*dh, w*sw + j*dw]``."""
    xp = get_array_module(xpad)
    N, C, Hp, Wp = xpad.shape
    O, Cg, kh, kw = Wt.shape
    G, (Ho, Wo), (sh, sw), (dh, dw) = groups, out, stride, dilation
    xg = xpad.reshape(N, G, Cg, Hp, Wp)
    Wg = Wt.reshape(G, O // G, Cg, kh, kw)
    y = xp.zeros((N, G, O // G, Ho, Wo), dtype=xpad.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = xg[:, :, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh, j * dw:j * dw + sw * (Wo - 1) + 1:sw]
            y += xp.einsum("goc,ngchw->ngohw", Wg[:, :, :, i, j], patch)
    return y.reshape(N, O, Ho, Wo)


def _fwd_direct(x, W, ctx, out):
    (ph, pw) = ctx.padding
    xpad = pad2d(x, ph, pw, x.shape[2] + 2 * ph, x.shape[3] + 2 * pw)
    ctx.saved["xpad"] = xpad
    return _correlate(xpad, W, out, ctx.stride, ctx.dilation, ctx.groups)


def _bwd_direct(dy, ctx, need_dx, need_dW=True):
    xp = get_array_module(dy)
    xpad, W, G = ctx.saved["xpad"], ctx.W, ctx.groups
    N, C, Hp, Wp = xpad.shape
    O, Cg, kh, kw = W.shape
    (sh, sw), (dh, dw), (ph, pw) = ctx.stride, ctx.dilation, ctx.padding
    Ho, Wo = dy.shape[2:]
    # dW: the input correlated with the error map dy (dy acts as the kernel).
    xg, dyg = xpad.reshape(N, G, Cg, Hp, Wp), dy.reshape(N, G, O // G, Ho, Wo)
    dW = xp.empty((G, O // G, Cg, kh, kw), dtype=dy.dtype) if need_dW else None
    for i in range(kh if need_dW else 0):
        for j in range(kw):
            patch = xg[:, :, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh, j * dw:j * dw + sw * (Wo - 1) + 1:sw]
            dW[:, :, :, i, j] = xp.einsum("ngohw,ngchw->goc", dyg, patch)
    dW = dW.reshape(W.shape) if need_dW else None
    if not need_dx:
        return None, dW
    # dx: put dy back on the stride grid, pad by the dilated kernel extent - 1, correlate with
    # rot180(W) with input and output channels swapped (per group), stride 1; crop the padding.
    eh, ew = dh * (kh - 1), dw * (kw - 1)
    dyp = xp.zeros((N, O, Hp + eh, Wp + ew), dtype=dy.dtype)
    dyp[:, :, eh:eh + sh * (Ho - 1) + 1:sh, ew:ew + sw * (Wo - 1) + 1:sw] = dy
    Wrot = W.reshape(G, O // G, Cg, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    Wrot = Wrot.reshape(C, O // G, kh, kw)                                     # (C, O/G, kh, kw)
    dxpad = _correlate(dyp, Wrot, (Hp, Wp), (1, 1), (dh, dw), G)               # (N, C, Hp, Wp)
    return xp.ascontiguousarray(dxpad[:, :, ph:Hp - ph, pw:Wp - pw]), dW


_FORWARD = {"cf1x1": _fwd_cf1x1, "cftaps": _fwd_cftaps, "winograd": _fwd_winograd, "cfshift": _fwd_cfshift,
            "cfim2col": _fwd_cfim2col, "im2col": _fwd_im2col, "direct": _fwd_direct}
_BACKWARD = {"cf1x1": _bwd_cf1x1, "cftaps": _bwd_cftaps, "winograd": _bwd_winograd, "cfshift": _bwd_cfshift,
             "cfim2col": _bwd_cfim2col, "im2col": _bwd_im2col, "direct": _bwd_direct}
