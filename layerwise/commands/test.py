"""``layerwise test``: loss, top-1/top-5 and the confusion matrix of a checkpoint on a data set."""
from __future__ import annotations

import argparse
import time

from ._common import CLIError, load_checkpoint_model, tune_malloc

HELP = "accuracy and confusion matrix of a checkpoint on a data set"
DESCRIPTION = ("Evaluate a training checkpoint: loss, top-1/top-5 accuracy and the confusion matrix, by default on "
               "the test split of the data set it was trained on.")
EXAMPLES = """
    layerwise test runs/digits/checkpoint-epoch0030.safetensors
    layerwise test model.safetensors --data mnist --root ~/data/mnist --split test
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint")
    p.add_argument("--data", help="data set name (default: the one in the checkpoint)")
    p.add_argument("--root", help="data directory (default: the one in the checkpoint)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--batch-size", type=int, default=256)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..data import DataLoader, Normalize, load_dataset
    from ..losses import SoftmaxCrossEntropyLoss
    from ..train.metrics import format_confusion
    from ..train.trainer import evaluate

    tune_malloc()
    net, meta = load_checkpoint_model(args.checkpoint)
    cfg = meta.get("config", {}).get("data", {})
    name = args.data or cfg.get("name") or meta.get("data", {}).get("name")
    root = args.root if args.root is not None else (cfg.get("root") if args.data is None else None)
    ds = load_dataset(name, root=root, split=args.split)
    want = tuple(meta.get("input_shape") or ())
    if want and tuple(ds.sample_shape) != want:
        raise CLIError(f"data {name!r} has samples of shape {ds.sample_shape} but the model was trained on {want}")
    k = int(meta["model"]["num_classes"])
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=False, drop_last=False)
    t0 = time.perf_counter()
    res = evaluate(net, loader, SoftmaxCrossEntropyLoss(), transform=Normalize.from_meta(meta), num_classes=k,
                   collect=True, dtype=meta.get("dtype", "float32"))
    dt = time.perf_counter() - t0
    print(f"{name} {args.split}: {res['n']} images, loss {res['loss']:.4f}, top-1 {100 * res['top1']:.2f}%"
          + (f", top-5 {100 * res['top5']:.2f}%" if "top5" in res else "") + f"  ({res['n'] / dt:.0f} img/s)")
    classes = meta.get("data", {}).get("classes")
    if k <= 20:
        print("confusion matrix (rows: true class, columns: predicted):")
        print(format_confusion(res["confusion"], classes if classes and len(classes) == k else None))
    m = res["confusion"]
    per_class = np.diag(m) / np.maximum(m.sum(axis=1), 1)
    worst = np.argsort(per_class)[:3]
    print("lowest per-class accuracy: " + ", ".join(
        f"{(classes[i] if classes and i < len(classes) else i)} {100 * per_class[i]:.1f}%" for i in worst))
    return 0
