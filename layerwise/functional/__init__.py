"""Pure array kernels shared by layers (NumPy or CuPy in, same module out).

Signatures (all shapes NCHW; ``IntPair`` = int or (h, w)):

* ``im2col(x, kernel_size, stride=1, padding=0, dilation=1, *, out_size=None, pad_value=0.0)``
  -> cols (N, C, kh, kw, Ho, Wo); ``col2im(cols, x_shape, stride=1, padding=0, dilation=1)`` -> (N, C, H, W).
* ``conv2d_forward(x, W, b=None, stride=1, padding=0, dilation=1, groups=1, *, impl="gemm",
  need_ctx=True)`` -> (y, ctx); ``conv2d_backward(dy, ctx, need_dx=True)`` -> (dx, dW, db).
* ``batch_norm_train_forward(x, weight, bias, eps=1e-5)`` -> (y, ctx, mean, var) with mean/var
  float64 (C,), var biased; ``batch_norm_eval_forward(x, weight, bias, running_mean, running_var,
  eps=1e-5, need_ctx=True)`` -> (y, ctx); ``batch_norm_backward(dy, ctx)`` -> (dx, dweight, dbias).
* ``max_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False)`` -> (y, arg);
  ``max_pool2d_backward(dy, arg, x_shape, kernel_size, stride=None, padding=0)`` -> dx;
  ``avg_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True)``
  -> y; ``avg_pool2d_backward(dy, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad)`` -> dx.
"""
from .batchnorm import BNCtx, batch_norm_backward, batch_norm_eval_forward, batch_norm_train_forward, channel_sum
from .conv import ConvCtx, conv2d_backward, conv2d_forward, conv2d_output_shape
from .im2col import col2im, conv_output_size, im2col, pad2d, pair
from .pool import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward, pool_geometry

__all__ = ["im2col", "col2im", "conv_output_size", "pad2d", "pair",
           "conv2d_forward", "conv2d_backward", "conv2d_output_shape", "ConvCtx",
           "batch_norm_train_forward", "batch_norm_eval_forward", "batch_norm_backward", "BNCtx", "channel_sum",
           "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
           "pool_geometry"]
