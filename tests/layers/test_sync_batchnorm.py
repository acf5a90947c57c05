"""SyncBatchNorm on one process: its synchronised code path (through a loopback communicator that
claims to be distributed) against finite differences and torch.nn.BatchNorm; convert_sync_batchnorm.
The 2-rank equality with one process lives in tests/distributed/test_hardening_mpi.py."""
import numpy as np
import pytest

import layerwise as lw
from layerwise.distributed import Communicator
from layerwise.layers.sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm
from layerwise.testing.gradcheck import gradcheck
from layerwise.testing.oracle import assert_close, require_torch, to_torch


class Loopback(Communicator):
    """One process that runs the collective code path (allreduce of one rank = identity)."""

    @property
    def distributed(self) -> bool:
        return True


def test_sync_batchnorm_gradcheck_float64_through_the_synchronised_path():
    x = np.random.default_rng(0).standard_normal((3, 2, 2, 3))
    bn = SyncBatchNorm(comm=Loopback())
    report = gradcheck(bn, x, raise_on_fail=False)
    assert report.ok, report
    bn.forward(x)
    assert "m" in bn.cache  # the synchronised path really ran


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(4, 3, 2, 2), (5, 3)])
def test_sync_batchnorm_matches_torch_batchnorm(shape, dtype):
    torch = require_torch()
    rng = np.random.default_rng(1)
    ours = SyncBatchNorm(momentum=0.2, comm=Loopback())
    ours.setup(shape, dtype=dtype)
    ours.weight.data[...] = rng.uniform(0.5, 1.5, shape[1])
    ours.bias.data[...] = rng.standard_normal(shape[1])
    tcls = torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d
    theirs = tcls(shape[1], momentum=0.2).to(torch.float64 if dtype == np.float64 else torch.float32)
    theirs.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in ours.state_dict().items()})
    for step in range(3):
        x = (rng.standard_normal(shape) * 2 + step).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        ours.zero_grad()
        y = ours.forward(x)
        dx = ours.backward(dy)
        tx = to_torch(x, requires_grad=True)
        theirs.zero_grad()
        ty = theirs(tx)
        ty.backward(to_torch(dy))
        assert_close(y, ty, what=f"forward {step}")
        assert_close(dx, tx.grad, what=f"dx {step}")
        assert_close(ours.weight.grad, theirs.weight.grad, what="dweight")
        assert_close(ours.bias.grad, theirs.bias.grad, what="dbias")
        for key in ("running_mean", "running_var"):
            assert_close(ours.buffer(key), getattr(theirs, key), what=key)


def test_convert_sync_batchnorm_keeps_state_and_leaves_nothing_fused():
    net = lw.models.build_model("mlp", hidden=[4], batchnorm=True, num_classes=2)
    net.setup((2, 3), dtype=np.float64)
    bn = next(m for m in net.modules() if type(m).__name__ == "BatchNorm1d")
    bn.buffer("running_mean")[...] = 7.0
    comm = Loopback()
    assert convert_sync_batchnorm(net, comm) == 1
    assert type(bn) is SyncBatchNorm and bn.comm is comm and float(bn.buffer("running_mean")[0]) == 7.0
    dn = lw.models.build_model("densenet_bc", depth=10, growth_rate=4, num_classes=2)
    dn.setup((2, 1, 8, 8), dtype=np.float64)
    dn.forward(np.zeros((2, 1, 8, 8)))                     # planned with fused blocks before the conversion
    assert any(s.fused for m in dn.modules() if isinstance(m, lw.Net) for s in m.steps)
    n = convert_sync_batchnorm(dn, comm)
    assert n > 3 and not any(type(m).__name__ == "BatchNorm2d" for m in dn.modules())
    dn.forward(np.zeros((2, 1, 8, 8)))                     # re-planned: every norm runs the synchronised layer
    fused = [s.name for m in dn.modules() if isinstance(m, lw.Net) for s in m.steps if s.fused]
    assert fused == [], fused
