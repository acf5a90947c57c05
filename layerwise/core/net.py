"""Net: a directed graph of layers joined by named blobs (Caffe's bottoms and tops).

    net = Net(inputs=["data", "label"])
    net.add(Linear(64), inputs="data", outputs="fc1", name="fc1")
    net.add(ReLU(), inputs="fc1", outputs="relu1", name="relu1")
    net.add(Linear(10), inputs="relu1", outputs="logits", name="fc2")
    net.add(SoftmaxCrossEntropyLoss(), inputs=["logits", "label"], outputs="loss", name="loss")

A layer may only read blobs that exist when it is added, so the order of ``add`` is a
topological order: forward runs it front to back, backward back to front. A blob read
by several layers receives the SUM of their gradients (Caffe's split layer, micrograd's
``+=``); this is what DenseNet's concatenations rely on.

Execution. ``setup`` (shapes only) also makes the *plan*: the fusion pass
(``core/fusion.py``) replaces runs of adjacent layers such as BatchNorm2d + ReLU by one
fused layer over the same params, so a network composed of public layers runs fast
without being written differently; ``Net(fuse=False)`` or ``net.set_fusion(False)``
runs every layer on its own (the readable reference the fused forms are tested against),
and ``net.fusion_report`` says what was fused and what was not, and why.

Gradients are computed only where someone needs them (Caffe's ``propagate_down``): before
back-propagating, the Net marks each blob whose gradient leads to a trained param or to a
net input that needs one, tells each layer which of its inputs need gradients
(``Layer.propagate_down``) and skips layers behind which nothing is trained.

Hooks. ``with net.hooks(h):`` calls ``h.before_forward / after_forward / before_backward /
after_backward(path, step, arrays)`` around every step, nested Nets included (``depth``
levels): per-layer timing, NaN/Inf diagnosis and profiling all use this one walk.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import Array, Shape, get_array_module
from ..functional.workspace import Workspace
from . import fusion
from .fusion import FusedLayer, Step
from .layer import Layer, LossLayer


@dataclass
class Node:
    name: str
    layer: Layer
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class NetHook:
    """Base class of Net hooks: override the calls you need (each gets the step's dotted
    ``path``, the ``Step`` and a tuple of arrays; ``leaf`` is False for a nested Net whose own
    steps are reported too)."""

    def before_forward(self, path: str, step: Step, xs: tuple, leaf: bool) -> None: ...

    def after_forward(self, path: str, step: Step, ys: tuple, leaf: bool) -> None: ...

    def before_backward(self, path: str, step: Step, dys: tuple, leaf: bool) -> None: ...

    def after_backward(self, path: str, step: Step, dxs: tuple, leaf: bool) -> None: ...


def _names(x: str | Sequence[str] | None) -> tuple[str, ...]:
    if x is None:
        return ()
    if isinstance(x, str):
        return (x,)
    return tuple(x)


def _as_tuple(y: Any, n: int) -> tuple:
    if isinstance(y, (tuple, list)):
        return tuple(y) + (None,) * (n - len(y))
    return (y,) + (None,) * (n - 1)


def _fusion_default() -> bool:
    return os.environ.get("LAYERWISE_NO_FUSION", "") in ("", "0")


class Net(Layer):
    """A graph of layers. A Net is itself a Layer (it can be a node of another Net).

    Args:
        inputs: names of the input blobs, in the order ``forward`` takes them.
        outputs: names of the blobs ``forward`` returns (default: the outputs of the
            last layer added).
        seed: seed of the generator the fillers draw from when the net is set up.
        fuse: run the fused forms of adjacent layers (default; ``LAYERWISE_NO_FUSION=1``
            switches it off everywhere).
    """

    num_inputs = None

    def __init__(self, inputs: str | Sequence[str] = ("data",), outputs: str | Sequence[str] | None = None,
                 *, seed: int = 0, fuse: bool | None = None, name: str | None = None) -> None:
        super().__init__(name=name or "net")
        self.input_names = _names(inputs)
        self._output_names = _names(outputs)
        self.nodes: list[Node] = []
        self._produced = set(self.input_names)
        self.seed = seed
        self.blob_shapes: dict[str, Shape] = {}
        self._steps: list[Step] | None = None
        self._fuse = _fusion_default() if fuse is None else bool(fuse)
        self.fusion_report: list[str] = []
        self._hooks: list[tuple[Any, int | None, str]] = []
        self.workspace = Workspace()    # scratch of the fused layers of this Net (they run one at a time)
        self._output_conv: Layer | None = None   # the convolution that reads this Net's output (Net above)

    # ----------------------------------------------------------------- wiring
    def add(self, layer: Layer, inputs: str | Sequence[str] | None = None,
            outputs: str | Sequence[str] | None = None, name: str | None = None) -> Layer:
        """Append a layer. ``inputs`` default to the previous layer's outputs (or the net's
        inputs for the first layer); ``outputs`` default to the layer's name."""
        name = name or f"{type(layer).__name__.lower()}{len(self.nodes)}"
        ins = _names(inputs) or (self.nodes[-1].outputs if self.nodes else self.input_names)
        outs = _names(outputs) or (name,)
        for b in ins:
            if b not in self._produced:
                raise self.error(
                    f"layer {name!r} reads blob {b!r}, which no earlier layer produces and is not a net input; "
                    f"known blobs: {sorted(self._produced)}"
                )
        for b in outs:
            if b in self._produced:
                raise self.error(f"layer {name!r} writes blob {b!r}, which already exists; give each top a new name")
        layer.name = name
        self.add_child(name, layer)
        self.nodes.append(Node(name, layer, ins, outs))
        self._produced.update(outs)
        self._in_shapes = None
        self._steps = None
        return layer

    @property
    def output_names(self) -> tuple[str, ...]:
        if self._output_names:
            return self._output_names
        return self.nodes[-1].outputs if self.nodes else self.input_names

    def __getitem__(self, name: str) -> Layer:
        return self._children[name]

    def __len__(self) -> int:
        return len(self.nodes)

    # -------------------------------------------------------------- shape phase
    def _check_arity(self, n: int) -> None:
        if n != len(self.input_names):
            raise self.error(f"expected {len(self.input_names)} input(s) {list(self.input_names)}, got {n}")

    def setup(self, *in_shapes: Shape, rng: np.random.Generator | None = None, dtype: Any = None):
        self._check_arity(len(in_shapes))
        if rng is not None:
            self._rng = rng
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        shapes: dict[str, Shape] = {b: tuple(int(d) for d in s) for b, s in zip(self.input_names, in_shapes)}
        for node in self.nodes:
            out = node.layer.setup(*[shapes[b] for b in node.inputs], rng=self._rng, dtype=dtype)
            outs = (out,) if len(node.outputs) == 1 else tuple(out)
            for b, s in zip(node.outputs, outs):
                shapes[b] = tuple(s)
        self._built = True
        self.blob_shapes = shapes
        self._in_shapes = tuple(shapes[b] for b in self.input_names)
        outs = tuple(shapes[b] for b in self.output_names)
        self._out_shape = outs[0] if len(outs) == 1 else outs
        self._steps = None                       # re-planned on the next forward
        return self._out_shape

    def _check_dtype(self, xs) -> None:  # children check their own inputs
        return None

    # ----------------------------------------------------------------- the plan
    @property
    def steps(self) -> list[Step]:
        """What forward runs, in order: one Step per fused run of nodes or unfused node."""
        if self._steps is None:
            self._steps, self.fusion_report = fusion.plan(self.nodes, self.output_names, self.fuse)
            self._share_workspace(self.workspace)
            self._link_outputs()
        return self._steps

    def _share_workspace(self, ws: Workspace) -> None:
        """Use ``ws`` for this Net's fused layers and those of the Nets inside it: one
        workspace per Net tree (its layers run one at a time), freed at once in eval mode."""
        self.workspace = ws
        for step in self._steps or ():
            if isinstance(step.layer, FusedLayer):
                step.layer.workspace = ws
            elif isinstance(step.layer, Net):
                step.layer._share_workspace(ws)

    def _link_outputs(self) -> None:
        """Tell each step which convolution reads its output (``Layer.set_output_conv``), so a
        step that can write its output into that convolution's input grid does (no copy).
        The readers are asked through ``Layer.input_conv``, which a nested Net answers from
        its own plan, so the hand-over crosses block boundaries (ResNet's blocks are Nets).
        A blob that is an output of this Net is linked by the Net above (``set_output_conv``)."""
        steps = self._steps or []
        readers: dict[str, list[tuple[Step, int]]] = {}
        for step in steps:
            for k, b in enumerate(step.inputs):
                readers.setdefault(b, []).append((step, k))
        outs = set(self.output_names)
        for step in steps:
            if len(step.outputs) != 1:
                continue
            b = step.outputs[0]
            conv = self._output_conv if b in outs else None
            if b not in outs:
                for reader, k in readers.get(b, ()):
                    conv = reader.layer.input_conv(k)
                    if conv is not None:
                        break
            step.layer.set_output_conv(conv)

    def input_conv(self, i: int = 0) -> Layer | None:
        b = self.input_names[i]
        for step in self.steps:
            for k, name in enumerate(step.inputs):
                if name == b:
                    conv = step.layer.input_conv(k)
                    if conv is not None:
                        return conv
        return None

    def set_output_conv(self, conv: Layer | None) -> None:
        self._output_conv = conv if len(self.output_names) == 1 else None
        if self._steps is not None:
            self._link_outputs()

    @property
    def fuse(self) -> bool:
        """Whether this Net's plan uses the fused forms (changing it re-plans on the next forward)."""
        return self._fuse

    @fuse.setter
    def fuse(self, enabled: bool) -> None:
        self._fuse = bool(enabled)
        self._steps = None

    def replan(self) -> Net:
        """Forget the plans of this Net and the Nets inside it (made again on the next forward):
        call it after changing layers in place (e.g. converting their class)."""
        for m in self.modules():
            if isinstance(m, Net):
                m._steps = None
        return self

    def set_fusion(self, enabled: bool) -> Net:
        """Turn the fusion pass on or off for this Net and every Net inside it."""
        for m in self.modules():
            if isinstance(m, Net):
                m.fuse = enabled
        return self

    def eval(self, grad: bool = False) -> Layer:
        """Inference mode; also frees the fused layers' training scratch (inference keeps none)."""
        for m in self.modules():
            if isinstance(m, Net):
                m.workspace.clear()
        return super().eval(grad)

    # -------------------------------------------------------------------- hooks
    @contextlib.contextmanager
    def hooks(self, *hooks: Any, depth: int | None = None) -> Iterator[Net]:
        """Call ``hooks`` around every step while the block runs; nested Nets are entered
        ``depth`` levels deep (None: all), and their steps are reported with dotted paths."""
        added = [(h, depth, "") for h in hooks]
        self._hooks = self._hooks + added
        try:
            yield self
        finally:
            self._hooks = [h for h in self._hooks if h not in added]

    def _child_hooks(self, step: Step, prefix: str) -> list:
        return [(h, None if d is None else d - 1, f"{p}{prefix}{step.name}.") for h, d, p in self._hooks
                if d is None or d > 0]

    def _call_hooks(self, what: str, step: Step, arrays: tuple, leaf_of: dict) -> None:
        for h, _depth, p in self._hooks:
            fn = getattr(h, what, None)
            if fn is not None:
                fn(p + step.name, step, arrays, leaf_of[id(h)])

    def _run(self, step: Step, fn, args):
        """Run ``fn(*args)`` for ``step``; a nested Net inherits the hooks that reach into it."""
        layer = step.layer
        if not self._hooks or not isinstance(layer, Net):
            return fn(*args)
        inherited = self._child_hooks(step, "")
        saved = layer._hooks
        layer._hooks = saved + inherited
        try:
            return fn(*args)
        finally:
            layer._hooks = saved

    def _leaf(self, step: Step) -> dict:
        is_net = isinstance(step.layer, Net)
        return {id(h): not (is_net and (d is None or d > 0)) for h, d, _ in self._hooks}

    # ------------------------------------------------------------ compute phase
    def _forward(self, *xs: Array):
        blobs: dict[str, Array] = dict(zip(self.input_names, xs))
        hooked = bool(self._hooks)
        for step in self.steps:
            ins = [blobs[b] for b in step.inputs]
            if hooked:
                leaf = self._leaf(step)
                self._call_hooks("before_forward", step, tuple(ins), leaf)
                ys = self._run(step, step.layer.forward, ins)
                self._call_hooks("after_forward", step, _as_tuple(ys, len(step.outputs)), leaf)
            else:
                ys = step.layer.forward(*ins)
            for b, y in zip(step.outputs, _as_tuple(ys, len(step.outputs))):
                blobs[b] = y
        outs = tuple(blobs[b] for b in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    def backward(self, *dys: Array):
        """Back-propagate. With no arguments, every loss layer in the net starts with its
        ``loss_weight``; otherwise ``dys`` are the gradients of the net's outputs. Returns the
        gradient of each input (None for an input that needs none: see ``propagate_down``)."""
        return super().backward(*dys)

    def _mark_needed(self) -> dict[str, bool]:
        """Which blobs need a gradient; sets each step layer's ``propagate_down``."""
        need = {b: self.needs_input_grad(i) for i, b in enumerate(self.input_names)}
        for step in self.steps:
            prop = tuple(need.get(b, False) for b in step.inputs)
            step.layer.propagate_down = prop
            out = any(prop) or any(n.layer.needs_param_grads() for n in step.nodes)
            for b in step.outputs:
                need[b] = out
        return need

    def _backward(self, *dys: Array):
        if dys and len(dys) != len(self.output_names):
            raise self.error(f"backward() got {len(dys)} gradient(s) for {len(self.output_names)} output(s) "
                             f"{list(self.output_names)}; pass one per output (None where there is none)")
        steps = self.steps
        if not any(d is not None for d in dys) and not any(
                isinstance(s.layer, LossLayer) and s.layer._forwarded for s in steps):
            raise self.error("backward() with no gradient needs a loss layer in the net; pass the gradient "
                             f"of each output {list(self.output_names)}, e.g. net.backward(loss.backward())")
        need = self._mark_needed()
        grads: dict[str, Array] = {}
        # Sums of gradients (fan-out) go to recycled arrays of the workspace while training
        # (``Workspace.recycled``: one nobody references any more, else a new one), so they are
        # reused every step; fresh ones were about 15,000 page faults per ResNet-56 step. A sum
        # the caller keeps (a top Net's input gradient), or a hook, is never handed out again.
        recycle = self.workspace if self.training else None
        for b, dy in zip(self.output_names, dys):
            if dy is not None:
                grads[b] = dy
        hooked = bool(self._hooks)
        for step in reversed(steps):
            layer = step.layer
            if not layer._forwarded:
                continue
            douts = [grads.get(b) for b in step.outputs]
            if not isinstance(layer, LossLayer) and (all(d is None for d in douts)
                                                      or not any(need[b] for b in step.outputs)):
                layer.cache.clear()
                layer._forwarded = False
                continue
            if not isinstance(layer, LossLayer) and any(d is None for d in douts):
                ref = next(d for d in douts if d is not None)   # some outputs unused downstream: zero grads
                xp = get_array_module(ref)
                douts = [d if d is not None else xp.zeros(self.blob_shapes[b], ref.dtype)
                         for d, b in zip(douts, step.outputs)]
            args = douts[:1] if isinstance(layer, LossLayer) else douts
            if hooked:
                leaf = self._leaf(step)
                self._call_hooks("before_backward", step, tuple(args), leaf)
                dxs = self._run(step, layer.backward, args)
                self._call_hooks("after_backward", step, _as_tuple(dxs, len(step.inputs)), leaf)
            else:
                dxs = layer.backward(*args)
            dxs = _as_tuple(dxs, len(step.inputs))
            for b in step.outputs:               # this step has used its outputs' gradients: dead now
                grads.pop(b, None)
            for b, dx in zip(step.inputs, dxs):
                if dx is None or not need.get(b, False):
                    continue
                if b not in grads:
                    grads[b] = dx
                elif recycle is not None and _recyclable(grads[b], dx):
                    g = grads[b]                     # fan-out: a blob read twice gets the sum
                    xp = get_array_module(g)
                    grads[b] = _recycled_like(recycle, g, xp)
                    xp.add(g, dx, out=grads[b])
                else:
                    grads[b] = grads[b] + dx
        dins = tuple(grads.get(b) if need[b] else None for b in self.input_names)
        return dins[0] if len(dins) == 1 else dins

    # ----------------------------------------------------------------- helpers
    def summary_rows(self) -> list[tuple[str, str, Any, int]]:
        """(name, type, output shape, #params) per node; needs setup first."""
        rows = []
        for node in self.nodes:
            outs = [self.blob_shapes.get(b) for b in node.outputs]
            rows.append((node.name, type(node.layer).__name__, outs[0] if len(outs) == 1 else outs,
                         node.layer.num_params()))
        return rows


def _recycled_like(ws: Workspace, a: Array, xp: Any) -> Array:
    """A recycled array of ``a``'s shape and dtype with its axes in ``a``'s memory order."""
    order = sorted(range(a.ndim), key=lambda i: -abs(a.strides[i]))
    buf = ws.recycled(tuple(a.shape[i] for i in order), a.dtype, xp)
    return buf.transpose([order.index(i) for i in range(a.ndim)])


def _recyclable(g: Array, dx: Array) -> bool:
    """Whether ``g + dx`` may go to a recycled array: same shape and dtype, same array module."""
    return (g.shape == dx.shape and g.dtype == dx.dtype and g.ndim > 0
            and get_array_module(g) is get_array_module(dx))


class Sequential(Net):
    """A chain of layers: the output of each is the input of the next.

    Layers are named ``"0", "1", ...`` like ``torch.nn.Sequential``, so parameter names
    (``0.weight``) match PyTorch's and weights move between the two by name.
    """

    def __init__(self, *layers: Layer, seed: int = 0, fuse: bool | None = None, name: str | None = None) -> None:
        super().__init__(inputs=("x",), seed=seed, fuse=fuse, name=name or "sequential")
        for layer in layers:
            self.append(layer)

    def append(self, layer: Layer) -> Layer:
        i = str(len(self.nodes))
        return self.add(layer, outputs=f"blob{i}", name=i)

    def __iter__(self):
        return iter(n.layer for n in self.nodes)

    def __getitem__(self, i: int | str) -> Layer:
        return self._children[str(i)]
