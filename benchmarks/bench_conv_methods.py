"""Channels-first convolution methods against each other: forward, dx and dW per method.

    python benchmarks/bench_conv_methods.py                         # cftaps vs winograd, one core
    python benchmarks/bench_conv_methods.py --threads 2 --stat min 16,16,32 64,64,8
    python benchmarks/bench_conv_methods.py --methods cftaps,winograd,cfim2col 48,12,16

Each case is ``C,K,H``: a 3x3 stride-1 convolution of padding 1, C -> K channels on H x H maps,
batch ``--batch``, float32, as a network runs it: the input handed over on the convolution's
grid (what the layer before writes into), dy written into ``conv2d_grad_buffer``'s view. The
methods alternate per repetition (one forward + dx, one forward + dW each); the figure is the
median (or ``--stat min``) after two warm-up repetitions.

``--threads 1`` (default) runs OpenBLAS and our splits on one thread and times CPU time of
the thread: on a machine shared with other jobs that is the steadiest figure. ``--threads 2``
times wall-clock with both cores (``--stat min`` then estimates a quiet machine). The last
column is the first method's time over each other's, forward + dx + dW (> 1: faster).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:      # this checkout's layerwise, not an installed one
    sys.path.insert(0, ROOT)

CASES = ["16,16,32", "32,32,16", "64,64,8", "32,32,32", "32,64,16", "64,64,16", "64,128,8", "128,128,8",
         "48,12,32", "48,12,16", "48,12,8"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cases", nargs="*", default=CASES, help="C,K,H (default: ResNet-56, VGG and DenseNet shapes)")
    p.add_argument("--methods", default="cftaps,winograd")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--stat", choices=["median", "min"], default="median")
    args = p.parse_args(argv)

    import numpy as np

    from layerwise.functional import blas, conv2d_backward, conv2d_forward
    from layerwise.functional import conv as fconv

    blas.set_num_threads(args.threads)
    if args.threads == 1 and blas._blas().set_threads is not None:
        blas._blas().set_threads(1)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    stat = statistics.median if args.stat == "median" else min
    methods = args.methods.split(",")
    rng = np.random.default_rng(0)
    print(f"{args.threads} thread(s), {'CPU' if args.threads == 1 else 'wall'} time, {args.stat} of {args.repeats} "
          f"(ms), batch {args.batch}, float32")
    print(f"{'C->K @H':14s}" + "".join(f"{m + ' fwd/dx/dW':>28s}" for m in methods) + "  ratio")
    for case in args.cases:
        C, K, H = (int(v) for v in case.split(","))
        N = args.batch
        g = fconv.tap_grid((N, C, H, H), (K, C, 3, 3), (1, 1), (1, 1))
        _, x = fconv._new_grid(np, (N, C, H, H), g, np.float32)
        x[...] = rng.standard_normal((N, C, H, H))
        W = (rng.standard_normal((K, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
        dy = rng.standard_normal((N, K, H, H)).astype(np.float32)
        times: dict[str, dict[str, list[float]]] = {m: {"f": [], "dx": [], "dW": []} for m in methods}
        for _ in range(args.repeats + 2):
            for m in methods:
                for part in ("dx", "dW"):
                    t0 = clock()
                    _, ctx = conv2d_forward(x, W, None, 1, 1, impl=m, crop=False)
                    t1 = clock()
                    buf, view = fconv.conv2d_grad_buffer(ctx)
                    if buf is None:
                        t2 = clock()
                        conv2d_backward(dy, ctx, need_dx=part == "dx", need_dW=part == "dW")
                    else:
                        view[...] = dy
                        t2 = clock()
                        conv2d_backward(None, ctx, need_dx=part == "dx", need_dW=part == "dW", dy_grid=buf)
                    t3 = clock()
                    times[m]["f"].append(t1 - t0)
                    times[m][part].append(t3 - t2)
        res = {m: {k: 1e3 * stat(v[2:]) for k, v in d.items()} for m, d in times.items()}
        tot = {m: sum(r.values()) for m, r in res.items()}
        cols = "".join(f"{r['f']:10.2f}{r['dx']:9.2f}{r['dW']:9.2f}" for r in res.values())
        ratios = " ".join(f"{tot[methods[0]] / tot[m]:.2f}" for m in methods[1:])
        print(f"{C:>4d}->{K:<4d}@{H:<4d}" + cols + f"  {ratios}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
