"""Linear (InnerProduct): gradcheck, init, layouts, dtypes, errors."""
import math

import numpy as np
import pytest

from layerwise import LayerError, Linear
from layerwise.core import build
from layerwise.testing import gradcheck


@pytest.mark.parametrize("shape,kwargs", [((3, 5), {}), ((3, 5), {"bias": False}), ((2, 3, 2, 2), {}),
                                          ((2, 3, 4), {"axis": -1})])
def test_gradcheck_float64(shape, kwargs, rng):
    report = gradcheck(Linear(4, **kwargs), rng.standard_normal(shape))
    names = [e.name for e in report.entries]
    assert names == ["input[0]", "param weight"] + ([] if kwargs.get("bias") is False else ["param bias"])


def test_flattens_from_axis_1_like_innerproduct_or_last_dim_like_torch(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    fc = Linear(5)
    y = fc.forward(x)
    assert y.shape == (2, 5) and fc.weight.shape == (5, 12) and fc.bias.shape == (5,)
    np.testing.assert_allclose(y, x.reshape(2, 12) @ fc.weight.data.T + fc.bias.data, rtol=1e-6)
    last = Linear(5, axis=-1)
    y = last.forward(x)
    assert y.shape == (2, 3, 5) and last.weight.shape == (5, 4)
    np.testing.assert_allclose(y, x @ last.weight.data.T + last.bias.data, rtol=1e-5)
    assert last.backward(np.ones_like(y)).shape == x.shape


def test_default_init_is_torch_uniform_bound_and_seeded():
    a = Linear(50)
    a.setup((1, 200))
    bound = 1 / math.sqrt(200)
    for p in (a.weight.data, a.bias.data):
        assert p.dtype == np.float32 and np.abs(p).max() <= bound
    assert abs(a.weight.data.std() - bound / math.sqrt(3)) < 0.05 * bound
    b = Linear(50)
    b.setup((1, 200), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    c = Linear(50)
    c.setup((1, 200), rng=np.random.default_rng(1))
    assert not np.array_equal(a.weight.data, c.weight.data)


def test_fillers_and_caffe_alias():
    fc = build("layer", "InnerProduct", out_features=3, weight_filler={"type": "constant", "value": 0.5},
               bias_filler="constant")
    fc.setup((2, 4))
    np.testing.assert_array_equal(fc.weight.data, 0.5)
    np.testing.assert_array_equal(fc.bias.data, 0.0)
    assert list(fc.state_dict()) == ["weight", "bias"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_in_is_dtype_out_and_grads_accumulate(dtype, rng):
    fc = Linear(3)
    x = rng.standard_normal((4, 2)).astype(dtype)
    y = fc.forward(x)
    dx = fc.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == fc.weight.dtype == fc.weight.grad.dtype == dtype
    g = fc.weight.grad.copy()
    fc.forward(x)
    fc.backward(np.ones_like(y))
    np.testing.assert_allclose(fc.weight.grad, 2 * g, rtol=1e-6)
    np.testing.assert_allclose(fc.bias.grad, [8.0, 8.0, 8.0], rtol=1e-6)


def test_errors_name_layer_and_expected_shape():
    fc = Linear(3, name="fc1")
    with pytest.raises(LayerError, match=r"Linear 'fc1'.*\(N, K\).*\(5,\)"):
        fc.forward(np.ones(5, np.float32))
    fc.forward(np.ones((2, 5), np.float32))
    with pytest.raises(LayerError, match=r"Linear 'fc1'.*expected 5 input features.*got 6"):
        fc.forward(np.ones((2, 6), np.float32))
    with pytest.raises(LayerError, match=r"Linear 'fc1'.*float64.*float32"):
        fc.forward(np.ones((2, 5), np.float64))
    with pytest.raises(LayerError, match=r"Linear 'fc1'.*backward\(\) called without"):
        Linear(3, name="fc1").backward(np.ones((2, 3), np.float32))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="out_features"):
            Linear(bad)


def test_gradcheck_small_mlp_of_this_family(rng):
    from layerwise import GELU, Dropout, Sequential, Softmax, TanH
    net = Sequential(Linear(6), TanH(), Linear(5), GELU(), Dropout(0.0), Linear(3), Softmax())
    report = gradcheck(net, rng.standard_normal((4, 2, 3)))
    assert len(report.entries) == 7  # the input and 3 x (weight, bias)


@pytest.fixture
def chunked_gemms(monkeypatch):
    """Every product through blas.matmul's chunks over three threads (no serial cut-off)."""
    from layerwise.functional import blas
    monkeypatch.setattr(blas, "MATMUL_SERIAL_FLOPS", 0)
    monkeypatch.setattr(blas, "SMALL_MNK", 0)
    old = blas.set_num_threads(3)
    yield
    blas.set_num_threads(old)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunked_blas_products_and_the_numpy_route_agree(chunked_gemms, dtype, rng):
    """Forward, dx and the accumulated dW through BLAS chunks over threads equal the plain
    NumPy products (BLAS switched off), for a wide and a tall weight."""
    from layerwise.functional import blas
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    for out, shape in ((37, (50, 3, 2, 2)), (5, (8, 40))):
        x = rng.standard_normal(shape).astype(dtype)
        got = []
        for use_blas in (True, False):
            old = blas.set_enabled(use_blas)
            try:
                fc = Linear(out)
                fc.setup(x.shape, dtype=dtype, rng=np.random.default_rng(3))
                y = fc.forward(x)
                dy = np.random.default_rng(4).standard_normal(y.shape).astype(dtype)
                dx = fc.backward(dy)
                fc.forward(x)
                fc.backward(dy)                          # grads accumulate over two passes
                got.append((y, dx, fc.weight.grad.copy(), fc.bias.grad.copy()))
            finally:
                blas.set_enabled(old)
        for a, b in zip(*got):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, **tol)
        X = x.reshape(shape[0], -1)
        np.testing.assert_allclose(got[0][2], 2 * dy.T @ X, **tol)


def test_gradcheck_through_chunked_blas_products(chunked_gemms, rng):
    gradcheck(Linear(6), rng.standard_normal((9, 4)))
