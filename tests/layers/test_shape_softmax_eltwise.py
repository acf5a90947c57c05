"""Flatten, Reshape, Softmax, LogSoftmax, Eltwise: gradchecks, semantics, errors."""
import numpy as np
import pytest

from layerwise import Eltwise, Flatten, LayerError, LogSoftmax, Reshape, Softmax
from layerwise.testing import gradcheck


# ---------------------------------------------------------------- Flatten / Reshape
def test_flatten_shapes_and_gradcheck(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    assert Flatten().forward(x).shape == (2, 60)
    assert Flatten(2).forward(x).shape == (2, 3, 20)
    assert Flatten(1, 2).forward(x).shape == (2, 12, 5)
    gradcheck(Flatten(), x[:, :, :2, :2])


def test_reshape_infers_copies_and_gradchecks(rng):
    x = rng.standard_normal((2, 12))
    assert Reshape((3, 4)).forward(x).shape == (2, 3, 4)
    assert Reshape((-1, 2)).forward(x).shape == (2, 6, 2)
    assert Reshape((0, 3, -1)).forward(rng.standard_normal((2, 4, 6))).shape == (2, 4, 3, 2)
    layer = Reshape((2, -1))
    y = layer.forward(x)
    np.testing.assert_array_equal(layer.backward(y), x)
    gradcheck(Reshape((3, 4)), x)


def test_shape_layer_errors():
    with pytest.raises(LayerError, match=r"Flatten 'flatten'.*cannot flatten dims 1..-1 of a 1-D input"):
        Flatten().forward(np.ones(4))
    with pytest.raises(LayerError, match=r"Reshape 'reshape'.*\(12,\) \(12 values\) to \(5, 2\) \(10 values\)"):
        Reshape((5, 2)).forward(np.ones((2, 12)))
    with pytest.raises(LayerError, match="must divide"):
        Reshape((5, -1)).forward(np.ones((2, 12)))
    with pytest.raises(ValueError, match="at most one -1"):
        Reshape((-1, -1))


# --------------------------------------------------------------------- Softmax
@pytest.mark.parametrize("cls", [Softmax, LogSoftmax])
@pytest.mark.parametrize("axis,shape", [(1, (3, 5)), (1, (2, 3, 2, 2)), (-1, (2, 3, 4))])
def test_softmax_gradcheck(cls, axis, shape, rng):
    gradcheck(cls(axis), rng.standard_normal(shape) * 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_stable_normalised_and_dtype(dtype):
    x = np.array([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0], [-1e4, -1e4 + 1, -1e4]], dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = Softmax().forward(x)
        ly = LogSoftmax().forward(x)
    assert y.dtype == ly.dtype == dtype
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(y[0], [1, 0, 0], atol=1e-30)
    np.testing.assert_allclose(np.exp(ly), y, rtol=1e-6, atol=1e-30)
    assert np.all(np.isfinite(ly)) and ly[0, 2] == pytest.approx(-2e4, rel=1e-6)


def test_softmax_backward_is_jacobian_vector_product(rng):
    x, dy = rng.standard_normal((1, 4)), rng.standard_normal((1, 4))
    layer = Softmax()
    y = layer.forward(x)[0]
    jac = np.diag(y) - np.outer(y, y)
    np.testing.assert_allclose(layer.backward(dy)[0], jac @ dy[0], rtol=1e-12)


def test_softmax_axis_error():
    with pytest.raises(LayerError, match=r"Softmax 'sm'.*axis 1 is out of range.*\(4,\)"):
        Softmax(name="sm").forward(np.ones(4))
    with pytest.raises(LayerError, match="float input"):
        Softmax().forward(np.ones((2, 3), np.int32))


# --------------------------------------------------------------------- Eltwise
@pytest.mark.parametrize("op,coeffs", [("sum", None), ("sum", (0.5, -2.0, 3.0)), ("prod", None), ("max", None)])
def test_eltwise_gradcheck_three_inputs(op, coeffs, rng):
    xs = [rng.standard_normal((2, 3, 2)) for _ in range(3)]
    report = gradcheck(Eltwise(op, coeffs), *xs)
    assert [e.name for e in report.entries] == ["input[0]", "input[1]", "input[2]"]


def test_eltwise_forward_values(rng):
    a, b, c = (rng.standard_normal((2, 3)).astype(np.float32) for _ in range(3))
    np.testing.assert_allclose(Eltwise().forward(a, b, c), a + b + c, rtol=1e-6)
    np.testing.assert_allclose(Eltwise("SUM", (2, -1)).forward(a, b), 2 * a - b, rtol=1e-6)
    np.testing.assert_allclose(Eltwise("prod").forward(a, b, c), a * b * c, rtol=1e-6)
    np.testing.assert_array_equal(Eltwise("max").forward(a, b, c), np.maximum(np.maximum(a, b), c))
    y = Eltwise("sum").forward(a)
    np.testing.assert_array_equal(y, a)
    assert y is not a


def test_eltwise_prod_backward_with_zeros_no_division():
    a = np.array([0.0, 2.0, 0.0])
    b = np.array([3.0, 0.0, 0.0])
    c = np.array([5.0, 7.0, 0.0])
    layer = Eltwise("prod")
    layer.forward(a, b, c)
    with np.errstate(divide="raise", invalid="raise"):
        da, db, dc = layer.backward(np.ones(3))
    np.testing.assert_array_equal(da, b * c)
    np.testing.assert_array_equal(db, a * c)
    np.testing.assert_array_equal(dc, a * b)


def test_eltwise_max_routes_gradient_to_first_argmax():
    a = np.array([1.0, 5.0, 2.0])
    b = np.array([3.0, 5.0, 2.0])
    c = np.array([0.0, 4.0, 2.0])
    layer = Eltwise("max")
    layer.forward(a, b, c)
    da, db, dc = layer.backward(np.array([10.0, 20.0, 30.0]))
    np.testing.assert_array_equal(da, [0, 20, 30])
    np.testing.assert_array_equal(db, [10, 0, 0])
    np.testing.assert_array_equal(dc, [0, 0, 0])


def test_eltwise_errors():
    with pytest.raises(LayerError, match=r"Eltwise 'e'.*input 1 has shape \(2, 4\), expected.*\(2, 3\)"):
        Eltwise(name="e").forward(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(LayerError, match=r"3 inputs but 2 coeffs"):
        Eltwise(coeffs=(1, 2)).forward(np.ones(2), np.ones(2), np.ones(2))
    with pytest.raises(LayerError, match=r"input 1 has dtype float64.*input 0 is float32"):
        Eltwise().forward(np.ones(2, np.float32), np.ones(2))
    with pytest.raises(LayerError, match=r"expected 2 input"):
        Eltwise(num_inputs=2).forward(np.ones(2), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="op must be one of"):
        Eltwise("mean")
    with pytest.raises(ValueError, match="coeffs apply to op='sum' only"):
        Eltwise("prod", (1, 2))


def test_eltwise_max_propagates_nan_like_torch_maximum():
    from layerwise import Eltwise

    a = np.array([[1.0, np.nan, 3.0]])
    b = np.array([[2.0, 0.0, np.nan]])
    y = Eltwise("max").forward(a, b)
    assert y[0, 0] == 2.0 and np.isnan(y[0, 1]) and np.isnan(y[0, 2])
