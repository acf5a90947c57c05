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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..backend import Array, Shape, get_array_module
from .layer import Layer, LossLayer


@dataclass
class Node:
    name: str
    layer: Layer
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


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


class Net(Layer):
    """A graph of layers. A Net is itself a Layer (it can be a node of another Net).

    Args:
        inputs: names of the input blobs, in the order ``forward`` takes them.
        outputs: names of the blobs ``forward`` returns (default: the outputs of the
            last layer added).
        seed: seed of the generator the fillers draw from when the net is set up.
    """

    num_inputs = None

    def __init__(self, inputs: str | Sequence[str] = ("data",), outputs: str | Sequence[str] | None = None,
                 *, seed: int = 0, name: str | None = None) -> None:
        super().__init__(name=name or "net")
        self.input_names = _names(inputs)
        self._output_names = _names(outputs)
        self.nodes: list[Node] = []
        self._produced = set(self.input_names)
        self.seed = seed
        self.blob_shapes: dict[str, Shape] = {}

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
        return self._out_shape

    def _check_dtype(self, xs) -> None:  # children check their own inputs
        return None

    # ------------------------------------------------------------ compute phase
    def _forward(self, *xs: Array):
        blobs: dict[str, Array] = dict(zip(self.input_names, xs))
        for node in self.nodes:
            ys = node.layer.forward(*[blobs[b] for b in node.inputs])
            for b, y in zip(node.outputs, _as_tuple(ys, len(node.outputs))):
                blobs[b] = y
        outs = tuple(blobs[b] for b in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    def backward(self, *dys: Array):
        """Back-propagate. With no arguments, every loss layer in the net starts with its
        ``loss_weight``; otherwise ``dys`` are the gradients of the net's outputs."""
        return super().backward(*dys)

    def _backward(self, *dys: Array):
        if dys and len(dys) != len(self.output_names):
            raise self.error(f"backward() got {len(dys)} gradient(s) for {len(self.output_names)} output(s) "
                             f"{list(self.output_names)}; pass one per output (None where there is none)")
        if not any(d is not None for d in dys) and not any(
                isinstance(n.layer, LossLayer) and n.layer._forwarded for n in self.nodes):
            raise self.error("backward() with no gradient needs a loss layer in the net; pass the gradient "
                             f"of each output {list(self.output_names)}, e.g. net.backward(loss.backward())")
        grads: dict[str, Array] = {}
        for b, dy in zip(self.output_names, dys):
            if dy is not None:
                grads[b] = dy
        for node in reversed(self.nodes):
            layer = node.layer
            if not layer._forwarded:
                continue
            douts = [grads.get(b) for b in node.outputs]
            if isinstance(layer, LossLayer):
                dxs = layer.backward(douts[0])  # None: start with loss_weight
            elif all(d is None for d in douts):
                layer.cache.clear()
                layer._forwarded = False
                continue
            else:
                if any(d is None for d in douts):  # some outputs unused downstream: zero grads
                    ref = next(d for d in douts if d is not None)
                    xp = get_array_module(ref)
                    douts = [d if d is not None else xp.zeros(self.blob_shapes[b], ref.dtype)
                             for d, b in zip(douts, node.outputs)]
                dxs = layer.backward(*douts)
            for b, dx in zip(node.inputs, _as_tuple(dxs, len(node.inputs))):
                if dx is None:
                    continue
                if b in grads:
                    grads[b] = grads[b] + dx  # fan-out: a blob read twice gets the sum
                else:
                    grads[b] = dx
        dins = tuple(grads.get(b) for b in self.input_names)
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


class Sequential(Net):
    """A chain of layers: the output of each is the input of the next.

    Layers are named ``"0", "1", ...`` like ``torch.nn.Sequential``, so parameter names
    (``0.weight``) match PyTorch's and weights move between the two by name.
    """

    def __init__(self, *layers: Layer, seed: int = 0, name: str | None = None) -> None:
        super().__init__(inputs=("x",), seed=seed, name=name or "sequential")
        for layer in layers:
            self.append(layer)

    def append(self, layer: Layer) -> Layer:
        i = str(len(self.nodes))
        return self.add(layer, outputs=f"blob{i}", name=i)

    def __iter__(self):
        return iter(n.layer for n in self.nodes)

    def __getitem__(self, i: int | str) -> Layer:
        return self._children[str(i)]
