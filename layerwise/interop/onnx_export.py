"""ONNX export: a Net (any layerwise model) becomes an ONNX graph, checked and written atomically.

    export_onnx(net, "model.onnx", input_shape=(1, 3, 32, 32))

Each layer maps to one or a few ONNX operators (docs/interop.md has the table); nested Nets,
DenseNet's blocks and transitions are unrolled, parameters become initializers named by their
dotted layerwise names (``features.conv0.weight``), the batch dimension stays symbolic.
Loss and metric layers (training-only) are left out. The default opset is 17.
"""
from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..core import Layer, LossLayer, Net

DEFAULT_OPSET = 17


class ExportError(ValueError):
    """A layer (or setting) that has no ONNX form: the message names the layer and why."""


class _Graph:
    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list = []
        self.inits: list = []
        self.names: set[str] = set()

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def const(self, base: str, value: Any, dtype=np.float32) -> str:
        from onnx import numpy_helper
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(to_numpy(value), dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], base: str, n_out: int = 1, **attrs) -> Any:
        from onnx import helper
        outs = [self.fresh(base if n_out == 1 else f"{base}_{i}") for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.fresh(f"node:{base}"), **attrs))
        return outs[0] if n_out == 1 else outs


Emit = Callable[[_Graph, Layer, list[str], str], list[str]]
_HANDLERS: dict[str, Emit] = {}


def _handles(*names: str):
    def deco(fn):
        for n in names:
            _HANDLERS[n] = fn
        return fn
    return deco


def _p(layer: Layer, name: str) -> np.ndarray:
    return to_numpy(layer._params[name].data)


def _in_shape(layer: Layer, i: int = 0) -> tuple[int, ...]:
    if layer._in_shapes is None:
        raise ExportError(f"{layer!r}: not set up; export runs net.setup(input_shape) first")
    return tuple(layer._in_shapes[i])


def _pads(p) -> list[int]:
    return [p[0], p[1], p[0], p[1]]


# ------------------------------------------------------------------------------------- layers
@_handles("Conv2d")
def _conv(g, m, xs, pre):
    ins = [xs[0], g.const(pre + "weight", _p(m, "weight"))]
    if m.bias is not None:
        ins.append(g.const(pre + "bias", _p(m, "bias")))
    return [g.op("Conv", ins, pre.rstrip(".") or "conv", kernel_shape=list(m.kernel_size), strides=list(m.stride),
                 pads=_pads(m.padding), dilations=list(m.dilation), group=m.groups)]


@_handles("ConvTranspose2d")
def _deconv(g, m, xs, pre):
    ins = [xs[0], g.const(pre + "weight", _p(m, "weight"))]
    if m.bias is not None:
        ins.append(g.const(pre + "bias", _p(m, "bias")))
    return [g.op("ConvTranspose", ins, pre.rstrip(".") or "deconv", kernel_shape=list(m.kernel_size),
                 strides=list(m.stride), pads=_pads(m.padding), dilations=list(m.dilation), group=m.groups,
                 output_padding=list(m.output_padding))]


@_handles("Linear")
def _linear(g, m, xs, pre):
    shape = _in_shape(m)
    axis = m.axis + len(shape) if m.axis < 0 else m.axis
    name = pre.rstrip(".") or "linear"
    w = _p(m, "weight")
    if axis == 1:
        x = xs[0] if len(shape) == 2 else g.op("Flatten", [xs[0]], name + "_flat", axis=1)
        ins = [x, g.const(pre + "weight", w)]
        if m.bias is not None:
            ins.append(g.const(pre + "bias", _p(m, "bias")))
        return [g.op("Gemm", ins, name, transB=1)]
    if axis != len(shape) - 1:
        raise ExportError(f"{m!r}: Linear over axes {axis}.. of a {len(shape)}-D input has no single ONNX op; "
                          "use axis=1 or axis=-1")
    y = g.op("MatMul", [xs[0], g.const(pre + "weight_t", w.T)], name + "_mm")
    if m.bias is not None:
        y = g.op("Add", [y, g.const(pre + "bias", _p(m, "bias"))], name)
    return [y]


def _simple(op_type: str, **fixed):
    def emit(g, m, xs, pre):
        return [g.op(op_type, xs, pre.rstrip(".") or op_type.lower(), **fixed)]
    return emit


for _n, _op in (("Sigmoid", "Sigmoid"), ("TanH", "Tanh"), ("AbsVal", "Abs"), ("Softsign", "Softsign"),
                ("Dropout", "Identity"), ("GlobalAvgPool2d", "GlobalAveragePool"), ("SELU", "Selu")):
    _HANDLERS[_n] = _simple(_op)


@_handles("ReLU")
def _relu(g, m, xs, pre):
    name = pre.rstrip(".") or "relu"
    if m.negative_slope == 0:
        return [g.op("Relu", xs, name)]
    return [g.op("LeakyRelu", xs, name, alpha=float(m.negative_slope))]


@_handles("ELU")
def _elu(g, m, xs, pre):
    return [g.op("Elu", xs, pre.rstrip(".") or "elu", alpha=float(m.alpha))]


@_handles("PReLU")
def _prelu(g, m, xs, pre):
    w = _p(m, "weight")
    nd = len(_in_shape(m))
    if w.size > 1:
        w = w.reshape((-1,) + (1,) * max(nd - 2, 0))
    return [g.op("PRelu", [xs[0], g.const(pre + "weight", w)], pre.rstrip(".") or "prelu")]


@_handles("Softplus")
def _softplus(g, m, xs, pre):
    name = pre.rstrip(".") or "softplus"
    if m.beta == 1:
        return [g.op("Softplus", xs, name)]
    b = g.const(name + "_beta", np.float32(m.beta))
    return [g.op("Div", [g.op("Softplus", [g.op("Mul", [xs[0], b], name + "_bx")], name + "_sp"), b], name)]


@_handles("SiLU")
def _silu(g, m, xs, pre):
    name = pre.rstrip(".") or "silu"
    x = xs[0] if m.beta == 1 else g.op("Mul", [xs[0], g.const(name + "_beta", np.float32(m.beta))], name + "_bx")
    return [g.op("Mul", [xs[0], g.op("Sigmoid", [x], name + "_sig")], name)]


@_handles("GELU")
def _gelu(g, m, xs, pre):
    name = pre.rstrip(".") or "gelu"
    if g.opset >= 20:
        return [g.op("Gelu", xs, name, approximate=m.approximate)]
    x = xs[0]
    half = g.op("Mul", [x, g.const(name + "_half", np.float32(0.5))], name + "_hx")
    if m.approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        x3 = g.op("Mul", [g.op("Mul", [x, x], name + "_x2"), x], name + "_x3")
        inner = g.op("Add", [x, g.op("Mul", [x3, g.const(name + "_k", np.float32(0.044715))], name + "_kx3")],
                     name + "_in")
        t = g.op("Tanh", [g.op("Mul", [inner, g.const(name + "_c", np.float32(math.sqrt(2 / math.pi)))],
                               name + "_cin")], name + "_t")
    else:                        # 0.5 x (1 + erf(x / sqrt 2))
        t = g.op("Erf", [g.op("Mul", [x, g.const(name + "_r2", np.float32(math.sqrt(0.5)))], name + "_xs")],
                 name + "_erf")
    return [g.op("Mul", [half, g.op("Add", [t, g.const(name + "_one", np.float32(1))], name + "_1p")], name)]


@_handles("HardSigmoid")
def _hardsigmoid(g, m, xs, pre):
    return [g.op("HardSigmoid", xs, pre.rstrip(".") or "hardsigmoid", alpha=float(m.slope), beta=float(m.offset))]


@_handles("HardTanh")
def _hardtanh(g, m, xs, pre):
    name = pre.rstrip(".") or "hardtanh"
    return [g.op("Clip", [xs[0], g.const(name + "_min", np.float32(m.min_val)),
                          g.const(name + "_max", np.float32(m.max_val))], name)]


@_handles("MaxPool2d", "AvgPool2d")
def _pool(g, m, xs, pre):
    attrs = dict(kernel_shape=list(m.kernel_size), strides=list(m.stride), pads=_pads(m.padding),
                 ceil_mode=int(m.ceil_mode))
    if type(m).__name__ == "MaxPool2d":
        return [g.op("MaxPool", xs, pre.rstrip(".") or "maxpool", **attrs)]
    return [g.op("AveragePool", xs, pre.rstrip(".") or "avgpool", count_include_pad=int(m.count_include_pad),
                 **attrs)]


@_handles("BatchNorm2d", "BatchNorm1d")
def _bn(g, m, xs, pre):
    c = m.num_features
    w = _p(m, "weight") if m.affine else np.ones(c, np.float32)
    b = _p(m, "bias") if m.affine else np.zeros(c, np.float32)
    ins = [xs[0], g.const(pre + "weight", w), g.const(pre + "bias", b),
           g.const(pre + "running_mean", to_numpy(m.buffer("running_mean"))),
           g.const(pre + "running_var", to_numpy(m.buffer("running_var")))]
    return [g.op("BatchNormalization", ins, pre.rstrip(".") or "bn", epsilon=float(m.eps))]


@_handles("Concat")
def _concat(g, m, xs, pre):
    return [g.op("Concat", xs, pre.rstrip(".") or "concat", axis=int(m.axis))]


def _reshape_to(g, x, out_shape, name):
    return g.op("Reshape", [x, g.const(name + "_shape", [0] + list(out_shape[1:]), np.int64)], name)


@_handles("Flatten")
def _flatten(g, m, xs, pre):
    name = pre.rstrip(".") or "flatten"
    shape = _in_shape(m)
    out = tuple(m._out_shape)
    if len(out) == 2 and m.start_dim in (1, 1 - len(shape)):
        return [g.op("Flatten", xs, name, axis=1)]
    return [_reshape_to(g, xs[0], out, name)]


@_handles("Reshape")
def _reshape(g, m, xs, pre):
    return [_reshape_to(g, xs[0], tuple(m._out_shape), pre.rstrip(".") or "reshape")]


@_handles("Softmax", "LogSoftmax")
def _softmax(g, m, xs, pre):
    return [g.op(type(m).__name__, xs, pre.rstrip(".") or "softmax", axis=int(m.axis))]


@_handles("Eltwise")
def _eltwise(g, m, xs, pre):
    name = pre.rstrip(".") or "eltwise"
    if m.op == "sum":
        c = m.coeffs or (1.0,) * len(xs)
        terms = [x if ck == 1 else g.op("Mul", [x, g.const(f"{name}_c{i}", np.float32(ck))], f"{name}_t{i}")
                 for i, (x, ck) in enumerate(zip(xs, c))]
        return [g.op("Sum", terms, name) if len(terms) > 1 else g.op("Identity", terms, name)]
    if m.op == "prod":
        y = xs[0]
        for i, x in enumerate(xs[1:]):
            y = g.op("Mul", [y, x], name if i == len(xs) - 2 else f"{name}_p{i}")
        return [y if len(xs) > 1 else g.op("Identity", xs, name)]
    return [g.op("Max", xs, name)]


@_handles("LRN")
def _lrn(g, m, xs, pre):
    if m.region != "across_channels" or m.size % 2 == 0:
        raise ExportError(f"{m!r}: ONNX's LRN is across channels with an odd size; got region {m.region!r}, "
                          f"size {m.size}")
    return [g.op("LRN", xs, pre.rstrip(".") or "lrn", size=m.size, alpha=m.alpha, beta=m.beta, bias=m.k)]


@_handles("Scale")
def _scale(g, m, xs, pre):
    name = pre.rstrip(".") or "scale"
    shape = _in_shape(m)
    a, e = m._span(shape)
    view = (1,) * a + tuple(shape[a:e]) + (1,) * (len(shape) - e)
    y = g.op("Mul", [xs[0], g.const(pre + "weight", _p(m, "weight").reshape(view[1:] if a else view))],
             name + ("_mul" if m.bias is not None else ""))
    if m.bias is not None:
        y = g.op("Add", [y, g.const(pre + "bias", _p(m, "bias").reshape(view[1:] if a else view))], name)
    return [y]


def _affine(g, x, scale, shift, name):
    if scale != 1:
        x = g.op("Mul", [x, g.const(name + "_scale", np.float32(scale))], name + "_sx")
    if shift != 0:
        x = g.op("Add", [x, g.const(name + "_shift", np.float32(shift))], name + "_u")
    return x


@_handles("Power")
def _power(g, m, xs, pre):
    name = pre.rstrip(".") or "power"
    u = _affine(g, xs[0], m.scale, m.shift, name)
    return [g.op("Pow", [u, g.const(name + "_p", np.float32(m.power))], name)]


@_handles("Exp")
def _exp(g, m, xs, pre):
    name = pre.rstrip(".") or "exp"
    lnb = 1.0 if m.base == -1 else math.log(m.base)
    return [g.op("Exp", [_affine(g, xs[0], lnb * m.scale, lnb * m.shift, name)], name)]


@_handles("Log")
def _log(g, m, xs, pre):
    name = pre.rstrip(".") or "log"
    y = g.op("Log", [_affine(g, xs[0], m.scale, m.shift, name)], name + ("_ln" if m._lnb != 1 else ""))
    return [y if m._lnb == 1 else g.op("Div", [y, g.const(name + "_lnb", np.float32(m._lnb))], name)]


@_handles("Threshold")
def _threshold(g, m, xs, pre):
    name = pre.rstrip(".") or "threshold"
    gt = g.op("Greater", [xs[0], g.const(name + "_t", np.float32(m.threshold))], name + "_gt")
    return [g.op("Cast", [gt], name, to=1)]


@_handles("Slice")
def _slice(g, m, xs, pre):
    shape = _in_shape(m)
    axis, b = m._bounds(shape)
    sizes = [hi - lo for lo, hi in zip(b, b[1:])]
    if len(sizes) == 1:
        return [g.op("Identity", xs, pre.rstrip(".") or "slice")]
    return list(g.op("Split", [xs[0], g.const((pre.rstrip(".") or "slice") + "_split", sizes, np.int64)],
                     pre.rstrip(".") or "slice", n_out=len(sizes), axis=axis))


@_handles("ConstantPad2d")
def _pad(g, m, xs, pre):
    name = pre.rstrip(".") or "pad"
    l, r, t, b = m.padding
    return [g.op("Pad", [xs[0], g.const(name + "_pads", [0, 0, t, l, 0, 0, b, r], np.int64),
                         g.const(name + "_value", np.float32(m.value))], name, mode="constant")]


@_handles("ShortcutPad")
def _shortcut(g, m, xs, pre):
    name = pre.rstrip(".") or "shortcut"
    c = _in_shape(m)[1]
    s, big = m.stride, np.iinfo(np.int64).max
    x = xs[0]
    if s > 1:
        x = g.op("Slice", [x, g.const(name + "_starts", [0, 0], np.int64),
                           g.const(name + "_ends", [big, big], np.int64),
                           g.const(name + "_axes", [2, 3], np.int64), g.const(name + "_steps", [s, s], np.int64)],
                 name + "_sub")
    p = (m.out_channels - c) // 2
    q = m.out_channels - c - p
    return [g.op("Pad", [x, g.const(name + "_pads", [0, p, 0, 0, 0, q, 0, 0], np.int64)], name, mode="constant")]


def _chain(g, layers, xs, pre):
    for child in layers:
        xs = _emit(g, child, xs, f"{pre}{child.name}.")
    return xs


@_handles("DenseLayer")
def _dense_layer(g, m, xs, pre):
    return _chain(g, m._segment + m._rest, xs, pre)


@_handles("Transition")
def _transition(g, m, xs, pre):
    return _chain(g, m._seq, xs, pre)


@_handles("DenseBlock")
def _dense_block(g, m, xs, pre):
    feats = [xs[0]]
    name = pre.rstrip(".") or "denseblock"
    for i, layer in enumerate(m.dense_layers):
        inp = feats[0] if i == 0 else g.op("Concat", feats, f"{name}.cat{i}", axis=1)
        feats += _emit(g, layer, [inp], f"{pre}{layer.name}.")
    return [g.op("Concat", feats, name, axis=1)]


def _is_training_only(layer: Layer) -> bool:
    return isinstance(layer, LossLayer) or type(layer).__name__ == "Accuracy"


def _net(g, net: Net, xs, pre):
    blobs = dict(zip(net.input_names, xs))
    for node in net.nodes:
        if _is_training_only(node.layer):
            continue
        outs = _emit(g, node.layer, [blobs[b] for b in node.inputs], f"{pre}{node.name}.")
        blobs.update(zip(node.outputs, outs))
    missing = [b for b in net.output_names if b not in blobs]
    if missing and pre:
        raise ExportError(f"{net!r}: outputs {missing} come from loss or metric layers, which have no ONNX form")
    return [blobs[b] for b in net.output_names if b in blobs]


def _emit(g: _Graph, layer: Layer, xs: list[str], pre: str) -> list[str]:
    if isinstance(layer, Net):
        return _net(g, layer, xs, pre)
    for cls in type(layer).__mro__:
        fn = _HANDLERS.get(cls.__name__)
        if fn is not None:
            if layer._in_shapes is None:
                raise ExportError(f"{layer!r}: not set up; export runs net.setup(input_shape) first")
            return fn(g, layer, xs, pre)
    raise ExportError(f"{layer!r}: layer type {type(layer).__name__} has no ONNX export; supported: "
                      f"{', '.join(sorted(_HANDLERS))} and nested Nets")


def _input_shapes(input_shape: Sequence[int] | Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """One input's full shape (N, C, H, W) or a list of them -> a list of shapes."""
    out: list[tuple[int, ...]] = []
    single: list[int] = []
    for d in input_shape:
        if isinstance(d, (int, np.integer)):
            single.append(int(d))
        else:
            out.append(tuple(int(v) for v in d))
    if single and out:
        raise ValueError(f"export_onnx: input_shape must be one shape or a list of shapes, got {input_shape!r}")
    return [tuple(single)] if single else out


def to_onnx(net: Layer, input_shape: Sequence[int] | Sequence[Sequence[int]], opset: int | None = None):
    """The ONNX ModelProto of ``net`` for inputs of ``input_shape`` (batch dimension symbolic)."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError as e:  # pragma: no cover
        raise ImportError("ONNX export needs the onnx package: pip install 'layerwise[interop]'") from e
    opset = DEFAULT_OPSET if opset is None else int(opset)
    if opset < 13:
        raise ValueError(f"export_onnx: opset must be >= 13 (Softmax per axis, Split sizes as input), got {opset}")
    shapes = _input_shapes(input_shape)
    net.eval()
    net.setup(*shapes)
    net.astype(np.float32)
    net.setup(*shapes)
    in_names = list(net.input_names) if isinstance(net, Net) else ["input"]
    g = _Graph(opset)
    for n in in_names:
        g.names.add(n)
    outs = _emit(g, net, in_names, "")
    if not outs:
        raise ExportError(f"{net!r}: nothing to export (every output comes from a loss or metric layer)")
    out_names = list(net.output_names) if isinstance(net, Net) else ["output"]
    kept = [b for b in out_names if not (isinstance(net, Net) and b not in _live_outputs(net))]
    final = []
    for want, have in zip(kept, outs):
        if want in g.names:
            final.append(have)
        else:
            g.names.add(want)
            g.nodes.append(helper.make_node("Identity", [have], [want], name=f"output:{want}"))
            final.append(want)
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N"] + list(s[1:]))
              for n, s in zip(in_names, shapes)]
    if isinstance(net, Net):
        out_shapes = [net.blob_shapes[b] for b in kept]
    else:
        out_shapes = [net._out_shape] if isinstance(net._out_shape[0], int) else list(net._out_shape)
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N"] + list(s[1:]) if len(s) else [])
               for n, s in zip(final, out_shapes)]
    graph = helper.make_graph(g.nodes, net.name or "layerwise", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="layerwise", producer_version="0.1.0")
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    return model


def _live_outputs(net: Net) -> set[str]:
    return {b for n in net.nodes if not _is_training_only(n.layer) for b in n.outputs} | set(net.input_names)


def export_onnx(net: Layer, path: str | os.PathLike, input_shape, opset: int | None = None) -> Path:
    """Write ``net`` as an ONNX file (checked with ``onnx.checker``; written atomically).

    Args:
        net: a Net (any registry model, a Caffe or ONNX import) or a single layer.
        path: the .onnx file to write.
        input_shape: the input's shape, batch included (e.g. (1, 3, 32, 32)); a list of
            shapes for several inputs. The batch dimension is exported as symbolic ``N``.
        opset: ONNX opset (default 17; 20 and later use the Gelu operator).

    Returns:
        The path written. The net is left in eval mode and float32.
    """
    import onnx
    model = to_onnx(net, input_shape, opset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        onnx.save_model(model, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
