"""The activation table as a picture: every activation layer and its derivative, one panel each.

    curves = activation_curves()                   # name -> (x, f(x), f'(x))
    layerwise plot activations --out acts.png

Nothing here is a formula: f(x) is ``layer.forward(x)`` and f'(x) is ``layer.backward(1)``
(dx = dy * f'(x) with dy = 1) of the layers in ``layerwise.layers.activations``, so the
picture shows exactly what the layers compute, derivative included. RReLU is drawn in eval
mode (the mean slope) with the range of its random training slopes shaded.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from ..core import Layer

__all__ = ["ACTIVATIONS", "activation_curves", "plot_activations", "main"]


def _table() -> dict[str, Callable[[], Layer]]:
    from ..layers import activations as A

    return {
        "Sigmoid": A.Sigmoid, "TanH": A.TanH, "ReLU": A.ReLU, "ReLU(0.1) (leaky)": lambda: A.ReLU(0.1),
        "ELU": A.ELU, "SELU": A.SELU, "PReLU (w = 0.25)": A.PReLU, "RReLU (eval; training range)": A.RReLU,
        "Softplus": A.Softplus, "Softsign": A.Softsign, "SiLU / Swish": A.SiLU, "GELU": A.GELU,
        "GELU (tanh)": lambda: A.GELU("tanh"), "HardSigmoid": A.HardSigmoid, "HardTanh": A.HardTanh,
        "AbsVal": A.AbsVal,
    }


ACTIVATIONS = tuple(_table())     # the panels, in order


def activation_curves(lo: float = -4.0, hi: float = 4.0, n: int = 801) -> dict[str, tuple[np.ndarray, ...]]:
    """name -> (x, y, dydx): each layer's forward and its backward of dy = 1, in float64.

    RReLU runs in eval mode (``eval(grad=True)``: deterministic mean slope); the others in
    training mode (they have no random behaviour). The grid contains x = 0.
    """
    x = np.linspace(lo, hi, n)
    out: dict[str, tuple[np.ndarray, ...]] = {}
    for name, make in _table().items():
        layer = make()
        if "RReLU" in name:
            layer.eval(grad=True)
        y = layer.forward(x)
        dydx = layer.backward(np.ones_like(x))
        out[name] = (x, np.asarray(y), np.asarray(dydx))
    return out


def plot_activations(out: str = "activations.png", *, dpi: int = 100) -> dict[str, tuple[np.ndarray, ...]]:
    """Draw the table (4 columns) to ``out``; returns the curves that were drawn."""
    from .common import new_figure, save_figure

    curves = activation_curves()
    cols = 4
    rows = -(-len(curves) // cols)
    fig = new_figure(3.0 * cols, 2.35 * rows + 0.5)
    for i, (name, (x, y, d)) in enumerate(curves.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.axhline(0, color="0.75", lw=0.6)
        ax.axvline(0, color="0.75", lw=0.6)
        if "RReLU" in name:
            from ..layers import RReLU
            r = RReLU()
            neg = x <= 0
            ax.fill_between(x[neg], r.lower * x[neg], r.upper * x[neg], color="#1f77b4", alpha=0.2, lw=0)
        ax.plot(x, y, color="#1f77b4", lw=1.8, label="f(x) = forward")
        ax.plot(x, d, color="#d62728", lw=1.4, ls="--", label="f'(x) = backward(1)")
        ax.set_title(name, fontsize=9)
        ax.set_xlim(x[0], x[-1])
        lo, hi = min(y.min(), d.min()), max(y.max(), d.max())
        ax.set_ylim(max(lo, -2.2) - 0.15, min(hi, 4.2) + 0.15)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7, loc="upper left", frameon=False)
    fig.suptitle("Activation layers: forward f(x) (solid) and backward f'(x) (dashed), "
                 "computed by the layers themselves", fontsize=10)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.04, top=0.92, wspace=0.22, hspace=0.38)
    save_figure(fig, out, dpi, "plot activations")
    return curves


def main(argv: list[str] | None = None) -> int:
    """``layerwise plot activations --out acts.png``."""
    parser = argparse.ArgumentParser(
        prog="layerwise plot activations",
        description="Every activation layer and its derivative, drawn from the layers' forward and backward.")
    parser.add_argument("--out", default="activations.png", help="output image (default: activations.png)")
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        curves = plot_activations(args.out, dpi=args.dpi)
    except FileNotFoundError as e:
        parser.error(str(e))
    print(f"{len(curves)} activations: {', '.join(curves)}")
    print(f"wrote {args.out}")
    return 0
