"""RReLU: random slopes in training (fixed for the gradcheck), the mean slope in eval, seeds, errors."""
import numpy as np
import pytest

from layerwise import RReLU, Sequential
from layerwise.testing import gradcheck


class FixedSlopeRReLU(RReLU):
    """RReLU that draws the same slopes on every forward (gradcheck runs forward many times)."""

    def _forward(self, x):
        if not hasattr(self, "_state0"):
            self._state0 = self.rng_state()
        self.set_rng_state(self._state0)
        return super()._forward(x)


def _away_from_kink(rng, shape):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.5, x)


def test_gradcheck_float64_training_with_fixed_slopes(rng):
    assert gradcheck(FixedSlopeRReLU(0.1, 0.4, seed=3), _away_from_kink(rng, (3, 4, 5))).ok


def test_gradcheck_float64_eval(rng):
    assert gradcheck(RReLU(0.1, 0.4).eval(grad=True), _away_from_kink(rng, (3, 7))).ok


def test_training_slopes_are_uniform_in_range_and_redrawn_each_forward():
    layer = RReLU(0.1, 0.3, seed=0)
    x = -np.ones((100, 100), np.float32)
    y1, y2 = layer.forward(x), layer.forward(x)
    assert y1.dtype == np.float32
    a = -y1
    assert a.min() >= 0.1 and a.max() <= 0.3
    assert abs(a.mean() - 0.2) < 0.002 and abs(a.std() - 0.2 / np.sqrt(12)) < 0.002   # U(0.1, 0.3)
    assert not np.array_equal(y1, y2)
    dx = layer.backward(np.full_like(x, 2.0))
    np.testing.assert_array_equal(dx, 2 * -y2)                  # backward uses the slopes of the last forward


def test_positive_side_is_identity_and_the_kink_takes_the_slope():
    layer = RReLU(0.25, 0.25, seed=0)
    x = np.array([3.0, 0.0, -2.0])
    np.testing.assert_array_equal(layer.forward(x), [3.0, 0.0, -0.5])
    np.testing.assert_array_equal(layer.backward(np.ones(3)), [1.0, 0.25, 0.25])


def test_eval_is_deterministic_mean_slope_and_caches_nothing(rng):
    layer = RReLU(0.1, 0.3, seed=0).eval()
    x = rng.standard_normal((4, 6))
    y = layer.forward(x)
    np.testing.assert_allclose(y, np.where(x > 0, x, 0.2 * x), rtol=1e-15)
    np.testing.assert_array_equal(layer.forward(x), y)
    assert layer.cache == {}


def test_seed_and_rng_state_reproduce_the_slopes(rng):
    x = -np.abs(rng.standard_normal((5, 5)))
    a, b = RReLU(seed=7), RReLU(seed=7)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    state = a.rng_state()
    y = a.forward(x)
    a.set_rng_state(state)
    np.testing.assert_array_equal(a.forward(x), y)
    n1, n2 = Sequential(RReLU(), seed=1), Sequential(RReLU(), seed=1)          # seed from the Net's rng
    np.testing.assert_array_equal(n1.forward(x), n2.forward(x))


@pytest.mark.parametrize("lower,upper", [(0.3, 0.1), (-0.1, 0.2), (0.1, float("inf"))])
def test_bad_range_is_a_clear_error(lower, upper):
    with pytest.raises(ValueError, match="RReLU: need finite 0 <= lower <= upper"):
        RReLU(lower, upper)


def test_integer_input_is_a_clear_error():
    with pytest.raises(ValueError, match="float array"):
        RReLU().forward(np.array([1, -2]))


def test_gradcheck_itself_holds_the_random_draws_fixed(rng):
    """No fixed-slope subclass needed: gradcheck restores every generator before each forward."""
    from layerwise import Dropout, Linear
    net = Sequential(Linear(6), RReLU(0.1, 0.5), Dropout(0.3), Linear(3), seed=0)
    assert gradcheck(net, rng.standard_normal((4, 5))).ok
    assert gradcheck(RReLU(), _away_from_kink(rng, (3, 8))).ok
