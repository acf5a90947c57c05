"""Synchronised batch normalization: batch statistics over the samples of every data-parallel rank."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_array_module, to_numpy
from ..core import Layer, register
from ..functional.batchnorm import BNCtx, _affine, _bcast, channel_sum
from .batchnorm import _BatchNorm

__all__ = ["SyncBatchNorm", "convert_sync_batchnorm"]


def _allreduce(comm: Any, a: Any) -> Any:
    """Sum a small float64 array over the ranks (through the host for device arrays)."""
    if comm is None or not comm.distributed:
        return a
    xp = get_array_module(a)
    host = np.ascontiguousarray(to_numpy(a), dtype=np.float64)
    comm.allreduce(host, op="sum")
    return xp.asarray(host)


@register("layer", "SyncBatchNorm")
class SyncBatchNorm(_BatchNorm):
    """Batch normalization whose batch statistics cover every data-parallel rank's samples
    (torch.nn.SyncBatchNorm): R ranks with batch B compute what one process computes on 2B... RB.

    Rank r holds m_r values per channel (its n_r samples times the spatial size); M = sum m_r.

    Forward (training; two small allreduces of per-channel float64 sums):
        mean = (sum over all ranks of sum x) / M;  var = (sum over all ranks of sum (x - mean)^2) / M;
        xhat = (x - mean) / sqrt(var + eps);  y = weight * xhat + bias;
        running = (1 - momentum) * running + momentum * (mean, var * M / (M - 1)), equal on every rank.
    Backward (training; one allreduce of 2C sums): with each rank's loss the mean over its own
        samples and gradients averaged weighted by sample counts (what ``DataParallel`` does),
        S1 = sum_r (m_r / M) sum dy,  S2 = sum_r (m_r / M) sum dy * xhat  (the global-loss sums),
        dx = weight / sqrt(var + eps) * (dy - S1 / m_r - xhat * S2 / m_r);
        dweight = sum dy * xhat, dbias = sum dy over this rank's values (ADDED; the gradient
        averaging over ranks then gives the global gradient).
    Eval: as BatchNorm2d (running statistics; no communication).
    With one process (``comm`` None or of size 1) it is exactly BatchNorm over its batch.

    Args:
        eps, momentum, affine: as BatchNorm2d.
        comm: a :class:`layerwise.distributed.Communicator` (None: one process). Every rank must
            run forward and backward of this layer the same number of times (collective).

    Params: weight (C,), bias (C,). Buffers: running_mean, running_var, num_batches_tracked.

    Shapes: x (N, C), (N, C, L) or (N, C, H, W) -> y of the same shape.
    Caches: several ranks: ctx = xhat (like x), invstd (C,), a reference to weight, and
        m = (m_r, M) (ints); one process: what BatchNorm2d caches (cf for 4-D input, else ctx).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).standard_normal((4, 3, 2, 2))
        >>> bool(np.allclose(SyncBatchNorm().forward(x), BatchNorm2d().forward(x)))  # one process
        True
    """

    _ndims = (2, 3, 4)
    _layout = "(N, C), (N, C, L) or (N, C, H, W)"

    def __init__(self, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True, *,
                 comm: Any = None, name: str | None = None) -> None:
        super().__init__(eps, momentum, affine, name=name)
        self.comm = comm

    def _forward(self, x):
        if not self.training or self.comm is None or not self.comm.distributed:
            return super()._forward(x)
        xp = get_array_module(x)
        c = x.shape[1]
        m_local = x.size // c
        sums = _allreduce(self.comm, xp.concatenate([channel_sum(x), xp.asarray([float(m_local)])]))
        m_total = int(round(float(sums[-1])))
        if m_total < 2:
            raise self.error(f"training needs more than one value per channel over all ranks, got {m_total}")
        mean = sums[:c] / m_total                                                 # (C,) float64
        xc = x - _bcast(mean.astype(x.dtype), x.ndim)
        var = _allreduce(self.comm, channel_sum(xc * xc)) / m_total               # (C,) float64
        invstd = (1.0 / xp.sqrt(var + self.eps)).astype(x.dtype)
        xhat = xc
        xhat *= _bcast(invstd, x.ndim)
        w, b = self._params_data()
        y = _affine(xhat, w, b)
        self._update_running(mean, var, m_total)
        self.save(ctx=BNCtx(xhat, invstd, w, True), m=(m_local, m_total))
        return y

    def _backward(self, dy):
        m = self.cache.get("m")
        if m is None:  # eval mode or one process: plain BatchNorm
            return super()._backward(dy)
        m_local, m_total = m
        ctx = self.cache["ctx"]
        xp = get_array_module(dy)
        c, nd = dy.shape[1], dy.ndim
        dbias = channel_sum(dy)                                                    # (C,) float64, local
        dweight = channel_sum(dy * ctx.xhat)
        share = m_local / m_total
        glob = _allreduce(self.comm, xp.concatenate([dbias * share, dweight * share]))
        scale = ctx.invstd if ctx.weight is None else ctx.invstd * ctx.weight
        dx = dy - _bcast((glob[:c] / m_local).astype(dy.dtype), nd)
        dx -= ctx.xhat * _bcast((glob[c:] / m_local).astype(dy.dtype), nd)
        dx *= _bcast(scale, nd)
        if self.affine:
            self.weight.grad += dweight.astype(dy.dtype)
            self.bias.grad += dbias.astype(dy.dtype)
        return dx


def convert_sync_batchnorm(net: Layer, comm: Any) -> int:
    """Turn every BatchNorm1d/BatchNorm2d of ``net`` into a SyncBatchNorm over ``comm``, in place
    (params, buffers and settings kept); returns how many were converted.

    The fusion rules fuse only plain BatchNorm2d layers (fused kernels normalise with their own
    math), so after the conversion the Nets inside ``net`` are re-planned and every normalisation
    goes through a converted layer.

    Raises:
        ValueError: a layer keeps running statistics but is not a BatchNorm that can be converted.
    """
    count = 0
    for m in net.modules():
        if isinstance(m, SyncBatchNorm):
            m.comm = comm
            count += 1
        elif isinstance(m, _BatchNorm):
            m.__class__ = SyncBatchNorm  # same state, SyncBatchNorm's forward and backward
            assert isinstance(m, SyncBatchNorm)
            m.comm = comm
            count += 1
        elif "running_mean" in getattr(m, "_buffers", {}):
            raise ValueError(f"convert_sync_batchnorm: {m!r} keeps batch statistics but is not a BatchNorm layer, "
                             "so it cannot be synchronised; set sync_batchnorm: false")
    if hasattr(net, "replan"):
        net.replan()
    return count


from .batchnorm import BatchNorm2d  # noqa: E402,F401  (the doctest compares with it)
