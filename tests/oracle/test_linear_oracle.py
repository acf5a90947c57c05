"""Linear against torch.nn.functional.linear: forward, dx, dW, db in float32 and float64."""
import numpy as np
import pytest

from layerwise import Linear
from layerwise.testing.oracle import assert_close, require_torch, to_torch

torch = require_torch()


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape,axis,bias", [((4, 7), 1, True), ((3, 2, 3, 2), 1, True), ((2, 5, 6), -1, True),
                                             ((4, 7), 1, False)])
def test_linear_matches_torch(shape, axis, bias, dtype, rng):
    x = (rng.standard_normal(shape) * 10).astype(dtype)
    fc = Linear(5, bias=bias, axis=axis)
    y = fc.forward(x)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = fc.backward(dy)

    xt = to_torch(x, requires_grad=True)
    w = to_torch(fc.weight.data, requires_grad=True)  # same layout (out, in): no transpose
    b = to_torch(fc.bias.data, requires_grad=True) if bias else None
    xin = xt.flatten(1) if axis == 1 else xt
    yt = torch.nn.functional.linear(xin, w, b)
    yt.backward(to_torch(dy))
    assert y.dtype == dx.dtype == dtype
    assert_close(y, yt, what="linear forward")
    assert_close(dx, xt.grad, what="linear dx")
    assert_close(fc.weight.grad, w.grad, what="linear dW")
    if bias:
        assert_close(fc.bias.grad, b.grad, what="linear db")


@pytest.mark.torch
def test_state_dict_loads_into_torch_linear(rng):
    fc = Linear(3)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    y = fc.forward(x)
    ref = torch.nn.Linear(4, 3)
    ref.load_state_dict({k: to_torch(v) for k, v in fc.state_dict().items()})
    assert_close(y, ref(to_torch(x)), what="torch.nn.Linear with our state_dict")


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_linear_by_chunked_blas_products_matches_torch(monkeypatch, dtype, rng):
    """The products split in chunks over two threads (as LeNet's 800 -> 500 layer runs)."""
    from layerwise.functional import blas
    monkeypatch.setattr(blas, "MATMUL_SERIAL_FLOPS", 0)
    monkeypatch.setattr(blas, "SMALL_MNK", 0)
    old = blas.set_num_threads(2)
    try:
        x = rng.standard_normal((33, 20)).astype(dtype)
        fc = Linear(45)
        y = fc.forward(x)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = fc.backward(dy)
    finally:
        blas.set_num_threads(old)
    xt = to_torch(x, requires_grad=True)
    w, b = to_torch(fc.weight.data, requires_grad=True), to_torch(fc.bias.data, requires_grad=True)
    torch.nn.functional.linear(xt, w, b).backward(to_torch(dy))
    assert_close(y, torch.nn.functional.linear(to_torch(x), w, b), what="linear forward")
    assert_close(dx, xt.grad, what="linear dx")
    assert_close(fc.weight.grad, w.grad, what="linear dW")
    assert_close(fc.bias.grad, b.grad, what="linear db")
