"""ONNX import: an ONNX file (e.g. from ``torch.onnx.export``) becomes a trainable Net.

    net = load_onnx("resnet18.onnx")
    y = net.forward(x)            # equals onnxruntime's output
    net.train()                   # fine-tune with the solvers and the Trainer

Every node maps to one layerwise layer (constants fold into the layer that reads them: a
MatMul followed by Add of a constant is one Linear). Layer names come from the weights'
names where the exporter kept them (``layer1.0.conv1`` for torch's ``layer1.0.conv1.weight``),
so ``net.state_dict()`` keys match the source model's; otherwise from the node names.
docs/interop.md lists the operators and how each maps.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core import Layer, Net


class OnnxImportError(ValueError):
    """An ONNX file or node that cannot be imported: the message names the node, its op and the fix."""


SUPPORTED_OPS = sorted({
    "Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "PRelu", "Elu",
    "Selu", "Sigmoid", "Tanh", "Softplus", "Softsign", "HardSigmoid", "Gelu", "Abs", "Exp", "Log", "Clip",
    "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Concat", "Flatten",
    "Reshape", "Softmax", "LogSoftmax", "Dropout", "Identity", "Pad", "LRN", "Split", "Constant", "Sum", "Max",
    "Pow"})


class OnnxNet(Net):
    """The Net an ONNX graph becomes. ``onnx_blobs`` maps each ONNX value name to its blob."""

    def __init__(self, inputs, outputs, *, name: str | None = None) -> None:
        super().__init__(inputs=inputs, outputs=outputs, name=name or "onnx_net")
        self.onnx_blobs: dict[str, str] = {}


def _attrs(node) -> dict[str, Any]:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _sym_pads(pads) -> tuple[int, int] | None:
    """(ph, pw) for symmetric pads [t, l, b, r]; None when asymmetric."""
    if not pads:
        return (0, 0)
    t, l, b, r = (int(v) for v in pads)
    return (t, l) if (t, l) == (b, r) else None


class _Builder:
    def __init__(self, model, label: str) -> None:
        from onnx import numpy_helper
        self.label = label
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.alias: dict[str, str] = {}          # ONNX value -> internal blob
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.plan: list[tuple[Layer, list[str], list[str], str]] = []
        self.names: set[str] = set()
        self.consumers: dict[str, list] = {}
        for n in self.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.rng = np.random.default_rng(0)
        self.pending_bias: dict[str | int, tuple[Layer, Any]] = {}  # by node name, or id() when unnamed

    # --------------------------------------------------------------------------- helpers
    def where(self, node) -> str:
        return f"{self.label}: node {node.name or '(unnamed)'!r} (op {node.op_type})"

    def blob(self, onnx_name: str, node) -> str:
        if onnx_name in self.alias:
            return self.alias[onnx_name]
        if onnx_name in self.consts:
            raise OnnxImportError(f"{self.where(node)}: reads the constant {onnx_name!r} where an activation is "
                                  "expected; this pattern is not supported")
        raise OnnxImportError(f"{self.where(node)}: reads {onnx_name!r}, which no earlier node produces")

    def const(self, name: str, node, what: str) -> np.ndarray:
        if name not in self.consts:
            raise OnnxImportError(f"{self.where(node)}: {what} ({name!r}) must be a constant (an initializer or "
                                  "a Constant node); computed values are not supported")
        return self.consts[name]

    def layer_name(self, node, weight: str | None = None, suffix: str = "") -> str:
        """A unique layer name: the weight's module path, else torch's node scope, else op_index."""
        base = weight[: -len(".weight")] if weight and weight.endswith(".weight") else ""
        base = (base or _scope_path(node.name) or f"{node.op_type}_{len(self.plan)}") + suffix
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def add(self, layer: Layer, node, ins: list[str], weight: str | None = None, n_out: int = 1,
            onnx_outs: list[str] | None = None, suffix: str = "") -> Layer:
        name = self.layer_name(node, weight, suffix)
        outs = []
        onnx_outs = list(node.output)[:n_out] if onnx_outs is None else onnx_outs
        for o in onnx_outs:
            internal = o
            while internal in self.shapes:
                internal += "'"
            outs.append(internal)
        out = layer.setup(*[self.shapes[b] for b in ins], rng=self.rng)
        out = (out,) if n_out == 1 else tuple(out)
        for o, internal, s in zip(onnx_outs, outs, out):
            self.alias[o] = internal
            self.shapes[internal] = tuple(s)
        self.plan.append((layer, ins, outs, name))
        return layer

    @staticmethod
    def load(layer: Layer, pname: str, value: np.ndarray, where: str) -> None:
        p = layer._params[pname]
        v = np.asarray(value, dtype=np.float32)
        if v.size != p.size:
            raise OnnxImportError(f"{where}: {pname} has {v.size} values, expected shape {p.shape}")
        p.data[...] = v.reshape(p.shape)

    # ------------------------------------------------------------------------------ nodes
    def node(self, node) -> None:
        from .. import layers as L
        op, a, w = node.op_type, _attrs(node), self.where(node)
        inp = list(node.input)
        if op == "Constant":
            from onnx import numpy_helper
            if "value" not in a:
                raise OnnxImportError(f"{w}: only Constant nodes with a tensor 'value' are supported")
            self.consts[node.output[0]] = numpy_helper.to_array(a["value"])
            return
        if all(i in self.consts or not i for i in inp) and op not in ("Constant",):
            self._fold(node, a)
            return
        if op in ("Identity", "Dropout"):
            if op == "Dropout" and self.consumers.get(node.output[0]):
                ratio = float(a.get("ratio", 0.5))
                if len(inp) > 1 and inp[1] in self.consts:
                    ratio = float(self.consts[inp[1]])
                self.add(L.Dropout(ratio), node, [self.blob(inp[0], node)])
                return
            self.alias[node.output[0]] = self.blob(inp[0], node)
            return
        if op in ("Sum", "Max"):
            ins = [self.blob(i, node) for i in inp]
            if len({self.shapes[b] for b in ins}) > 1:
                raise OnnxImportError(f"{w}: {op} with broadcasting is not supported; only inputs of one shape")
            self.add(L.Eltwise("sum" if op == "Sum" else "max"), node, ins)
            return
        if op in ("Add", "Sub", "Mul", "Div"):
            self._binary(node, a)
            return
        if op == "Concat":
            ins = [self.blob(i, node) for i in inp]
            axis = int(a["axis"])
            self.add(L.Concat(axis + len(self.shapes[ins[0]]) if axis < 0 else axis), node, ins)
            return
        # every other operator reads one activation first (blob() refuses a constant there, naming it)
        x = self.blob(inp[0], node)
        layer: Layer
        if op in ("Conv", "ConvTranspose"):
            W = self.const(inp[1], node, "the weight")
            if W.ndim != 4:
                raise OnnxImportError(f"{w}: only 2-D convolutions are supported, weight has shape {W.shape}")
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise OnnxImportError(f"{w}: auto_pad={a['auto_pad']!r} is not supported; export with explicit pads")
            k = tuple(a.get("kernel_shape", W.shape[2:]))
            s, d, g = tuple(a.get("strides", (1, 1))), tuple(a.get("dilations", (1, 1))), int(a.get("group", 1))
            p = _sym_pads(a.get("pads"))
            if p is None:                               # asymmetric: an explicit pad layer first
                t, l, b, r = a["pads"]
                self.add(L.ConstantPad2d((l, r, t, b)), node, [x], weight=inp[1],
                         onnx_outs=[node.output[0] + ".pad"], suffix="_pad")
                x, p = self.plan[-1][2][0], (0, 0)
            B = inp[2] if len(inp) > 2 and inp[2] else None
            if op == "Conv":
                layer = L.Conv2d(int(W.shape[0]), k, s, p, d, g, bias=B is not None)
            else:
                if "output_shape" in a:
                    raise OnnxImportError(f"{w}: ConvTranspose with output_shape is not supported; use pads and "
                                          "output_padding")
                layer = L.ConvTranspose2d(int(W.shape[1]) * g, k, s, p, tuple(a.get("output_padding", (0, 0))), g,
                                          bias=B is not None, dilation=d)
            self.add(layer, node, [x], weight=inp[1])
            self.load(layer, "weight", W, w)
            if B is not None:
                self.load(layer, "bias", self.const(B, node, "the bias"), w)
            return
        if op == "Gemm":
            if a.get("transA", 0):
                raise OnnxImportError(f"{w}: Gemm with transA=1 is not supported")
            Bm = self.const(inp[1], node, "B (the weight)")
            Wt = Bm if a.get("transB", 0) else Bm.T
            Wt = Wt * float(a.get("alpha", 1.0))
            C = self.consts.get(inp[2]) if len(inp) > 2 and inp[2] else None
            layer = L.Linear(int(Wt.shape[0]), bias=C is not None)
            self.add(layer, node, [x], weight=inp[1])
            self.load(layer, "weight", Wt, w)
            if C is not None:
                self.load(layer, "bias", np.broadcast_to(np.asarray(C) * float(a.get("beta", 1.0)), (Wt.shape[0],)),
                          w)
            return
        if op == "MatMul":
            if inp[1] not in self.consts or self.consts[inp[1]].ndim != 2:
                raise OnnxImportError(f"{w}: MatMul of two activations is not supported; only x @ W with a "
                                      "constant 2-D W (a Linear layer)")
            Bm = self.consts[inp[1]]
            users = self.consumers.get(node.output[0], [])
            bias = None
            if len(users) == 1 and users[0].op_type == "Add":
                other = [i for i in users[0].input if i != node.output[0]]
                if other and other[0] in self.consts and self.consts[other[0]].size == Bm.shape[1]:
                    bias = self.consts[other[0]]
            layer = L.Linear(int(Bm.shape[1]), bias=bias is not None, axis=-1)
            self.add(layer, node, [x], weight=inp[1])
            self.load(layer, "weight", Bm.T, w)
            if bias is not None:
                self.load(layer, "bias", bias.reshape(-1), w)
                self.pending_bias[users[0].name or id(users[0])] = (layer, node.output[0])
            return
        if op == "Pow":
            e = self.const(inp[1], node, "the exponent")
            if e.size != 1:
                raise OnnxImportError(f"{w}: Pow with a non-scalar exponent is not supported")
            self.add(L.Power(float(e.reshape(-1)[0])), node, [x])
            return
        simple = {"Relu": lambda: L.ReLU(), "Sigmoid": lambda: L.Sigmoid(), "Tanh": lambda: L.TanH(),
                  "Softsign": lambda: L.Softsign(), "Abs": lambda: L.AbsVal(), "Exp": lambda: L.Exp(),
                  "Log": lambda: L.Log(), "GlobalAveragePool": lambda: L.GlobalAvgPool2d(),
                  "LeakyRelu": lambda: L.ReLU(float(a.get("alpha", 0.01))),
                  "Elu": lambda: L.ELU(float(a.get("alpha", 1.0))),
                  "Softplus": lambda: L.Softplus(threshold=math.inf),
                  "HardSigmoid": lambda: L.HardSigmoid(float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))),
                  "Gelu": lambda: L.GELU(_s(a.get("approximate", "none")))}
        if op in simple:
            self.add(simple[op](), node, [x])
            return
        if op == "Selu":
            if abs(a.get("alpha", 1.6732632) - 1.6732632) > 1e-6 or abs(a.get("gamma", 1.0507010) - 1.0507010) > 1e-6:
                raise OnnxImportError(f"{w}: Selu with non-default alpha/gamma is not supported")
            self.add(L.SELU(), node, [x])
            return
        if op == "PRelu":
            slope = self.const(inp[1], node, "the slope").reshape(-1)
            layer = L.PReLU(int(slope.size))
            self.add(layer, node, [x], weight=inp[1])
            self.load(layer, "weight", slope, w)
            return
        if op == "Clip":
            lo = a.get("min", -np.inf) if len(inp) < 2 or not inp[1] else float(self.const(inp[1], node, "min"))
            hi = a.get("max", np.inf) if len(inp) < 3 or not inp[2] else float(self.const(inp[2], node, "max"))
            layer = L.ReLU() if lo == 0 and hi == np.inf else L.HardTanh(float(lo), float(hi))
            self.add(layer, node, [x])
            return
        if op == "BatchNormalization":
            scale, bias, mean, var = (self.const(i, node, n) for i, n in zip(inp[1:5], ("scale", "B", "mean", "var")))
            nd = len(self.shapes[x])
            cls = L.BatchNorm2d if nd == 4 else L.BatchNorm1d
            layer = cls(eps=float(a.get("epsilon", 1e-5)), momentum=1.0 - float(a.get("momentum", 0.9)))
            self.add(layer, node, [x], weight=inp[1])
            self.load(layer, "weight", scale, w)
            self.load(layer, "bias", bias, w)
            layer.buffer("running_mean")[...] = mean.reshape(-1)
            layer.buffer("running_var")[...] = var.reshape(-1)
            return
        if op in ("MaxPool", "AveragePool"):
            if any(int(v) != 1 for v in a.get("dilations", (1, 1))):
                raise OnnxImportError(f"{w}: dilated pooling is not supported")
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise OnnxImportError(f"{w}: auto_pad={a['auto_pad']!r} is not supported; export with explicit pads")
            k = tuple(a["kernel_shape"])
            p = _sym_pads(a.get("pads"))
            if p is None:
                raise OnnxImportError(f"{w}: asymmetric pads {list(a['pads'])} are not supported for pooling")
            s = tuple(a.get("strides", (1,) * len(k)))
            if op == "MaxPool":
                layer = L.MaxPool2d(k, s, p, ceil_mode=bool(a.get("ceil_mode", 0)))
            else:
                layer = L.AvgPool2d(k, s, p, ceil_mode=bool(a.get("ceil_mode", 0)),
                                    count_include_pad=bool(a.get("count_include_pad", 0)))
            self.add(layer, node, [x])
            return
        if op == "GlobalMaxPool":
            self.add(L.MaxPool2d(tuple(self.shapes[x][2:])), node, [x])
            return
        if op == "Flatten":
            axis = int(a.get("axis", 1))
            nd = len(self.shapes[x])
            axis = axis + nd if axis < 0 else axis
            if axis != 1:
                raise OnnxImportError(f"{w}: Flatten with axis={axis} is not supported (only axis 1: (N, -1))")
            self.add(L.Flatten(1), node, [x])
            return
        if op == "Reshape":
            shape = [int(v) for v in self.const(inp[1], node, "the target shape")]
            src = self.shapes[x]
            out = [src[i] if v == 0 and not a.get("allowzero", 0) else v for i, v in enumerate(shape)]
            if -1 in out:
                out[out.index(-1)] = math.prod(src) // math.prod(v for v in out if v != -1)
            if math.prod(out) != math.prod(src) or out[0] != src[0]:
                raise OnnxImportError(f"{w}: reshape of {src} to {shape} changes the batch dimension; only "
                                      "per-sample reshapes are supported")
            self.add(L.Reshape(tuple(out[1:])), node, [x])
            return
        if op in ("Softmax", "LogSoftmax"):
            nd = len(self.shapes[x])
            axis = int(a.get("axis", -1 if self.opset >= 13 else 1))
            axis = axis + nd if axis < 0 else axis
            if self.opset < 13 and axis != nd - 1:
                raise OnnxImportError(f"{w}: opset {self.opset} {op} flattens from axis {axis}; only the last axis "
                                      "is supported before opset 13")
            self.add((L.Softmax if op == "Softmax" else L.LogSoftmax)(axis), node, [x])
            return
        if op == "Pad":
            mode = _s(a.get("mode", "constant"))
            pads = [int(v) for v in (self.const(inp[1], node, "pads") if len(inp) > 1 else a.get("pads", ()))]
            value = float(self.consts[inp[2]]) if len(inp) > 2 and inp[2] else float(a.get("value", 0.0))
            if mode != "constant" or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
                raise OnnxImportError(f"{w}: only constant, non-negative padding of H and W of a 4-D input is "
                                      f"supported, got mode {mode!r}, pads {pads}")
            self.add(L.ConstantPad2d((pads[3], pads[7], pads[2], pads[6]), value), node, [x])
            return
        if op == "LRN":
            size = int(a["size"])
            if size % 2 == 0:
                raise OnnxImportError(f"{w}: LRN with an even size is not supported (the window is centred "
                                      "differently in ONNX and torch)")
            self.add(L.LRN(size, float(a.get("alpha", 1e-4)), float(a.get("beta", 0.75)), float(a.get("bias", 1.0))),
                     node, [x])
            return
        if op == "Split":
            nd = len(self.shapes[x])
            axis = int(a.get("axis", 0))
            axis = axis + nd if axis < 0 else axis
            sizes = (list(self.const(inp[1], node, "split")) if len(inp) > 1 and inp[1] else a.get("split"))
            if sizes is None:
                layer = L.Slice(None, axis, num_outputs=len(node.output))
            else:
                layer = L.Slice(list(np.cumsum([int(v) for v in sizes])[:-1]), axis)
            self.add(layer, node, [x], n_out=len(node.output))
            return
        raise OnnxImportError(f"{w}: operator {op!r} is not supported; supported operators: "
                              f"{', '.join(SUPPORTED_OPS)}")

    def _fold(self, node, a) -> None:
        """A node whose inputs are all constants (shape and padding arithmetic, as torch exports
        F.pad): evaluated here with NumPy."""
        from onnx import helper, numpy_helper
        op = node.op_type
        ins: list[Any] = [self.consts[i] if i else None for i in node.input]  # arrays; None for an omitted input

        def slice_():
            x, starts, ends = ins[0], ins[1], ins[2]
            axes = ins[3] if len(ins) > 3 and ins[3] is not None else range(len(starts))
            steps = ins[4] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
            idx = [slice(None)] * x.ndim
            for ax, st, en, sp in zip(axes, starts, ends, steps):
                idx[int(ax)] = slice(int(st), int(en), int(sp))
            return x[tuple(idx)]

        def unsqueeze():
            axes = ins[1] if len(ins) > 1 and ins[1] is not None else a["axes"]
            y = ins[0]
            for ax in sorted(int(v) % (y.ndim + len(axes)) for v in axes):
                y = np.expand_dims(y, ax)
            return y

        fns = {"Identity": lambda: ins[0], "Add": lambda: ins[0] + ins[1], "Sub": lambda: ins[0] - ins[1],
               "Mul": lambda: ins[0] * ins[1], "Div": lambda: ins[0] / ins[1], "Neg": lambda: -ins[0],
               "Reshape": lambda: ins[0].reshape([int(v) for v in ins[1]]),
               "Concat": lambda: np.concatenate([np.atleast_1d(v) for v in ins], axis=int(a.get("axis", 0))),
               "Cast": lambda: ins[0].astype(helper.tensor_dtype_to_np_dtype(a["to"])),
               "ConstantOfShape": lambda: np.full([int(v) for v in ins[0]],
                                                  numpy_helper.to_array(a["value"]).reshape(-1)[0]
                                                  if "value" in a else np.float32(0)),
               "Slice": slice_, "Unsqueeze": unsqueeze,
               "Squeeze": lambda: np.squeeze(ins[0], axis=tuple(int(v) for v in (
                   ins[1] if len(ins) > 1 and ins[1] is not None else a.get("axes", ()))) or None),
               "Transpose": lambda: np.transpose(ins[0], a.get("perm")),
               "Gather": lambda: np.take(ins[0], ins[1], axis=int(a.get("axis", 0))),
               "Shape": lambda: np.array(ins[0].shape, np.int64),
               "Range": lambda: np.arange(ins[0], ins[1], ins[2])}
        if op not in fns:
            raise OnnxImportError(f"{self.where(node)}: operator {op!r} on constants only is not supported")
        self.consts[node.output[0]] = np.asarray(fns[op]())

    def _binary(self, node, a) -> None:
        from .. import layers as L
        op, w = node.op_type, self.where(node)
        key = node.name or id(node)
        if op == "Add" and key in self.pending_bias:                # the bias of a folded MatMul + Add
            _, src = self.pending_bias.pop(key)
            self.alias[node.output[0]] = self.alias[src]
            return
        i0, i1 = node.input
        c0, c1 = i0 in self.consts, i1 in self.consts
        if not c0 and not c1:
            ins = [self.blob(i0, node), self.blob(i1, node)]
            if self.shapes[ins[0]] != self.shapes[ins[1]]:
                raise OnnxImportError(f"{w}: broadcasting {self.shapes[ins[0]]} with {self.shapes[ins[1]]} is not "
                                      "supported; only inputs of the same shape")
            layer = {"Add": lambda: L.Eltwise("sum"), "Sub": lambda: L.Eltwise("sum", coeffs=(1, -1)),
                     "Mul": lambda: L.Eltwise("prod")}.get(op)
            if layer is None:
                raise OnnxImportError(f"{w}: Div of two activations is not supported")
            self.add(layer(), node, ins)
            return
        if c0 and op in ("Sub", "Div"):
            raise OnnxImportError(f"{w}: {op} with a constant first operand is not supported")
        x = self.blob(i1 if c0 else i0, node)
        c = np.asarray(self.consts[i0 if c0 else i1], dtype=np.float64)
        shape = self.shapes[x]
        if c.size == 1:
            v = float(c.reshape(-1)[0])
            layer = {"Add": lambda: L.Power(1.0, 1.0, v), "Sub": lambda: L.Power(1.0, 1.0, -v),
                     "Mul": lambda: L.Power(1.0, v, 0.0), "Div": lambda: L.Power(1.0, 1.0 / v, 0.0)}[op]()
            self.add(layer, node, [x])
            return
        # a per-channel constant: (C, 1, 1) or (1, C, 1, 1) on (N, C, H, W), (C,) or (1, C) on (N, C)
        padded = (1,) * (len(shape) - c.ndim) + tuple(c.shape) if c.ndim <= len(shape) else ()
        if len(shape) >= 2 and padded and padded[1] == shape[1] and all(d == 1 for i, d in enumerate(padded)
                                                                        if i != 1):
            flat = c.reshape(-1)
            layer = L.Scale(1, 1, bias=op in ("Add", "Sub"))
            self.add(layer, node, [x])
            if op in ("Add", "Sub"):
                self.load(layer, "weight", np.ones(shape[1]), w)
                self.load(layer, "bias", flat if op == "Add" else -flat, w)
            else:
                self.load(layer, "weight", flat if op == "Mul" else 1.0 / flat, w)
            return
        raise OnnxImportError(f"{w}: {op} with a constant of shape {c.shape} on an input of shape {shape} is not "
                              "supported (only scalars and per-channel constants)")


def _scope_path(node_name: str) -> str:
    """torch's node name "/layer1/layer1.0/conv1/Conv" -> the module path "layer1.0.conv1"."""
    parts = [p for p in node_name.split("/") if p][:-1]
    path = ""
    for p in parts:
        path = p if (not path or p.startswith(path + ".")) else f"{path}.{p}"
    return path


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def load_onnx(path: str | os.PathLike | bytes, *, batch_size: int = 1) -> OnnxNet:
    """Build a trainable Net from an ONNX model file (or its bytes).

    Args:
        path: the .onnx file, or the serialized model.
        batch_size: the batch size used to set the net up when the file's batch dimension is
            symbolic (any batch size works afterwards).

    Returns:
        An OnnxNet in eval mode, float32; ``net.onnx_blobs`` maps ONNX value names to blobs.

    Raises:
        OnnxImportError: an unsupported operator (named with the node), a truncated file,
            non-constant weights.
    """
    try:
        import onnx
    except ImportError as e:  # pragma: no cover
        raise ImportError("ONNX import needs the onnx package: pip install 'layerwise[interop]'") from e
    from google.protobuf.message import DecodeError

    if isinstance(path, (bytes, bytearray)):
        data, label = bytes(path), "<onnx bytes>"
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"ONNX model {str(p)!r}: no such file")
        data, label = p.read_bytes(), str(p)
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise OnnxImportError(f"{label}: corrupt or truncated ONNX file ({e}); export it again") from None
    if not model.graph.node:
        raise OnnxImportError(f"{label}: the graph has no nodes; is it an ONNX model?")
    if any(n.domain not in ("", "ai.onnx") for n in model.graph.node):
        bad = next(n for n in model.graph.node if n.domain not in ("", "ai.onnx"))
        raise OnnxImportError(f"{label}: node {bad.name!r} uses the custom domain {bad.domain!r} (op "
                              f"{bad.op_type}); only the standard ONNX operators are supported")
    b = _Builder(model, label)
    init_names = set(b.consts)
    inputs = [i for i in model.graph.input if i.name not in init_names]
    for i in inputs:
        dims = i.type.tensor_type.shape.dim
        shape = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else batch_size for d in dims)
        if not dims:
            raise OnnxImportError(f"{label}: input {i.name!r} has no declared shape")
        b.alias[i.name] = i.name
        b.shapes[i.name] = shape
    for node in model.graph.node:
        b.node(node)
    outs = []
    for o in model.graph.output:
        if o.name not in b.alias:
            raise OnnxImportError(f"{label}: graph output {o.name!r} is a constant or not computed")
        outs.append(b.alias[o.name])
    net = OnnxNet([i.name for i in inputs], outs, name=model.graph.name or None)
    for layer, ins, lo, name in b.plan:
        net.add(layer, inputs=ins, outputs=lo, name=name)
    net.onnx_blobs = dict(b.alias)
    net.setup(*[b.shapes[i.name] for i in inputs])
    net.eval()
    return net

