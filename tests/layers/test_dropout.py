"""Dropout: inverted scaling, train/eval, seeded and checkpointable mask generator."""
import json

import numpy as np
import pytest

from layerwise import Dropout, LayerError, Sequential
from layerwise.testing import gradcheck


class FixedMaskDropout(Dropout):
    """Dropout whose mask is the same on every forward: restore the generator state first.

    This is the documented way to hold a mask fixed (gradcheck runs forward many times)."""

    def _forward(self, x):
        if not hasattr(self, "_state0"):
            self._state0 = self.rng_state()
        self.set_rng_state(self._state0)
        return super()._forward(x)


def test_gradcheck_float64_with_fixed_mask(rng):
    layer = FixedMaskDropout(0.3, seed=4)
    report = gradcheck(layer, rng.standard_normal((4, 5)))
    assert report.ok


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_inverted_scaling_and_keep_rate(p):
    layer = Dropout(p, seed=1)
    x = np.ones((200, 100), np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)
    assert abs(kept.mean() - (1 - p)) < 0.02  # 20000 draws: std of the rate < 0.0036
    dy = np.arange(x.size, dtype=np.float32).reshape(x.shape)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, np.where(kept, dy / (1 - p), 0), rtol=1e-6)
    assert abs(float(y.mean()) - 1.0) < 0.05  # expectation preserved


def test_eval_is_identity_and_caches_nothing(rng):
    layer = Dropout(0.5).eval()
    x = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(layer.forward(x), x)
    assert layer.cache == {}
    layer.eval(grad=True)
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(x), x)


def test_ratio_zero_and_one():
    x = np.ones((2, 3))
    d0 = Dropout(0.0)
    np.testing.assert_array_equal(d0.forward(x), x)
    np.testing.assert_array_equal(d0.backward(x), x)
    d1 = Dropout(1.0)
    np.testing.assert_array_equal(d1.forward(x), 0)
    np.testing.assert_array_equal(d1.backward(x), 0)
    with pytest.raises(ValueError, match=r"ratio must be in \[0, 1\]"):
        Dropout(1.5)


def test_seed_reproducible_and_masks_differ_between_calls():
    x = np.ones((4, 50), np.float32)
    a, b, c = Dropout(seed=3), Dropout(seed=3), Dropout(seed=4)
    ya, yb, yc = a.forward(x), b.forward(x), c.forward(x)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, yc)
    assert not np.array_equal(ya, a.forward(x))


def test_net_seed_fixes_the_masks():
    x = np.ones((4, 50), np.float32)
    outs = [Sequential(Dropout(), Dropout(), seed=s).forward(x) for s in (0, 0, 1)]
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


def test_rng_state_round_trips_through_json():
    layer = Dropout(seed=7)
    x = np.ones((3, 40), np.float32)
    layer.forward(x)
    state = json.loads(json.dumps(layer.rng_state()))
    y1 = layer.forward(x)
    other = Dropout(seed=99)
    other.set_rng_state(state)
    np.testing.assert_array_equal(other.forward(x), y1)
    layer.set_rng_state(state)
    np.testing.assert_array_equal(layer.forward(x), y1)


def test_bad_rng_state_and_backward_before_forward_raise():
    layer = Dropout(name="drop1")
    with pytest.raises(LayerError, match=r"Dropout 'drop1'.*PCG64"):
        layer.set_rng_state({"bit_generator": "MT19937"})
    with pytest.raises(LayerError, match=r"Dropout 'drop1'.*forward"):
        layer.backward(np.ones((2, 2), np.float32))
