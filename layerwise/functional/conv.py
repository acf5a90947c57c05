"""2-D convolution (cross-correlation, as in PyTorch and Caffe) as pure functions.

    y, ctx = conv2d_forward(x, W, b, stride, padding, dilation, groups)   # y (N, O, Ho, Wo)
    dx, dW, db = conv2d_backward(dy, ctx)                                 # shapes of x, W, b

Forward::

    y[n, o, h, w] = b[o] + sum_{c in group(o), i, j} W[o, c, i, j] * xpad[n, g*Cg + c, h*sh + i*dh, w*sw + j*dw]

Backward (docs/convolution.md derives both forms)::

    db[o]          = sum_{n, h, w} dy[n, o, h, w]
    dW[o, c, i, j] = sum_{n, h, w} dy[n, o, h, w] * xpad[n, c, h*sh + i*dh, w*sw + j*dw]
    dx             = crop(full correlation of the stride-dilated, zero-padded dy with rot180(W))

Four code paths, chosen by ``impl`` and the geometry, all giving the same numbers:

* ``"gemm"`` (default), 1x1 kernel, stride 1, no padding, groups 1: a plain batched GEMM,
  ``y[n] = W (O, C) @ x[n] (C, H*W)``; no im2col at all.
* ``"gemm"``, stride 1, groups 1: shifted GEMMs over the padded input flattened in a
  channels-first layout ``X (C, N*Hp*Wp)``. The tap (i, j) of the kernel reads X shifted by
  ``i*dh*Wp + j*dw`` columns, so ``Y = sum_ij W_ij @ X[:, off_ij : off_ij + L]``: kh*kw
  GEMMs on column slices, no kh*kw-times larger column matrix. Outputs that would wrap
  around a row or an image are computed and thrown away (the padded border only).
* ``"gemm"`` otherwise (stride > 1, groups > 1, depthwise): im2col + one batched GEMM,
  ``Y = K X``, ``dK = dY X^T``, ``dX = col2im(K^T dY)`` (the seed's second derivation).
* ``"direct"``: the seed's first derivation written out, looping over kernel offsets:
  dW as the input correlated with the error map, dx as the zero-padded error correlated
  with the kernel rotated by 180 degrees. It exists to teach and to test.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..backend import Array, get_array_module
from .im2col import IntPair, col2im, conv_output_size, im2col, pad2d, pair

IMPLS = ("gemm", "direct")


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
    method: str                      # "gemm1x1" | "shifted" | "im2col" | "direct"
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
def conv2d_forward(x: Array, W: Array, b: Array | None = None, stride: IntPair = 1, padding: IntPair = 0,
                   dilation: IntPair = 1, groups: int = 1, *, impl: str = "gemm",
                   need_ctx: bool = True) -> tuple[Array, ConvCtx | None]:
    """Convolve ``x (N, C, H, W)`` with ``W (O, C/groups, kh, kw)`` and add ``b (O,)``.

    Args:
        x, W, b: input, weight, bias (``b`` may be None).
        stride, padding, dilation: ints or (h, w) pairs; padding is zeros on both sides.
        groups: channel groups (``groups == C`` is a depthwise convolution).
        impl: ``"gemm"`` (fast paths) or ``"direct"`` (the reference derivation).
        need_ctx: False at inference: nothing is saved and ``ctx`` is None.

    Returns:
        ``(y, ctx)``: y of shape (N, O, Ho, Wo); ctx for ``conv2d_backward`` (holds a
        reference to ``W`` and the input, or the padded/unfolded copy of it).
    """
    if impl not in IMPLS:
        raise ValueError(f"conv2d: impl must be one of {IMPLS}, got {impl!r}")
    N, O, Ho, Wo = conv2d_output_shape(x.shape, W.shape, stride, padding, dilation, groups)
    st, pd, dl = pair(stride), pair(padding), pair(dilation)
    kh, kw = W.shape[2:]
    if impl == "direct":
        method = "direct"
    elif groups == 1 and st == (1, 1) and (kh, kw) == (1, 1) and pd == (0, 0):
        method = "gemm1x1"
    elif groups == 1 and st == (1, 1):
        method = "shifted"
    else:
        method = "im2col"
    ctx = ConvCtx(W, tuple(x.shape), st, pd, dl, groups, b is not None, method)
    y = _FORWARD[method](x, W, ctx, (Ho, Wo))
    if b is not None:
        y += b.reshape(1, O, 1, 1)
    return y, (ctx if need_ctx else None)


def conv2d_backward(dy: Array, ctx: ConvCtx, need_dx: bool = True) -> tuple[Array | None, Array, Array | None]:
    """Gradients of a convolution from ``dy (N, O, Ho, Wo)`` and the forward's ``ctx``.

    Returns:
        ``(dx, dW, db)``: dx (N, C, H, W) (None when ``need_dx`` is False), dW like W,
        db (O,) (None when the forward had no bias). Nothing is accumulated: the caller
        adds dW/db into its param grads.
    """
    dx, dW = _BACKWARD[ctx.method](dy, ctx, need_dx)
    db = dy.sum(axis=(0, 2, 3)) if ctx.has_bias else None
    return dx, dW, db


# ------------------------------------------------------------- 1x1: a plain GEMM
def _fwd_1x1(x, W, ctx, out):
    N, C, H, Wd = x.shape
    ctx.saved["x"] = x
    return (W.reshape(W.shape[0], C) @ x.reshape(N, C, H * Wd)).reshape(N, -1, H, Wd)  # (N, O, H, W)


def _bwd_1x1(dy, ctx, need_dx):
    x, W = ctx.saved["x"], ctx.W
    N, C, H, Wd = x.shape
    O = W.shape[0]
    dy3, x3 = dy.reshape(N, O, H * Wd), x.reshape(N, C, H * Wd)
    dW = (dy3 @ x3.transpose(0, 2, 1)).sum(axis=0).reshape(W.shape)            # (O, C, 1, 1)
    dx = (W.reshape(O, C).T @ dy3).reshape(x.shape) if need_dx else None        # (N, C, H, W)
    return dx, dW


# ------------------------------------------- stride 1: shifted GEMMs on flat columns
def _shifted_geometry(ctx):
    N, C, H, Wd = ctx.x_shape
    O, _, kh, kw = ctx.W.shape
    (ph, pw), (dh, dw) = ctx.padding, ctx.dilation
    Hp, Wp = H + 2 * ph, Wd + 2 * pw
    offsets = [i * dh * Wp + j * dw for i in range(kh) for j in range(kw)]
    L = N * Hp * Wp - offsets[-1]     # every valid output column p has p + offset < N*Hp*Wp
    return Hp, Wp, offsets, L


def _fwd_shifted(x, W, ctx, out):
    xp = get_array_module(x)
    N, C, H, Wd = x.shape
    O, _, kh, kw = W.shape
    (ph, pw), (Ho, Wo) = ctx.padding, out
    Hp, Wp, offsets, L = _shifted_geometry(ctx)
    X = xp.zeros((C, N, Hp, Wp), dtype=x.dtype)
    X[:, :, ph:ph + H, pw:pw + Wd] = x.transpose(1, 0, 2, 3)                  # pad + channels-first, one copy
    X = X.reshape(C, N * Hp * Wp)
    Wk = xp.ascontiguousarray(W.transpose(2, 3, 0, 1)).reshape(kh * kw, O, C)  # tap-major weights
    Y = xp.empty((O, N, Hp, Wp), dtype=x.dtype)
    acc = Y.reshape(O, N * Hp * Wp)[:, :L]
    tmp = xp.empty((O, L), dtype=x.dtype)
    for k, off in enumerate(offsets):
        if k == 0:
            acc[...] = Wk[0] @ X[:, off:off + L]
        else:
            xp.matmul(Wk[k], X[:, off:off + L], out=tmp)
            acc += tmp                                                         # (O, L)
    ctx.saved["X"] = X
    return xp.ascontiguousarray(Y[:, :, :Ho, :Wo].transpose(1, 0, 2, 3))        # (N, O, Ho, Wo)


def _bwd_shifted(dy, ctx, need_dx):
    xp = get_array_module(dy)
    X, W = ctx.saved["X"], ctx.W
    N, C, H, Wd = ctx.x_shape
    O, _, kh, kw = W.shape
    ph, pw = ctx.padding
    Ho, Wo = dy.shape[2:]
    Hp, Wp, offsets, L = _shifted_geometry(ctx)
    dYfull = xp.zeros((O, N, Hp, Wp), dtype=dy.dtype)   # zeros where the forward threw outputs away
    dYfull[:, :, :Ho, :Wo] = dy.transpose(1, 0, 2, 3)
    dY = dYfull.reshape(O, N * Hp * Wp)[:, :L]                                 # (O, L)
    dWk = xp.empty((kh * kw, O, C), dtype=dy.dtype)
    for k, off in enumerate(offsets):
        xp.matmul(dY, X[:, off:off + L].T, out=dWk[k])                         # (O, C)
    dW = xp.ascontiguousarray(dWk.reshape(kh, kw, O, C).transpose(2, 3, 0, 1))
    if not need_dx:
        return None, dW
    WkT = xp.ascontiguousarray(W.transpose(2, 3, 1, 0)).reshape(kh * kw, C, O)
    dX = xp.zeros((C, N * Hp * Wp), dtype=dy.dtype)
    tmp = xp.empty((C, L), dtype=dy.dtype)
    for k, off in enumerate(offsets):
        xp.matmul(WkT[k], dY, out=tmp)
        dX[:, off:off + L] += tmp                                              # (C, L), shifted add
    dX = dX.reshape(C, N, Hp, Wp)[:, :, ph:ph + H, pw:pw + Wd]
    return xp.ascontiguousarray(dX.transpose(1, 0, 2, 3)), dW                  # (N, C, H, W)


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


def _bwd_im2col(dy, ctx, need_dx):
    cols, W = ctx.saved["cols"], ctx.W
    N, G, K, L = cols.shape
    O = W.shape[0]
    dyg = dy.reshape(N, G, O // G, L)
    dW = (dyg @ cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(W.shape)       # dK = dY X^T
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


def _bwd_direct(dy, ctx, need_dx):
    xp = get_array_module(dy)
    xpad, W, G = ctx.saved["xpad"], ctx.W, ctx.groups
    N, C, Hp, Wp = xpad.shape
    O, Cg, kh, kw = W.shape
    (sh, sw), (dh, dw), (ph, pw) = ctx.stride, ctx.dilation, ctx.padding
    Ho, Wo = dy.shape[2:]
    # dW: the input correlated with the error map dy (dy acts as the kernel).
    xg, dyg = xpad.reshape(N, G, Cg, Hp, Wp), dy.reshape(N, G, O // G, Ho, Wo)
    dW = xp.empty((G, O // G, Cg, kh, kw), dtype=dy.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = xg[:, :, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh, j * dw:j * dw + sw * (Wo - 1) + 1:sw]
            dW[:, :, :, i, j] = xp.einsum("ngohw,ngchw->goc", dyg, patch)
    dW = dW.reshape(W.shape)
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


_FORWARD = {"gemm1x1": _fwd_1x1, "shifted": _fwd_shifted, "im2col": _fwd_im2col, "direct": _fwd_direct}
_BACKWARD = {"gemm1x1": _bwd_1x1, "shifted": _bwd_shifted, "im2col": _bwd_im2col, "direct": _bwd_direct}
