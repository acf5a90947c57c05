"""Batch normalization layers. The array math lives in ``layerwise.functional.batchnorm``."""
from __future__ import annotations

import numpy as np

from .. import init
from ..backend import Shape, get_array_module
from ..core import Layer, register
from ..functional.batchnorm import batch_norm_backward, batch_norm_eval_forward, batch_norm_train_forward
from ..functional.bn_cf import bn_cf_backward, bn_cf_forward
from ._dtype import FloatInputs

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(FloatInputs, Layer):
    """Shared code; subclasses set ``_ndims`` and ``_layout``."""

    _ndims: tuple[int, ...] = ()
    _layout = ""

    def __init__(self, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True, *,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        if not eps > 0:
            raise ValueError(f"{kind}: eps must be > 0, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{kind}: momentum must be in [0, 1] or None (cumulative average), got {momentum!r}")
        self.eps, self.momentum, self.affine = float(eps), momentum, bool(affine)

    def _build(self, shape: Shape) -> None:
        self.expect_ndim(shape, self._ndims, self._layout)
        C = shape[1]
        if self.affine:
            self.weight = self.add_param("weight", init.constant((C,), value=1.0))
            self.bias = self.add_param("bias", init.constant((C,)))
        self.add_buffer("running_mean", init.constant((C,)))
        self.add_buffer("running_var", init.constant((C,), value=1.0))
        self.add_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        self.num_features = C

    def _output_shape(self, shape: Shape) -> Shape:
        self.expect_ndim(shape, self._ndims, self._layout)
        if shape[1] != self.num_features:
            raise self.error(f"input has {shape[1]} channels but the layer was built for {self.num_features}; "
                             f"feed {self.num_features} channels or build a new layer")
        return shape

    def _params_data(self):
        return (self.weight.data, self.bias.data) if self.affine else (None, None)

    def _forward(self, x):
        w, b = self._params_data()
        self._check_batch(x)
        if x.ndim == 4:  # channels-first rows (functional.bn_cf): no transposes between conv layers
            y, ctx = self.forward_cf(x)
            self.save(cf=ctx)
            return y
        if self.training:
            y, ctx, mean, var = batch_norm_train_forward(x, w, b, self.eps)
            self.update_running(mean, var, x.size // x.shape[1])
        else:
            y, ctx = batch_norm_eval_forward(x, w, b, self.buffer("running_mean"), self.buffer("running_var"),
                                             self.eps, need_ctx=self.cache_enabled)
        self.save(ctx=ctx)
        return y

    def _check_batch(self, x) -> None:
        if self.training and x.size // x.shape[1] < 2:
            raise self.error(f"training needs more than one value per channel, got input shape "
                             f"{tuple(x.shape)}; use a batch of 2 or more, or eval() mode")

    def forward_cf(self, x, r=None, relu: bool = False, out=None):
        """``act(self(x) [+ r])`` on channels-first maps (x may be a strided view); ``(y, ctx)``
        for ``backward_cf``; ``out``: an (N, C, H, W) array or view to write y into. The fused
        layers (BN + ReLU, BN + add + ReLU, conv + BN ...) call this, so they share the layer's math."""
        self._check_batch(x)
        w, b = self._params_data()
        return bn_cf_forward(x, w, b, (self.buffer("running_mean"), self.buffer("running_var")), self.eps,
                             self.training, r, relu, keep=self.cache_enabled, update=self.update_running, out=out)

    def folded_scale_shift(self):
        """float64 ``(s, t)`` with ``self(x) = s * x + t`` per channel in eval mode (running statistics)."""
        xp = get_array_module(self.buffer("running_var"))
        s = 1.0 / xp.sqrt(self.buffer("running_var").astype(xp.float64) + self.eps)
        if self.affine:
            s = s * self.weight.data.astype(xp.float64)
        t = -self.buffer("running_mean").astype(xp.float64) * s
        if self.affine:
            t = t + self.bias.data.astype(xp.float64)
        return s, t

    def backward_cf(self, dy, ctx, need_dx: bool = True, need_dr: bool = True, out=None):
        """The backward of ``forward_cf``: adds the param grads, returns ``(dx, dr)``; dx is
        written into ``out`` (an (N, C, H, W) array or view) when given."""
        need_params = self.affine and (self.weight.needs_grad or self.bias.needs_grad)
        dx, dr, dw, db = bn_cf_backward(dy, ctx, need_dx, need_dr, need_params, out=out)
        if dw is not None:
            if self.weight.needs_grad:
                self.weight.grad += dw
            if self.bias.needs_grad:
                self.bias.grad += db
        return dx, dr

    def update_running(self, mean, var, m: int) -> None:
        """running = (1 - f) * running + f * batch, f = momentum (or 1/t when momentum is None);
        the variance enters unbiased, var * m / (m - 1), like PyTorch."""
        n = self.buffer("num_batches_tracked")
        n += 1                                     # 0-d int64 array, in place
        f = 1.0 / float(n) if self.momentum is None else self.momentum
        for key, batch in (("running_mean", mean), ("running_var", var * (m / (m - 1)))):
            r = self.buffer(key)
            xp = get_array_module(r)
            r[...] = ((1.0 - f) * r.astype(xp.float64) + f * batch).astype(r.dtype)

    def _update_running(self, mean, var, m: int) -> None:  # the name the fast dense block used
        self.update_running(mean, var, m)

    def _backward(self, dy):
        if "cf" in self.cache:
            return self.backward_cf(dy, self.cache["cf"], need_dx=self.needs_input_grad(0))[0]
        dx, dw, db = batch_norm_backward(dy, self.cache["ctx"])
        if self.affine:
            self.weight.grad += dw
            self.bias.grad += db
        return dx


@register("layer", "BatchNorm2d", "BatchNorm")
class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, H, W) per channel (Ioffe & Szegedy 2015; torch.nn.BatchNorm2d).

    Forward (training): mean, var = batch mean and biased variance per channel over m = N*H*W;
              xhat = (x - mean) / sqrt(var + eps);  y = weight * xhat + bias;
              running = (1 - momentum) * running + momentum * (mean, var * m / (m - 1)).
    Forward (eval):     the same with running_mean / running_var in place of the batch statistics.
    Backward (training, compact three-term form):
              dbias = sum dy;  dweight = sum dy * xhat;
              dx = weight / sqrt(var + eps) * (dy - dbias / m - xhat * dweight / m).
    Backward (eval, needs ``eval(grad=True)``): dx = weight / sqrt(running_var + eps) * dy.

    Args:
        eps: added to the variance.
        momentum: weight of the new batch in the running statistics (None: cumulative average).
        affine: learn weight (init 1) and bias (init 0).

    Params: weight (C,), bias (C,). Buffers: running_mean (C,) (init 0), running_var (C,)
        (init 1), num_batches_tracked (0-d int64): PyTorch's names, so state dicts match.

    Shapes: x (N, C, H, W) -> y (N, C, H, W).
    Caches: 4-D input: cf = the input's channel rows (a reference, no copy), the per-channel
        statistics and scale/shift (``functional.bn_cf``); otherwise ctx = xhat (like x), invstd
        (C,) and a reference to weight.

    Paper: https://arxiv.org/abs/1502.03167

    Example:
        >>> import numpy as np
        >>> bn = BatchNorm2d()
        >>> y = bn.forward(np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32))
        >>> bool(abs(y.mean()) < 1e-5)
        True
    """

    _ndims = (4,)
    _layout = "(N, C, H, W)"


@register("layer", "BatchNorm1d")
class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) inputs per channel (torch.nn.BatchNorm1d).

    Params and buffers as BatchNorm2d; the statistics are per channel over m = N (or N*L) values.

    Forward (training): xhat = (x - mean) / sqrt(var + eps);  y = weight * xhat + bias, with the
              batch mean and biased variance; the running statistics are updated as BatchNorm2d's.
    Forward (eval):     the same with running_mean / running_var.
    Backward (training): dx = weight / sqrt(var + eps) * (dy - dbias / m - xhat * dweight / m),
              dbias = sum dy, dweight = sum dy * xhat.  Eval: dx = weight / sqrt(running_var + eps) * dy.

    Shapes: x (N, C) or (N, C, L) -> y of the same shape.
    Caches: ctx = xhat (like x), invstd (C,) and a reference to weight (nothing in eval mode).

    Example:
        >>> import numpy as np
        >>> BatchNorm1d().forward(np.ones((4, 3), np.float32)).shape
        (4, 3)
    """

    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"
