"""Per-layer forward and backward times, like ``caffe time``.

    rows = time_layers(net, x, iters=10)
    print(format_timing(rows))

Each step of the Net's plan is timed on its own through the Net's hooks (``Net.hooks``: the
same walk that training runs, so a fused step such as ``bn1+relu1`` is one row; nested Nets
are expanded ``depth`` levels deep), after ``warmup`` untimed passes; times are the mean over
``iters`` passes, in milliseconds.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import Array, get_array_module
from ..core import Layer, Net, NetHook, Step


@dataclass
class LayerTime:
    name: str          # dotted path of the layer in the net
    type: str          # class name
    forward_ms: float  # mean forward time per pass
    backward_ms: float  # mean backward time per pass


def _sync(arrays: tuple) -> None:
    x = next((a for a in arrays if a is not None), None)
    if x is None:
        return
    xp = get_array_module(x)
    if xp is not np:  # pragma: no cover - GPU only
        xp.cuda.get_current_stream().synchronize()


class _Timer(NetHook):
    """Times every leaf step of the Net's own walk (``Net.hooks``): fused steps appear as one row."""

    def __init__(self) -> None:
        self.record = False
        self.fwd: dict[str, float] = {}
        self.bwd: dict[str, float] = {}
        self.types: dict[str, str] = {}
        self.order: list[str] = []
        self._t0: dict[str, float] = {}

    def _start(self, path: str, leaf: bool) -> None:
        if leaf:
            self._t0[path] = time.perf_counter()

    def _stop(self, table: dict, path: str, step: Step, arrays: tuple, leaf: bool) -> None:
        if not leaf:
            return
        _sync(arrays)
        dt = time.perf_counter() - self._t0.pop(path)
        if not self.record:
            return
        if path not in self.types:
            self.types[path] = type(step.layer).__name__
            self.order.append(path)
        table[path] = table.get(path, 0.0) + dt

    def before_forward(self, path, step, xs, leaf):
        self._start(path, leaf)

    def after_forward(self, path, step, ys, leaf):
        self._stop(self.fwd, path, step, ys, leaf)

    def before_backward(self, path, step, dys, leaf):
        self._start(path, leaf)

    def after_backward(self, path, step, dxs, leaf):
        self._stop(self.bwd, path, step, dxs, leaf)


def time_layers(net: Layer, x: Array, iters: int = 10, warmup: int = 1, depth: int | None = None,
                backward: bool = True) -> list[LayerTime]:
    """Mean forward/backward milliseconds per layer over ``iters`` passes (Caffe's ``time``).

    Args:
        net: a Net (a plain Layer is timed as a whole).
        x: an input batch, e.g. ``np.zeros((64, 3, 32, 32), np.float32)``.
        iters: timed passes; warmup: untimed passes first (buffers, caches).
        depth: how many levels of nested Nets to expand (None: all, 0: top-level nodes only).
        backward: also time the backward pass (with a random output gradient), in train mode.

    Returns:
        One LayerTime per layer in forward order; the sum is the whole pass (plus the Net's
        small bookkeeping, not counted). ``format_timing(rows)`` prints a table.
    """
    if iters < 1:
        raise ValueError(f"time_layers: iters must be >= 1, got {iters}")
    if not isinstance(net, Net):
        wrapper = Net(inputs="data", name="timed")
        wrapper.add(net, name=net.name)
        net = wrapper
    net.setup(tuple(x.shape), dtype=x.dtype if x.dtype.kind == "f" else None)
    # Timing runs real passes (BN running stats move, Dropout draws, grads accumulate): save what
    # they change and put it back afterwards, so timing a model does not alter it.
    modes = [(m, m.training, m.cache_enabled) for m in net.modules()]
    saved_state = net.state_dict()
    saved_grads = [p.grad.copy() for p in net.params()]
    rng_states: list[tuple[Callable[[Any], Any], Any]] = []  # (set_rng_state, the state to put back)
    for m in net.modules():
        get, put = getattr(m, "rng_state", None), getattr(m, "set_rng_state", None)
        if callable(get) and callable(put):
            rng_states.append((put, get()))
    net.train() if backward else net.eval()
    rng = np.random.default_rng(0)
    xp = get_array_module(x)
    t = _Timer()
    try:
        with net.hooks(t, depth=depth):
            for i in range(warmup + iters):
                t.record = i >= warmup
                outs = net.forward(x)
                outs = outs if isinstance(outs, tuple) else (outs,)
                if backward:
                    dys = tuple(xp.asarray(rng.standard_normal(o.shape).astype(o.dtype)) for o in outs)
                    net.backward(*dys)
                    net.zero_grad()
    finally:
        net.load_state_dict(saved_state)
        for p, g in zip(net.params(), saved_grads):
            p.grad[...] = g
        for put, st in rng_states:
            put(st)
        for m, training, caching in modes:
            m.training, m.cache_enabled = training, caching
            m.cache.clear()
            m._forwarded = False
    return [LayerTime(k, t.types[k], 1e3 * t.fwd.get(k, 0.0) / iters, 1e3 * t.bwd.get(k, 0.0) / iters)
            for k in t.order]


def format_timing(rows: list[LayerTime], batch: int | None = None) -> str:
    """A ``caffe time``-style table with totals (and images/s when ``batch`` is given)."""
    w = max([len(r.name) for r in rows] + [5])
    tw = max([len(r.type) for r in rows] + [4])
    lines = [f"{'layer':<{w}}  {'type':<{tw}}  {'forward ms':>11}  {'backward ms':>11}"]
    for r in rows:
        lines.append(f"{r.name:<{w}}  {r.type:<{tw}}  {r.forward_ms:>11.3f}  {r.backward_ms:>11.3f}")
    f, b = sum(r.forward_ms for r in rows), sum(r.backward_ms for r in rows)
    lines.append(f"{'total':<{w}}  {'':<{tw}}  {f:>11.3f}  {b:>11.3f}")
    lines.append(f"forward-backward: {f + b:.3f} ms per pass")
    if batch:
        lines.append(f"throughput: {batch / max(f, 1e-9) * 1e3:.1f} img/s forward, "
                     f"{batch / max(f + b, 1e-9) * 1e3:.1f} img/s forward+backward")
    return "\n".join(lines)


__all__ = ["time_layers", "format_timing", "LayerTime"]
