"""Per-layer forward and backward times, like ``caffe time``.

    rows = time_layers(net, x, iters=10)
    print(format_timing(rows))

Each layer's ``forward`` and ``backward`` is timed on its own, node by node in the Net's order
(nested Nets are expanded to their layers, ``depth`` levels deep), after ``warmup`` untimed
passes; times are the mean over ``iters`` passes, in milliseconds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import Array, get_array_module
from ..core import Layer, LossLayer, Net


@dataclass
class LayerTime:
    name: str          # dotted path of the layer in the net
    type: str          # class name
    forward_ms: float  # mean forward time per pass
    backward_ms: float  # mean backward time per pass


def _tuple(y: Any, n: int) -> tuple:
    if isinstance(y, (tuple, list)):
        return tuple(y) + (None,) * (n - len(y))
    return (y,) + (None,) * (n - 1)


def _sync(x: Any) -> None:
    xp = get_array_module(x)
    if xp is not np:  # pragma: no cover - GPU only
        xp.cuda.get_current_stream().synchronize()


class _Timer:
    def __init__(self) -> None:
        self.fwd: dict[str, float] = {}
        self.bwd: dict[str, float] = {}
        self.types: dict[str, str] = {}
        self.order: list[str] = []

    def add(self, table: dict[str, float], key: str, layer: Layer, dt: float) -> None:
        if key not in self.types:
            self.types[key] = type(layer).__name__
            self.order.append(key)
        table[key] = table.get(key, 0.0) + dt


def _expand(layer: Layer, depth: int | None) -> bool:
    return isinstance(layer, Net) and (depth is None or depth > 0)


def _forward(net: Net, xs: tuple, prefix: str, depth: int | None, t: _Timer, record: bool) -> tuple:
    blobs = dict(zip(net.input_names, xs))
    for node in net.nodes:
        ins = [blobs[b] for b in node.inputs]
        key = prefix + node.name
        if _expand(node.layer, depth):
            node.layer._in_shapes = tuple(tuple(x.shape) for x in ins)  # the Net is set up by its parent
            ys = _forward(node.layer, tuple(ins), key + ".", None if depth is None else depth - 1, t, record)
            ys = ys[0] if len(ys) == 1 else ys
        else:
            t0 = time.perf_counter()
            ys = node.layer.forward(*ins)
            _sync(ys[0] if isinstance(ys, tuple) else ys)
            if record:
                t.add(t.fwd, key, node.layer, time.perf_counter() - t0)
        for b, y in zip(node.outputs, _tuple(ys, len(node.outputs))):
            blobs[b] = y
    return tuple(blobs[b] for b in net.output_names)


def _backward(net: Net, dys: tuple, prefix: str, depth: int | None, t: _Timer, record: bool) -> tuple:
    grads = {b: d for b, d in zip(net.output_names, dys) if d is not None}
    for node in reversed(net.nodes):
        layer, key = node.layer, prefix + node.name
        douts = [grads.get(b) for b in node.outputs]
        if all(d is None for d in douts) and not isinstance(layer, LossLayer):
            layer.cache.clear()
            layer._forwarded = False
            continue
        if any(d is None for d in douts) and not isinstance(layer, LossLayer):
            ref = next(d for d in douts if d is not None)
            xp = get_array_module(ref)
            douts = [d if d is not None else xp.zeros(net.blob_shapes[b], ref.dtype)
                     for d, b in zip(douts, node.outputs)]
        if _expand(layer, depth):
            dxs = _backward(layer, tuple(douts), key + ".", None if depth is None else depth - 1, t, record)
            dxs = dxs[0] if len(dxs) == 1 else dxs
        else:
            t0 = time.perf_counter()
            dxs = layer.backward(douts[0]) if isinstance(layer, LossLayer) else layer.backward(*douts)
            if dxs is not None:
                _sync(dxs[0] if isinstance(dxs, tuple) else dxs)
            if record:
                t.add(t.bwd, key, layer, time.perf_counter() - t0)
        for b, dx in zip(node.inputs, _tuple(dxs, len(node.inputs))):
            if dx is not None:
                grads[b] = grads[b] + dx if b in grads else dx
    return tuple(grads.get(b) for b in net.input_names)


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
    rng_states = [(m, m.rng_state()) for m in net.modules() if hasattr(m, "rng_state")]
    net.train() if backward else net.eval()
    rng = np.random.default_rng(0)
    xp = get_array_module(x)
    t = _Timer()
    try:
        for i in range(warmup + iters):
            record = i >= warmup
            outs = _forward(net, (x,), "", depth, t, record)
            if backward:
                dys = tuple(xp.asarray(rng.standard_normal(o.shape).astype(o.dtype)) for o in outs)
                _backward(net, dys, "", depth, t, record)
                net.zero_grad()
    finally:
        net.load_state_dict(saved_state)
        for p, g in zip(net.params(), saved_grads):
            p.grad[...] = g
        for m, st in rng_states:
            m.set_rng_state(st)
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
