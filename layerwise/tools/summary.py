"""summary(net, input_shape): each layer's output shape, params and forward FLOPs, from shapes alone.

    print(summary(densenet_bc(), (3, 32, 32)))
    layerwise summary densenet_bc --input 3,32,32       # the command calls summary() below

The net is set up on a batch of one (``setup`` creates the params but runs no compute).
FLOPs are forward multiply-adds per sample (MACs) of convolutions and Linear layers, the
convention of the DenseNet/ResNet papers (DenseNet-BC L=100 k=12: 288 M; docs/densenet.md);
elementwise layers (BN, ReLU, pooling) count 0. Without an input shape, :func:`default_input_shape`
decides (the one rule of ``layerwise summary`` and ``layerwise time``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core import Layer

__all__ = ["summary", "summary_rows", "SummaryRow", "layer_macs", "default_input_shape"]


@dataclass
class SummaryRow:
    name: str               # dotted path, as in named_params()
    type: str               # class name
    output_shape: tuple     # without the batch dimension
    params: int             # trainable parameters of this layer (its own, not its children's)
    macs: int               # forward multiply-adds per sample


def default_input_shape(net: Layer) -> tuple[int, ...]:
    """One sample's shape (C, H, W) for a net when none is given.

    The input a Caffe or ONNX model declares; else the model's own default
    (``Model.default_input_shape``: 224 x 224 for ImageNet stems, 32 x 32 otherwise); else (3, 32, 32).

    Example:
        >>> from layerwise.models import build_model
        >>> default_input_shape(build_model("resnet18")), default_input_shape(build_model("resnet20"))
        ((3, 224, 224), (3, 32, 32))
    """
    shapes = getattr(net, "blob_shapes", {})
    names = getattr(net, "input_names", ())
    if names and names[0] in shapes and type(net).__name__ in ("CaffeNet", "OnnxNet"):
        return tuple(int(d) for d in shapes[names[0]][1:])
    model_default = getattr(net, "default_input_shape", None)
    full = model_default() if callable(model_default) else None
    if full is not None:
        return tuple(int(d) for d in full[1:])
    return (3, 32, 32)


def layer_macs(layer: Layer) -> int:
    """Forward multiply-adds per sample of a set-up leaf layer, from its shapes alone."""
    w = layer._params.get("weight")
    out = layer._out_shape
    if w is None or not isinstance(out, tuple) or not out or not all(isinstance(d, int) for d in out):
        return 0
    kind = type(layer).__name__
    n = out[0] if out[0] > 0 else 1
    if kind.startswith("Conv") and len(w.shape) >= 3:
        per_out = int(np.prod(w.shape[1:]))             # (in/groups) * kh * kw
        return int(np.prod(out)) // n * per_out
    if kind == "Linear" and len(w.shape) == 2:
        return int(np.prod(out)) // n * int(w.shape[1])
    return 0


def summary_rows(net: Layer, input_shape: Sequence[int], depth: int | None = None) -> list[SummaryRow]:
    """One SummaryRow per leaf layer (or per layer at ``depth`` dots, children folded in).

    Args:
        net: any Layer (a Net or a model).
        input_shape: one sample's shape without the batch dimension, e.g. (3, 32, 32);
            a list of them for several inputs.
        depth: fold layers deeper than this many name levels into their ancestor (None: leaves).
    """
    shapes = [tuple(int(d) for d in s) for s in input_shape] if input_shape and \
        isinstance(input_shape[0], (tuple, list)) else [tuple(int(d) for d in input_shape)]
    net.setup(*[(1,) + s for s in shapes])
    rows: list[SummaryRow] = []

    def walk(layer: Layer, prefix: str, level: int) -> tuple[int, int]:
        children = layer.children()
        own = sum(p.size for p in layer._params.values())
        if not children:
            return own, layer_macs(layer)
        p_tot, m_tot = own, 0
        for cname, child in children.items():
            name = f"{prefix}{cname}"
            p, m = walk(child, name + ".", level + 1)
            p_tot, m_tot = p_tot + p, m_tot + m
            if depth is None:
                if not child.children():
                    rows.append(_row(name, child, p, m))
            elif level + 1 == depth or (level + 1 < depth and not child.children()):
                rows.append(_row(name, child, p, m))
        return p_tot, m_tot

    walk(net, "", 0)
    return rows


def _row(name: str, layer: Layer, params: int, macs: int) -> SummaryRow:
    out = layer._out_shape
    if isinstance(out, tuple) and out and all(isinstance(d, int) for d in out):
        shape = tuple(out[1:])
    elif isinstance(out, tuple) and out and isinstance(out[0], tuple):
        shape = tuple(tuple(o[1:]) for o in out)
    else:
        shape = tuple(out) if isinstance(out, tuple) else ()
    return SummaryRow(name, type(layer).__name__, shape, int(params), int(macs))


def _fmt_big(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{int(n)}"


def summary(net: Layer, input_shape: Sequence[int] | None = None, depth: int | None = None) -> str:
    """A table of :func:`summary_rows` with totals: params and forward MACs per sample.

    ``input_shape`` is one sample's shape; None takes :func:`default_input_shape`.
    """
    if input_shape is None:
        input_shape = default_input_shape(net)
    rows = summary_rows(net, input_shape, depth)
    total_p = net.num_params()
    total_m = sum(r.macs for r in rows)
    w_name = max([len("layer")] + [len(r.name) for r in rows])
    w_type = max([len("type")] + [len(r.type) for r in rows])
    shapes = [str(r.output_shape) for r in rows]
    w_shape = max([len("output shape")] + [len(s) for s in shapes])
    head = f"{'layer':<{w_name}}  {'type':<{w_type}}  {'output shape':<{w_shape}}  {'params':>12}  {'MACs':>14}"
    lines = [head, "-" * len(head)]
    for r, s in zip(rows, shapes):
        lines.append(f"{r.name:<{w_name}}  {r.type:<{w_type}}  {s:<{w_shape}}  {r.params:>12,}  {r.macs:>14,}")
    lines.append("-" * len(head))
    lines.append(f"total params: {total_p:,} ({_fmt_big(total_p)})")
    lines.append(f"forward MACs per sample: {total_m:,} ({_fmt_big(total_m)}; FLOPs ~ 2x)")
    lines.append(f"layers: {len(rows)}; input {tuple(input_shape)}")
    return "\n".join(lines)
