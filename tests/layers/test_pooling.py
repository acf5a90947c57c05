"""Pooling: float64 gradcheck over a grid, output sizes (floor vs Caffe's ceil), errors."""
import numpy as np
import pytest

from layerwise.core import LayerError, lookup
from layerwise.layers.pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from layerwise.testing import gradcheck

# (x shape, kernel, stride, padding, ceil_mode)
GRID = [
    ((2, 2, 4, 4), 2, None, 0, False),        # non-overlapping (fast path for avg)
    ((1, 2, 5, 5), 3, 2, 1, False),           # overlapping, padded, batch 1
    ((2, 1, 5, 6), (3, 2), (2, 1), (1, 0), False),
    ((1, 2, 5, 5), 2, 2, 0, True),            # Caffe rounding: a partial last window
    ((1, 1, 6, 7), 3, 2, 1, True),
]


def distinct(rng, shape):
    """Values with no ties (max pooling has a kink at ties), well spaced."""
    return rng.permutation(np.arange(np.prod(shape))).reshape(shape) * 0.1 + rng.uniform(0, 0.01, shape)


@pytest.mark.parametrize("xs,k,s,p,ceil", GRID)
def test_maxpool_gradcheck(xs, k, s, p, ceil, rng, backend):
    gradcheck(MaxPool2d(k, s, p, ceil), distinct(rng, xs), eps=1e-4)


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("xs,k,s,p,ceil", GRID)
def test_avgpool_gradcheck(xs, k, s, p, ceil, include_pad, rng):
    gradcheck(AvgPool2d(k, s, p, ceil, include_pad), rng.standard_normal(xs))


def test_global_avgpool_gradcheck(rng):
    layer = GlobalAvgPool2d()
    gradcheck(layer, rng.standard_normal((2, 3, 3, 5)))
    assert layer.setup((2, 3, 7, 7)) == (2, 3, 1, 1)


def test_maxpool_routes_error_to_argmax_and_avg_spreads_it():
    x = np.array([[[[1., 5., 2., 0.], [3., 4., 8., 1.], [0., 0., 1., 2.], [9., 0., 3., 1.]]]], np.float32)
    mp = MaxPool2d(2)
    np.testing.assert_array_equal(mp.forward(x)[0, 0], [[5, 8], [9, 3]])
    dx = mp.backward(np.array([[[[1., 2.], [3., 4.]]]], np.float32))[0, 0]
    np.testing.assert_array_equal(dx, [[0, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0]])
    ap = AvgPool2d(2)
    ap.forward(x)
    np.testing.assert_array_equal(ap.backward(np.full((1, 1, 2, 2), 4, np.float32))[0, 0], np.ones((4, 4)))


def test_output_size_floor_by_default_ceil_for_caffe():
    assert MaxPool2d(3, 2).setup((1, 1, 6, 6)) == (1, 1, 2, 2)
    assert MaxPool2d(3, 2, ceil_mode=True).setup((1, 1, 6, 6)) == (1, 1, 3, 3)
    assert AvgPool2d(2, 2, 1, ceil_mode=True).setup((1, 1, 5, 5)) == (1, 1, 3, 3)
    assert lookup("layer", "MaxPool") is MaxPool2d


def test_pool_bad_input():
    with pytest.raises(LayerError, match=r"MaxPool2d 'p'.*4-D input"):
        MaxPool2d(2, name="p").forward(np.zeros((3, 4, 4), np.float32))
    with pytest.raises(LayerError, match=r"AvgPool2d 'p'.*larger than the padded input"):
        AvgPool2d(5, name="p").forward(np.zeros((1, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match="at most half the kernel"):
        MaxPool2d(2, padding=2)
    with pytest.raises(LayerError, match=r"GlobalAvgPool2d"):
        GlobalAvgPool2d().forward(np.zeros((2, 3), np.float32))
