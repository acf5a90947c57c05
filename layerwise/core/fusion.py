"""Build-time fusion: a pass over a Net's nodes that replaces runs of adjacent layers by one
fused layer (oneDNN's post-op fusion, XLA's producer-consumer fusion, at this project's scale).

A *rule* looks at the node where a run may start and returns a ``Match`` (the fused layer
and how many nodes it covers) or None; the first rule that matches wins. Rules live with
the layers they know (``layerwise.layers.fused``, the DenseNet models) and register here,
so the protocol itself knows no layer types.

A fused layer is an ordinary Layer (``setup``/``_forward``/``_backward``, state only in
its cache) that reads and updates the params and buffers of the layers it replaces: they
stay the Net's children, so names, state dicts and checkpoints do not change. The Net
runs the *plan* (a list of ``Step``): one step per fused run or unfused node.

A run of nodes is fusible only when each intermediate blob is read by the next node alone
and is not an output of the net: nothing else may need a blob that a fused step never
materialises. Where a rule recognises a pattern but its fused form cannot run (for example
a dense block with dropout), it returns a reason, which the Net records in
``fusion_report`` and logs (logger ``layerwise.fusion``): there is no silent fallback.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..functional.workspace import Workspace
from .layer import Layer, NamedParams

log = logging.getLogger("layerwise.fusion")


@dataclass
class Match:
    """What a rule found: ``layer`` replaces ``length`` nodes starting at the rule's node; or,
    with ``layer`` None, ``reason`` says why a recognised pattern is left unfused."""

    layer: Layer | None
    length: int = 1
    reason: str = ""


@dataclass
class Step:
    """One entry of a Net's plan: a node's own layer, or a fused layer over several nodes."""

    name: str
    layer: Layer
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: tuple[Any, ...] = field(default_factory=tuple)   # the Net's nodes this step runs

    @property
    def fused(self) -> bool:
        return len(self.nodes) != 1 or self.nodes[0].layer is not self.layer


# A rule: (nodes, i, consumers, out_names) -> Match | None.
Rule = Callable[[Sequence[Any], int, dict, frozenset], "Match | None"]
_RULES: list[tuple[str, Rule]] = []


def register_rule(name: str, rule: Rule) -> Rule:
    """Add a fusion rule (tried in registration order); ``name`` appears in reports."""
    if any(n == name for n, _ in _RULES):
        raise ValueError(f"fusion rule {name!r} is already registered")
    _RULES.append((name, rule))
    return rule


def rules() -> list[str]:
    return [n for n, _ in _RULES]


def chain(nodes: Sequence[Any], i: int, types: Sequence[type], consumers: dict, out_names: frozenset) -> bool:
    """Whether nodes[i], nodes[i+1], ... are layers of ``types`` (isinstance), each reading the
    single output of the one before, that output read by no other node and not a net output."""
    if i + len(types) > len(nodes):
        return False
    for k, t in enumerate(types):
        node = nodes[i + k]
        if not isinstance(node.layer, t):
            return False
        if k + 1 < len(types):
            if len(node.outputs) != 1:
                return False
            b = node.outputs[0]
            nxt = nodes[i + k + 1]
            if b in out_names or consumers.get(b, 0) != 1 or b not in nxt.inputs:
                return False
    return True


def plan(nodes: Sequence[Any], out_names: Sequence[str], enabled: bool = True) -> tuple[list[Step], list[str]]:
    """The steps that run ``nodes``; and the report (one line per fusion made or declined)."""
    consumers: dict[str, int] = {}
    for node in nodes:
        for b in node.inputs:
            consumers[b] = consumers.get(b, 0) + 1
    outs = frozenset(out_names)
    steps: list[Step] = []
    report: list[str] = []
    i = 0
    while i < len(nodes):
        fused: Layer | None = None
        length = 1
        if enabled:
            for rname, rule in _RULES:
                m = rule(nodes, i, consumers, outs)
                if m is None:
                    continue
                if m.layer is None:
                    line = f"{nodes[i].name}: {rname} not fused: {m.reason}"
                    report.append(line)
                    log.info(line)
                    continue
                fused, length = m.layer, m.length
                report.append(f"{'+'.join(n.name for n in nodes[i:i + m.length])}: {rname}")
                break
        if fused is None:
            node = nodes[i]
            steps.append(Step(node.name, node.layer, node.inputs, node.outputs, (node,)))
            i += 1
            continue
        run = tuple(nodes[i:i + length])
        inputs: list[str] = list(run[0].inputs)
        for k in range(1, len(run)):
            inputs += [b for b in run[k].inputs if b != run[k - 1].outputs[0]]
        name = "+".join(n.name for n in run)
        fused.name = name
        steps.append(Step(name, fused, tuple(inputs), run[-1].outputs, run))
        i += length
    return steps, report


__all__ = ["Match", "Step", "register_rule", "rules", "chain", "plan"]


class FusedLayer(Layer):
    """Base of the fused layers: one forward and one backward over the params and buffers of
    ``parts`` (the layers it replaces, which stay the Net's children). Its train/eval mode is
    that of its parts (the Net's ``train()``/``eval()`` reach the parts).

    ``workspace``: scratch reused across steps (``functional.workspace``); a Net hands its own
    to every fused layer of its plan (one per Net tree: they run one at a time), and frees it
    in eval mode. A fused layer used on its own has a workspace of its own."""

    num_inputs: int | None = None

    def __init__(self, *parts: Layer, name: str | None = None) -> None:
        self.parts = parts
        self.workspace = Workspace()
        super().__init__(name=name or "+".join(p.name for p in parts))

    @property
    def training(self) -> bool:
        return self.parts[0].training

    @training.setter
    def training(self, mode: bool) -> None:  # the mode lives in the parts
        pass

    @property
    def cache_enabled(self) -> bool:
        return self.parts[0].cache_enabled

    @cache_enabled.setter
    def cache_enabled(self, mode: bool) -> None:
        pass

    def _check_dtype(self, xs) -> None:
        for p in self.parts:
            p._check_dtype(xs[:1])

    # The parts own params, buffers and modes; a fused layer used on its own exposes them
    # (a Net never sees them twice: the fused layer is not one of its children).
    def named_params(self, prefix: str = "") -> NamedParams:
        out = NamedParams(owner=self)
        for p in self.parts:
            out.update(p.named_params(prefix if len(self.parts) == 1 else f"{prefix}{p.name}."))
        return out

    def named_buffers(self, prefix: str = "") -> dict:
        out: dict = {}
        for p in self.parts:
            out.update(p.named_buffers(prefix if len(self.parts) == 1 else f"{prefix}{p.name}."))
        return out

    def train(self, mode: bool = True) -> FusedLayer:
        for p in self.parts:
            p.train(mode)
        return self

    def eval(self, grad: bool = False) -> FusedLayer:
        for p in self.parts:
            p.eval(grad)
        return self


__all__ += ["FusedLayer"]
