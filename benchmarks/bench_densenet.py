"""DenseNet-BC training and inference throughput: layerwise vs PyTorch, in one run.

    python benchmarks/bench_densenet.py                      # DenseNet-BC-100-12, batch 64
    python benchmarks/bench_densenet.py --depth 40 --batch 32 --iters 3 --json out.json
    python benchmarks/bench_densenet.py --malloc-tuned       # MALLOC_MMAP_MAX_=0 ... for both sides
    python benchmarks/bench_densenet.py --impl reference     # layerwise's reference NCHW layers

Each side runs in its own subprocess so its peak RSS is its own. Before anything is
timed, both sides compute the loss of the first training step on the same batch with the
same weights (copied from layerwise into the PyTorch twin): the benchmark refuses to time
two programs that do not compute the same thing. One training step = forward + softmax
cross-entropy + backward + SGD (Nesterov momentum 0.9, weight decay 1e-4).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _env(threads: int, malloc_tuned: bool) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    if malloc_tuned:  # docs/training.md, "Speed": glibc returning freed blocks costs page faults
        env["MALLOC_MMAP_MAX_"] = "0"
        env["MALLOC_TRIM_THRESHOLD_"] = "100000000000"
    env["PYTHONPATH"] = ROOT + os.pathsep + HERE + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _data(args):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    y = rng.integers(0, 10, size=args.batch).astype(np.int64)
    return x, y


def _layerwise_model(args):
    from layerwise.losses import SoftmaxCrossEntropyLoss
    from layerwise.models import build_model
    from layerwise.solvers import SGD

    net = build_model("densenet_bc", depth=args.depth, growth_rate=args.growth, num_classes=10, impl=args.impl)
    net.setup((args.batch, 3, args.size, args.size))
    crit = SoftmaxCrossEntropyLoss()
    opt = SGD(net.named_params(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    return net, crit, opt


def _torch_model(args, state=None):
    import torch

    from torch_densenet import DenseNetBC, load_from_layerwise

    torch.manual_seed(0)
    model = DenseNetBC(args.depth, args.growth, num_classes=10)
    if state is not None:
        load_from_layerwise(model, state)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    return model, opt


def worker(args) -> dict:
    from bench_models import layerwise_step, time_steps, torch_step

    if args.tune_malloc and args.worker == "layerwise":
        from layerwise.backend import tune_malloc

        tune_malloc()
    x, y = _data(args)
    if args.worker == "layerwise":
        step = layerwise_step(_layerwise_model(args)[0], x, y, args.mode)
    else:
        import torch

        torch.set_num_threads(args.threads)
        step = torch_step(_torch_model(args)[0], x, y, args.mode)
    out = time_steps(step, args.batch, args.warmup, args.iters)
    return {"side": args.worker, "mode": args.mode, **out}


def check(args) -> dict:
    """First-step loss of both sides on the same batch and weights (float32)."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    x, y = _data(args)
    net, crit, _ = _layerwise_model(args)
    net.train()
    ours = float(crit.forward(net.forward(x), y))
    model, _ = _torch_model(args, state=net.state_dict())
    model.train()
    theirs = float(torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)))
    rel = abs(ours - theirs) / max(abs(theirs), 1e-12)
    n_params = int(sum(p.numel() for p in model.parameters()))
    return {"loss_layerwise": ours, "loss_torch": theirs, "rel_diff": rel, "params": n_params,
            "params_layerwise": int(net.num_params()), "ok": bool(rel < 1e-4 and n_params == net.num_params()),
            "numpy": np.__version__, "torch": torch.__version__}


def _run_child(args, extra: list[str], env: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), *extra, "--batch", str(args.batch), "--depth", str(args.depth),
           "--growth", str(args.growth), "--size", str(args.size), "--iters", str(args.iters),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "--impl", args.impl]
    cmd += ["--tune-malloc"] if args.tune_malloc else []
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child {' '.join(extra)} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--growth", type=int, default=12)
    p.add_argument("--size", type=int, default=32, help="input height and width")
    p.add_argument("--iters", type=int, default=3, help="timed steps per measurement (median reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--malloc-tuned", action="store_true",
                   help="run both sides with MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1e11")
    p.add_argument("--impl", choices=["fast", "reference"], default="fast",
                   help="layerwise's dense blocks and transitions: the fast channels-first path (default) or "
                        "the reference NCHW layers")
    p.add_argument("--tune-malloc", action="store_true",
                   help="the layerwise side calls layerwise.backend.tune_malloc() (mallopt) at start; "
                        "PyTorch keeps the default environment")
    p.add_argument("--skip-check", action="store_true", help="do not compare the first-step losses")
    p.add_argument("--modes", default="train,infer")
    p.add_argument("--json", help="also write the results to this JSON file")
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

    env = _env(args.threads, args.malloc_tuned)
    result = {"config": {k: getattr(args, k) for k in ("batch", "depth", "growth", "size", "iters", "warmup",
                                                         "threads", "malloc_tuned", "tune_malloc", "impl")}}
    if not args.skip_check:
        chk = _run_child(args, ["--check-only"], env)
        result["check"] = chk
        print(f"first-step loss: layerwise {chk['loss_layerwise']:.6f}  torch {chk['loss_torch']:.6f}  "
              f"rel diff {chk['rel_diff']:.2e}  params {chk['params_layerwise']:,} / {chk['params']:,}")
        if not chk["ok"]:
            print("the two sides do not compute the same thing; not timing", file=sys.stderr)
            return 1
    rows = {}
    for mode in args.modes.split(","):
        for side in ("layerwise", "torch"):
            rows[(side, mode)] = _run_child(args, ["--worker", side, "--mode", mode], env)
    result["runs"] = [rows[k] for k in rows]
    print(f"\nDenseNet-BC (layerwise impl={args.impl}) depth={args.depth} k={args.growth} batch={args.batch} "
          f"{args.size}x{args.size}, "
          f"{args.threads} threads, malloc {'tuned (env, both sides)' if args.malloc_tuned else 'default'}"
          f"{'; layerwise calls tune_malloc()' if args.tune_malloc else ''}; median of {args.iters}")
    print(f"{'':<10}{'layerwise img/s':>16}{'torch img/s':>13}{'ratio':>8}{'lw RSS MiB':>12}{'torch RSS MiB':>15}"
          f"{'RSS ratio':>11}")
    summary = {}
    for mode in args.modes.split(","):
        a, b = rows[("layerwise", mode)], rows[("torch", mode)]
        ratio, mem = a["img_per_s"] / b["img_per_s"], a["peak_rss_mib"] / b["peak_rss_mib"]
        summary[mode] = {"ratio": ratio, "rss_ratio": mem}
        print(f"{mode:<10}{a['img_per_s']:>16.2f}{b['img_per_s']:>13.2f}{ratio:>8.2f}"
              f"{a['peak_rss_mib']:>12.0f}{b['peak_rss_mib']:>15.0f}{mem:>11.2f}")
    result["summary"] = summary
    print(json.dumps(result["summary"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
