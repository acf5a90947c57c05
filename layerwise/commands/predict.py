"""``layerwise predict``: the top classes of image / .npy / .npz files under a checkpoint's model."""
from __future__ import annotations

import argparse

from ._common import CLIError, load_checkpoint_model

HELP = "classify image/.npy/.npz files with a checkpoint"
DESCRIPTION = ("Print the top classes for each file. Images (PNG, JPEG) are read in [0, 1], converted to the model's "
               "channels and resized to its input; .npy/.npz hold samples (C, H, W) or batches already in the data "
               "set's scale.")
EXAMPLES = """
    layerwise predict runs/digits/checkpoint-epoch0030.safetensors seven.png three.npy --top 3
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint")
    p.add_argument("files", nargs="+")
    p.add_argument("--top", type=int, default=3, help="how many classes to list")
    p.add_argument("--invert", action="store_true", help="invert images (dark ink on light paper -> digits' scale)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..data import Normalize, read_samples
    from ..layers import Softmax

    net, meta = load_checkpoint_model(args.checkpoint)
    shape = tuple(meta.get("input_shape") or meta["data"]["sample_shape"])
    norm = Normalize.from_meta(meta)
    classes = meta.get("data", {}).get("classes") or []
    dtype = np.dtype(meta.get("dtype", "float32"))
    softmax = Softmax(axis=1).eval()

    def label(k: int) -> str:
        return str(classes[k]) if k < len(classes) else str(k)

    for f in args.files:
        x = read_samples(f, shape, invert=args.invert)
        if not np.isfinite(x).all():
            raise CLIError(f"{f}: the input holds NaN/Inf values; pass finite samples")
        if norm is not None:
            x = norm(x, None)
        logits = np.asarray(net.forward(x.astype(dtype)), dtype=np.float64)
        if not np.isfinite(logits).all():
            raise CLIError(f"{f}: the model's outputs are NaN/Inf for this input (the checkpoint "
                           f"{args.checkpoint} or the input overflowed); use an earlier checkpoint")
        prob = softmax.forward(logits)
        for i, p in enumerate(prob):
            top = [int(k) for k in np.argsort(-p)[: args.top]]
            tag = f"{f}[{i}]" if len(prob) > 1 else f
            print(f"{tag}: {label(top[0])}  ({', '.join(f'{label(k)} {p[k]:.3f}' for k in top)})")
    return 0
