"""MaxPool2d / AvgPool2d / GlobalAvgPool2d against torch: forward and input gradient."""
import numpy as np
import pytest

from layerwise.layers.pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from layerwise.testing.oracle import assert_close, require_torch, to_torch

GRID = [  # (x shape, kernel, stride, padding, ceil_mode)
    ((2, 3, 8, 8), 2, None, 0, False),
    ((1, 2, 7, 7), 3, 2, 1, False),
    ((2, 2, 7, 6), (3, 2), (2, 1), (1, 0), False),
    ((1, 2, 7, 7), 2, 2, 0, True),
    ((2, 1, 6, 7), 3, 2, 1, True),
    ((1, 1, 5, 5), 3, 1, 1, False),
    # ceil_mode with a kernel wider than the (padded) input: one window that starts inside it
    ((1, 2, 6, 1), 2, (3, 4), 0, True),
    ((1, 1, 1, 1), 2, 2, 0, True),
]


def run(torch, layer, tfn, x, rng):
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape).astype(x.dtype)
    dx = layer.backward(dy)
    tx = to_torch(x, requires_grad=True)
    ty = tfn(tx)
    ty.backward(to_torch(dy))
    assert_close(y, ty, what="forward")
    assert_close(dx, tx.grad, what="dx")


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,k,s,p,ceil", GRID)
def test_maxpool_matches_torch(xs, k, s, p, ceil, dtype):
    torch = require_torch()
    rng = np.random.default_rng(2)
    x = rng.standard_normal(xs).astype(dtype)
    run(torch, MaxPool2d(k, s, p, ceil), lambda t: torch.nn.functional.max_pool2d(t, k, s, p, ceil_mode=ceil), x, rng)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("xs,k,s,p,ceil", GRID)
def test_avgpool_matches_torch(xs, k, s, p, ceil, include_pad, dtype):
    torch = require_torch()
    rng = np.random.default_rng(3)
    x = rng.standard_normal(xs).astype(dtype)
    run(torch, AvgPool2d(k, s, p, ceil, include_pad),
        lambda t: torch.nn.functional.avg_pool2d(t, k, s, p, ceil_mode=ceil, count_include_pad=include_pad), x, rng)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_avgpool_matches_torch(dtype):
    torch = require_torch()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    run(torch, GlobalAvgPool2d(), lambda t: torch.nn.functional.adaptive_avg_pool2d(t, 1), x, rng)


@pytest.mark.torch
def test_maxpool_propagates_nan_like_torch():
    torch = require_torch()
    x = np.array([[[[1.0, np.nan], [0.0, 2.0]], [[3.0, 1.0], [0.0, 2.0]]]])  # (1, 2, 2, 2)
    layer = MaxPool2d(2)
    y = layer.forward(x)
    ty = torch.nn.functional.max_pool2d(to_torch(x), 2)
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(ty[0, 0, 0, 0].item())
    assert y[0, 1, 0, 0] == ty[0, 1, 0, 0].item() == 3.0
    dx = layer.backward(np.ones_like(y))
    assert dx[0, 0, 0, 1] == 1.0 and dx[0, 0].sum() == 1.0  # the gradient goes to the NaN's position
