"""Per-layer timing at the shapes of the benchmark networks: layerwise vs PyTorch, same run.

    python benchmarks/bench_layers.py                            # every model's layers, median of 5
    python benchmarks/bench_layers.py --models resnet56,lenet --iters 7 --json layers.json

For each layer of ResNet-56, Caffe's LeNet, the VGG-style stack (bench_models.py) and
DenseNet-BC-100-12, at the shape it has in that network, the forward and the backward are
timed (median; bwd = median(forward + backward) - median(forward)) for:

* ``ours``: the layerwise layer as a Net runs it: the fused layer where the fusion pass makes
  one (``ConvBatchNorm``, ``BatchNormReLU``), the plain layer otherwise; its input laid out
  channels-first, as the layer before hands it over;
* ``torch``: the same ops in PyTorch (CPU, autograd) on the same data.

Each side is timed in a block of its own (all of ours, then all of PyTorch's, per layer), never
alternating per repetition: OpenBLAS's and PyTorch's thread pools fight when their calls
alternate, which made PyTorch 4-5x slower in such a loop (issue 16). The first layer of a
network computes no input gradient on either side (the images need none). ratio = torch time /
our time (> 1: we are faster). These machines are noisy: compare ratios from one run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:      # this checkout's layerwise, not an installed one
    sys.path.insert(0, ROOT)


def _timeit(fn, iters, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


@dataclass
class Spec:
    """One layer at one shape: ``ours()`` builds the layerwise layer, ``theirs()`` a torch callable."""

    model: str
    kind: str
    shape: str
    inputs: list                      # input shapes (the first one is the activation)
    ours: Callable
    theirs: Callable
    input_grad: bool = True           # whether the input gradient is computed (False: first layer)
    extra: dict = field(default_factory=dict)


def _specs(models: list[str], N: dict[str, int]):
    import torch.nn as tnn

    import layerwise as lw
    specs: list[Spec] = []

    def conv_bn_relu(c_in, c_out, k, s, p, relu=True, bias=False):
        def ours():
            parts = [lw.Conv2d(c_out, k, s, p, bias=bias), lw.BatchNorm2d()]
            return lw.ConvBatchNorm(*parts, lw.ReLU() if relu else None)

        def theirs():
            m = [tnn.Conv2d(c_in, c_out, k, s, p, bias=bias), tnn.BatchNorm2d(c_out)] + ([tnn.ReLU()] if relu else [])
            return tnn.Sequential(*m)
        return ours, theirs

    def conv(c_in, c_out, k, s, p, bias=True):
        return (lambda: lw.Conv2d(c_out, k, s, p, bias=bias)), (lambda: tnn.Conv2d(c_in, c_out, k, s, p, bias=bias))

    def bn_add_relu(c):
        return (lambda: lw.BatchNormAddReLU(lw.BatchNorm2d(), lw.Eltwise("sum"), lw.ReLU()),
                lambda: _BnAddRelu(tnn.BatchNorm2d(c)))

    def maxpool(k):
        return (lambda: lw.MaxPool2d(k)), (lambda: tnn.MaxPool2d(k))

    def linear(i, o):
        return (lambda: lw.Linear(o)), (lambda: tnn.Linear(i, o))

    if "resnet56" in models:
        n = N["resnet56"]
        for c, hw in ((16, 32), (32, 16), (64, 8)):
            specs.append(Spec("resnet56", "conv3x3+bn+relu", f"{n}x{c}x{hw}x{hw}", [(n, c, hw, hw)],
                              *conv_bn_relu(c, c, 3, 1, 1)))
        specs.append(Spec("resnet56", "conv3x3/2+bn+relu", f"{n}x16x32x32 -> 32", [(n, 16, 32, 32)],
                          *conv_bn_relu(16, 32, 3, 2, 1)))
        specs.append(Spec("resnet56", "bn+add+relu", f"{n}x16x32x32", [(n, 16, 32, 32), (n, 16, 32, 32)],
                          *bn_add_relu(16)))
        specs.append(Spec("resnet56", "stem conv+bn+relu", f"{n}x3x32x32 -> 16", [(n, 3, 32, 32)],
                          *conv_bn_relu(3, 16, 3, 1, 1), input_grad=False))
    if "lenet" in models:
        n = N["lenet"]
        specs.append(Spec("lenet", "conv5x5", f"{n}x1x28x28 -> 20", [(n, 1, 28, 28)], *conv(1, 20, 5, 1, 0),
                          input_grad=False))
        specs.append(Spec("lenet", "maxpool2x2", f"{n}x20x24x24", [(n, 20, 24, 24)], *maxpool(2)))
        specs.append(Spec("lenet", "conv5x5", f"{n}x20x12x12 -> 50", [(n, 20, 12, 12)], *conv(20, 50, 5, 1, 0)))
        specs.append(Spec("lenet", "maxpool2x2", f"{n}x50x8x8", [(n, 50, 8, 8)], *maxpool(2)))
        specs.append(Spec("lenet", "linear", f"{n}x800 -> 500", [(n, 800)], *linear(800, 500)))
        specs.append(Spec("lenet", "linear", f"{n}x500 -> 10", [(n, 500)], *linear(500, 10)))
    if "vgg" in models:
        n = N["vgg"]
        specs.append(Spec("vgg", "stem conv+bn+relu", f"{n}x3x32x32 -> 32", [(n, 3, 32, 32)],
                          *conv_bn_relu(3, 32, 3, 1, 1), input_grad=False))
        for c_in, c, hw in ((32, 32, 32), (32, 64, 16), (64, 64, 16), (64, 128, 8), (128, 128, 8)):
            specs.append(Spec("vgg", "conv3x3+bn+relu", f"{n}x{c_in}x{hw}x{hw} -> {c}", [(n, c_in, hw, hw)],
                              *conv_bn_relu(c_in, c, 3, 1, 1)))
        specs.append(Spec("vgg", "maxpool2x2", f"{n}x32x32x32", [(n, 32, 32, 32)], *maxpool(2)))
        specs.append(Spec("vgg", "linear", f"{n}x2048 -> 10", [(n, 2048)], *linear(2048, 10)))
    if "densenet_bc" in models:
        n = N["densenet_bc"]
        specs.append(Spec("densenet_bc", "conv1x1", f"{n}x120x32x32 -> 48", [(n, 120, 32, 32)],
                          *conv(120, 48, 1, 1, 0, bias=False)))
        specs.append(Spec("densenet_bc", "conv3x3", f"{n}x48x32x32 -> 12", [(n, 48, 32, 32)],
                          *conv(48, 12, 3, 1, 1, bias=False)))
        specs.append(Spec("densenet_bc", "bn+relu", f"{n}x120x32x32", [(n, 120, 32, 32)],
                          lambda: lw.BatchNormReLU(lw.BatchNorm2d(), lw.ReLU()),
                          lambda: tnn.Sequential(tnn.BatchNorm2d(120), tnn.ReLU())))
        specs.append(Spec("densenet_bc", "avgpool2x2", f"{n}x108x32x32", [(n, 108, 32, 32)],
                          lambda: lw.AvgPool2d(2), lambda: tnn.AvgPool2d(2)))
        specs.append(Spec("densenet_bc", "linear", f"{n}x342 -> 10", [(n, 342)], *linear(342, 10)))
    return specs


class _BnAddRelu:
    """torch: relu(bn(x) + r)."""

    def __init__(self, bn):
        self.bn = bn

    def parameters(self):
        return self.bn.parameters()

    def __call__(self, x, r):
        import torch
        return torch.relu(self.bn(x) + r)


def _channels_first(a):
    import numpy as np
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3) if a.ndim == 4 else a


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="resnet56,lenet,vgg,densenet_bc")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(k, str(args.threads))

    import numpy as np
    import torch

    import layerwise  # noqa: F401  (first: its thread defaults apply before NumPy loads)

    torch.set_num_threads(args.threads)
    batches = {"resnet56": 64, "lenet": 256, "vgg": 64, "densenet_bc": 64}
    models = args.models.split(",")
    for m in models:
        if m not in batches:
            raise SystemExit(f"bench_layers: unknown model {m!r}; choose from {sorted(batches)}")
    rng = np.random.default_rng(0)
    rows = []
    for spec in _specs(models, batches):
        xs = [rng.standard_normal(s).astype(np.float32) for s in spec.inputs]
        # ours: the layer as a Net runs it (channels-first input, no input grad for a first layer)
        layer = spec.ours()
        ins = [_channels_first(x) for x in xs]
        layer.setup(*[x.shape for x in ins])
        layer.train()
        layer.propagate_down = (spec.input_grad,) + (True,) * (len(ins) - 1)
        y = layer.forward(*ins)
        dy = _channels_first(rng.standard_normal(y.shape).astype(np.float32))

        def fb(layer=layer, ins=ins, dy=dy):
            layer.forward(*ins)
            layer.backward(dy)
            layer.zero_grad()
        f_ours = _timeit(lambda layer=layer, ins=ins: layer.forward(*ins), args.iters)
        b_ours = max(_timeit(fb, args.iters) - f_ours, 0.0)
        # torch, in its own block
        mod = spec.theirs()
        if hasattr(mod, "train"):
            mod.train()
        ts = [torch.from_numpy(x.copy()).requires_grad_(spec.input_grad or i > 0) for i, x in enumerate(xs)]
        tdy = torch.from_numpy(np.ascontiguousarray(dy))

        def tfb(mod=mod, ts=ts, tdy=tdy):
            for t in ts:
                t.grad = None
            for q in mod.parameters():
                q.grad = None
            mod(*ts).backward(tdy)
        f_t = _timeit(lambda mod=mod, ts=ts: mod(*ts), args.iters)
        b_t = max(_timeit(tfb, args.iters) - f_t, 0.0)
        rows.append({"model": spec.model, "kind": spec.kind, "shape": spec.shape, "ours_fwd_ms": f_ours * 1e3,
                     "ours_bwd_ms": b_ours * 1e3, "torch_fwd_ms": f_t * 1e3, "torch_bwd_ms": b_t * 1e3,
                     "ratio": (f_t + b_t) / max(f_ours + b_ours, 1e-12)})
        r = rows[-1]
        print(f"{r['model']:<12}{r['kind']:<20}{r['shape']:<24}{r['ours_fwd_ms']:>8.2f}{r['ours_bwd_ms']:>8.2f}"
              f"{r['torch_fwd_ms']:>9.2f}{r['torch_bwd_ms']:>8.2f}{r['ratio']:>8.2f}x", flush=True)
    print(f"\nper-layer timing, {args.threads} threads, median of {args.iters} (ms); ratio = torch f+b / ours f+b")
    print(f"{'model':<12}{'kind':<20}{'shape':<24}{'fwd':>8}{'bwd':>8}{'pt fwd':>9}{'pt bwd':>8}{'ratio':>9}")
    for r in rows:
        print(f"{r['model']:<12}{r['kind']:<20}{r['shape']:<24}{r['ours_fwd_ms']:>8.2f}{r['ours_bwd_ms']:>8.2f}"
              f"{r['torch_fwd_ms']:>9.2f}{r['torch_bwd_ms']:>8.2f}{r['ratio']:>8.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "iters": args.iters, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
