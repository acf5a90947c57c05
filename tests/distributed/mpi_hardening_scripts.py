"""Scripts the hardening MPI tests run under ``mpiexec`` (``python mpi_hardening_scripts.py MODE OUT``); not a test."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import layerwise  # noqa: F401  (first: sets the per-rank thread defaults before NumPy starts its BLAS)
import numpy as np

import layerwise as lw
from layerwise.data import DataLoader
from layerwise.data.dataset import ArrayDataset
from layerwise.distributed import Communicator, init_distributed
from layerwise.train import LambdaCallback, Trainer


def dropout_masks(out: Path) -> None:
    """Train one step with Dropout through the Trainer, then record the next training-mode mask."""
    comm = init_distributed(True)
    rng = np.random.default_rng(0)
    ds = ArrayDataset(rng.standard_normal((16, 6)).astype(np.float32), rng.integers(0, 2, 16))
    loader = DataLoader(ds, 4, shuffle=True, drop_last=True, seed=1, prefetch=False, rank=comm.rank,
                        world_size=comm.size)
    net = lw.Sequential(lw.Linear(32), lw.Dropout(0.5), lw.Linear(2), seed=3)
    net.setup((1, 6), dtype=np.float64)
    solver = lw.SGD(net.named_params(), lr=0.1)
    masks = []

    def record(tr: Trainer) -> None:
        d = net[1]
        masks.append(np.asarray(d.generator.bit_generator.state["state"]["state"], dtype=np.float64))

    trainer = Trainer(net, lw.SoftmaxCrossEntropyLoss(), solver, loader, epochs=1, comm=comm,
                      callbacks=[LambdaCallback(on_step_end=lambda tr, logs: record(tr))])
    trainer.fit()
    net.train()
    y = net[1].forward(np.ones((64, 32)))
    np.savez(out / f"mask-rank{comm.rank}.npz", mask=(y != 0))


def sync_bn(out: Path, distributed: bool) -> None:
    """SyncBatchNorm forward/backward/running stats: ranks with (unequal) shares vs one process with all."""
    comm = init_distributed(True) if distributed else Communicator()
    rng = np.random.default_rng(5)
    for case, sizes in (("equal", (4, 4)), ("unequal", (3, 5))):
        n_total = sum(sizes)
        x = rng.standard_normal((n_total, 3, 2, 2)) * 2.0 + 0.5
        g = rng.standard_normal((n_total, 3, 2, 2))           # dL/dy of the global mean loss
        bn = lw.SyncBatchNorm(momentum=0.3, comm=comm)
        bn.setup((1, 3, 2, 2), dtype=np.float64)
        bn.weight.data[...] = [1.5, -0.5, 2.0]
        bn.bias.data[...] = [0.1, 0.2, -0.3]
        if comm.distributed:
            lo = sum(sizes[:comm.rank])
            rows = slice(lo, lo + sizes[comm.rank])
            scale = n_total / sizes[comm.rank]                 # dL_r/dy = (N / n_r) dL/dy
        else:
            rows, scale = slice(0, n_total), 1.0
        results = {}
        for step in range(2):                                  # two steps: running statistics accumulate
            bn.zero_grad()
            y = bn.forward(x[rows] + step)
            dx = bn.backward(g[rows] * scale) / scale
            dw, db = bn.weight.grad.copy(), bn.bias.grad.copy()
            if comm.distributed:                               # DataParallel's weighted gradient average
                n = sizes[comm.rank]
                buf = np.concatenate([dw * n, db * n, [n]])
                comm.allreduce(buf)
                dw, db = buf[:3] / buf[-1], buf[3:6] / buf[-1]
            results.update({f"y{step}": y, f"dx{step}": dx, f"dw{step}": dw, f"db{step}": db})
        results.update(running_mean=bn.buffer("running_mean").copy(), running_var=bn.buffer("running_var").copy(),
                       rows=np.arange(n_total)[rows])
        np.savez(out / f"bn-{case}-{comm.size}-rank{comm.rank}.npz", **results)


def threads(out: Path) -> None:
    """What this rank chose for its threads, and what the BLAS pool really uses."""
    from threadpoolctl import threadpool_info

    from layerwise import _threads

    blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    rank = os.environ.get("PMI_RANK", "0")
    (out / f"threads-rank{rank}.json").write_text(json.dumps(
        {"env": {v: os.environ.get(v) for v in _threads.THREAD_VARS}, "choice": _threads.CHOICE, "blas": blas,
         "cores": _threads.cores_available()}))


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    {"dropout_masks": lambda: dropout_masks(out), "sync_bn_dp": lambda: sync_bn(out, True),
     "sync_bn_single": lambda: sync_bn(out, False), "threads": lambda: threads(out)}[mode]()
