"""im2col / col2im: unfold sliding windows into columns and fold them back.

Both are pure functions of arrays (NumPy or CuPy). They loop over the kh*kw kernel
offsets only (a handful of strided slice copies), never over samples or pixels.

Layout of the columns: ``(N, C, kh, kw, Ho, Wo)``. Reshaped (no copy) to
``(N, C*kh*kw, Ho*Wo)`` it is the matrix X of docs/convolution.md (route 2) per sample, so a
convolution is ``Y = K @ X`` with ``K`` of shape ``(O, C*kh*kw)``.

Output size (PyTorch, and Caffe for convolution), per spatial axis::

    out = floor((size + 2*pad - dilation*(k - 1) - 1) / stride) + 1

With ``ceil_mode`` (Caffe's rule for pooling) the division rounds up, and the last
window is dropped if it would start in the right padding (PyTorch and Caffe agree).
"""
from __future__ import annotations

from typing import Any

from ..backend import Array, get_array_module

IntPair = int | tuple[int, int]


def pair(v: Any, name: str = "value") -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3, 5) -> (3, 5)``; anything else is a ValueError naming ``name``."""
    if isinstance(v, (tuple, list)) and len(v) == 2:
        a, b = v
    elif isinstance(v, (int,)) and not isinstance(v, bool):
        a = b = v
    else:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in (a, b)):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return int(a), int(b)


def conv_output_size(size: int, k: int, stride: int = 1, pad: int = 0, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """Output length along one axis (see the module docstring). May be <= 0 for bad inputs."""
    span = size + 2 * pad - dilation * (k - 1) - 1
    # floor division for any span (also negative: under ceil_mode a window larger than the padded
    # input still gives one output when it starts inside the input, as in PyTorch and Caffe)
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and out > 0 and (out - 1) * stride >= size + pad:  # last window would start in the right padding
        out -= 1
    return max(out, 0)


def _padded_extent(size: int, pad: int, out: int, k: int, stride: int, dilation: int) -> int:
    """Length of the padded axis: 2*pad more than ``size``, or more where ceil_mode needs it."""
    return max(size + 2 * pad, (out - 1) * stride + dilation * (k - 1) + 1)


def pad2d(x: Array, ph: int, pw: int, Hp: int, Wp: int, value: float = 0.0) -> Array:
    """Place ``x (N, C, H, W)`` at offset (ph, pw) in a ``(N, C, Hp, Wp)`` array filled with ``value``.

    Returns ``x`` itself when no padding is needed.
    """
    N, C, H, W = x.shape
    if (ph, pw, Hp, Wp) == (0, 0, H, W):
        return x
    xp = get_array_module(x)
    out = xp.full((N, C, Hp, Wp), value, dtype=x.dtype)
    out[:, :, ph:ph + H, pw:pw + W] = x
    return out


def im2col(x: Array, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0,
           dilation: IntPair = 1, *, out_size: tuple[int, int] | None = None,
           pad_value: float = 0.0) -> Array:
    """Unfold the sliding windows of ``x`` into columns.

    ``cols[n, c, i, j, h, w] = xpad[n, c, h*sh + i*dh, w*sw + j*dw]`` where ``xpad`` is
    ``x`` padded by ``padding`` with ``pad_value`` (and further on the bottom/right when
    ``out_size`` asks for more windows, as ceil_mode pooling does).

    Args:
        x: input of shape (N, C, H, W).
        kernel_size, stride, padding, dilation: ints or (h, w) pairs.
        out_size: (Ho, Wo) to produce; default: the floor rule.
        pad_value: value of the padding (0 for convolution, -inf for max pooling).

    Returns:
        cols of shape (N, C, kh, kw, Ho, Wo) (a new array).
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    (kh, kw), (sh, sw) = pair(kernel_size, "kernel_size"), pair(stride, "stride")
    (ph, pw), (dh, dw) = pair(padding, "padding"), pair(dilation, "dilation")
    if out_size is None:
        out_size = (conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw))
    Ho, Wo = out_size
    Hp, Wp = _padded_extent(H, ph, Ho, kh, sh, dh), _padded_extent(W, pw, Wo, kw, sw, dw)
    xpad = pad2d(x, ph, pw, Hp, Wp, pad_value)                        # (N, C, Hp, Wp)
    cols = xp.empty((N, C, kh, kw, Ho, Wo), dtype=x.dtype)
    for i in range(kh):
        r = i * dh
        for j in range(kw):
            c = j * dw
            cols[:, :, i, j] = xpad[:, :, r:r + sh * (Ho - 1) + 1:sh, c:c + sw * (Wo - 1) + 1:sw]
    return cols                                                       # (N, C, kh, kw, Ho, Wo)


def col2im(cols: Array, x_shape: tuple[int, ...], stride: IntPair = 1, padding: IntPair = 0,
           dilation: IntPair = 1) -> Array:
    """Fold columns back into an image, SUMMING where windows overlap (the adjoint of im2col).

    Args:
        cols: (N, C, kh, kw, Ho, Wo), e.g. the gradient w.r.t. im2col's output.
        x_shape: (N, C, H, W), the shape of the image im2col read.
        stride, padding, dilation: as given to im2col.

    Returns:
        An array of shape ``x_shape``: ``dx[n, c, y, x] = sum of cols entries that read
        (y, x)``; entries that read the padding are dropped.
    """
    xp = get_array_module(cols)
    N, C, kh, kw, Ho, Wo = cols.shape
    H, W = int(x_shape[2]), int(x_shape[3])
    (sh, sw), (ph, pw), (dh, dw) = pair(stride, "stride"), pair(padding, "padding"), pair(dilation, "dilation")
    Hp, Wp = _padded_extent(H, ph, Ho, kh, sh, dh), _padded_extent(W, pw, Wo, kw, sw, dw)
    dxpad = xp.zeros((N, C, Hp, Wp), dtype=cols.dtype)
    for i in range(kh):
        r = i * dh
        for j in range(kw):
            c = j * dw
            dxpad[:, :, r:r + sh * (Ho - 1) + 1:sh, c:c + sw * (Wo - 1) + 1:sw] += cols[:, :, i, j]
    if (Hp, Wp) == (H, W):
        return dxpad
    return xp.ascontiguousarray(dxpad[:, :, ph:ph + H, pw:pw + W])    # (N, C, H, W)
