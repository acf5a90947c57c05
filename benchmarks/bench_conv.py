"""Conv2d forward + backward: layerwise (gemm path) vs torch.nn.functional.conv2d + autograd.

Default case (DenseNet's 3x3 growth convolution): 3x3, 48 -> 12 channels, 32x32, batch 64,
stride 1, padding 1, float32. Each side is timed in a block of its own (all of layerwise's
repetitions, then all of PyTorch's): alternating them per repetition made OpenBLAS's and
PyTorch's thread pools fight and slowed PyTorch 4-5x, an artifact. The figure is the median
of ``--repeats``.

    .venv/bin/python benchmarks/bench_conv.py            # prints a table and one JSON line
    .venv/bin/python benchmarks/bench_conv.py --impl direct --repeats 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--cin", type=int, default=48)
    ap.add_argument("--cout", type=int, default=12)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--kernel", type=int, default=3)
    ap.add_argument("--padding", type=int, default=None, help="default: kernel // 2")
    ap.add_argument("--impl", default="gemm", choices=["gemm", "im2col", "direct"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    from layerwise.layers.conv import Conv2d

    pad = args.kernel // 2 if args.padding is None else args.padding
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.cin, args.size, args.size)).astype(np.float32)
    conv = Conv2d(args.cout, args.kernel, padding=pad, impl=args.impl)
    y = conv.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)

    tx = torch.from_numpy(x).requires_grad_(True)
    tW = torch.from_numpy(conv.weight.data.copy()).requires_grad_(True)
    tb = torch.from_numpy(conv.bias.data.copy()).requires_grad_(True)
    tdy = torch.from_numpy(dy)

    def ours() -> None:
        conv.forward(x)
        conv.zero_grad()
        conv.backward(dy)

    def theirs() -> None:
        tx.grad = tW.grad = tb.grad = None
        F.conv2d(tx, tW, tb, padding=pad).backward(tdy)

    times: dict[str, list[float]] = {"layerwise": [], "torch": []}
    for name, fn in (("layerwise", ours), ("torch", theirs)):
        for r in range(args.warmup + args.repeats):
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            if r >= args.warmup:
                times[name].append(dt * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["layerwise"] / med["torch"]
    case = (f"conv{args.kernel}x{args.kernel} {args.cin}->{args.cout} {args.size}x{args.size} "
            f"batch {args.batch} pad {pad} float32, forward+backward")
    print(case)
    print(f"  layerwise ({args.impl}): {med['layerwise']:8.2f} ms (median of {args.repeats})")
    print(f"  torch F.conv2d:       {med['torch']:8.2f} ms  (torch threads: {torch.get_num_threads()})")
    print(f"  ratio layerwise/torch: {ratio:.2f}x")
    print(json.dumps({"case": case, "impl": args.impl, "layerwise_ms": round(med["layerwise"], 3),
                      "torch_ms": round(med["torch"], 3), "ratio": round(ratio, 3), "repeats": args.repeats}))


if __name__ == "__main__":
    main()
