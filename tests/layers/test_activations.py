"""Activation layers: gradcheck (float64), dtypes, large inputs, caches, errors."""
import numpy as np
import pytest

from layerwise import (AbsVal, ELU, GELU, HardSigmoid, HardTanh, LayerError, PReLU, ReLU, SELU, SiLU, Sigmoid,
                       Softplus, Softsign, Swish, TanH)
from layerwise.core import build
from layerwise.testing import gradcheck

# factory, kinks to keep away from, what the layer caches (its docstring's "Caches:" line)
LAYERS = {
    "sigmoid": (Sigmoid, [], {"y"}),
    "tanh": (TanH, [], {"y"}),
    "relu": (ReLU, [0.0], {"mask"}),
    "leaky_relu": (lambda: ReLU(0.2), [0.0], {"mask"}),
    "elu": (lambda: ELU(0.7), [0.0], {"y", "mask"}),
    "selu": (SELU, [0.0], {"y", "mask"}),
    "prelu": (PReLU, [0.0], {"x"}),
    "softplus": (Softplus, [], {"x"}),
    "softplus_beta2_thr3": (lambda: Softplus(2.0, 3.0), [1.5], {"x"}),
    "softsign": (Softsign, [0.0], {"d"}),
    "silu": (SiLU, [], {"y", "s"}),
    "swish_beta2": (lambda: Swish(2.0), [], {"y", "s"}),
    "gelu": (GELU, [], {"x", "cdf"}),
    "gelu_tanh": (lambda: GELU("tanh"), [], {"x", "e"}),
    "hardsigmoid": (HardSigmoid, [-3.0, 3.0], {"mask"}),
    "hardsigmoid_keras": (lambda: HardSigmoid(0.2, 0.5), [-2.5, 2.5], {"mask"}),
    "hardtanh": (lambda: HardTanh(-0.5, 2.0), [-0.5, 2.0], {"mask"}),
    "absval": (AbsVal, [0.0], {"x"}),
}
IDS = list(LAYERS)


def away_from(x, kinks, gap=0.05):
    """Move elements within `gap` of a kink further away, so central differences are valid."""
    for k in kinks:
        near = np.abs(x - k) < gap
        x[near] = k + np.where(x[near] >= k, 2 * gap, -2 * gap)
    return x


@pytest.mark.parametrize("case", IDS)
def test_gradcheck_float64(case, rng):
    make, kinks, _ = LAYERS[case]
    x = away_from(rng.uniform(-4, 4, size=(3, 4, 2)), kinks)
    report = gradcheck(make(), x)
    assert report.ok and report.entries[0].checked == x.size


@pytest.mark.parametrize("channels", [1, 4])
def test_prelu_gradcheck_slope_shared_and_per_channel(channels, rng):
    layer = PReLU(channels, init=0.1)
    x = away_from(rng.standard_normal((3, 4, 2, 2)), [0.0])
    layer.setup(x.shape, dtype=np.float64)
    layer.weight.data[...] = rng.uniform(-0.3, 0.6, channels)
    report = gradcheck(layer, x)
    assert [e.name for e in report.entries] == ["input[0]", "param weight"]
    assert report.entries[1].checked == channels


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", IDS)
def test_dtype_in_is_dtype_out(case, dtype, rng):
    layer = LAYERS[case][0]()
    x = rng.standard_normal((2, 3)).astype(dtype)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dtype and dx.dtype == dtype and y.shape == x.shape == dx.shape
    if layer.params():
        assert layer.params()[0].dtype == dtype and layer.params()[0].grad.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", IDS)
def test_large_magnitudes_finite_without_warnings(case, dtype):
    layer = LAYERS[case][0]()
    big = 1e30 if dtype == np.float32 else 1e300
    x = np.array([[-big, -1e4, -1e3, -88.0, -30.0, 0.0, 30.0, 89.0, 1e3, 1e4, big]], dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(y))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))


def test_asymptotes_at_1e4():
    x = np.array([-1e4, 1e4], np.float32)
    expect = {
        Sigmoid: ([0.0, 1.0], [0.0, 0.0]), TanH: ([-1.0, 1.0], [0.0, 0.0]),
        ELU: ([-1.0, 1e4], [0.0, 1.0]), Softplus: ([0.0, 1e4], [0.0, 1.0]),
        SiLU: ([0.0, 1e4], [0.0, 1.0]), GELU: ([0.0, 1e4], [0.0, 1.0]),
        HardSigmoid: ([0.0, 1.0], [0.0, 0.0]), HardTanh: ([-1.0, 1.0], [0.0, 0.0]),
    }
    for cls, (y_want, dx_want) in expect.items():
        layer = cls()
        y = layer.forward(x)
        np.testing.assert_allclose(y, y_want, rtol=1e-7, err_msg=cls.__name__)
        np.testing.assert_allclose(layer.backward(np.ones_like(x)), dx_want, rtol=1e-7, atol=1e-30,
                                   err_msg=cls.__name__)
    np.testing.assert_allclose(SELU().forward(x), [-1.0507009873554805 * 1.6732632423543772, 1.0507009873554805e4],
                               rtol=1e-6)


def test_known_values_and_derivatives_float64():
    x = np.array([0.0, 1.0])
    sig1 = 1 / (1 + np.exp(-1.0))
    cases = [
        (Sigmoid(), [0.5, sig1], [0.25, sig1 * (1 - sig1)]),
        (TanH(), [0.0, np.tanh(1.0)], [1.0, 1 - np.tanh(1.0) ** 2]),
        (Softplus(), [np.log(2.0), np.log1p(np.e)], [0.5, sig1]),
        (Softsign(), [0.0, 0.5], [1.0, 0.25]),
        (SiLU(), [0.0, sig1], [0.5, sig1 * (1 + (1 - sig1))]),
        (GELU(), [0.0, 0.8413447460685429], [0.5, 0.8413447460685429 + np.exp(-0.5) / np.sqrt(2 * np.pi)]),
        (HardSigmoid(), [0.5, 0.5 + 1 / 6], [1 / 6, 1 / 6]),
        (ELU(2.0), [0.0, 1.0], [2.0, 1.0]),  # at the kink x = 0 the slope of x <= 0 is used
        (ReLU(0.3), [0.0, 1.0], [0.3, 1.0]),
        (AbsVal(), [0.0, 1.0], [0.0, 1.0]),
    ]
    for layer, y_want, dx_want in cases:
        np.testing.assert_allclose(layer.forward(x), y_want, rtol=1e-13, atol=1e-15, err_msg=repr(layer))
        np.testing.assert_allclose(layer.backward(np.ones(2)), dx_want, rtol=1e-13, atol=1e-15, err_msg=repr(layer))


@pytest.mark.parametrize("case", IDS)
def test_caches_what_the_docstring_says_and_frees_it(case, rng):
    make, _, cached = LAYERS[case]
    layer = make()
    layer.forward(rng.standard_normal((2, 3)).astype(np.float32))
    assert set(layer.cache) == cached
    layer.backward(np.ones((2, 3), np.float32))
    assert layer.cache == {}


@pytest.mark.parametrize("case", IDS)
def test_eval_caches_nothing_and_backward_then_raises(case, rng):
    layer = LAYERS[case][0]().eval()
    layer.forward(rng.standard_normal((2, 3)).astype(np.float32))
    assert layer.cache == {}
    with pytest.raises(LayerError, match="without a preceding forward"):
        layer.backward(np.ones((2, 3), np.float32))


@pytest.mark.parametrize("case", IDS)
def test_backward_before_forward_names_the_layer(case):
    layer = LAYERS[case][0]()
    layer.name = "act7"
    with pytest.raises(LayerError, match=r"'act7'.*forward"):
        layer.backward(np.ones((2, 3), np.float32))


@pytest.mark.parametrize("case", IDS)
def test_rejects_integer_and_0d_inputs(case):
    layer = LAYERS[case][0]()
    with pytest.raises(LayerError, match=r"dtype int64, expected a float array of shape \(N, \*\)"):
        layer.forward(np.arange(6).reshape(2, 3))
    with pytest.raises(LayerError, match=r"shape \(N, \*\)"):
        layer.forward(np.array(1.0, np.float32))


def test_prelu_errors_name_the_layer_and_expected_shape():
    layer = PReLU(3, name="pr")
    with pytest.raises(LayerError, match=r"PReLU 'pr'.*\(N, C=3, \*\).*\(2, 4\)"):
        layer.forward(np.ones((2, 4), np.float32))
    layer = PReLU(3, name="pr")
    layer.forward(np.ones((2, 3, 5), np.float32))
    with pytest.raises(LayerError, match=r"PReLU 'pr'.*float64.*float32"):
        layer.forward(np.ones((2, 3, 5), np.float64))
    with pytest.raises(ValueError, match="num_parameters"):
        PReLU(0)


def test_prelu_param_named_like_torch_and_grads_accumulate(rng):
    layer = PReLU(2, init=0.3)
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    layer.forward(x)
    assert list(layer.state_dict()) == ["weight"] and layer.weight.shape == (2,)
    np.testing.assert_array_equal(layer.weight.data, np.float32([0.3, 0.3]))
    dy = np.ones_like(x)
    layer.backward(dy)
    g1 = layer.weight.grad.copy()
    layer.forward(x)
    layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, 2 * g1, rtol=1e-6)
    np.testing.assert_allclose(g1, np.where(x > 0, 0, x).sum(axis=(0, 2)), rtol=1e-5)


@pytest.mark.parametrize("bad", [lambda: GELU("erf"), lambda: HardTanh(1.0, 1.0), lambda: Softplus(beta=0),
                                 lambda: HardSigmoid(slope=0)])
def test_bad_hyperparameters_raise_value_error(bad):
    with pytest.raises(ValueError):
        bad()


def test_registered_under_pytorch_and_caffe_names():
    assert type(build("layer", "TanH")) is TanH
    assert type(build("layer", "AbsVal")) is AbsVal
    assert type(build("layer", "Swish", beta=1.0)) is SiLU
    assert build("layer", "ReLU", negative_slope=0.1).negative_slope == 0.1
    for name in ["Sigmoid", "ELU", "PReLU", "Softplus", "Softsign", "SELU", "SiLU", "GELU", "HardSigmoid",
                 "HardTanh"]:
        assert type(build("layer", name)).__name__ == name
