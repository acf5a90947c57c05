"""RReLU against torch.nn.functional.rrelu: eval exactly, training with lower == upper exactly,
and training with random slopes by their law (both uniform on [lower, upper], dx = slope * dy)."""
import numpy as np
import pytest

from layerwise import RReLU
from layerwise.testing.oracle import assert_close, require_torch, to_torch

torch = require_torch()
F = torch.nn.functional
pytestmark = pytest.mark.torch


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_eval_matches_torch(dtype, rng):
    x = (rng.standard_normal((4, 3, 5)) * 3).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    layer = RReLU(0.1, 0.4).eval(grad=True)
    xt = to_torch(x, requires_grad=True)
    yt = F.rrelu(xt, 0.1, 0.4, training=False)
    yt.backward(to_torch(dy))
    assert_close(layer.forward(x), yt, what="forward")
    assert_close(layer.backward(dy), xt.grad, what="dx")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_with_a_single_slope_matches_torch(dtype, rng):
    x = rng.standard_normal((6, 7)).astype(dtype)
    x[0, :3] = 0.0                                   # the kink: both take the negative side's slope
    dy = rng.standard_normal(x.shape).astype(dtype)
    layer = RReLU(0.2, 0.2, seed=0)
    xt = to_torch(x, requires_grad=True)
    yt = F.rrelu(xt, 0.2, 0.2, training=True)
    yt.backward(to_torch(dy))
    assert_close(layer.forward(x), yt, what="forward")
    assert_close(layer.backward(dy), xt.grad, what="dx")


def test_training_slopes_have_torch_law(rng):
    lower, upper = 0.05, 0.45
    x = -np.abs(rng.standard_normal(40000)) - 0.1          # all negative
    ours = RReLU(lower, upper, seed=0)
    a = ours.forward(x) / x
    torch.manual_seed(0)
    xt = to_torch(x, requires_grad=True)
    yt = F.rrelu(xt, lower, upper, training=True)
    yt.backward(torch.ones_like(xt))
    b = (yt / xt).detach().numpy()
    np.testing.assert_allclose(xt.grad.numpy(), b, rtol=1e-12)            # torch: dx = slope * dy ...
    np.testing.assert_allclose(ours.backward(np.ones_like(x)), a, rtol=1e-12)   # ... and ours
    for s in (a, b):
        assert s.min() >= lower and s.max() <= upper
    # mean (l+u)/2 = 0.25, std (u-l)/sqrt(12) = 0.115; 40000 draws: std of the mean 6e-4
    assert abs(a.mean() - b.mean()) < 0.004 and abs(a.std() - b.std()) < 0.004
    qa, qb = np.quantile(a, [0.1, 0.5, 0.9]), np.quantile(b, [0.1, 0.5, 0.9])
    np.testing.assert_allclose(qa, qb, atol=0.008)
