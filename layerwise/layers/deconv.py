"""Transposed convolution (Caffe's Deconvolution, torch's ConvTranspose2d) through im2col / col2im."""
from __future__ import annotations

import math

from .. import init
from ..backend import Array, Shape
from ..core import Layer, Param, register
from ..functional.im2col import col2im, im2col, pair

__all__ = ["ConvTranspose2d"]


@register("layer", "ConvTranspose2d", "Deconvolution")
class ConvTranspose2d(Layer):
    """2-D transposed convolution: the adjoint (backward-data pass) of Conv2d.

    Per group, with K (Cin/g, Cout/g*kh*kw) the weight viewed as a matrix and X (Cin/g, H*W):
    Forward:  cols = K^T X;  y = col2im(cols) + b   (every input pixel scatters a kernel-sized
              patch into the output, summing where patches overlap).
    Backward: dcols = im2col(dy);  dX = K dcols;  dK += X dcols^T;  db += sum_{n,h,w} dy.

    Output size: ``Ho = (H - 1)*stride - 2*pad + dilation*(kh - 1) + 1 + output_padding``
    (torch's formula; Caffe's without output_padding).

    Args:
        out_channels: Cout (Caffe's num_output).
        kernel_size, stride, padding, dilation, output_padding: int or (h, w).
        groups: Cin and Cout are split into this many groups.
        bias: learn an additive bias per output channel.

    Params: weight (Cin, Cout/groups, kh, kw) (torch's and Caffe's layout), bias (Cout,);
        torch's default init U(-1/sqrt(fan), 1/sqrt(fan)), fan = Cout/groups * kh * kw.

    Shapes: x (N, Cin, H, W) -> y (N, Cout, Ho, Wo).
    Caches: x.

    Example:
        >>> import numpy as np
        >>> ConvTranspose2d(4, 4, stride=2, padding=1).forward(np.zeros((1, 3, 5, 5), np.float32)).shape
        (1, 4, 10, 10)
    """

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0, groups: int = 1,
                 bias: bool = True, dilation=1, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if isinstance(out_channels, bool) or not isinstance(out_channels, int) or out_channels < 1:
            raise ValueError(f"ConvTranspose2d: out_channels must be a positive int, got {out_channels!r}")
        self.out_channels = out_channels
        self.kernel_size = pair(kernel_size, "ConvTranspose2d kernel_size")
        self.stride = pair(stride, "ConvTranspose2d stride")
        self.padding = pair(padding, "ConvTranspose2d padding")
        self.dilation = pair(dilation, "ConvTranspose2d dilation")
        self.output_padding = pair(output_padding, "ConvTranspose2d output_padding")
        if min(self.kernel_size + self.stride + self.dilation) < 1 or min(self.padding + self.output_padding) < 0:
            raise ValueError(f"ConvTranspose2d: kernel_size, stride, dilation must be >= 1 and padding, "
                             f"output_padding >= 0, got {kernel_size}, {stride}, {dilation}, {padding}, "
                             f"{output_padding}")
        if any(op >= max(s, d) for op, s, d in zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be smaller than "
                             f"stride {self.stride} or dilation {self.dilation} (as in torch)")
        if not isinstance(groups, int) or groups < 1 or out_channels % groups:
            raise ValueError(f"ConvTranspose2d: groups must be a positive int dividing out_channels="
                             f"{out_channels}, got {groups!r}")
        self.groups, self.use_bias = groups, bool(bias)
        self.bias: Param | None = None

    def _check_input(self, shape: Shape) -> None:
        self.expect_ndim(shape, 4, "(N, C, H, W)")
        if shape[1] % self.groups:
            raise self.error(f"input has {shape[1]} channels, not divisible by groups={self.groups}")

    def _build(self, shape: Shape) -> None:
        self._check_input(shape)
        kh, kw = self.kernel_size
        bound = 1.0 / math.sqrt(self.out_channels // self.groups * kh * kw)
        self.weight = self.add_param(
            "weight", init.uniform((shape[1], self.out_channels // self.groups, kh, kw), self.rng, -bound, bound))
        if self.use_bias:
            self.bias = self.add_param("bias", init.uniform((self.out_channels,), self.rng, -bound, bound))

    def _output_shape(self, shape: Shape) -> Shape:
        self._check_input(shape)
        N, C, H, W = shape
        if C != self.weight.shape[0]:
            raise self.error(f"input has {C} channels but the layer was built for {self.weight.shape[0]} "
                             f"(weight {self.weight.shape}); feed {self.weight.shape[0]} channels")
        out = []
        for size, k, s, p, d, op in zip((H, W), self.kernel_size, self.stride, self.padding, self.dilation,
                                        self.output_padding):
            out.append((size - 1) * s - 2 * p + d * (k - 1) + 1 + op)
        if min(out) < 1:
            raise self.error(f"padding {self.padding} removes the whole output for input {tuple(shape)}; use "
                             "less padding")
        return (N, self.out_channels, out[0], out[1])

    def _forward(self, x: Array) -> Array:
        N, C, H, W = x.shape
        g, (kh, kw) = self.groups, self.kernel_size
        co = self.out_channels // g
        K = self.weight.data.reshape(g, C // g, co * kh * kw)                   # (g, Cin/g, Co/g*kh*kw)
        X = x.reshape(N, g, C // g, H * W)                                      # (N, g, Cin/g, H*W)
        cols = K.transpose(0, 2, 1) @ X                                         # (N, g, Co/g*kh*kw, H*W)
        cols = cols.reshape(N, self.out_channels, kh, kw, H, W)
        y = col2im(cols, self._out_shape, self.stride, self.padding, self.dilation)
        if self.bias is not None:
            y += self.bias.data.reshape(1, -1, 1, 1)
        self.save(x=x)
        return y

    def _backward(self, dy: Array) -> Array:
        x = self.cache["x"]
        N, C, H, W = x.shape
        g, (kh, kw) = self.groups, self.kernel_size
        co = self.out_channels // g
        dcols = im2col(dy, self.kernel_size, self.stride, self.padding, self.dilation, out_size=(H, W))
        dcols = dcols.reshape(N, g, co * kh * kw, H * W)                        # (N, g, Co/g*kh*kw, H*W)
        X = x.reshape(N, g, C // g, H * W)
        K = self.weight.data.reshape(g, C // g, co * kh * kw)
        self.weight.grad += (X @ dcols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(self.weight.shape)
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=(0, 2, 3))
        return (K @ dcols).reshape(N, C, H, W)
