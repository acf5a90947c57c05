"""Data parallelism: every rank holds the whole model, sees its own shard of each batch, and
the ranks average their gradients before the solver's step.

One data-parallel step on rank r of R, with n_r samples of the global batch N = sum n_r::

    g_r  = grad of the mean loss over rank r's n_r samples    (net.backward, as usual)
    g    = sum_r n_r * g_r / sum_r n_r                        (allreduce_gradients, weight=n_r)
         = grad of the mean loss over all N samples           (what one process with batch N gets)
    solver.step()                                             (unchanged; identical on every rank)

Since every rank starts from the same weights (``broadcast_state``) and applies the same
update to the same gradient, the ranks stay equal without ever exchanging weights again.

Gradients travel through ONE flat contiguous buffer per dtype (the gradients packed one after
the other, plus one trailing element for the weight sum), so a step costs one Allreduce per
dtype, not one per parameter.

BatchNorm: each rank normalises with its own batch statistics (PyTorch DDP without
SyncBatchNorm), and each rank's running mean/var follows its own shard. ``broadcast_buffers``
copies rank 0's running statistics to the others (the Trainer does this before every
evaluation), so what is evaluated is what rank 0 saves.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..backend import get_array_module, to_numpy
from ..core import Layer, Param
from .comm import Communicator


def _dtype_groups(arrays: Iterable[tuple[str, Any]]) -> dict[np.dtype, list[tuple[str, Any]]]:
    groups: dict[np.dtype, list[tuple[str, Any]]] = {}
    for name, a in arrays:
        groups.setdefault(np.dtype(a.dtype), []).append((name, a))
    return groups


def _broadcast_arrays(named: list[tuple[str, Any]], comm: Communicator, root: int, what: str) -> None:
    """Overwrite every array in ``named`` with root's values: one Bcast per dtype."""
    sig = [(n, tuple(a.shape), str(a.dtype)) for n, a in named]
    root_sig = comm.bcast_object(sig if comm.rank == root else None, root)
    same = np.array([1 if sig == root_sig else 0], dtype=np.int64)
    comm.allreduce(same, op="min")
    if not same[0]:
        mine, theirs = {x[0]: x[1:] for x in sig}, {x[0]: x[1:] for x in root_sig}
        diff = sorted(set(mine) ^ set(theirs)) or sorted(k for k in mine if mine[k] != theirs.get(k))
        raise ValueError(f"{what}: the ranks hold different models (rank {comm.rank} differs from rank {root} "
                         f"in {diff[:5] or 'another rank'}); build the same model with the same config on every rank")
    for dtype, items in _dtype_groups(named).items():
        buf = np.empty(sum(int(a.size) for _, a in items), dtype=dtype)
        if comm.rank == root:
            o = 0
            for _, a in items:
                buf[o:o + a.size] = to_numpy(a).reshape(-1)
                o += a.size
        comm.bcast(buf, root)
        o = 0
        for _, a in items:
            xp = get_array_module(a)
            a[...] = xp.asarray(buf[o:o + a.size].reshape(a.shape))
            o += a.size


def broadcast_state(net: Layer, comm: Communicator, root: int = 0, *, buffers: bool = True) -> None:
    """Copy root's params (and buffers: BatchNorm's running statistics) to every rank, in place.

    Call it once after building the net, so that ranks whose weights were drawn differently
    start equal. Collective; a no-op for one process.

    Raises:
        ValueError: on every rank, when the ranks' nets differ in names, shapes or dtypes.
    """
    if not comm.distributed:
        return
    named = sorted((k, p.data) for k, p in net.named_params().items())
    if buffers:
        named += sorted(net.named_buffers().items())
    _broadcast_arrays(named, comm, root, "broadcast_state")


def broadcast_buffers(net: Layer, comm: Communicator, root: int = 0) -> None:
    """Copy root's buffers (BatchNorm running mean/var) to every rank (collective)."""
    if comm.distributed:
        _broadcast_arrays(sorted(net.named_buffers().items()), comm, root, "broadcast_buffers")


class GradientAllreduce:
    """Averages the ``grad`` of a fixed list of Params over the ranks through flat buffers.

    The buffers (one per dtype: all the gradients of that dtype back to back, plus one
    element for the weight) are allocated once and reused every step.

    Args:
        params: the Params to keep in sync (a Layer, a dict name -> Param, or a list).
        comm: the communicator.
    """

    def __init__(self, params: Any, comm: Communicator) -> None:
        if isinstance(params, Layer):
            plist = list(params.named_params().values())
        elif isinstance(params, dict):
            plist = list(params.values())
        else:
            plist = list(params)
        for p in plist:
            if not isinstance(p, Param):
                raise TypeError(f"allreduce_gradients: expected layerwise Params, got {type(p).__name__}")
        self.comm = comm
        self.groups: list[tuple[list[Param], np.ndarray]] = []
        for dtype, items in _dtype_groups((str(i), p.grad) for i, p in enumerate(plist)).items():
            ps = [plist[int(i)] for i, _ in items]
            self.groups.append((ps, np.empty(sum(p.size for p in ps) + 1, dtype=dtype)))

    @property
    def num_elements(self) -> int:
        return sum(buf.size - 1 for _, buf in self.groups)

    def __call__(self, weight: float | None = None) -> None:
        """``grad <- sum_r w_r grad_r / sum_r w_r`` on every rank (``weight`` None: w_r = 1, the mean).

        Pass this rank's sample count as ``weight`` when the ranks' batches can differ in size:
        the result is then the gradient of the mean loss over the union of the batches.
        """
        if not self.comm.distributed:
            return
        w = 1.0 if weight is None else float(weight)
        if not w >= 0.0:
            raise ValueError(f"allreduce_gradients: weight must be >= 0, got {weight}")
        for ps, buf in self.groups:
            o = 0
            for p in ps:
                n = p.size
                g = to_numpy(p.grad)
                if w == 1.0:
                    buf[o:o + n] = g.reshape(-1)
                else:
                    np.multiply(g.reshape(-1), w, out=buf[o:o + n])
                o += n
            buf[-1] = w
            self.comm.allreduce(buf, op="sum")
            total = float(buf[-1])
            if total <= 0.0:
                raise ValueError("allreduce_gradients: the weights of all ranks sum to 0 (no rank had samples)")
            inv = 1.0 / total
            o = 0
            for p in ps:
                n = p.size
                avg = buf[o:o + n].reshape(p.grad.shape)
                if isinstance(p.grad, np.ndarray):
                    np.multiply(avg, inv, out=p.grad, casting="unsafe")
                else:  # a device array: copy the averaged host values back
                    xp = get_array_module(p.grad)
                    p.grad[...] = xp.asarray(avg * inv)
                o += n


def allreduce_gradients(params: Any, comm: Communicator, weight: float | None = None) -> None:
    """Average every ``Param.grad`` over the ranks, in place: ``sum_r w_r g_r / sum_r w_r``.

    One Allreduce per dtype through a flat buffer. For repeated calls keep a
    :class:`GradientAllreduce` (it reuses its buffers); this function allocates them each time.
    """
    GradientAllreduce(params, comm)(weight)


class DataParallel:
    """Keeps one net in step across ranks: equal start, averaged gradients, shared BN statistics.

    The solver is not wrapped and not changed: call ``sync_gradients`` between
    ``net.backward`` and ``solver.step`` (what the Trainer does)::

        dp = DataParallel(net, comm)          # after the net's params exist
        dp.broadcast()                        # every rank starts from rank 0's weights
        for xb, yb in loader:                 # DataLoader(..., rank=comm.rank, world_size=comm.size)
            loss = criterion.forward(net.forward(xb), yb)
            net.backward(criterion.backward())
            dp.sync_gradients(weight=len(yb))
            solver.step(); net.zero_grad()

    With one process every method returns at once, so the same code runs without MPI.
    """

    def __init__(self, net: Layer, comm: Communicator, root: int = 0) -> None:
        if not net.built:
            raise ValueError("DataParallel: set the net up first (net.setup(shape) or one forward pass) so its "
                             "params exist")
        self.net, self.comm, self.root = net, comm, root
        self._allreduce = GradientAllreduce(net, comm)

    def broadcast(self) -> None:
        broadcast_state(self.net, self.comm, self.root)

    def broadcast_buffers(self) -> None:
        broadcast_buffers(self.net, self.comm, self.root)

    def sync_gradients(self, weight: float | None = None) -> None:
        self._allreduce(weight)

    def seed_layer_generators(self, seed: int) -> None:
        """Give each rank its own random stream in every layer that draws random numbers, so ranks
        do not drop the same units on their different samples. No-op for one process.

        A layer with its own generator (Dropout's mask generator, drawn at setup, i.e. before
        training starts) is reseeded through its ``reseed(seed)`` method; replacing ``_rng``
        alone would not reach it. Other layers get a fresh ``_rng`` for anything drawn later.
        """
        if not self.comm.distributed:
            return
        for i, m in enumerate(self.net.modules()):
            key = [int(seed), 0xD15, self.comm.rank, i]
            reseed = getattr(m, "reseed", None)
            if callable(reseed):
                reseed(key)
            if getattr(m, "_rng", None) is not None:
                m._rng = np.random.default_rng(key)


__all__ = ["broadcast_state", "broadcast_buffers", "allreduce_gradients", "GradientAllreduce", "DataParallel"]
