"""Training and inference throughput of several networks: layerwise vs PyTorch, one table.

    python benchmarks/bench_models.py                                   # all models, batch per model
    python benchmarks/bench_models.py --models resnet56,lenet --iters 5
    python benchmarks/bench_models.py --models densenet_bc --json out.json

Networks (each built from layerwise's public layers, and a PyTorch twin with the same
parameter names and counts in benchmarks/torch_models.py / torch_densenet.py):

* ``resnet56``: the CIFAR ResNet-56 of the registry (option-A shortcuts), 3x32x32, batch 64;
* ``lenet``: Caffe's MNIST LeNet composed as a user would, ``Sequential(Conv2d(20, 5),
  MaxPool2d(2, 2), Conv2d(50, 5), MaxPool2d(2, 2), Flatten(), Linear(500), ReLU(), Linear(10))``,
  1x28x28, batch 256;
* ``vgg``: two Conv2d(c, 3, padding=1, bias=False)-BatchNorm2d-ReLU then MaxPool2d(2, 2) for
  c = 32, 64, 128; Flatten; Linear(10); 3x32x32, batch 64;
* ``densenet_bc``: DenseNet-BC-100-12, 3x32x32, batch 64.

Every (model, side, mode) runs in its own subprocess, so the two thread pools never
alternate inside one process and each peak RSS is its own. Before timing a model, one
process computes the first training step's loss on both sides from the same weights and
batch, and the model is skipped (reported) if they differ by more than 1e-4 relative.
A training step = forward + softmax cross-entropy + backward + SGD (Nesterov momentum 0.9,
weight decay 1e-4); inference = forward in eval mode. Figures are medians of ``--iters``
steps after ``--warmup`` steps; these machines are noisy, so compare ratios from one run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name: (input shape without batch, default batch, label)
MODELS = {
    "resnet56": ((3, 32, 32), 64, "ResNet-56 (CIFAR, option A)"),
    "lenet": ((1, 28, 28), 256, "Caffe LeNet (Sequential)"),
    "vgg": ((3, 32, 32), 64, "VGG-style Sequential"),
    "densenet_bc": ((3, 32, 32), 64, "DenseNet-BC-100-12"),
}


def _env(threads: int) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(k, str(threads))
    env["PYTHONPATH"] = ROOT + os.pathsep + HERE + os.pathsep + env.get("PYTHONPATH", "")
    return env


def build_layerwise(name: str):
    import layerwise as lw

    if name == "resnet56":
        return lw.models.build_model("resnet56", num_classes=10)
    if name == "lenet":
        return lw.Sequential(lw.Conv2d(20, 5), lw.MaxPool2d(2, 2), lw.Conv2d(50, 5), lw.MaxPool2d(2, 2),
                             lw.Flatten(), lw.Linear(500), lw.ReLU(), lw.Linear(10))
    if name == "vgg":
        layers = []
        for c in (32, 64, 128):
            for _ in range(2):
                layers += [lw.Conv2d(c, 3, padding=1, bias=False), lw.BatchNorm2d(), lw.ReLU()]
            layers.append(lw.MaxPool2d(2, 2))
        return lw.Sequential(*layers, lw.Flatten(), lw.Linear(10))
    if name == "densenet_bc":
        return lw.models.build_model("densenet_bc", depth=100, growth_rate=12, num_classes=10)
    raise SystemExit(f"bench_models: unknown model {name!r}; choose from {sorted(MODELS)}")


def build_torch(name: str, state: dict | None):
    import torch

    torch.manual_seed(0)
    if name == "densenet_bc":
        from torch_densenet import DenseNetBC, load_from_layerwise
        model = DenseNetBC(100, 12, num_classes=10)
    else:
        import torch_models as tm
        from torch_models import load_from_layerwise
        model = {"resnet56": lambda: tm.CifarResNet(56), "lenet": tm.lenet_caffe, "vgg": tm.vgg_small}[name]()
    if state is not None:
        load_from_layerwise(model, state)
    return model


def _data(name: str, batch: int):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *MODELS[name][0])).astype(np.float32)
    y = rng.integers(0, 10, size=batch).astype(np.int64)
    return x, y


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def layerwise_step(net, x, y, mode: str):
    """One training step (SGD, Nesterov momentum 0.9, weight decay 1e-4) or one inference forward."""
    import layerwise as lw

    net.setup(x.shape)
    if mode != "train":
        net.eval()
        return lambda: net.forward(x)
    net.train()
    net.propagate_down = (False,)   # as the Trainer does (and as PyTorch, whose input needs no grad)
    crit = lw.SoftmaxCrossEntropyLoss()
    opt = lw.SGD(net.named_params(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)

    def step():
        crit.forward(net.forward(x), y)
        net.backward(crit.backward())
        opt.step()
        net.zero_grad()
    return step


def torch_step(model, x, y, mode: str):
    """The same step for a PyTorch module."""
    import torch

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if mode != "train":
        model.eval()

        def infer():
            with torch.inference_mode():
                model(xt)
        return infer
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return step


def time_steps(step, batch: int, warmup: int, iters: int) -> dict:
    """Median images/s of ``iters`` steps after ``warmup``, and this process's peak RSS."""
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"img_per_s": batch / med, "median_s": med, "times_s": times, "peak_rss_mib": _peak_rss_mib()}


def worker(args) -> dict:
    if args.worker == "layerwise":
        import layerwise  # noqa: F401  (first, as a user's program would: its defaults apply before NumPy loads)
    x, y = _data(args.model, args.batch)
    if args.worker == "layerwise":
        step = layerwise_step(build_layerwise(args.model), x, y, args.mode)
    else:
        import torch

        torch.set_num_threads(args.threads)
        step = torch_step(build_torch(args.model, None), x, y, args.mode)
    out = time_steps(step, args.batch, args.warmup, args.iters)
    if args.worker == "layerwise":
        out["blas"] = blas_kernel()
    return out


def blas_kernel() -> str:
    """Which GEMM kernels NumPy's BLAS runs in this process, e.g. ``OpenBLAS 0.3.31 SkylakeX``,
    with OPENBLAS_CORETYPE when the environment pins one: some machines pin an older core type
    (``Haswell``: AVX2) because older OpenBLAS builds fail on their CPUs, which halves the rate of
    a current NumPy's GEMMs on an AVX-512 CPU (docs/performance.md, "Measuring")."""
    try:
        from threadpoolctl import threadpool_info  # type: ignore[import-untyped]  # ships no type hints
    except ImportError:
        return "unknown (threadpoolctl is not installed)"
    import numpy  # (loads its BLAS, so that threadpoolctl sees it)

    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not libs:
        return "unknown"
    # NumPy's own library (SciPy may have loaded another one)
    here = os.path.dirname(os.path.dirname(numpy.__file__))
    i = next((i for i in libs if os.path.basename(os.path.dirname(i.get("filepath", ""))) == "numpy.libs"
              and os.path.dirname(os.path.dirname(i["filepath"])) == here), libs[0])
    text = f"{i.get('internal_api', '?')} {i.get('version', '?')} {i.get('architecture', '?')}"
    pinned = os.environ.get("OPENBLAS_CORETYPE")
    return text + (f" (OPENBLAS_CORETYPE={pinned} set in the environment)" if pinned else "")


def check(args) -> dict:
    """First-step loss of both sides from the same weights and batch (float32)."""
    import torch

    import layerwise as lw

    torch.set_num_threads(args.threads)
    x, y = _data(args.model, args.batch)
    net = build_layerwise(args.model)
    net.setup(x.shape)
    net.train()
    ours = float(lw.SoftmaxCrossEntropyLoss().forward(net.forward(x), y))
    model = build_torch(args.model, net.state_dict())
    model.train()
    theirs = float(torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)))
    n_torch = int(sum(p.numel() for p in model.parameters()))
    rel = abs(ours - theirs) / max(abs(theirs), 1e-12)
    return {"loss_layerwise": ours, "loss_torch": theirs, "rel_diff": rel, "params": n_torch,
            "params_layerwise": int(net.num_params()), "ok": bool(rel < 1e-4 and n_torch == net.num_params())}


def _child(args, model: str, batch: int, extra: list[str], env: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--model", model, "--batch", str(batch),
           "--iters", str(args.iters), "--warmup", str(args.warmup), "--threads", str(args.threads), *extra]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench_models: child {model} {' '.join(extra)} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="resnet56,lenet,vgg,densenet_bc")
    p.add_argument("--modes", default="train,infer")
    p.add_argument("--batch", type=int, default=None, help="batch size for every model (default: per model)")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=["layerwise", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=["train", "infer"], help=argparse.SUPPRESS)
    p.add_argument("--check-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.check_only:
        print(json.dumps(check(args)))
        return 0
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    env = _env(args.threads)
    results = []
    kernels: set[str] = set()
    header = (f"{'network':<30}{'mode':<7}{'batch':>6}{'layerwise img/s':>17}{'PyTorch img/s':>15}{'ratio':>7}"
              f"{'lw RSS MiB':>12}{'pt RSS MiB':>12}{'RSS ratio':>10}")
    lines = []
    for name in args.models.split(","):
        if name not in MODELS:
            raise SystemExit(f"bench_models: unknown model {name!r}; choose from {sorted(MODELS)}")
        batch = args.batch or MODELS[name][1]
        chk = _child(args, name, batch, ["--check-only"], env)
        print(f"{name}: first-step loss layerwise {chk['loss_layerwise']:.6f} torch {chk['loss_torch']:.6f} "
              f"(rel {chk['rel_diff']:.1e}), params {chk['params_layerwise']:,} / {chk['params']:,}", flush=True)
        if not chk["ok"]:
            print(f"{name}: the two sides do not compute the same thing; not timed", file=sys.stderr)
            continue
        for mode in args.modes.split(","):
            a = _child(args, name, batch, ["--worker", "layerwise", "--mode", mode], env)
            kernels.add(a.get("blas", "unknown"))
            b = _child(args, name, batch, ["--worker", "torch", "--mode", mode], env)
            row = {"model": name, "mode": mode, "batch": batch, "layerwise": a, "torch": b,
                   "ratio": a["img_per_s"] / b["img_per_s"], "rss_ratio": a["peak_rss_mib"] / b["peak_rss_mib"]}
            results.append(row)
            line = (f"{MODELS[name][2]:<30}{mode:<7}{batch:>6}{a['img_per_s']:>17.1f}{b['img_per_s']:>15.1f}"
                    f"{row['ratio']:>6.2f}x{a['peak_rss_mib']:>12.0f}{b['peak_rss_mib']:>12.0f}{row['rss_ratio']:>9.2f}x")
            lines.append(line)
            print(line, flush=True)
    print(f"\n{args.threads} threads, default malloc, median of {args.iters} steps after {args.warmup} warm-up; "
          "each side in its own process; NumPy's BLAS: " + "; ".join(sorted(kernels)))
    print(header)
    for line in lines:
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
