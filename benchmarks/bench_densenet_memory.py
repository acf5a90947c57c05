"""Peak memory of a DenseNet-BC training step (forward + backward) with the memory-efficient
dense blocks on and off, at depth 40, 100 and 190: linear vs quadratic growth.

    .venv/bin/python benchmarks/bench_densenet_memory.py [--batch 4] [--size 32] [--growth 12]
                                                        [--depths 40,100,190]

Each measurement runs in a fresh subprocess. "activations" is tracemalloc's peak of the
NumPy allocations during forward + backward minus what was allocated before (params, grads,
input): the feature buffers, caches and temporaries. "RSS" is the process's peak resident set
(ru_maxrss), including Python, NumPy and the params.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, tracemalloc
import numpy as np
from layerwise.models import densenet_bc
depth, k, batch, size, me = (int(a) for a in sys.argv[1:6])
net = densenet_bc(depth=depth, growth_rate=k, memory_efficient=bool(me), impl=sys.argv[6])
x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
net.setup(x.shape)
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
y = net.forward(x)
after_forward = tracemalloc.get_traced_memory()[0] - base
net.backward(np.ones_like(y))
peak = tracemalloc.get_traced_memory()[1] - base
tracemalloc.stop()
print(json.dumps({"depth": depth, "me": me, "peak": peak, "kept": after_forward,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "params": net.num_params()}))
"""


def measure(depth: int, k: int, batch: int, size: int, me: bool, impl: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(depth), str(k), str(batch), str(size), str(int(me)), impl],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode:
        raise SystemExit(f"bench_densenet_memory: child failed for depth={depth}:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--growth", type=int, default=12)
    ap.add_argument("--depths", default="40,100,190")
    ap.add_argument("--impl", choices=["reference", "fast"], default="reference",
                    help="dense-block implementation: the NCHW reference (where memory_efficient switches the "
                         "recompute on and off) or the channels-first fast path (which always recomputes)")
    args = ap.parse_args()
    mib = 2.0 ** 20
    print(f"DenseNet-BC k={args.growth}, batch {args.batch}, 3x{args.size}x{args.size}, float32, one training step, "
          f"impl={args.impl}")
    print(f"{'depth':>5} {'layers/block':>12} {'params':>10} | {'memory_efficient=True':^30} | "
          f"{'memory_efficient=False':^30} | ratio")
    print(f"{'':>5} {'':>12} {'':>10} | {'activations':>14} {'RSS':>14} | {'activations':>14} {'RSS':>14} |")
    for d in (int(s) for s in args.depths.split(",")):
        on = measure(d, args.growth, args.batch, args.size, True, args.impl)
        off = measure(d, args.growth, args.batch, args.size, False, args.impl)
        print(f"{d:>5} {(d - 4) // 6:>12} {on['params']:>10,} | {on['peak'] / mib:>10.1f} MiB "
              f"{on['rss'] / mib:>10.1f} MiB"
              f" | {off['peak'] / mib:>10.1f} MiB {off['rss'] / mib:>10.1f} MiB | {off['peak'] / on['peak']:.2f}x")


if __name__ == "__main__":
    main()
