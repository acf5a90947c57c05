"""2-D max and average pooling as pure functions (loops over kernel offsets only).

    y, arg = max_pool2d_forward(x, kernel_size, stride, padding, ceil_mode)
    dx = max_pool2d_backward(dy, arg, x.shape, kernel_size, stride, padding)
    y = avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad)
    dx = avg_pool2d_backward(dy, x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad)

Output size per axis: ``floor((size + 2*pad - k) / stride) + 1`` (PyTorch's default), or with
``ceil_mode=True`` the division rounds up (Caffe's pooling rule), dropping a last window that
would start in the right padding. Windows that run past the padded input (ceil mode) only
see the real input and the padding.
"""
from __future__ import annotations

import functools

from ..backend import Array, get_array_module
from . import cf_kernels
from .im2col import IntPair, _padded_extent, conv_output_size, pad2d, pair
from .layout import from_cnhw, is_cnhw, to_cnhw


def pool_geometry(x_shape, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                  ceil_mode: bool = False):
    """((kh, kw), (sh, sw), (ph, pw), (Ho, Wo)); ``stride=None`` means stride = kernel_size."""
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None else pair(stride, "stride")
    p = pair(padding, "padding")
    H, W = x_shape[-2:]
    out = (conv_output_size(H, k[0], s[0], p[0], 1, ceil_mode), conv_output_size(W, k[1], s[1], p[1], 1, ceil_mode))
    return k, s, p, out


def _windows(k, s, out):
    """Yield (i, j, row slice, col slice) of the padded input read by kernel offset (i, j)."""
    (kh, kw), (sh, sw), (Ho, Wo) = k, s, out
    for i in range(kh):
        for j in range(kw):
            yield i, j, slice(i, i + sh * (Ho - 1) + 1, sh), slice(j, j + sw * (Wo - 1) + 1, sw)


def _cf(a) -> bool:
    return a.ndim == 4 and not a.flags.c_contiguous and is_cnhw(a)


def _channels_first_forward(fn):
    """Max pooling of a channels-first input runs on its (C, N, H, W) array (the windows slice the
    last two axes either way) and returns NCHW views of channels-first results: contiguous work,
    no transposes (``layerwise.functional.layout``)."""
    @functools.wraps(fn)
    def run(x, *args, **kw):
        if _cf(x):
            y, arg = fn(to_cnhw(x), *args, **kw)
            return from_cnhw(y), (None if arg is None else from_cnhw(arg))
        return fn(x, *args, **kw)
    return run


def _channels_first_backward(fn):
    """The backward follows its forward's layout (the arg-max's): dy is brought to it if it
    comes in another (after a Flatten: one copy of the small dy, instead of copying arg here
    and the larger dx in the layer below)."""
    @functools.wraps(fn)
    def run(dy, arg, x_shape, *args, **kw):
        if _cf(arg) and dy.ndim == 4:
            N, C, H, W = x_shape
            return from_cnhw(fn(to_cnhw(dy), to_cnhw(arg), (C, N, H, W), *args, **kw))
        return fn(dy, arg, x_shape, *args, **kw)
    return run


@_channels_first_forward
def max_pool2d_forward(x: Array, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                       ceil_mode: bool = False, need_arg: bool = True) -> tuple[Array, Array | None]:
    """Max over each window. Padding is -inf (never selected).

    Returns:
        ``(y, arg)``: y (N, C, Ho, Wo) and arg (N, C, Ho, Wo) int8/int32, the kernel offset
        ``i*kw + j`` of the (first) maximum, which the backward routes the error to. Ties keep
        the first offset; a NaN wins and propagates (both as in PyTorch). ``need_arg=False``
        (inference): arg is None and not computed.
    """
    xp = get_array_module(x)
    k, s, p, out = pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    A, B, H, W = x.shape
    xc = x if x.flags.c_contiguous else xp.ascontiguousarray(x)
    y = xp.empty((A, B) + out, dtype=x.dtype)
    arg = xp.empty((A, B) + out, dtype=xp.int8 if k[0] * k[1] < 128 else xp.int32) if need_arg else None
    cf_kernels.maxpool_forward(xc.reshape(A * B, H, W), y.reshape(A * B, *out),
                               None if arg is None else arg.reshape(A * B, *out), k, s, p)
    return y, arg


@_channels_first_backward
def max_pool2d_backward(dy: Array, arg: Array, x_shape, kernel_size: IntPair, stride: IntPair | None = None,
                        padding: IntPair = 0) -> Array:
    """Route each ``dy`` element to the input position of its window's maximum (adds on overlap)."""
    xp = get_array_module(dy)
    A, B, H, W = x_shape
    k, s, p, _ = pool_geometry(x_shape, kernel_size, stride, padding)
    out = dy.shape[2:]
    dyc = dy if dy.flags.c_contiguous else xp.ascontiguousarray(dy)
    argc = arg if arg.flags.c_contiguous else xp.ascontiguousarray(arg)
    dx = xp.empty((A, B, H, W), dtype=dy.dtype)
    cf_kernels.maxpool_backward(dyc.reshape(A * B, *out), argc.reshape(A * B, *out), dx.reshape(A * B, H, W), k, s, p)
    return dx


def avg_pool_divisor(x_shape, k, s, p, out, count_include_pad: bool, xp, dtype) -> Array:
    """(Ho, Wo) window sizes: with padding counted (PyTorch's default, Caffe's AVE) the window is
    clipped to the padded input; without, to the real input."""
    def counts(size, k, s, p, n):
        start = xp.arange(n) * s - p
        end = xp.minimum(start + k, size + p)
        if not count_include_pad:
            start, end = xp.maximum(start, 0), xp.minimum(end, size)
        return (end - start).astype(dtype)
    H, W = x_shape[-2:]
    return counts(H, k[0], s[0], p[0], out[0])[:, None] * counts(W, k[1], s[1], p[1], out[1])[None, :]


def avg_pool2d_forward(x: Array, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                       ceil_mode: bool = False, count_include_pad: bool = True) -> Array:
    """Mean over each window: ``y = (sum of the window, zeros for padding) / divisor``."""
    xp = get_array_module(x)
    k, s, p, out = pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    N, C, H, W = x.shape
    if p == (0, 0) and k == s and H % k[0] == 0 and W % k[1] == 0 and out == (H // k[0], W // k[1]):
        # fast path: non-overlapping windows tiling the input exactly. Summing the kh*kw strided
        # views of the reshaped input is ~10x faster than .mean(axis=(3, 5)) on NCHW data.
        v = x.reshape(N, C, out[0], k[0], out[1], k[1])
        y = v[:, :, :, 0, :, 0].copy()                                       # (N, C, Ho, Wo)
        for i in range(k[0]):
            for j in range(k[1]):
                if i or j:
                    y += v[:, :, :, i, :, j]
        y *= x.dtype.type(1.0 / (k[0] * k[1]))
        return y
    Hp, Wp = _padded_extent(H, p[0], out[0], k[0], s[0], 1), _padded_extent(W, p[1], out[1], k[1], s[1], 1)
    xpad = pad2d(x, p[0], p[1], Hp, Wp, 0.0)
    y = xp.zeros((N, C) + out, dtype=x.dtype)
    for _, _, rs, cs in _windows(k, s, out):
        y += xpad[:, :, rs, cs]
    return y / avg_pool_divisor(x.shape, k, s, p, out, count_include_pad, xp, x.dtype)


def avg_pool2d_backward(dy: Array, x_shape, kernel_size: IntPair, stride: IntPair | None = None,
                        padding: IntPair = 0, ceil_mode: bool = False, count_include_pad: bool = True) -> Array:
    """Spread each ``dy`` element evenly over its window: ``dx += dy / divisor`` per window."""
    xp = get_array_module(dy)
    N, C, H, W = x_shape
    k, s, p, out = pool_geometry(x_shape, kernel_size, stride, padding, ceil_mode)
    if p == (0, 0) and k == s and H % k[0] == 0 and W % k[1] == 0 and out == (H // k[0], W // k[1]):
        g = dy / (k[0] * k[1])                                               # (N, C, Ho, Wo)
        g = xp.broadcast_to(g[:, :, :, None, :, None], (N, C, out[0], k[0], out[1], k[1]))
        return g.reshape(N, C, H, W)                                         # (copies: not a view)
    g = dy / avg_pool_divisor(x_shape, k, s, p, out, count_include_pad, xp, dy.dtype)
    Hp, Wp = _padded_extent(H, p[0], out[0], k[0], s[0], 1), _padded_extent(W, p[1], out[1], k[1], s[1], 1)
    dxpad = xp.zeros((N, C, Hp, Wp), dtype=dy.dtype)
    for _, _, rs, cs in _windows(k, s, out):
        dxpad[:, :, rs, cs] += g
    return xp.ascontiguousarray(dxpad[:, :, p[0]:p[0] + H, p[1]:p[1] + W])
