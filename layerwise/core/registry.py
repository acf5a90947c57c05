"""Registries: the type-name string is the only link between a config and a class.

    @register("layer", "ReLU")
    class ReLU(Layer): ...

    build("layer", "ReLU", negative_slope=0.1)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

_REGISTRIES: dict[str, dict[str, Any]] = {}


def register(kind: str, *names: str) -> Callable:
    """Class/function decorator: file ``obj`` under ``kind`` by its name and any aliases."""

    def deco(obj):
        table = _REGISTRIES.setdefault(kind, {})
        for n in names or (obj.__name__,):
            key = n.lower()
            if key in table and table[key] is not obj:
                raise ValueError(f"register: {kind} {n!r} is already registered to {table[key]!r}")
            table[key] = obj
        return obj

    return deco


def lookup(kind: str, name: str) -> Any:
    table = _REGISTRIES.get(kind, {})
    try:
        return table[name.lower()]
    except KeyError:
        known = ", ".join(sorted(table)) or "(none)"
        raise KeyError(f"unknown {kind} {name!r}; known {kind}s: {known}") from None


def registered(kind: str) -> list[str]:
    return sorted(_REGISTRIES.get(kind, {}))


def build(kind: str, name: str, **kwargs: Any) -> Any:
    return lookup(kind, name)(**kwargs)
