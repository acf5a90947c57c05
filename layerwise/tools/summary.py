"""summary(net, input_shape): each layer's output shape, params and forward FLOPs, from shapes alone.

    print(summary(densenet_bc(), (3, 32, 32)))
    python -m layerwise.tools.summary densenet_bc --input 3,32,32

The net is set up on a batch of one (``setup`` creates the params but runs no compute).
FLOPs are forward multiply-adds per sample (MACs) of convolutions and Linear layers, the
convention of the DenseNet/ResNet papers and of PERF-ANCHORS (DenseNet-BC L=100 k=12:
288 M); elementwise layers (BN, ReLU, pooling) count 0.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core import Layer

__all__ = ["summary", "summary_rows", "SummaryRow", "layer_macs"]


@dataclass
class SummaryRow:
    name: str               # dotted path, as in named_params()
    type: str               # class name
    output_shape: tuple     # without the batch dimension
    params: int             # trainable parameters of this layer (its own, not its children's)
    macs: int               # forward multiply-adds per sample


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


def summary(net: Layer, input_shape: Sequence[int], depth: int | None = None) -> str:
    """A table of :func:`summary_rows` with totals: params and forward MACs per sample."""
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


def main(argv: Sequence[str] | None = None) -> int:
    """``layerwise summary MODEL [--input 3,32,32] [--depth D] [--arg key=value ...]``."""
    from ..models import build_model, registered_models

    ap = argparse.ArgumentParser(prog="layerwise summary", description="Per-layer output shapes, params and MACs.")
    ap.add_argument("model", help=f"a registered model: {', '.join(registered_models())}")
    ap.add_argument("--input", default=None, help="one sample's shape, e.g. 3,32,32 (default: 3,224,224 for "
                                                  "ImageNet models, else 3,32,32)")
    ap.add_argument("--depth", type=int, default=None, help="fold layers below this name depth")
    ap.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                    help="keyword for the model builder, e.g. --arg depth=40 --arg growth_rate=12")
    args = ap.parse_args(argv)
    kwargs = {}
    for item in args.arg:
        if "=" not in item:
            ap.error(f"--arg expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        import yaml
        kwargs[k] = yaml.safe_load(v)
    try:
        net = build_model(args.model, **kwargs)
    except KeyError as e:
        print(f"layerwise summary: {e.args[0]}", file=sys.stderr)
        return 2
    if args.input:
        try:
            shape = tuple(int(d) for d in args.input.split(","))
        except ValueError:
            ap.error(f"--input expects comma-separated integers like 3,32,32, got {args.input!r}")
    else:
        stem = getattr(getattr(net, "config", None), "stem", None)
        big = stem == "imagenet" or "maxpool" in net.children()
        shape = (3, 224, 224) if big else (3, 32, 32)
    print(summary(net, shape, depth=args.depth))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
