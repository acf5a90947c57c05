"""DenseNet feature reuse (Huang et al. 2017, Fig. 5): how strongly each layer of a dense block
reads the maps of each earlier layer, from the trained weights alone.

    mats = feature_reuse(net)                        # one (L+1, L+1) array per dense block
    layerwise plot reuse runs/x/checkpoint.safetensors --out reuse.png

For a block of L layers with input x_0 (C_0 maps) and growth rate k, source s is x_0 (s = 0,
channels [0, C_0)) or the k maps of dense layer s (channels [C_0+(s-1)k, C_0+sk)). Target l
is dense layer l (its FIRST convolution: the 3x3 conv of DenseNet, the 1x1 bottleneck of
DenseNet-B), or, as column L, the layer after the block: the transition's 1x1 conv, or the
classifier after the last block (it reads the block's maps through BN-ReLU-global pooling).

    A[s, t] = mean over (out, c in source s, kh, kw) of |W_t[out, c, kh, kw]|

(the paper's "average L1 norm, normalised by the number of input feature-maps"), then each
target's column is divided by its largest entry (per-target normalisation, as in the paper's
figure), so 1 marks the source a layer leans on most. A[s, t] is NaN where target t does not
read source s (s > t: a dense layer only sees earlier layers).
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..core import Layer

__all__ = ["feature_reuse", "plot_feature_reuse", "main"]


def _blocks_and_targets(net: Layer) -> list[tuple[Any, Any]]:
    """(DenseBlock, layer after it or None) in forward order: a Transition, else the last Linear."""
    from ..layers import Linear
    from ..models.dense_block import DenseBlock, Transition

    mods = list(net.modules())
    found: list[tuple[Any, Any]] = []
    for i, m in enumerate(mods):
        if not isinstance(m, DenseBlock):
            continue
        target: Layer | None = None
        for n in mods[i + 1:]:
            if isinstance(n, DenseBlock):
                break
            if isinstance(n, Transition):
                target = n
                break
            if isinstance(n, Linear):
                target = n                      # keep the last one: the classifier
        found.append((m, target))
    return found


def _weight(layer: Any, what: str) -> np.ndarray:
    w = layer._params.get("weight")
    if w is None:
        raise ValueError(f"feature_reuse: {what} {layer!r} has no weights yet; set the net up first "
                         "(net.setup((1, C, H, W)) or one forward) or load a checkpoint")
    return np.abs(to_numpy(w.data).astype(np.float64))


def _block_matrix(block: Any, target: Any, normalize: bool) -> np.ndarray:
    from ..models.dense_block import Transition

    L, k = block.num_layers, block.growth_rate
    if block._in_shapes is None:
        raise ValueError(f"feature_reuse: {block!r} is not set up; call net.setup((1, C, H, W)) or run one "
                         "forward before reading its weights")
    c0 = int(block._in_shapes[0][1])
    bounds = [0, c0] + [c0 + s * k for s in range(1, L + 1)]          # source s: channels bounds[s]:bounds[s+1]
    A = np.full((L + 1, L + 1), np.nan)
    for t, layer in enumerate(block.dense_layers):
        W = _weight(layer._children["conv1"], "the first conv of")  # (out, c0 + t*k, kh, kw)
        for s in range(t + 1):
            A[s, t] = W[:, bounds[s]:bounds[s + 1]].mean()
    if target is not None:
        conv = target._children["conv"] if isinstance(target, Transition) else target
        W = _weight(conv, "the layer after")
        if W.shape[1] != bounds[-1]:
            raise ValueError(f"feature_reuse: {target!r} reads {W.shape[1]} channels but {block!r} outputs "
                             f"{bounds[-1]}; the net is not a DenseNet chain")
        for s in range(L + 1):
            A[s, L] = W[:, bounds[s]:bounds[s + 1]].mean()
    if normalize:
        col_max = np.where(np.isnan(A), -np.inf, A).max(axis=0)       # an all-NaN column stays NaN
        A = A / np.where(col_max > 0, col_max, 1.0)
    return A


def feature_reuse(net: Layer, normalize: bool = True) -> list[np.ndarray]:
    """The DenseNet paper's Fig. 5 matrices, one per dense block of ``net``.

    Args:
        net: a set-up DenseNet (or any Layer holding DenseBlocks, e.g. a single block).
        normalize: divide each target's column by its largest entry (the paper's figure);
            False gives the raw average absolute weights.

    Returns:
        For each dense block (forward order) an array A of shape (L+1, L+1): A[s, t] is
        source s (0: the block's input, s >= 1: dense layer s) read by target t (t < L:
        dense layer t+1's first conv; t = L: the transition after the block, or the
        classifier after the last block; that column is NaN when there is none). NaN
        where the target does not read the source (s > t).

    Raises:
        ValueError: no DenseBlock in ``net``, or a block that is not set up yet.

    Example:
        >>> from layerwise.models import build_densenet
        >>> net = build_densenet(block_config=(2, 3), growth_rate=4, impl="reference")
        >>> _ = net.setup((1, 3, 8, 8))
        >>> [a.shape for a in feature_reuse(net)]
        [(3, 3), (4, 4)]
    """
    pairs = _blocks_and_targets(net)
    if not pairs:
        raise ValueError(f"feature_reuse: {net!r} has no DenseBlock; it needs a DenseNet "
                         "(layerwise.models.densenet / densenet_bc or a net holding DenseBlocks)")
    return [_block_matrix(b, t, normalize) for b, t in pairs]


def _target_name(target: Any) -> str:
    from ..models.dense_block import Transition
    return "T" if isinstance(target, Transition) else ("C" if target is not None else "")


def plot_feature_reuse(net: Layer, out: str = "reuse.png", *, title: str | None = None,
                       dpi: int = 110) -> list[np.ndarray]:
    """Draw one heat map per dense block (x: target layer, y: source layer) and save it to ``out``.

    Returns:
        The matrices that were drawn (as ``feature_reuse(net)``).
    """
    from matplotlib.colors import Normalize

    from .common import new_figure, save_figure

    pairs = _blocks_and_targets(net)
    mats = feature_reuse(net)
    fig = new_figure(3.6 * len(mats) + 0.9, 3.9)
    axes = [fig.add_subplot(1, len(mats), i + 1) for i in range(len(mats))]
    norm = Normalize(0.0, 1.0)
    im = None
    for b, (ax, A, (_, target)) in enumerate(zip(axes, mats, pairs), start=1):
        L = A.shape[0] - 1
        im = ax.imshow(np.ma.masked_invalid(A), cmap="jet", norm=norm, origin="upper",
                       interpolation="nearest", aspect="equal")
        ticks = list(range(L + 1))
        last = _target_name(target)
        ax.set_xticks(ticks, [str(t + 1) for t in range(L)] + [last], fontsize=7)
        ax.set_yticks(ticks, [str(s) for s in ticks], fontsize=7)
        ax.set_xlabel("target layer (l)" + (f"; {last} = {'transition' if last == 'T' else 'classifier'}"
                                            if last else ""), fontsize=8)
        if b == 1:
            ax.set_ylabel("source layer (s); 0 = block input", fontsize=8)
        ax.set_title(f"dense block {b}", fontsize=9)
        ax.set_facecolor("white")
    fig.colorbar(im, ax=axes, fraction=0.025, pad=0.02).set_label("mean |w|, / max per target", fontsize=8)
    fig.suptitle(title or "DenseNet feature reuse: average absolute weight from source s to target l",
                 fontsize=10)
    save_figure(fig, out, dpi, "plot reuse")
    return mats


def _print_matrices(mats: Sequence[np.ndarray]) -> None:
    for b, A in enumerate(mats, start=1):
        L = A.shape[0] - 1
        print(f"dense block {b} ({L} layers): rows = source 0..{L}, columns = target 1..{L} + next layer")
        for s in range(L + 1):
            print("  " + " ".join("   . " if np.isnan(v) else f"{v:5.2f}" for v in A[s]))


def main(argv: list[str] | None = None) -> int:
    """``layerwise plot reuse CHECKPOINT --out reuse.png``."""
    parser = argparse.ArgumentParser(
        prog="layerwise plot reuse",
        description="DenseNet feature reuse (the DenseNet paper's Fig. 5) from a trained checkpoint: per dense "
                    "block, the average absolute weight with which each layer reads each earlier layer.")
    parser.add_argument("checkpoint", help="a checkpoint written by `layerwise train` of a DenseNet")
    parser.add_argument("--out", default="reuse.png", help="output image (default: reuse.png)")
    parser.add_argument("--dpi", type=int, default=110)
    args = parser.parse_args(argv)
    from pathlib import Path

    from ..train.build import model_from_checkpoint

    if not Path(args.checkpoint).is_file():
        parser.error(f"no such checkpoint file {args.checkpoint!r}")
    try:
        net, meta = model_from_checkpoint(args.checkpoint)
        mats = plot_feature_reuse(net, args.out, title=f"feature reuse: {meta['model']['name']} "
                                                       f"({Path(args.checkpoint).name})")
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    _print_matrices(mats)
    print(f"wrote {args.out}")
    return 0
