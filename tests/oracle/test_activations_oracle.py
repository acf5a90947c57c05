"""Activation layers against torch.nn.functional: forward and backward, float32 and float64.

Tolerances: rtol 1e-6 in float32, 1e-12 in float64, elementwise
|ours - torch| <= atol + rtol * |torch|, with atol scaled to the magnitude of the tensors:
- forward: atol = rtol * max(1, max|y|). A saturating function is only defined to eps in
  units of 1 near its asymptote (tanh = 1 - 1e-9 is 1 - eps*k), and torch's own
  1 + erf(x/sqrt 2) in GELU loses its relative accuracy in the left tail.
- backward: atol = rtol * max(max|dy|, max|dx|). The derivative formed from the forward
  output (1 - y^2, y(1 - y), y + alpha: the activations reuse their output) is exact to eps
  absolutely, not relatively, where it is small.
Tails that must stay relatively accurate (sigmoid/softplus/SiLU at x << 0) have their own
test with no atol. Inputs are random shapes and values at several magnitudes, up to
|x| = 1e4 and exactly +-1e4.
"""
import zlib

import numpy as np
import pytest

from layerwise import (AbsVal, ELU, GELU, HardSigmoid, HardTanh, PReLU, ReLU, SELU, SiLU, Sigmoid, Softplus,
                       Softsign, TanH)
from layerwise.testing.oracle import assert_close, require_torch, to_torch

torch = require_torch()
F = torch.nn.functional

RTOL = {np.float32: 1e-6, np.float64: 1e-12}
SCALES = [1.0, 5.0, 30.0, 1e4]
SEED_OFFSET = 0  # change to draw other shapes and values

CASES = {  # id: (our layer factory, torch function of x)
    "sigmoid": (Sigmoid, torch.sigmoid),
    "tanh": (TanH, torch.tanh),
    "relu": (ReLU, F.relu),
    "leaky_relu": (lambda: ReLU(0.1), lambda x: F.leaky_relu(x, 0.1)),
    "elu": (ELU, F.elu),
    "elu_alpha0.5": (lambda: ELU(0.5), lambda x: F.elu(x, 0.5)),
    "selu": (SELU, F.selu),
    "softplus": (Softplus, F.softplus),
    "softplus_beta2_thr5": (lambda: Softplus(2.0, 5.0), lambda x: F.softplus(x, 2.0, 5.0)),
    "softsign": (Softsign, F.softsign),
    "silu": (SiLU, F.silu),
    "swish_beta1.5": (lambda: SiLU(1.5), lambda x: x * torch.sigmoid(1.5 * x)),
    "gelu": (GELU, F.gelu),
    "gelu_tanh": (lambda: GELU("tanh"), lambda x: F.gelu(x, approximate="tanh")),
    "hardsigmoid": (HardSigmoid, F.hardsigmoid),
    "hardsigmoid_keras": (lambda: HardSigmoid(0.2, 0.5), lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0)),
    "hardtanh": (HardTanh, F.hardtanh),
    "hardtanh_-0.5_2": (lambda: HardTanh(-0.5, 2.0), lambda x: F.hardtanh(x, -0.5, 2.0)),
    "absval": (AbsVal, torch.abs),
}


# Where torch's own result is less accurate than the tolerance, the backward oracle is the same
# function evaluated more exactly (each case has a test below that documents the difference):
# - softsign, float32: torch differentiates x / (1 + |x|) by autograd, 1/(1+|x|) - |x|/(1+|x|)^2,
#   which cancels for large |x| (relative error ~3e-4 at |x| = 8e3); the oracle is torch in float64
#   on the same float32 inputs.
# - hardsigmoid, float64: torch's hardsigmoid_backward multiplies by the float32 constant
#   1.0f / 6.0f (relative error 3e-8); the oracle is autograd through clamp((x + 3) / 6, 0, 1).
BACKWARD_ORACLE = {
    ("softsign", np.float32): lambda x, dy: _torch_fwd_bwd(F.softsign, x.astype(np.float64),
                                                          dy.astype(np.float64))[1][0].float(),
    ("hardsigmoid", np.float64): lambda x, dy: _torch_fwd_bwd(lambda t: torch.clamp((t + 3) / 6, 0.0, 1.0),
                                                             x, dy)[1][0],
}


def _draw(seed: int, scale: float, dtype):
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in rng.integers(1, 6, size=rng.integers(1, 5)))
    x = rng.standard_normal(shape) * scale
    if scale >= 1e4:
        x.reshape(-1)[:2] = [1e4, -1e4][: x.size]
    dy = rng.standard_normal(shape)
    return x.astype(dtype), dy.astype(dtype)


def _torch_fwd_bwd(fn, x, dy, *params):
    xt = to_torch(x, requires_grad=True)
    ps = [to_torch(p, requires_grad=True) for p in params]
    yt = fn(xt, *ps)
    grads = torch.autograd.grad(yt, [xt, *ps], to_torch(dy))
    return yt, grads


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("case", list(CASES))
def test_activation_matches_torch(case, scale, dtype):
    make, fn = CASES[case]
    x, dy = _draw(zlib.crc32(f"{case}/{scale}".encode()) + SEED_OFFSET, scale, dtype)
    layer = make()
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = layer.forward(x)
        dx = layer.backward(dy)
    yt, (dxt,) = _torch_fwd_bwd(fn, x, dy)
    assert y.dtype == dtype and dx.dtype == dtype
    rtol = RTOL[dtype]
    if (case, dtype) in BACKWARD_ORACLE:
        dxt = BACKWARD_ORACLE[case, dtype](x, dy)
    _check(y, yt, dx, dxt, dy, rtol, case)


def _check(y, yt, dx, dxt, dy, rtol, what):
    assert_close(y, yt, rtol=rtol, atol=rtol * max(1.0, _absmax(yt)), what=f"{what} forward")
    assert_close(dx, dxt, rtol=rtol, atol=rtol * max(_absmax(dy), _absmax(dxt)), what=f"{what} backward")


def _absmax(a) -> float:
    a = a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
    return float(np.max(np.abs(a))) if a.size else 0.0


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", ["sigmoid", "softplus", "softplus_beta2_thr5", "silu"])
def test_left_tail_is_relatively_accurate(case, dtype):
    make, fn = CASES[case]
    x = -np.geomspace(1.0, 30.0, 25).astype(dtype)
    dy = np.ones_like(x)
    layer = make()
    y, dx = layer.forward(x), layer.backward(dy)
    yt, (dxt,) = _torch_fwd_bwd(fn, x, dy)
    assert np.all(y != 0)
    assert_close(y, yt, rtol=RTOL[dtype], atol=0.0, what=f"{case} forward tail")
    assert_close(dx, dxt, rtol=RTOL[dtype], atol=0.0, what=f"{case} backward tail")


@pytest.mark.torch
def test_documents_torch_hardsigmoid_backward_uses_float32_one_sixth():
    x = np.array([0.3, -1.7, 2.9])
    layer = HardSigmoid().astype(np.float64)
    layer.forward(x)
    ours = layer.backward(np.ones(3))
    _, (theirs,) = _torch_fwd_bwd(F.hardsigmoid, x, np.ones(3))
    assert np.all(ours == 1.0 / 6.0)
    assert np.all(theirs.numpy() == float(np.float32(1.0 / 6.0)))  # if torch fixes this, drop the override


@pytest.mark.torch
def test_documents_torch_softsign_float32_backward_cancels_for_large_x():
    x = np.array([-8000.5, 3e3, 1e4], np.float32)
    exact = 1.0 / (1.0 + np.abs(x.astype(np.float64))) ** 2
    layer = Softsign()
    layer.forward(x)
    ours = layer.backward(np.ones(3, np.float32))
    _, (theirs,) = _torch_fwd_bwd(F.softsign, x, np.ones(3, np.float32))
    assert np.max(np.abs(ours / exact - 1)) < 1e-6
    assert np.max(np.abs(theirs.numpy() / exact - 1)) > 1e-5  # torch's float32 autograd cancels


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_prelu_matches_torch_input_and_slope_grads(channels, scale, dtype):
    rng = np.random.default_rng(channels)
    x = (rng.standard_normal((4, 3, 2, 3)) * scale).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    layer = PReLU(channels)
    layer.setup(x.shape, dtype=dtype)
    layer.weight.data[...] = rng.uniform(-0.5, 0.5, channels)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = layer.forward(x)
        dx = layer.backward(dy)
    yt, (dxt, dwt) = _torch_fwd_bwd(F.prelu, x, dy, layer.weight.data)
    rtol = RTOL[dtype]
    _check(y, yt, dx, dxt, dy, rtol, "prelu")
    # the slope gradient is a sum over many x * dy terms: judged on the scale of its terms
    terms = float(np.abs(x * dy).sum(axis=(0, 2, 3)).max())
    assert_close(layer.weight.grad, dwt, rtol=rtol, atol=rtol * terms, what="prelu dweight")
