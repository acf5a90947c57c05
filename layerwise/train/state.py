"""Turning training state into checkpoint contents and back.

A checkpoint holds ``tensors`` (a flat ``dict[str, ndarray]``: weights, buffers, solver
slots, the data order) and ``meta`` (JSON: counters, random-generator states, the config),
so nothing is ever pickled. This module collects the generators of a model's layers.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core import Layer
from ..io.rng import from_jsonable
from ..io.rng import rng_state as generator_state
from ..io.rng import set_rng_state as set_generator_state
from ..io.rng import to_jsonable as jsonable


def named_modules(layer: Layer, prefix: str = "") -> Iterator[tuple[str, Layer]]:
    """(dotted path, layer) for a layer and all its descendants, depth first ("" = the root)."""
    yield prefix.rstrip("."), layer
    for name, child in layer.children().items():
        yield from named_modules(child, f"{prefix}{name}.")


def layer_rng_states(net: Layer) -> dict[str, Any]:
    """The random state of every layer that has one (Dropout's mask generator, the net's own)."""
    out: dict[str, Any] = {}
    for path, m in named_modules(net):
        getter = getattr(m, "rng_state", None)
        if callable(getter):
            out[path] = jsonable(getter())
        elif (rng := getattr(m, "_rng", None)) is not None:
            out[path] = generator_state(rng)
    return out


def set_layer_rng_states(net: Layer, states: dict[str, Any]) -> None:
    modules = dict(named_modules(net))
    for path, st in states.items():
        m = modules.get(path)
        if m is None:
            raise ValueError(f"checkpoint holds a random state for layer {path!r}, which this model does not have; "
                             "build the same model (same config) before resuming")
        setter = getattr(m, "set_rng_state", None)
        if callable(setter):
            setter(from_jsonable(st))
        else:
            if m._rng is None:
                m._rng = np.random.default_rng()
            set_generator_state(m._rng, st)


__all__ = ["named_modules", "layer_rng_states", "set_layer_rng_states", "generator_state", "set_generator_state",
           "jsonable", "from_jsonable"]
