"""Convolution layers. The array math lives in ``layerwise.functional.conv``."""
from __future__ import annotations

import math

from .. import init
from ..backend import Shape
from ..core import Layer, register
from ..functional.conv import GRID_IMPLS, IMPLS, METHODS, conv2d_backward, conv2d_forward, conv2d_grad_buffer
from ..functional.im2col import conv_output_size, pair

__all__ = ["Conv2d"]


@register("layer", "Conv2d", "Convolution")
class Conv2d(Layer):
    """2-D convolution (cross-correlation, like PyTorch's ``nn.Conv2d`` and Caffe's Convolution).

    Forward:  y[n, o] = b[o] + sum_{c in group(o)} W[o, c] (*) xpad[n, c]   ((*): strided, dilated
              correlation; im2col form per sample: Y = K X, K (O, C*kh*kw), X (C*kh*kw, Ho*Wo)).
    Backward: db = sum_{n,h,w} dy;  dK = dY X^T;  dX = col2im(K^T dY)
              (equivalently dW = x (*) dy and dx = pad(dy) (*) rot180(W); docs/convolution.md).

    Output size (floor, like PyTorch and Caffe):
    ``Ho = floor((H + 2*pad - dilation*(kh - 1) - 1) / stride) + 1``, likewise Wo.

    Args:
        out_channels: O (Caffe's ``num_output``).
        kernel_size, stride, padding, dilation: int or (h, w); padding is zeros.
        groups: C and O are split into this many groups (groups == C: depthwise).
        bias: learn an additive bias per output channel.
        impl: ``"gemm"`` (default: channels-first GEMMs, see ``layerwise.functional.conv``: one
            GEMM for 1x1, Winograd F(2x2, 3x3) for 3x3 stride 1 with 16+ channels in and out,
            one GEMM per kernel tap on shifted views for other stride-1 convolutions with 8+
            channels, channels-first im2col otherwise; groups > 1 run ``"im2col"``), ``"im2col"``
            (docs/convolution.md route 2: per-sample im2col + GEMM in NCHW, for every geometry),
            ``"direct"`` (the rot180 derivation; slow), or one channels-first method by name
            (``"cftaps"``, ``"winograd"``, ``"cfim2col"``, ``"cfshift"``, ``"cf1x1"``) where the
            geometry allows (``"winograd"``: 3x3, stride 1, dilation 1).

    Params: weight (O, C/groups, kh, kw), bias (O,); PyTorch's default init
        (kaiming-uniform with a=sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both).

    Shapes: x (N, C, H, W) -> y (N, O, Ho, Wo); with ``impl="gemm"`` y is the NCHW view of a
        channels-first array (``layerwise.functional.layout``), which the next layer reads
        without a copy.
    Caches: the functional ctx (the input, or its padded channel-first / im2col copy).
    Gradients: only those needed: no dx when ``propagate_down`` says the input needs none
        (the images), no dW/db for a frozen param (``requires_grad=False`` or ``lr_mult=0``).

    Example:
        >>> import numpy as np
        >>> conv = Conv2d(8, 3, padding=1)
        >>> conv.forward(np.zeros((2, 3, 5, 5), np.float32)).shape
        (2, 8, 5, 5)
    """

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1,
                 bias: bool = True, *, impl: str = "gemm", name: str | None = None) -> None:
        super().__init__(name=name)
        if not isinstance(out_channels, int) or out_channels < 1:
            raise ValueError(f"Conv2d: out_channels must be a positive int, got {out_channels!r}")
        self.out_channels = out_channels
        self.kernel_size = pair(kernel_size, "Conv2d kernel_size")
        self.stride = pair(stride, "Conv2d stride")
        self.padding = pair(padding, "Conv2d padding")
        self.dilation = pair(dilation, "Conv2d dilation")
        if min(self.kernel_size + self.stride + self.dilation) < 1 or min(self.padding) < 0:
            raise ValueError(f"Conv2d: kernel_size, stride and dilation must be >= 1 and padding >= 0, got "
                             f"kernel_size={kernel_size}, stride={stride}, dilation={dilation}, padding={padding}")
        if not isinstance(groups, int) or groups < 1 or out_channels % groups:
            raise ValueError(f"Conv2d: groups must be a positive int dividing out_channels={out_channels}, "
                             f"got {groups!r}")
        if impl not in IMPLS + METHODS:
            raise ValueError(f"Conv2d: impl must be one of {IMPLS + METHODS}, got {impl!r}")
        self.groups, self.use_bias, self.impl = groups, bool(bias), impl

    def _build(self, shape: Shape) -> None:
        self._check_input(shape)
        cg = shape[1] // self.groups
        kh, kw = self.kernel_size
        bound = 1.0 / math.sqrt(cg * kh * kw)  # kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), +)
        self.weight = self.add_param("weight", init.uniform((self.out_channels, cg, kh, kw), self.rng, -bound, bound))
        self.bias = self.add_param("bias", init.uniform((self.out_channels,), self.rng, -bound, bound)) \
            if self.use_bias else None

    def _check_input(self, shape: Shape) -> None:
        self.expect_ndim(shape, 4, "(N, C, H, W)")
        if shape[1] % self.groups:
            raise self.error(f"input has {shape[1]} channels, not divisible by groups={self.groups}; "
                             f"use a groups value that divides both {shape[1]} and {self.out_channels}")

    def _output_shape(self, shape: Shape) -> Shape:
        self._check_input(shape)
        N, C, H, W = shape
        want = self.weight.shape[1] * self.groups
        if C != want:
            raise self.error(f"input has {C} channels but the layer was built for {want} (weight "
                             f"{self.weight.shape}); feed {want} channels or build a new layer")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        Ho, Wo = conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw)
        if Ho < 1 or Wo < 1:
            raise self.error(f"the kernel {kh}x{kw} (dilation {dh}x{dw}: spans {dh*(kh-1)+1}x{dw*(kw-1)+1}) is "
                             f"larger than the padded input {H + 2*ph}x{W + 2*pw} of x {tuple(shape)}; use a "
                             f"larger input, more padding or a smaller kernel")
        return (N, self.out_channels, Ho, Wo)

    def _forward(self, x):
        y, ctx = self.forward_cf(x)
        self.save(ctx=ctx)
        return y

    def _backward(self, dy):
        return self.backward_cf(dy, self.cache["ctx"], need_dx=self.needs_input_grad(0))

    def input_conv(self, i: int = 0) -> Conv2d | None:
        """Itself when it may read its input off a zero-gapped grid written by the layer
        before (stride 1, groups 1; ``functional.conv.input_grid`` decides per shape)."""
        if i == 0 and self.stride == (1, 1) and self.groups == 1 and self.impl in GRID_IMPLS:
            return self
        return None

    # The fused layers (``layers.fused``) call these, so they run the layer's own math.
    def forward_cf(self, x, crop: bool = True, weight=None, bias=None, workspace=None, epilogue=None):
        """``(y, ctx)`` of the convolution (ctx None when nothing is cached); ``crop=False``
        may return y as a strided view of the grid it was computed on; ``weight``/``bias``
        replace the params (batch norm folded in at inference); ``workspace``: where the
        forward and the backward take their per-call scratch (a fused layer's, while training);
        ``epilogue``: see ``functional.conv2d_forward``."""
        W = self.weight.data if weight is None else weight
        b = bias if bias is not None or weight is not None else (self.bias.data if self.bias is not None else None)
        return conv2d_forward(x, W, b, self.stride, self.padding, self.dilation, self.groups, impl=self.impl,
                              need_ctx=self.cache_enabled, crop=crop, ws=workspace, ws_name=f"conv{id(self)}",
                              epilogue=epilogue)

    def grad_buffer(self, ctx, workspace=None):
        """``(buffer, view)`` to write dy into for ``backward_cf(..., dy_grid=buffer)``, or (None, None);
        the buffer comes from ``workspace`` when given (reused across steps: its zeros stay)."""
        return conv2d_grad_buffer(ctx, workspace)

    def backward_cf(self, dy, ctx, need_dx: bool = True, dy_grid=None, crop: bool = True):
        """The backward of ``forward_cf``: adds the param grads, returns dx (None when not needed)."""
        need_dW = self.weight.needs_grad
        need_db = self.bias is not None and self.bias.needs_grad
        dx, dW, db = conv2d_backward(dy, ctx, need_dx=need_dx, need_dW=need_dW or need_db, dy_grid=dy_grid,
                                     crop=crop)
        if need_dW:
            self.weight.grad += dW
        if need_db and self.bias is not None:
            self.bias.grad += db
        return dx
