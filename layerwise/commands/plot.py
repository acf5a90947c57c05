"""``layerwise plot``: training curves from a run's log, and the figures of ``layerwise.viz``."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import CLIError, Parser

# ``layerwise plot NAME ...`` -> ``layerwise.viz.<module>.main(argv)``
PLOTS = {"optimizers": "optimizers", "reuse": "reuse", "activations": "activations", "center-loss": "center_loss",
         "gridworld": "gridworld", "gan": "gan"}

HELP = "plots: training curves, optimizer paths, the articles' figures, grid world, GAN"
DESCRIPTION = """\
plot curves LOG [--out PNG]: redraw a run's curves from log.csv/log.jsonl.
plot optimizers ...: optimizer paths on test functions (see plot optimizers --help).
plot reuse CHECKPOINT: DenseNet feature reuse (the paper's Fig. 5).
plot activations: every activation layer and its derivative.
plot center-loss: 2-D features with softmax alone and with center loss.
plot gridworld [--out PNG]: value/policy iteration and Q-learning on a grid world.
plot gan [--out PNG]: a GAN of layerwise layers on a 2-D ring of Gaussians.
docs/figures.md shows each picture and its command."""
EXAMPLES = """
    layerwise plot curves runs/digits/log.jsonl --out curves.png
    layerwise plot optimizers --help
    layerwise plot reuse runs/digits/checkpoint-epoch0040.safetensors --out reuse.png
    layerwise plot gridworld --out gridworld.png
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["curves", *PLOTS])
    p.add_argument("rest", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace) -> int:
    if args.what in PLOTS:
        import importlib

        viz_main = importlib.import_module(f"layerwise.viz.{PLOTS[args.what]}").main
        return int(viz_main(list(args.rest)) or 0)
    from ..train.logs import plot_curves, read_log

    ap = Parser(prog="layerwise plot curves")
    ap.add_argument("log")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(list(args.rest))
    rows = read_log(a.log)
    if not rows:
        raise CLIError(f"{a.log}: the log has no rows yet")
    src = Path(a.log)
    out = Path(a.out) if a.out else (src if src.is_dir() else src.parent) / "curves.png"
    print(plot_curves(rows, out, title=str(src)))
    return 0
