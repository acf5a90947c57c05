"""Flatten, Reshape, Softmax, LogSoftmax, Eltwise and Dropout against PyTorch."""
import numpy as np
import pytest

from layerwise import Dropout, Eltwise, Flatten, LogSoftmax, Reshape, Softmax
from layerwise.testing.oracle import assert_close, require_torch, to_torch

torch = require_torch()
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])


def _fwd_bwd(fn, xs, dy):
    ts = [to_torch(x, requires_grad=True) for x in xs]
    yt = fn(*ts)
    yt.backward(to_torch(dy))
    return yt, [t.grad for t in ts]


@pytest.mark.torch
@DTYPES
@pytest.mark.parametrize("axis,shape,scale", [(1, (4, 6), 1.0), (1, (2, 3, 2, 2), 5.0), (-1, (2, 3, 5), 1.0),
                                              (1, (3, 4), 1e4)])
@pytest.mark.parametrize("ours,theirs", [(Softmax, torch.softmax), (LogSoftmax, torch.log_softmax)],
                         ids=["softmax", "log_softmax"])
def test_softmax_matches_torch(ours, theirs, axis, shape, scale, dtype, rng):
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    layer = ours(axis)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = layer.forward(x)
        dx = layer.backward(dy)
    yt, (dxt,) = _fwd_bwd(lambda t: theirs(t, axis), [x], dy)
    assert y.dtype == dx.dtype == dtype
    assert_close(y, yt, what=f"{ours.__name__} forward")
    assert_close(dx, dxt, what=f"{ours.__name__} backward")


@pytest.mark.torch
@DTYPES
@pytest.mark.parametrize("layer,fn", [
    (Flatten(), lambda t: torch.flatten(t, 1)),
    (Flatten(2, 3), lambda t: torch.flatten(t, 2, 3)),
    (Reshape((6, -1)), lambda t: t.reshape(t.shape[0], 6, -1)),
], ids=["flatten", "flatten_2_3", "reshape"])
def test_shape_layers_match_torch(layer, fn, dtype, rng):
    x = rng.standard_normal((2, 3, 2, 2)).astype(dtype)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt, (dxt,) = _fwd_bwd(fn, [x], dy)
    assert_close(y, yt, what="forward")
    assert_close(layer.backward(dy), dxt, what="backward")


@pytest.mark.torch
@DTYPES
@pytest.mark.parametrize("op,coeffs,fn", [
    ("sum", None, lambda a, b, c: a + b + c),
    ("sum", (0.5, -2.0, 3.0), lambda a, b, c: 0.5 * a - 2.0 * b + 3.0 * c),
    ("prod", None, lambda a, b, c: a * b * c),
    ("max", None, lambda a, b, c: torch.stack([a, b, c]).amax(0)),
], ids=["sum", "sum_coeffs", "prod", "max"])
def test_eltwise_matches_torch(op, coeffs, fn, dtype, rng):
    xs = [rng.standard_normal((3, 2, 4)).astype(dtype) for _ in range(3)]  # continuous: no ties
    dy = rng.standard_normal((3, 2, 4)).astype(dtype)
    layer = Eltwise(op, coeffs)
    y = layer.forward(*xs)
    dxs = layer.backward(dy)
    yt, grads = _fwd_bwd(fn, xs, dy)
    assert_close(y, yt, what=f"eltwise {op} forward")
    for k, (dx, g) in enumerate(zip(dxs, grads)):
        assert_close(dx, g, what=f"eltwise {op} dx[{k}]")


@pytest.mark.torch
@pytest.mark.parametrize("p", [0.25, 0.6])
def test_dropout_same_semantics_as_torch(p, rng):
    """Masks come from different generators; the scaling, keep rate and eval identity agree."""
    x = rng.uniform(1, 2, (100, 100)).astype(np.float32)
    ours = Dropout(p, seed=0)
    y = ours.forward(x)
    yt = torch.nn.functional.dropout(to_torch(x), p, training=True).numpy()
    for out in (y, yt):
        kept = out != 0
        assert abs(kept.mean() - (1 - p)) < 0.02
        assert_close(out[kept], x[kept] / (1 - p), rtol=1e-6, what="kept values scaled by 1/(1-p)")
    ours.eval()
    assert_close(ours.forward(x), torch.nn.functional.dropout(to_torch(x), p, training=False), what="eval")
