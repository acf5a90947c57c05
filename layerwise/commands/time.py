"""``layerwise time``: per-layer forward/backward milliseconds on a random batch (like ``caffe time``)."""
from __future__ import annotations

import argparse

from ._common import add_model_arguments, build_tool_model, tune_malloc

HELP = "per-layer forward/backward milliseconds (like caffe time)"
DESCRIPTION = "Time every layer's forward and backward pass on a random batch."
EXAMPLES = """
    layerwise time densenet_bc --input 3,32,32 --batch 64 --iters 5
    layerwise time resnet20 --depth 1          # one row per block instead of per layer
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a registered model, or a Caffe .prototxt/.caffemodel or .onnx file")
    add_model_arguments(p)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--depth", type=int, default=None, help="levels of nested nets to expand (default: all)")
    p.add_argument("--forward-only", action="store_true")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..tools.summary import default_input_shape
    from ..tools.timing import format_timing, time_layers

    tune_malloc()
    net = build_tool_model(args.model, args.arg, args.num_classes)
    shape = tuple(args.input) if args.input is not None else default_input_shape(net)
    x = np.random.default_rng(0).standard_normal((args.batch, *shape)).astype(args.dtype)
    print(f"{args.model}: batch {args.batch} x {','.join(map(str, shape))}, {args.iters} iterations "
          f"({'forward only' if args.forward_only else 'forward + backward'}), {args.dtype}")
    rows = time_layers(net, x, iters=args.iters, warmup=1, depth=args.depth, backward=not args.forward_only)
    print(format_timing(rows, batch=args.batch))
    return 0
