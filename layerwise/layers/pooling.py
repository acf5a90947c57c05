"""Pooling layers: down-sample on the way forward, up-sample the error on the way back.

Output size (per spatial axis), stated once for every layer here:
    PyTorch (default, ceil_mode=False): out = floor((size + 2*pad - k) / stride) + 1
    Caffe (ceil_mode=True):             out = ceil((size + 2*pad - k) / stride) + 1,
                                        minus 1 if the last window would start in the right padding.
Caffe rounds pooling up and convolution down, so pass ``ceil_mode=True`` to keep a Caffe
model's shapes. The array math lives in ``layerwise.functional.pool``.
"""
from __future__ import annotations

from ..backend import Shape, get_array_module
from ..core import Layer, register
from ..functional.im2col import pair
from ..functional.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    pool_geometry,
)
from ._dtype import FloatInputs

__all__ = ["MaxPool2d", "AvgPool2d", "GlobalAvgPool2d"]


class _Pool2d(FloatInputs, Layer):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, *, name=None) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        self.kernel_size = pair(kernel_size, f"{kind} kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, f"{kind} stride")
        self.padding = pair(padding, f"{kind} padding")
        if min(self.kernel_size + self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"{kind}: kernel_size and stride must be >= 1 and padding >= 0, got "
                             f"kernel_size={kernel_size}, stride={stride}, padding={padding}")
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{kind}: padding {self.padding} must be at most half the kernel size "
                             f"{self.kernel_size} (as in PyTorch), or some windows would see only padding")
        self.ceil_mode = bool(ceil_mode)

    def _output_shape(self, shape: Shape) -> Shape:
        self.expect_ndim(shape, 4, "(N, C, H, W)")
        *_, (Ho, Wo) = pool_geometry(shape, self.kernel_size, self.stride, self.padding, self.ceil_mode)
        if Ho < 1 or Wo < 1:
            raise self.error(f"the kernel {self.kernel_size} is larger than the padded input "
                             f"{shape[2] + 2*self.padding[0]}x{shape[3] + 2*self.padding[1]} of x {tuple(shape)}; "
                             f"use a smaller kernel or more padding")
        return (shape[0], shape[1], Ho, Wo)


@register("layer", "MaxPool2d", "MaxPool")
class MaxPool2d(_Pool2d):
    """Max pooling; the backward routes each error to the remembered arg-max of its window.

    Forward:  y[n, c, h, w] = max over the window (i, j) of xpad[n, c, h*sh + i, w*sw + j] (pad = -inf).
    Backward: dx[position of that max] += dy[n, c, h, w]; every other input position gets 0.
              Ties go to the first maximum in row-major window order (PyTorch's choice).

    Args:
        kernel_size, stride (default: kernel_size), padding (<= kernel/2): int or (h, w).
        ceil_mode: Caffe's rounding (see the module docstring); default floor, like PyTorch.

    Shapes: x (N, C, H, W) -> y (N, C, Ho, Wo).
    Caches: arg (N, C, Ho, Wo) int8, the kernel offset of each window's maximum; x_shape.

    Example:
        >>> import numpy as np
        >>> MaxPool2d(2).forward(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))[0, 0]
        array([[ 5.,  7.],
               [13., 15.]], dtype=float32)
    """

    def _forward(self, x):
        y, arg = max_pool2d_forward(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                    need_arg=self.cache_enabled)
        self.save(arg=arg, x_shape=x.shape)
        return y

    def _backward(self, dy):
        return max_pool2d_backward(dy, self.cache["arg"], self.cache["x_shape"], self.kernel_size, self.stride,
                                   self.padding)


@register("layer", "AvgPool2d", "AvePool")
class AvgPool2d(_Pool2d):
    """Average pooling; the backward spreads each error evenly over its window.

    Forward:  y[n, c, h, w] = (1 / |window|) * sum over the window of xpad (pad = 0).
    Backward: dx[every position of the window] += dy[n, c, h, w] / |window|.
    |window| counts the padding when ``count_include_pad`` (PyTorch's default and Caffe's AVE),
    clipped to the padded input in ceil mode; otherwise only the real input positions.

    Args:
        kernel_size, stride (default: kernel_size), padding (<= kernel/2): int or (h, w).
        ceil_mode: Caffe's rounding (see the module docstring); default floor, like PyTorch.
        count_include_pad: whether padded zeros count in the divisor.

    Shapes: x (N, C, H, W) -> y (N, C, Ho, Wo).
    Caches: x_shape only.

    Example:
        >>> import numpy as np
        >>> AvgPool2d(2).forward(np.ones((1, 1, 4, 4), np.float32)).shape
        (1, 1, 2, 2)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, *, name=None) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, name=name)
        self.count_include_pad = bool(count_include_pad)

    def _forward(self, x):
        self.save(x_shape=x.shape)
        return avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                  self.count_include_pad)

    def _backward(self, dy):
        return avg_pool2d_backward(dy, self.cache["x_shape"], self.kernel_size, self.stride, self.padding,
                                   self.ceil_mode, self.count_include_pad)


@register("layer", "GlobalAvgPool2d", "GlobalAvgPool")
class GlobalAvgPool2d(FloatInputs, Layer):
    """Mean over the whole feature map (Caffe's ``global_pooling``, torch's AdaptiveAvgPool2d(1)).

    Forward:  y[n, c, 0, 0] = (1 / (H*W)) * sum_{h, w} x[n, c, h, w].
    Backward: dx[n, c, h, w] = dy[n, c, 0, 0] / (H*W).

    Shapes: x (N, C, H, W) -> y (N, C, 1, 1) (Flatten afterwards for a classifier).
    Caches: x_shape only.

    Example:
        >>> import numpy as np
        >>> GlobalAvgPool2d().forward(np.ones((2, 3, 4, 4), np.float32)).shape
        (2, 3, 1, 1)
    """

    def _output_shape(self, shape: Shape) -> Shape:
        self.expect_ndim(shape, 4, "(N, C, H, W)")
        return (shape[0], shape[1], 1, 1)

    def _forward(self, x):
        self.save(x_shape=x.shape)
        return x.mean(axis=(2, 3), keepdims=True)

    def _backward(self, dy):
        xp = get_array_module(dy)
        N, C, H, W = self.cache["x_shape"]
        return xp.broadcast_to(dy / (H * W), (N, C, H, W)).copy()
