"""Conv2d against torch.nn.functional.conv2d: forward, input and param gradients."""
import numpy as np
import pytest

from layerwise.layers.conv import Conv2d
from layerwise.testing.oracle import assert_close, require_torch, to_torch

# (x shape, out_channels, kernel, stride, padding, dilation, groups)
GRID = [
    ((2, 4, 8, 8), 6, 3, 1, 1, 1, 1),
    ((1, 3, 7, 6), 4, (3, 2), (2, 1), (1, 0), 1, 1),
    ((2, 4, 9, 9), 4, 3, 2, 2, 2, 1),
    ((2, 4, 7, 7), 6, 3, 1, 1, 1, 2),
    ((2, 4, 6, 6), 4, 3, 1, 1, 1, 4),          # depthwise
    ((2, 4, 5, 5), 4, 3, 2, 1, 1, 4),          # depthwise, stride 2
    ((2, 5, 5, 3), 3, 1, 1, 0, 1, 1),          # 1x1
    ((1, 2, 5, 5), 3, 5, 1, 0, 1, 1),          # kernel == input
    ((2, 3, 6, 5), 2, 2, 3, (0, 1), (1, 2), 1),
]


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("impl", ["gemm", "direct"])
@pytest.mark.parametrize("xs,o,k,s,p,d,g", GRID)
def test_conv2d_matches_torch(xs, o, k, s, p, d, g, impl, dtype):
    torch = require_torch()
    rng = np.random.default_rng(1)
    x = rng.standard_normal(xs).astype(dtype)
    conv = Conv2d(o, k, s, p, d, g, impl=impl)
    conv.setup(x.shape, dtype=dtype)
    y = conv.forward(x)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = conv.backward(dy)

    tx = to_torch(x, requires_grad=True)
    tW, tb = to_torch(conv.weight.data, True), to_torch(conv.bias.data, True)
    ty = torch.nn.functional.conv2d(tx, tW, tb, s, p, d, g)
    ty.backward(to_torch(dy))
    assert_close(y, ty, what="forward")
    assert_close(dx, tx.grad, what="dx")
    assert_close(conv.weight.grad, tW.grad, what="dW")
    assert_close(conv.bias.grad, tb.grad, what="db")



@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,o,k,s,p", [((4, 3, 12, 12), 5, 5, 1, 0), ((3, 1, 10, 10), 4, 5, 1, 0),
                                         ((3, 3, 8, 7), 4, 3, 1, 1), ((3, 4, 9, 8), 5, 3, 2, 1)])
def test_conv2d_cfim2col_by_blocks_matches_torch(monkeypatch, xs, o, k, s, p, dtype):
    """Channels-first im2col run by blocks of one image over two threads (as LeNet's convs run)."""
    torch = require_torch()
    from layerwise.functional import blas, conv
    monkeypatch.setattr(conv, "COLS_BLOCK_BYTES", 1)
    old = blas.set_num_threads(2)
    try:
        rng = np.random.default_rng(2)
        x = rng.standard_normal(xs).astype(dtype)
        layer = Conv2d(o, k, s, p, impl="cfim2col")
        layer.setup(x.shape, dtype=dtype)
        y = layer.forward(x)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = layer.backward(dy)
    finally:
        blas.set_num_threads(old)
    tx = to_torch(x, requires_grad=True)
    tW, tb = to_torch(layer.weight.data, True), to_torch(layer.bias.data, True)
    ty = torch.nn.functional.conv2d(tx, tW, tb, s, p)
    ty.backward(to_torch(dy))
    assert_close(y, ty, what="forward")
    assert_close(dx, tx.grad, what="dx")
    assert_close(layer.weight.grad, tW.grad, what="dW")
    assert_close(layer.bias.grad, tb.grad, what="db")

@pytest.mark.torch
def test_conv2d_state_dict_loads_into_torch():
    torch = require_torch()
    conv = Conv2d(5, 3, padding=1, groups=1)
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 6)).astype(np.float32)
    y = conv.forward(x)
    tconv = torch.nn.Conv2d(4, 5, 3, padding=1)
    tconv.load_state_dict({k: torch.from_numpy(v) for k, v in conv.state_dict().items()})
    assert_close(y, tconv(to_torch(x)), what="forward with torch module")
