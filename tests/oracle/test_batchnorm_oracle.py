"""BatchNorm1d/2d against torch: train and eval forward, gradients, running statistics."""
import numpy as np
import pytest

from layerwise.layers.batchnorm import BatchNorm1d, BatchNorm2d
from layerwise.testing.oracle import assert_close, require_torch, to_torch

CASES = [(BatchNorm2d, (4, 3, 5, 5)), (BatchNorm2d, (1, 2, 3, 4)), (BatchNorm1d, (6, 4)), (BatchNorm1d, (3, 2, 5))]


def make_pair(torch, cls, shape, dtype, momentum, rng):
    ours = cls(momentum=momentum)
    ours.setup(shape, dtype=dtype)
    ours.weight.data[...] = rng.uniform(0.5, 1.5, shape[1])
    ours.bias.data[...] = rng.standard_normal(shape[1])
    tcls = torch.nn.BatchNorm2d if cls is BatchNorm2d else torch.nn.BatchNorm1d
    theirs = tcls(shape[1], momentum=momentum).to(torch.float64 if dtype == np.float64 else torch.float32)
    theirs.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in ours.state_dict().items()})
    return ours, theirs


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("cls,shape", CASES)
def test_batchnorm_train_steps_then_eval_match_torch(cls, shape, momentum, dtype):
    torch = require_torch()
    rng = np.random.default_rng(5)
    ours, theirs = make_pair(torch, cls, shape, dtype, momentum, rng)
    for step in range(4):  # several training steps: outputs, gradients and running statistics
        x = (rng.standard_normal(shape) * 2 + step).astype(dtype)
        y = ours.forward(x)
        dy = rng.standard_normal(shape).astype(dtype)
        ours.zero_grad()
        dx = ours.backward(dy)
        tx = to_torch(x, requires_grad=True)
        theirs.zero_grad()
        ty = theirs(tx)
        ty.backward(to_torch(dy))
        assert_close(y, ty, what=f"train forward step {step}")
        assert_close(dx, tx.grad, what=f"dx step {step}")
        assert_close(ours.weight.grad, theirs.weight.grad, what="dweight")
        assert_close(ours.bias.grad, theirs.bias.grad, what="dbias")
        for key in ("running_mean", "running_var"):
            assert_close(ours.buffer(key), getattr(theirs, key), what=f"{key} step {step}")
    assert int(ours.buffer("num_batches_tracked")) == int(theirs.num_batches_tracked) == 4

    ours.eval(grad=True)
    theirs.eval()
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    y = ours.forward(x)
    ours.zero_grad()
    dx = ours.backward(dy)
    tx = to_torch(x, requires_grad=True)
    theirs.zero_grad()
    ty = theirs(tx)
    ty.backward(to_torch(dy))
    assert_close(y, ty, what="eval forward")
    assert_close(dx, tx.grad, what="eval dx")
    assert_close(ours.weight.grad, theirs.weight.grad, what="eval dweight")
    assert_close(ours.bias.grad, theirs.bias.grad, what="eval dbias")
    ours.eval()  # inference: the folded scale/shift path, nothing cached
    assert_close(ours.forward(x), ty, what="eval forward (no cache)")
    assert not ours.cache
