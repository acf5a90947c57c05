"""JSON-able snapshots of NumPy random generators, for checkpoints that resume bit for bit.

``rng_state(gen)`` is ``gen.bit_generator.state`` made JSON-safe: Python ints stay ints (JSON
has no size limit on integers, so PCG64's 128-bit state survives ``json.dumps``/``loads``), and
any array in the state (MT19937's key) becomes ``{"__ndarray__": [...], "dtype": "uint32"}``.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def to_jsonable(v: Any) -> Any:
    """Plain JSON types from NumPy arrays/scalars inside nested dicts and lists (generator states)."""
    if isinstance(v, np.ndarray):
        return {"__ndarray__": v.tolist(), "dtype": v.dtype.str}
    if isinstance(v, dict):
        return {str(k): to_jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def from_jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        if "__ndarray__" in v:
            return np.asarray(v["__ndarray__"], dtype=np.dtype(v["dtype"]))
        return {k: from_jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_jsonable(x) for x in v]
    return v


def rng_state(gen: np.random.Generator) -> dict[str, Any]:
    """The state of ``gen`` as a JSON-able dict (a copy: later draws do not change it).

    Example:
        >>> g = np.random.default_rng(0); s = rng_state(g); a = g.random()
        >>> set_rng_state(g, s); g.random() == a
        True
    """
    if not isinstance(gen, np.random.Generator):
        raise TypeError(f"rng_state: expected a numpy.random.Generator, got {type(gen).__name__}")
    return to_jsonable(gen.bit_generator.state)


def set_rng_state(gen: np.random.Generator, state: dict[str, Any]) -> None:
    """Restore ``gen`` to a state from :func:`rng_state` (in place).

    Raises:
        ValueError: the state is for another bit generator (e.g. MT19937 state for PCG64) or is
            malformed.
    """
    if not isinstance(gen, np.random.Generator):
        raise TypeError(f"set_rng_state: expected a numpy.random.Generator, got {type(gen).__name__}")
    name = type(gen.bit_generator).__name__
    if not isinstance(state, dict) or state.get("bit_generator") != name:
        got = state.get("bit_generator") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"set_rng_state: the state is for {got!r} but the generator uses {name}; "
                         "create the generator with the same bit generator before restoring")
    try:
        gen.bit_generator.state = from_jsonable(state)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"set_rng_state: malformed {name} state ({e})") from None


__all__ = ["rng_state", "set_rng_state", "to_jsonable", "from_jsonable"]
