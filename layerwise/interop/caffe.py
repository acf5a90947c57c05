"""Caffe models without Caffe: a ``.prototxt`` (text) and a ``.caffemodel`` (binary) become a Net.

    net = load_caffe("deploy.prototxt", "weights.caffemodel")
    prob = net.forward(x)                       # the tops that no layer reads
    blobs = net.forward_blobs(x)                # every blob by its Caffe name
    net.train()                                 # fine-tune with the solvers and the Trainer

Both files are parsed with the ``protobuf`` runtime against ``caffe.proto`` in this directory
(the subset of Caffe's schema these files use, compiled at runtime: no protoc, no Caffe).
Weights are matched to layers by name; in-place layers (``bottom == top``) write a fresh
internal blob, and ``net.caffe_blobs`` maps each Caffe blob name to the last blob written
under it. docs/interop.md has the table of layers and how each maps.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import Array
from ..core import Layer, Net

PROTO = Path(__file__).with_name("caffe.proto")
DATA_TYPES = {"Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "DummyData", "Python"}
V1_TYPES = {  # V1LayerParameter.LayerType -> the layer type string of the current format
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL", "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution", "DATA": "Data",
    "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss", "MVN": "MVN",
    "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}


class CaffeError(ValueError):
    """A Caffe file that cannot be loaded: the message names the file, the layer and the fix."""


@lru_cache(maxsize=1)
def caffe_pb() -> dict[str, type]:
    """The message classes of caffe.proto (NetParameter, SolverParameter, BlobProto, ...)."""
    try:
        from .protoparse import load_proto
    except ImportError as e:  # pragma: no cover - protobuf is in the interop extra
        raise ImportError("Caffe files need the protobuf package: pip install 'layerwise[interop]'") from e
    return load_proto(PROTO)


# --------------------------------------------------------------------------------------- parsing
def _read_text(src: str | Path, what: str) -> tuple[str, str]:
    """(text, label): ``src`` is a path, or the text itself when it contains a newline or a brace."""
    if isinstance(src, str) and ("\n" in src or "{" in src):
        return src, f"<{what} text>"
    path = Path(src)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r}: no such file")
    return path.read_text(), str(path)


def parse_prototxt(src: str | Path, message: str = "NetParameter"):
    """Parse a text prototxt (a path or the text) into a caffe.proto message."""
    from google.protobuf import text_format

    text, label = _read_text(src, "prototxt")
    msg = caffe_pb()[message]()
    try:
        text_format.Parse(text, msg, allow_unknown_field=True)
    except text_format.ParseError as e:
        raise CaffeError(f"{label}: not a valid Caffe {message} prototxt: {e}") from None
    return msg


def parse_caffemodel(src: str | Path | bytes):
    """Parse a binary .caffemodel (a path or its bytes) into a NetParameter."""
    from google.protobuf.message import DecodeError

    if isinstance(src, (bytes, bytearray)):
        data, label = bytes(src), "<caffemodel bytes>"
    else:
        path = Path(src)
        if not path.is_file():
            raise FileNotFoundError(f"caffemodel {str(path)!r}: no such file")
        data, label = path.read_bytes(), str(path)
    msg = caffe_pb()["NetParameter"]()
    try:
        msg.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise CaffeError(f"{label}: corrupt or truncated caffemodel ({e}); download or export it again") from None
    if not msg.layer and not msg.layers:
        raise CaffeError(f"{label}: holds no layers; is it a .caffemodel (binary NetParameter)?")
    return msg


def blob_to_array(blob, where: str) -> np.ndarray:
    """A BlobProto as a float32 array of its shape (``shape.dim``, or legacy num/channels/height/width)."""
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:
        shape = tuple(int(d) for d in (blob.num, blob.channels, blob.height, blob.width))
    values = blob.data if len(blob.data) else blob.double_data
    if len(values) != math.prod(shape):
        raise CaffeError(f"{where}: the blob holds {len(values)} values but its shape {shape} needs "
                         f"{math.prod(shape)}; the caffemodel is truncated or corrupt")
    return np.asarray(values, dtype=np.float32).reshape(shape)


@dataclass
class CaffeLayer:
    """One layer of either format, with the current format's type string."""
    name: str
    type: str
    bottom: list[str]
    top: list[str]
    msg: Any                  # LayerParameter or V1LayerParameter (same *_param field names)
    blobs: list = field(default_factory=list)


def _layers(net, label: str) -> list[CaffeLayer]:
    if net.layer and net.layers:
        raise CaffeError(f"{label}: mixes the current 'layer' and the legacy V1 'layers' fields; use one")
    if net.layers:
        enum = net.layers[0].DESCRIPTOR.fields_by_name["type"].enum_type
        return [CaffeLayer(l.name, V1_TYPES.get(enum.values_by_number[l.type].name,
                                                enum.values_by_number[l.type].name),
                           list(l.bottom), list(l.top), l, list(l.blobs)) for l in net.layers]
    return [CaffeLayer(l.name, l.type, list(l.bottom), list(l.top), l, list(l.blobs)) for l in net.layer]


def _included(msg, phase: int) -> bool:
    """Caffe's NetState rules (phase only: no levels or stages)."""
    if hasattr(msg, "phase") and msg.HasField("phase") and msg.phase != phase:
        return False
    if len(msg.include):
        return any(not r.HasField("phase") or r.phase == phase for r in msg.include)
    return not any(not r.HasField("phase") or r.phase == phase for r in msg.exclude)


# ------------------------------------------------------------------------------------- the Net
class CaffeNet(Net):
    """The Net a Caffe model becomes; it keeps Caffe's blob names reachable.

    Attributes:
        caffe_blobs: Caffe blob name -> the internal blob that holds it at the end of the
            net (differs only for in-place layers, whose tops get fresh names).
        caffe_layers: Caffe layer name -> its Caffe type.
        source: the prototxt text it was built from (for checkpoints and conversion).
        transform: the data layer's ``transform_param`` (scale, mean_value, crop_size, ...),
            which the net does not apply: preprocess inputs with it.
    """

    def __init__(self, inputs, outputs, *, name: str | None = None) -> None:
        super().__init__(inputs=inputs, outputs=outputs, name=name or "caffe_net")
        self.caffe_blobs: dict[str, str] = {}
        self.caffe_layers: dict[str, str] = {}
        self.source: str = ""
        self.transform: dict[str, Any] = {}

    def forward_blobs(self, *xs: Array, caffe_names: bool = True) -> dict[str, Array]:
        """Run the net and return every blob.

        With ``caffe_names`` (default) a Caffe blob name gives its value at the end of the net, as
        in Caffe (after in-place layers); otherwise the keys are the internal names only, so the
        value before an in-place layer stays reachable (``net.nodes[i].outputs`` name them).
        """
        blobs: dict[str, Array] = dict(zip(self.input_names, xs))
        if tuple(tuple(x.shape) for x in xs) != self._in_shapes:
            self.setup(*[x.shape for x in xs])
        for node in self.nodes:
            ys = node.layer.forward(*[blobs[b] for b in node.inputs])
            ys = ys if isinstance(ys, tuple) else (ys,)
            blobs.update(zip(node.outputs, ys))
        if caffe_names:
            for caffe_name, internal in self.caffe_blobs.items():
                blobs[caffe_name] = blobs[internal]
        return blobs


class _GlobalStats:
    """Caffe's ``use_global_stats: true`` in a TRAIN net: the running statistics normalise in
    training too (and are not updated); the backward is BatchNorm's eval-mode backward."""

    @property
    def training(self) -> bool:
        return False

    @training.setter
    def training(self, mode: bool) -> None:  # Net.train() sets every module's flag: ignored here
        pass


def _global_stats_classes():
    from ..layers import BatchNorm1d, BatchNorm2d
    return (type("GlobalStatsBatchNorm2d", (_GlobalStats, BatchNorm2d), {"__doc__": _GlobalStats.__doc__}),
            type("GlobalStatsBatchNorm1d", (_GlobalStats, BatchNorm1d), {"__doc__": _GlobalStats.__doc__}))


GlobalStatsBatchNorm2d, GlobalStatsBatchNorm1d = _global_stats_classes()


def _pairs(p, name: str, rep: str, h: str, w: str, default: int | None) -> tuple[int, int]:
    """Caffe's kernel/stride/pad: repeated (1 or 2 values) or the _h/_w pair."""
    if p.HasField(h) or p.HasField(w):
        return int(getattr(p, h)), int(getattr(p, w))
    v = getattr(p, rep)
    if isinstance(v, int):                          # Pooling: optional scalars
        return (int(v), int(v)) if (p.HasField(rep) or default is None) else (default, default)
    v = list(v)
    if not v:
        if default is None:
            raise CaffeError(f"{name}: no {rep} (or {h}/{w}) given")
        return default, default
    if len(v) == 1:
        return int(v[0]), int(v[0])
    if len(v) == 2:
        return int(v[0]), int(v[1])
    raise CaffeError(f"{name}: {rep} has {len(v)} values; only 2-D convolution is supported")


def _reshape_shape(p, in_shape: tuple[int, ...], lname: str) -> tuple[int, ...]:
    """The output shape of Caffe's Reshape (axis, num_axes, 0 = copy, -1 = infer)."""
    dims = [int(d) for d in p.shape.dim]
    n = len(in_shape)
    axis = p.axis + n + 1 if p.axis < 0 else p.axis
    end = n if p.num_axes == -1 else axis + p.num_axes
    new = [in_shape[axis + i] if d == 0 else d for i, d in enumerate(dims)]
    out = list(in_shape[:axis]) + new + list(in_shape[end:])
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        out[out.index(-1)] = math.prod(in_shape) // known
    if math.prod(out) != math.prod(in_shape):
        raise CaffeError(f"layer {lname!r} (Reshape): cannot reshape {in_shape} to {tuple(out)}")
    return tuple(out)


SUPPORTED = sorted({"Convolution", "Deconvolution", "Pooling", "InnerProduct", "ReLU", "PReLU", "ELU",
                    "Sigmoid", "TanH", "AbsVal", "BNLL", "Power", "Exp", "Log", "Threshold", "LRN", "Dropout",
                    "Softmax", "SoftmaxWithLoss", "Accuracy", "Concat", "Slice", "Eltwise", "BatchNorm", "Scale",
                    "Flatten", "Reshape", "Split", "Silence", "Input", "SigmoidCrossEntropyLoss"} | DATA_TYPES)


def _make_layer(cl: CaffeLayer, shapes: list[tuple[int, ...]], phase: int, label: str) -> Layer:
    """The layerwise layer for one Caffe layer, given its input shapes."""
    from .. import layers as L
    from .. import losses

    m, t, name = cl.msg, cl.type, cl.name
    where = f"{label}: layer {name!r} ({t})"
    if t in ("Convolution", "Deconvolution"):
        p = m.convolution_param
        if p.axis != 1:
            raise CaffeError(f"{where}: convolution over axis {p.axis} is not supported; only axis 1 (NCHW)")
        k = _pairs(p, where, "kernel_size", "kernel_h", "kernel_w", 0)
        if min(k) < 1:
            raise CaffeError(f"{where}: no kernel_size (or kernel_h/kernel_w) given")
        s = _pairs(p, where, "stride", "stride_h", "stride_w", 1)
        pad = _pairs(p, where, "pad", "pad_h", "pad_w", 0)
        dl = [int(v) for v in p.dilation] or [1]
        if len(dl) > 2:
            raise CaffeError(f"{where}: dilation has {len(dl)} values; only 2-D convolution is supported")
        d = (dl[0], dl[-1])
        if t == "Convolution":
            return L.Conv2d(int(p.num_output), k, s, pad, d, int(p.group), bias=p.bias_term)
        return L.ConvTranspose2d(int(p.num_output), k, s, pad, 0, int(p.group), bias=p.bias_term, dilation=d)
    if t == "Pooling":
        p = m.pooling_param
        if p.pool == 2:
            raise CaffeError(f"{where}: STOCHASTIC pooling is not supported; use MAX or AVE")
        if p.global_pooling:
            if p.pool == 1:
                return L.GlobalAvgPool2d()
            return L.MaxPool2d(tuple(shapes[0][2:4]))
        k = _pairs(p, where, "kernel_size", "kernel_h", "kernel_w", None)
        if min(k) < 1:
            raise CaffeError(f"{where}: no kernel_size (or kernel_h/kernel_w) given and not global_pooling")
        s = _pairs(p, where, "stride", "stride_h", "stride_w", 1)
        pad = _pairs(p, where, "pad", "pad_h", "pad_w", 0)
        cls = L.MaxPool2d if p.pool == 0 else L.AvgPool2d
        return cls(k, s, pad, ceil_mode=True)      # Caffe rounds pooling up
    if t == "InnerProduct":
        p = m.inner_product_param
        return L.Linear(int(p.num_output), bias=p.bias_term, axis=int(p.axis))
    if t == "ReLU":
        return L.ReLU(float(m.relu_param.negative_slope))
    if t == "PReLU":
        return L.PReLU(1 if m.prelu_param.channel_shared else shapes[0][1])
    if t == "ELU":
        return L.ELU(float(m.elu_param.alpha))
    if t in ("Sigmoid", "TanH", "AbsVal"):
        return {"Sigmoid": L.Sigmoid, "TanH": L.TanH, "AbsVal": L.AbsVal}[t]()
    if t == "BNLL":
        return L.Softplus()
    if t == "Power":
        p = m.power_param
        return L.Power(p.power, p.scale, p.shift)
    if t in ("Exp", "Log"):
        p = m.exp_param if t == "Exp" else m.log_param
        return (L.Exp if t == "Exp" else L.Log)(p.base, p.scale, p.shift)
    if t == "Threshold":
        return L.Threshold(m.threshold_param.threshold)
    if t == "LRN":
        p = m.lrn_param
        within = p.norm_region == 1
        if p.local_size % 2 == 0:
            raise CaffeError(f"{where}: local_size {p.local_size} must be odd (as Caffe requires)")
        return L.LRN(int(p.local_size), p.alpha, p.beta, 1.0 if within else p.k,
                     region="within_channel" if within else "across_channels")
    if t == "Dropout":
        return L.Dropout(float(m.dropout_param.dropout_ratio))
    if t == "Softmax":
        return L.Softmax(int(m.softmax_param.axis))
    if t == "SigmoidCrossEntropyLoss":
        lp = m.loss_param
        if lp.HasField("ignore_label"):
            raise CaffeError(f"{where}: ignore_label is not supported for SigmoidCrossEntropyLoss")
        if lp.HasField("normalization"):   # VALID without an ignore_label counts every element
            mode = {0: "full", 1: "full", 2: "batch_size", 3: "sum"}[lp.normalization]
        else:                              # this layer's own default is BATCH_SIZE, not the proto's VALID
            mode = "full" if lp.HasField("normalize") and lp.normalize else "batch_size"
        weight = float(m.loss_weight[0]) if len(m.loss_weight) else 1.0
        return losses.SigmoidCrossEntropyLoss(reduction=mode, loss_weight=weight)
    if t == "SoftmaxWithLoss":
        lp = m.loss_param
        mode = {0: "full", 1: "valid", 2: "batch_size", 3: "sum"}[lp.normalization]
        if not lp.HasField("normalization") and lp.HasField("normalize") and not lp.normalize:
            mode = "batch_size"
        weight = float(m.loss_weight[0]) if len(m.loss_weight) else 1.0
        kw: dict[str, Any] = {"ignore_index": int(lp.ignore_label)} if lp.HasField("ignore_label") else {}
        return losses.SoftmaxCrossEntropyLoss(reduction=mode, loss_weight=weight, **kw)
    if t == "Accuracy":
        p = m.accuracy_param
        return L.Accuracy(int(p.top_k), ignore_label=int(p.ignore_label) if p.HasField("ignore_label") else None)
    if t == "Concat":
        p = m.concat_param
        return L.Concat(int(p.concat_dim) if p.HasField("concat_dim") else int(p.axis))
    if t == "Slice":
        p = m.slice_param
        axis = int(p.slice_dim) if p.HasField("slice_dim") else int(p.axis)
        if len(p.slice_point):
            return L.Slice(list(p.slice_point), axis)
        return L.Slice(None, axis, num_outputs=len(cl.top))
    if t == "Eltwise":
        p = m.eltwise_param
        op = {0: "prod", 1: "sum", 2: "max"}[p.operation]
        return L.Eltwise(op, list(p.coeff) if len(p.coeff) else None)
    if t == "BatchNorm":
        p = m.batch_norm_param
        frozen = p.HasField("use_global_stats") and p.use_global_stats and phase == 0
        bn_cls: type[L.BatchNorm2d] | type[L.BatchNorm1d]
        if frozen:
            bn_cls = GlobalStatsBatchNorm2d if len(shapes[0]) == 4 else GlobalStatsBatchNorm1d
        else:
            bn_cls = L.BatchNorm2d if len(shapes[0]) == 4 else L.BatchNorm1d
        return bn_cls(eps=float(p.eps), momentum=1.0 - float(p.moving_average_fraction), affine=False)
    if t == "Scale":
        if len(cl.bottom) != 1:
            raise CaffeError(f"{where}: Scale with a second bottom (a computed multiplier) is not supported; "
                             "only the learned per-channel scale")
        p = m.scale_param
        return L.Scale(int(p.axis), int(p.num_axes), bias=p.bias_term)
    if t == "Flatten":
        p = m.flatten_param
        return L.Flatten(int(p.axis), int(p.end_axis))
    if t == "Reshape":
        out = _reshape_shape(m.reshape_param, shapes[0], name)
        if out[0] != shapes[0][0]:
            raise CaffeError(f"{where}: reshaping {shapes[0]} to {out} changes the batch dimension; only "
                             "per-sample reshapes are supported")
        return L.Reshape(out[1:])
    raise CaffeError(f"{where}: layer type {t!r} is not supported; supported types: {', '.join(SUPPORTED)}")


def _load_blobs(layer: Layer, cl: CaffeLayer, blobs: list[np.ndarray], label: str) -> None:
    """Copy a Caffe layer's blobs into the layer's params/buffers, checking count and shapes."""
    t, where = cl.type, f"{label}: layer {cl.name!r} ({cl.type})"
    if t == "BatchNorm":
        if len(blobs) != 3:
            raise CaffeError(f"{where}: expected 3 blobs (mean * s, variance * s, s), got {len(blobs)}")
        s = float(blobs[2].reshape(-1)[0])
        f = 0.0 if s == 0 else 1.0 / s
        targets = {"running_mean": blobs[0] * f, "running_var": blobs[1] * f}
        for k, v in targets.items():
            buf = layer.buffer(k)
            if v.size != buf.size:
                raise CaffeError(f"{where}: blob {k} has {v.size} values, expected {buf.size} (one per channel)")
            buf[...] = v.reshape(buf.shape)
        return
    names = list(layer._params)
    if t == "InnerProduct" and cl.msg.inner_product_param.transpose and blobs:
        w = layer._params["weight"]
        blobs = [blobs[0].reshape(w.shape[1], w.shape[0]).T] + blobs[1:]
    if len(blobs) != len(names):
        raise CaffeError(f"{where}: the caffemodel has {len(blobs)} blob(s), the layer expects {len(names)} "
                         f"({', '.join(names)}); the prototxt and the caffemodel do not match")
    for i, (pname, b) in enumerate(zip(names, blobs)):
        p = layer._params[pname]
        squeeze = tuple(d for d in b.shape if d != 1) == tuple(d for d in p.shape if d != 1)
        if tuple(b.shape) != p.shape and not (b.size == p.size and squeeze):
            raise CaffeError(f"{where}: blob {i} ({pname}) has shape {tuple(b.shape)}, expected {p.shape}; "
                             "the prototxt and the caffemodel do not match")
        p.data[...] = b.reshape(p.shape)


def _input_shapes(names: Sequence[str], given: Any, declared: dict[str, tuple], label: str) -> dict[str, tuple]:
    shapes = dict(declared)
    if given is not None:
        if isinstance(given, dict):
            shapes.update({k: tuple(int(d) for d in v) for k, v in given.items()})
        else:
            shapes[names[0]] = tuple(int(d) for d in given)
    missing = [n for n in names if n not in shapes]
    if missing:
        raise CaffeError(f"{label}: the shape of input(s) {missing} is not declared (a training prototxt's data "
                         "layer has none); pass input_shape=(N, C, H, W) or input_shape={'data': (...)}")
    return shapes


def load_caffe(prototxt: str | Path, caffemodel: str | Path | bytes | None = None, *, phase: str = "TEST",
               input_shape: Any = None, outputs: str | Sequence[str] | None = None) -> CaffeNet:
    """Build a Net from a Caffe model definition and, optionally, its trained weights.

    Args:
        prototxt: path of the .prototxt (deploy or train_val), or its text.
        caffemodel: path of the binary .caffemodel (or its bytes); None keeps the fillers' init.
        phase: "TEST" (default: deploy behaviour, Data layers become inputs) or "TRAIN";
            layers are included or excluded by their ``include``/``exclude`` phase rules.
        input_shape: shape of the first input, or ``{blob: shape}``; needed where the prototxt
            declares none (the Data layers of a train_val prototxt), optional otherwise.
        outputs: Caffe blob name(s) ``forward`` returns instead of the unread tops, e.g. the
            logits ``"fc8"`` of a deploy net ending in Softmax, to fine-tune it with the Trainer
            and a SoftmaxCrossEntropyLoss.

    Returns:
        A CaffeNet in eval mode (``net.train()`` for fine-tuning); float32 params.

    Raises:
        CaffeError: an unsupported layer (named with its type and the file), missing or
            mismatched weights, a truncated caffemodel, undeclared input shapes.
    """
    ph = {"TRAIN": 0, "TEST": 1}.get(str(phase).upper())
    if ph is None:
        raise ValueError(f"load_caffe: phase must be 'TRAIN' or 'TEST', got {phase!r}")
    text, label = _read_text(prototxt, "prototxt")
    netp = parse_prototxt(text)
    if label.startswith("<"):
        label = "prototxt"
    layers = [cl for cl in _layers(netp, label) if _included(cl.msg, ph)]

    # the inputs: deploy declarations, Input layers, data layers
    declared: dict[str, tuple] = {}
    inputs = list(netp.input)
    if len(netp.input_shape):
        for n, s in zip(netp.input, netp.input_shape):
            declared[n] = tuple(int(d) for d in s.dim)
    elif len(netp.input_dim):
        dims = [int(d) for d in netp.input_dim]
        for i, n in enumerate(netp.input):
            declared[n] = tuple(dims[4 * i:4 * i + 4])
    body = []
    transform: dict[str, Any] = {}
    for cl in layers:
        if cl.type == "Input":
            shp = list(cl.msg.input_param.shape)
            for i, top in enumerate(cl.top):
                inputs.append(top)
                if shp:
                    declared[top] = tuple(int(d) for d in shp[min(i, len(shp) - 1)].dim)
        elif cl.type in DATA_TYPES and not cl.bottom:
            inputs.extend(cl.top)
            tp = cl.msg.transform_param
            if tp.ListFields():
                transform = {f.name: (list(v) if hasattr(v, "__len__") and not isinstance(v, str) else v)
                             for f, v in tp.ListFields()}
            if cl.type == "MemoryData":
                p = cl.msg.memory_data_param
                declared[cl.top[0]] = (int(p.batch_size), int(p.channels), int(p.height), int(p.width))
        else:
            body.append(cl)
    if not inputs:
        raise CaffeError(f"{label}: declares no input (input:/input_shape, an Input layer or a data layer)")
    if input_shape is not None or any(n not in declared for n in inputs[:1]):
        first = _input_shapes(inputs[:1], input_shape, declared, label)
        declared.update(first)
    batch = declared[inputs[0]][0]
    for n in inputs[1:]:
        declared.setdefault(n, (batch,))          # a data layer's label top: one label per sample
    if isinstance(input_shape, dict):
        declared.update({k: tuple(v) for k, v in input_shape.items()})

    weights: dict[str, list[np.ndarray]] = {}
    wlabel = ""
    if caffemodel is not None:
        wnet = parse_caffemodel(caffemodel)
        wlabel = "<caffemodel bytes>" if isinstance(caffemodel, (bytes, bytearray)) else str(caffemodel)
        for cl in _layers(wnet, wlabel):
            if cl.blobs:
                weights[cl.name] = [blob_to_array(b, f"{wlabel}: layer {cl.name!r} blob {i}")
                                    for i, b in enumerate(cl.blobs)]

    # wire the graph: internal names are Caffe's, with a fresh name for every in-place top
    current = {n: n for n in inputs}
    shapes = {n: declared[n] for n in inputs}
    plan = []                                       # (layer, internal ins, internal outs, CaffeLayer)
    used: set[str] = set(inputs)
    consumed: set[str] = set()
    rng = np.random.default_rng(0)
    for cl in body:
        for b in cl.bottom:
            if b not in current:
                raise CaffeError(f"{label}: layer {cl.name!r} ({cl.type}) reads blob {b!r}, which no earlier "
                                 f"layer produces; known blobs: {sorted(current)}")
        ins = [current[b] for b in cl.bottom]
        if cl.type == "Split":                      # copies of the bottom: aliases, no layer
            for top in cl.top:
                current[top] = ins[0]
            continue
        if cl.type == "Silence":
            consumed.update(ins)
            continue
        consumed.update(ins)
        layer = _make_layer(cl, [shapes[b] for b in ins], ph, label)
        outs = []
        for top in cl.top:
            internal = top
            k = 1
            while internal in used:                 # in place (or a reused name): a fresh internal blob
                internal = f"{top}@{cl.name}" if k == 1 else f"{top}@{cl.name}.{k}"
                k += 1
            used.add(internal)
            outs.append(internal)
        out = layer.setup(*[shapes[b] for b in ins], rng=rng)
        out = (out,) if len(outs) == 1 else tuple(out)
        for top, internal, s in zip(cl.top, outs, out):
            current[top] = internal
            shapes[internal] = tuple(s)
        if caffemodel is not None and layer.named_params() or (caffemodel is not None and cl.type == "BatchNorm"):
            if cl.name not in weights:
                raise CaffeError(f"{wlabel}: no weights for layer {cl.name!r} ({cl.type}) of {label}; the "
                                 "caffemodel belongs to another net, or pass caffemodel=None to keep the init")
            _load_blobs(layer, cl, weights[cl.name], wlabel)
        plan.append((layer, ins, outs, cl))
    if not plan:
        raise CaffeError(f"{label}: has no computing layers")
    if outputs is not None:
        wanted = [outputs] if isinstance(outputs, str) else list(outputs)
        unknown = [o for o in wanted if o not in current]
        if unknown:
            raise CaffeError(f"{label}: outputs {unknown} are not blobs of the net; blobs: {sorted(current)}")
        # the Caffe name's value right after the layer that wrote it last (before in-place layers
        # that follow, when those are dropped), i.e. its final internal blob
        out_names = [current[o] for o in wanted]
    else:
        out_names = [o for _, _, outs, _ in plan for o in outs if o not in consumed]
    net = CaffeNet(inputs, out_names, name=netp.name or None)
    for layer, ins, outs, cl in plan:
        net.add(layer, inputs=ins, outputs=outs, name=cl.name)
        net.caffe_layers[cl.name] = cl.type
    net.caffe_blobs = {k: v for k, v in current.items() if k != v}
    net.source = text
    net.transform = transform
    net.setup(*[shapes[n] for n in inputs])
    net.eval()
    return net


# ---------------------------------------------------------------------------------------- solver
_SOLVER_MAP = {"base_lr", "lr_policy", "gamma", "power", "stepsize", "stepvalue", "momentum", "weight_decay",
               "type", "solver_type", "max_iter", "snapshot", "snapshot_prefix", "regularization_type",
               "clip_gradients", "delta", "momentum2", "rms_decay", "iter_size", "random_seed", "net",
               "train_net", "test_net", "test_iter", "test_interval", "display", "solver_mode", "device_id",
               "average_loss", "test_initialization", "snapshot_after_train", "snapshot_format", "debug_info"}


def _top_level_keys(text: str) -> list[str]:
    """The field names at brace depth 0 of a prototxt (comments and strings skipped)."""
    import re
    keys, depth = [], 0
    for tok in re.findall(r'"(?:[^"\\]|\\.)*"|#[^\n]*|[A-Za-z_]\w*(?=\s*[:{])|[{}]', text):
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
        elif depth == 0 and tok[0] not in '"#':
            keys.append(tok)
    return keys


def _f32(v: float) -> float:
    """A float32 proto field as the decimal the file wrote (0.01, not 0.009999999776)."""
    return float(str(np.float32(v)))


@dataclass
class CaffeSolver:
    """A solver.prototxt read for layerwise.

    Attributes:
        config: the fields that map, as a dict for ``layerwise.config.load_config``
            (``solver``, ``lr_policy``, ``seed``); schedules stay in iterations, as in Caffe.
        max_iter, snapshot, snapshot_prefix, iter_size, display, test_iter, test_interval,
            net, test_net: Caffe's iteration-based settings and net paths.
    """
    config: dict
    max_iter: int = 0
    snapshot: int = 0
    snapshot_prefix: str = ""
    iter_size: int = 1
    display: int = 0
    test_iter: list = field(default_factory=list)
    test_interval: int = 0
    net: str = ""
    test_net: list = field(default_factory=list)

    def to_config(self, iters_per_epoch: int):
        """A layerwise Config: epochs = ceil(max_iter / iters_per_epoch), a checkpoint every
        ceil(snapshot / iters_per_epoch) epochs; the rest from ``config``."""
        from ..config import load_config
        raw = dict(self.config)
        if self.max_iter:
            raw["epochs"] = max(1, -(-self.max_iter // int(iters_per_epoch)))
        if self.snapshot:
            raw["checkpoint_every"] = max(1, -(-self.snapshot // int(iters_per_epoch)))
        return load_config(raw)


def load_caffe_solver(src: str | Path) -> CaffeSolver:
    """Read a Caffe solver.prototxt (a path or its text) as layerwise training settings.

    Mapped: base_lr, momentum, weight_decay (L2, or L1 via regularization_type), type / solver_type
    (SGD, Nesterov, AdaGrad, RMSProp with rms_decay, AdaDelta with momentum as rho, Adam with
    momentum and momentum2 as betas; delta as eps), lr_policy with gamma, power, stepsize,
    stepvalue and max_iter (iterations, as Caffe), clip_gradients, iter_size, random_seed,
    max_iter, snapshot, snapshot_prefix and the net paths. Fields with no layerwise meaning
    (solver_mode, device_id, ...) and fields unknown to Caffe's schema are named in one warning.
    """
    text, label = _read_text(src, "solver prototxt")
    sp = parse_prototxt(text, "SolverParameter")
    set_fields = {f.name for f, _ in sp.ListFields()}
    kind = sp.type if "type" in set_fields else None
    if kind is None and "solver_type" in set_fields:
        kind = sp.DESCRIPTOR.fields_by_name["solver_type"].enum_type.values_by_number[sp.solver_type].name
    kind = (kind or "SGD").lower()
    if kind not in ("sgd", "nesterov", "adagrad", "rmsprop", "adadelta", "adam"):
        raise CaffeError(f"{label}: solver type {kind!r} is unknown; Caffe's types are SGD, Nesterov, AdaGrad, "
                         "RMSProp, AdaDelta, Adam")
    momentum = _f32(sp.momentum) if "momentum" in set_fields else 0.0   # Caffe's default, for every type
    solver: dict[str, Any] = {"name": "sgd" if kind in ("sgd", "nesterov") else kind, "lr": _f32(sp.base_lr),
                              "momentum": momentum, "weight_decay": _f32(sp.weight_decay), "kwargs": {}}
    kw = solver["kwargs"]
    if kind in ("sgd", "nesterov"):
        solver["nesterov"] = kind == "nesterov" and momentum > 0   # Nesterov without momentum is plain SGD
    elif kind == "adam":
        kw.update(betas=[momentum, _f32(sp.momentum2)], eps=_f32(sp.delta))
    elif kind == "rmsprop":
        kw.update(alpha=_f32(sp.rms_decay), eps=_f32(sp.delta))
    elif kind == "adadelta":
        kw.update(rho=momentum, eps=_f32(sp.delta))
    else:
        kw["eps"] = _f32(sp.delta)
    if sp.regularization_type.upper() == "L1":
        kw["regularization"] = "L1"
    if sp.clip_gradients >= 0:
        kw["clip_gradients"] = _f32(sp.clip_gradients)
    if sp.iter_size > 1:
        kw["iter_size"] = int(sp.iter_size)
    policy = (sp.lr_policy or "fixed").lower()
    pk: dict[str, Any] = {}
    for name in ("gamma", "power"):
        if name in set_fields:
            pk[name] = _f32(getattr(sp, name))
    if "stepsize" in set_fields:
        pk["step_size"] = int(sp.stepsize)
    if len(sp.stepvalue):
        pk["milestones"] = [int(v) for v in sp.stepvalue]
    if policy == "poly" and sp.max_iter:
        pk["max_iter"] = int(sp.max_iter)
    config: dict[str, Any] = {"solver": solver, "lr_policy": {"name": policy, "warmup_epochs": 0.0, "kwargs": pk}}
    if sp.random_seed >= 0:
        config["seed"] = int(sp.random_seed)
    ignored = {"solver_mode", "device_id", "debug_info", "snapshot_format", "snapshot_diff", "layer_wise_reduce",
               "average_loss", "test_compute_loss", "test_initialization", "snapshot_after_train", "train_state",
               "test_state", "net_param", "train_net_param", "test_net_param"}
    known = set(sp.DESCRIPTOR.fields_by_name)
    unknown = sorted((set_fields & ignored) | {k for k in _top_level_keys(text) if k not in known})
    if unknown:
        warnings.warn(f"{label}: solver fields without a layerwise meaning were ignored: {', '.join(unknown)}",
                      stacklevel=2)
    return CaffeSolver(config=config, max_iter=int(sp.max_iter), snapshot=int(sp.snapshot),
                       snapshot_prefix=sp.snapshot_prefix, iter_size=int(sp.iter_size), display=int(sp.display),
                       test_iter=[int(v) for v in sp.test_iter], test_interval=int(sp.test_interval),
                       net=sp.net or sp.train_net, test_net=list(sp.test_net))
