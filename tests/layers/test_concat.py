"""Concat: gradcheck (several inputs, several axes), split backward, errors."""
import numpy as np
import pytest

from layerwise.core import LayerError
from layerwise.layers.concat import Concat
from layerwise.testing import gradcheck


@pytest.mark.parametrize("axis,shapes", [
    (1, [(2, 3, 2, 2), (2, 1, 2, 2), (2, 2, 2, 2)]),
    (0, [(1, 2, 3), (2, 2, 3)]),
    (-1, [(2, 3), (2, 4)]),
])
def test_concat_gradcheck(axis, shapes, rng):
    gradcheck(Concat(axis), *[rng.standard_normal(s) for s in shapes])


def test_concat_forward_and_split_backward(rng):
    a, b = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 5, 4, 4))
    layer = Concat()
    y = layer.forward(a, b)
    np.testing.assert_array_equal(y, np.concatenate([a, b], 1))
    da, db = layer.backward(y * 2)
    np.testing.assert_array_equal(da, 2 * a)
    np.testing.assert_array_equal(db, 2 * b)
    assert not layer.cache


def test_concat_bad_input():
    with pytest.raises(LayerError, match=r"Concat 'cat'.*input 1 has shape \(2, 3, 5, 5\)"):
        Concat(name="cat").forward(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 5, 5)))
    with pytest.raises(LayerError, match="out of range"):
        Concat(axis=4).forward(np.zeros((2, 3, 4, 4)))
