"""Per-layer-kind timing at DenseNet-BC-100-12's shapes: layerwise vs PyTorch, same run.

    python benchmarks/bench_layers.py                    # batch 64, median of 5
    python benchmarks/bench_layers.py --batch 16 --iters 3 --json layers.json

For each layer kind (conv 1x1, conv 3x3, BN, ReLU, BN+ReLU, concat, pooling, linear) the
forward and the backward are timed separately (median), for:

* ``ours``: the layerwise layer in NCHW (``layerwise.layers``), what a plain Net runs;
* ``fast``: the channels-first (C, N*H*W) kernels the fast dense block runs
  (``layerwise.models.dense_fast`` / ``layerwise.functional.cnhw``), where one exists;
* ``torch``: the same op in PyTorch (CPU, autograd), on the same data.

Shapes (batch N): a middle layer of dense block 1 reads c=120 channels at 32x32; its 1x1
conv maps 120 -> 48 (4k), its 3x3 conv 48 -> 12 (k); the concat appends 12 maps to 120;
transition 1 pools 108 maps 32x32 -> 16x16; the classifier maps 342 -> 10.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def _timeit(fn, iters, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(k, str(args.threads))

    import numpy as np
    import torch
    import torch.nn.functional as TF

    from layerwise import layers as L
    from layerwise.functional import cnhw
    from layerwise.functional.workspace import Workspace
    workspace = Workspace().get

    torch.set_num_threads(args.threads)
    N, it = args.batch, args.iters
    rng = np.random.default_rng(0)
    f32 = np.float32

    def randn(*shape):
        return rng.standard_normal(shape).astype(f32)

    rows = []

    def record(kind, shape, side, fwd, bwd):
        rows.append({"kind": kind, "shape": shape, "side": side, "fwd_ms": fwd * 1e3, "bwd_ms": bwd * 1e3})

    def ours(kind, shape, layer, *xs):
        layer.train()
        y = layer.forward(*xs)
        dy = randn(*y.shape)
        fwd = _timeit(lambda: layer.forward(*xs), it)

        def fb():
            layer.forward(*xs)
            layer.backward(dy)
        bwd = max(_timeit(fb, it) - fwd, 0.0)
        record(kind, shape, "ours", fwd, bwd)

    def theirs(kind, shape, fn, *xs):
        ts = [torch.from_numpy(x.copy()).requires_grad_(True) for x in xs]
        y = fn(*ts)
        dy = torch.from_numpy(randn(*y.shape))
        fwd = _timeit(lambda: fn(*ts), it)

        def fb():
            fn(*ts).backward(dy)
        bwd = max(_timeit(fb, it) - fwd, 0.0)
        record(kind, shape, "torch", fwd, bwd)

    H = W = 32
    c, w, k = 120, 48, 12
    M = N * H * W
    # conv 1x1 -------------------------------------------------------------------------
    x = randn(N, c, H, W)
    conv1 = L.Conv2d(w, 1, bias=False)
    ours("conv1x1", f"{N}x{c}x32x32 -> {w}", conv1, x)
    wt = torch.from_numpy(conv1.weight.data.copy()).requires_grad_(True)
    theirs("conv1x1", f"{N}x{c}x32x32 -> {w}", lambda t: TF.conv2d(t, wt), x)
    Xc, W1 = randn(c, M), conv1.weight.data.reshape(w, c)
    dH = randn(w, M)
    fwd = _timeit(lambda: W1 @ Xc, it)
    bwd = _timeit(lambda: (Xc @ dH.T, W1.T @ dH), it)
    record("conv1x1", f"{N}x{c}x32x32 -> {w}", "fast", fwd, bwd)
    # conv 3x3 -------------------------------------------------------------------------
    x = randn(N, w, H, W)
    conv2 = L.Conv2d(k, 3, padding=1, bias=False)
    ours("conv3x3", f"{N}x{w}x32x32 -> {k}", conv2, x)
    wt2 = torch.from_numpy(conv2.weight.data.copy()).requires_grad_(True)
    theirs("conv3x3", f"{N}x{w}x32x32 -> {k}", lambda t: TF.conv2d(t, wt2, padding=1), x)
    Hp, Wp = H + 2, W + 2
    Np = N * Hp * Wp
    offs = [i * Wp + j for i in range(3) for j in range(3)]
    Lc = Np - offs[-1]
    P = workspace("bench-P", (w, N, Hp, Wp), f32, zero=True)
    P[:, :, 1:-1, 1:-1] = x.transpose(1, 0, 2, 3)
    W2 = conv2.weight.data.transpose(2, 3, 0, 1).reshape(9 * k, w)
    Z, Y = np.empty((9 * k, Np), f32), np.empty((k, Np), f32)
    D, dP = np.empty((9 * k, Np), f32), np.empty((w, Np), f32)
    dyp = np.zeros((k, Np), f32)
    dyp.reshape(k, N, Hp, Wp)[:, :, :H, :W] = randn(k, N, H, W)

    def c3_fwd():
        np.matmul(W2, P.reshape(w, Np), out=Z)
        Y[:, :Lc] = Z[:k, :Lc]
        for t in range(1, 9):
            Y[:, :Lc] += Z[t * k:(t + 1) * k, offs[t]:offs[t] + Lc]

    def c3_bwd():
        for t, off in enumerate(offs):
            D[t * k:(t + 1) * k, :off] = 0
            D[t * k:(t + 1) * k, off:] = dyp[:, :Np - off]
        D @ P.reshape(w, Np).T
        np.matmul(W2.T, D, out=dP)
    record("conv3x3", f"{N}x{w}x32x32 -> {k}", "fast", _timeit(c3_fwd, it), _timeit(c3_bwd, it))
    # BN, ReLU, BN+ReLU ------------------------------------------------------------------
    x = randn(N, c, H, W)
    ours("bn", f"{N}x{c}x32x32", L.BatchNorm2d(), x)
    g, b = torch.ones(c, requires_grad=True), torch.zeros(c, requires_grad=True)
    theirs("bn", f"{N}x{c}x32x32", lambda t: TF.batch_norm(t, None, None, g, b, training=True), x)
    ours("relu", f"{N}x{c}x32x32", L.ReLU(), x)
    theirs("relu", f"{N}x{c}x32x32", lambda t: TF.relu(t), x)
    bn, relu = L.BatchNorm2d(), L.ReLU()

    class _BnRelu(L.ReLU):
        def _forward(self, t):
            return relu.forward(bn.forward(t))

        def _backward(self, dy):
            return bn.backward(relu.backward(dy))
    ours("bn+relu", f"{N}x{c}x32x32", _BnRelu(), x)
    theirs("bn+relu", f"{N}x{c}x32x32", lambda t: TF.relu(TF.batch_norm(t, None, None, g, b, training=True)), x)
    Xc = randn(c, M)
    A, dA, G = np.empty_like(Xc), randn(c, M), np.zeros_like(Xc)
    mean, var, r1, r2 = (np.empty(c) for _ in range(4))
    s, t = np.ones(c, f32), np.zeros(c, f32)

    def br_fwd():
        cnhw.row_stats(Xc, mean, var)
        cnhw.bn_relu(Xc, s, t, A)

    def br_bwd():   # what the dense block does per BN1: fused pass + deferred affine terms
        cnhw.relu_bwd_sums(dA, A, Xc, s, G, r1, r2)
    record("bn+relu", f"{N}x{c}x32x32", f"fast ({cnhw.get_backend()})", _timeit(br_fwd, it), _timeit(br_bwd, it))
    # concat -------------------------------------------------------------------------------
    a, b2 = randn(N, c, H, W), randn(N, k, H, W)
    ours("concat", f"{N}x({c}+{k})x32x32", L.Concat(axis=1), a, b2)
    theirs("concat", f"{N}x({c}+{k})x32x32", lambda u, v: torch.cat([u, v], 1), a, b2)
    # pooling ------------------------------------------------------------------------------
    x = randn(N, 108, H, W)
    ours("avgpool2x2", f"{N}x108x32x32", L.AvgPool2d(2, stride=2), x)
    theirs("avgpool2x2", f"{N}x108x32x32", lambda t: TF.avg_pool2d(t, 2), x)
    x = randn(N, 342, 8, 8)
    ours("globalavgpool", f"{N}x342x8x8", L.GlobalAvgPool2d(), x)
    theirs("globalavgpool", f"{N}x342x8x8", lambda t: TF.adaptive_avg_pool2d(t, 1), x)
    # linear -------------------------------------------------------------------------------
    x = randn(N, 342)
    lin = L.Linear(10)
    ours("linear", f"{N}x342 -> 10", lin, x)
    lw, lb = (torch.from_numpy(lin.weight.data.copy()).requires_grad_(True),
              torch.from_numpy(lin.bias.data.copy()).requires_grad_(True))
    theirs("linear", f"{N}x342 -> 10", lambda t: TF.linear(t, lw, lb), x)

    print(f"per-layer timing, batch {N}, {args.threads} threads, median of {it} (ms); "
          f"ratio = torch time / our time (>1: we are faster)")
    print(f"{'kind':<14}{'shape':<24}{'side':<16}{'fwd':>9}{'bwd':>9}{'f+b':>9}{'vs torch':>10}")
    ref = {r["kind"]: r for r in rows if r["side"] == "torch"}
    for r in rows:
        tot = r["fwd_ms"] + r["bwd_ms"]
        tt = ref[r["kind"]]["fwd_ms"] + ref[r["kind"]]["bwd_ms"]
        r["ratio_vs_torch"] = tt / tot if tot > 0 else float("nan")
        print(f"{r['kind']:<14}{r['shape']:<24}{r['side']:<16}{r['fwd_ms']:>9.2f}{r['bwd_ms']:>9.2f}{tot:>9.2f}"
              f"{r['ratio_vs_torch']:>10.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch": N, "threads": args.threads, "iters": it, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
