"""DenseNet-BC vs ResNet: test error against parameters and against forward MACs (the DenseNet
paper's Fig. 3), on what a 2-core machine trains in minutes: the 8x8 digits that ship with
scikit-learn (1438 training, 359 test images), NOT CIFAR-10.

    python examples/densenet_vs_resnet.py                        # the grid below, one seed: ~7 min on 2 cores
    python examples/densenet_vs_resnet.py --seeds 0,1,2 --out fig3.png --table table.md --json rows.json
    python examples/densenet_vs_resnet.py --replot rows.json --out fig3.png      # redraw, no training

Every model is trained by layerwise's own Trainer with the same recipe (`layerwise train`'s
defaults: SGD + Nesterov 0.9, lr 0.1 with a 1-epoch warm-up and cosine decay, weight decay
5e-4, batch 64, pad-1 random crops, per-channel normalisation), seeds fixed. Parameters and
MACs come from `layerwise.tools.summary` (multiply-adds of convolutions and Linear layers per
8x8 image). The measured table is in docs/densenet.md; the paper's CIFAR-10 numbers and the
recipe that reproduces them are there too.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# (family, registered model, builder kwargs): sizes chosen to span ~5k-270k parameters.
GRID: list[tuple[str, str, dict[str, Any]]] = [
    ("DenseNet-BC", "densenet_bc", {"depth": 10, "growth_rate": 6}),
    ("DenseNet-BC", "densenet_bc", {"depth": 16, "growth_rate": 8}),
    ("DenseNet-BC", "densenet_bc", {"depth": 22, "growth_rate": 12}),
    ("DenseNet-BC", "densenet_bc", {"depth": 40, "growth_rate": 12}),
    ("ResNet", "resnet", {"depth": 8, "width": 8}),
    ("ResNet", "resnet", {"depth": 14, "width": 8}),
    ("ResNet", "resnet", {"depth": 14, "width": 16}),
    ("ResNet", "resnet", {"depth": 20, "width": 16}),
]


def label(family: str, kwargs: dict[str, Any]) -> str:
    if family.startswith("DenseNet"):
        return f"{family} L={kwargs['depth']} k={kwargs['growth_rate']}"
    return f"{family}-{kwargs['depth']} width {kwargs.get('width', 16)}"


def size(model: str, kwargs: dict[str, Any], input_shape=(1, 8, 8), num_classes: int = 10) -> tuple[int, int]:
    """(parameters, forward MACs per image) of a model, from shapes alone."""
    from layerwise.models import build_model
    from layerwise.tools.summary import summary_rows

    net = build_model(model, num_classes=num_classes, **kwargs)
    rows = summary_rows(net, input_shape)
    return net.num_params(), sum(r.macs for r in rows)


def train_one(model: str, kwargs: dict[str, Any], *, epochs: int, seed: int, run_dir: str | Path,
              data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train one model with the shared recipe; return its test error (%), params, MACs and time."""
    from layerwise.config import load_config
    from layerwise.train.build import build_trainer

    cfg = load_config({"model": {"name": model, "kwargs": dict(kwargs)}, "epochs": int(epochs), "seed": int(seed),
                       "checkpoint_every": 0, "data": {"name": "digits", "num_workers": 0, **(data or {})}})
    trainer = build_trainer(cfg, run_dir, progress=False, print_fn=lambda s: None)
    t0 = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - t0
    res = trainer.evaluate(trainer.val_loader)
    params, macs = size(model, kwargs)
    return {"model": model, "kwargs": dict(kwargs), "seed": int(seed), "error": 100.0 * (1.0 - float(res["top1"])),
            "params": params, "macs": macs, "seconds": seconds, "epochs": int(epochs)}


def run_grid(grid: Sequence[tuple[str, str, dict[str, Any]]] = GRID, *, epochs: int = 20,
             seeds: Sequence[int] = (0,), print_fn=print) -> list[dict[str, Any]]:
    """Train every (model, seed) of ``grid``; one result row per model, errors averaged over seeds."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="densenet_vs_resnet-") as tmp:
        for i, (family, model, kwargs) in enumerate(grid):
            runs = [train_one(model, kwargs, epochs=epochs, seed=s, run_dir=Path(tmp) / f"{i}-{s}") for s in seeds]
            errs = np.array([r["error"] for r in runs])
            row = {**runs[0], "family": family, "label": label(family, kwargs), "errors": errs.tolist(),
                   "error": float(errs.mean()), "error_std": float(errs.std()),
                   "seconds": float(sum(r["seconds"] for r in runs)), "seeds": list(seeds)}
            rows.append(row)
            print_fn(f"{row['label']:<28} {row['params']:>9,} params {row['macs'] / 1e6:7.2f} M MACs  "
                     f"test error {row['error']:5.2f}%  ({row['seconds']:.0f} s)")
    return rows


def plot(rows: Sequence[dict[str, Any]], out: str | Path, *, dpi: int = 90) -> None:
    """Test error vs parameters and vs MACs, one line per family (the paper's Fig. 3 layout)."""
    from matplotlib.ticker import NullFormatter

    from layerwise.viz.common import new_figure, save_figure

    fig = new_figure(10.0, 4.2)
    styles = {"DenseNet-BC": ("#d62728", "o"), "ResNet": ("#1f77b4", "s")}
    for j, (key, xlabel) in enumerate([("params", "parameters"), ("macs", "forward MACs per image")]):
        ax = fig.add_subplot(1, 2, j + 1)
        for family in dict.fromkeys(r["family"] for r in rows):
            fam = sorted((r for r in rows if r["family"] == family), key=lambda r: r[key])
            c, m = styles.get(family, ("k", "^"))
            x = [r[key] for r in fam]
            y = [r["error"] for r in fam]
            ax.errorbar(x, y, yerr=[r.get("error_std", 0.0) for r in fam], color=c, marker=m, lw=1.6,
                        capsize=3, label=family)
            for r in fam:
                short = r["label"].replace("DenseNet-BC ", "").replace(" width ", " w")
                ax.annotate(short, (r[key], r["error"]), textcoords="offset points", xytext=(4, 4),
                            fontsize=6.5, color=c)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test error (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(frameon=False)
    seeds = rows[0].get("seeds", [rows[0]["seed"]]) if rows else []
    fig.suptitle(f"DenseNet-BC vs ResNet on the 8x8 digits (not CIFAR-10): {rows[0]['epochs'] if rows else 0} "
                 f"epochs, seeds {','.join(map(str, seeds))}", fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.88, wspace=0.25)
    save_figure(fig, out, dpi, "densenet_vs_resnet")


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| model | params | MACs / image | test error (%) | seeds | train time, all seeds (s) |",
             "|---|---:|---:|---:|---|---:|"]
    for r in rows:
        err = f"{r['error']:.2f}" + (f" ± {r['error_std']:.2f}" if len(r.get("seeds", [])) > 1 else "")
        lines.append(f"| {r['label']} | {r['params']:,} | {r['macs'] / 1e6:.2f} M | {err} | "
                     f"{','.join(map(str, r.get('seeds', [r['seed']])))} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", default="0", help="comma-separated seeds; errors are averaged (default: 0)")
    ap.add_argument("--out", default="densenet_vs_resnet.png")
    ap.add_argument("--table", default=None, help="also write the markdown table to this file")
    ap.add_argument("--json", default=None, help="also write the result rows to this JSON file")
    ap.add_argument("--replot", default=None, metavar="JSON", help="draw rows saved with --json; no training")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    t0 = time.perf_counter()
    if args.replot:
        rows = json.loads(Path(args.replot).read_text())
    else:
        rows = run_grid(GRID, epochs=args.epochs, seeds=seeds)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    plot(rows, args.out)
    table = markdown_table(rows)
    print(table)
    if args.table:
        Path(args.table).write_text(table + "\n")
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
