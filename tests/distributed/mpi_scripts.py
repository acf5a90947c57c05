"""Scripts the MPI tests run under ``mpiexec`` (``python mpi_scripts.py MODE OUT_DIR``); not a test module."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import layerwise as lw
from layerwise.data import DataLoader
from layerwise.data.dataset import ArrayDataset
from layerwise.distributed import Communicator, allreduce_gradients, broadcast_state, init_distributed
from layerwise.train.trainer import Trainer


def _mlp(seed: int) -> lw.Sequential:
    net = lw.Sequential(lw.Linear(7), lw.TanH(), lw.Linear(3), seed=seed)  # no BN, no dropout
    net.setup((1, 5), dtype=np.float64)
    return net


def train(out: Path, distributed: bool) -> None:
    """4 steps of SGD (momentum, weight decay) on 32 samples: per-rank batch 4 under MPI, or batch 8 alone."""
    comm = init_distributed(True) if distributed else Communicator()
    rng = np.random.default_rng(0)
    ds = ArrayDataset(rng.standard_normal((32, 5)).astype(np.float32), rng.integers(0, 3, 32))
    batch = 8 // comm.size
    loader = DataLoader(ds, batch, shuffle=True, drop_last=True, seed=3, prefetch=False,
                        rank=comm.rank, world_size=comm.size)
    net = _mlp(seed=10 + comm.rank)  # ranks start different; the Trainer broadcasts rank 0's weights
    solver = lw.SGD(net.named_params(), lr=0.2, momentum=0.9, weight_decay=1e-3)
    trainer = Trainer(net, lw.SoftmaxCrossEntropyLoss(), solver, loader, epochs=1, comm=comm, callbacks=[])
    trainer.fit()
    np.savez(out / f"params-{comm.size}-rank{comm.rank}.npz", losses=np.asarray(trainer.losses),
             **{k: p.data for k, p in net.named_params().items()})


def collectives(out: Path) -> None:
    """broadcast_state over differently seeded ranks, weighted gradient averaging, object calls."""
    comm = init_distributed(True)
    r = comm.rank
    net = lw.Sequential(lw.Linear(4), lw.BatchNorm1d(), lw.ReLU(), lw.Linear(2), seed=100 + r)
    net.setup((3, 6), dtype=np.float64)
    net[1].buffer("running_mean")[...] = r + 1.0  # rank-specific buffers too
    before = {k: np.array(v) for k, v in net.state_dict().items()}
    np.savez(out / f"before-rank{r}.npz", **before)
    broadcast_state(net, comm)
    np.savez(out / f"after-rank{r}.npz", **net.state_dict())
    for p in net.params():  # rank r holds gradient (r + 1) with weight (r + 1)
        p.grad[...] = r + 1.0
    allreduce_gradients(net, comm, weight=r + 1)
    plain = np.full(3, r + 1.0)
    comm.allreduce(plain)
    np.savez(out / f"grads-rank{r}.npz", plain=plain, **{k: p.grad for k, p in net.named_params().items()})
    got = comm.on_root(lambda: {"from": comm.rank})
    assert got == {"from": 0}, got
    gathered = comm.gather_object(r)
    assert (gathered == list(range(comm.size))) if r == 0 else gathered is None
    try:
        comm.on_root(lambda: (_ for _ in ()).throw(ValueError("root failed")))
    except ValueError as e:
        assert "root failed" in str(e)
    else:
        raise AssertionError("on_root did not raise on every rank")
    comm.barrier()


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    {"train_dp": lambda: train(out, True), "train_single": lambda: train(out, False),
     "collectives": lambda: collectives(out)}[mode]()
