"""Slice (layers/slicing.py, Caffe's Slice layer): float64 gradchecks, errors, PyTorch oracle."""
import numpy as np
import pytest

from layerwise import Slice
from layerwise.core import LayerError
from layerwise.testing import gradcheck
from layerwise.testing.oracle import require_torch

from .test_caffe_layers import _check


@pytest.mark.parametrize("layer", [Slice([1, 4]), Slice(num_outputs=2, axis=-1), Slice([2], axis=2)])
def test_slice_gradcheck(layer, rng):
    gradcheck(layer, rng.standard_normal((2, 6, 3, 2)))


def test_slice_errors():
    with pytest.raises(LayerError, match="smaller than the axis length"):
        Slice([6]).forward(np.ones((1, 6)))
    with pytest.raises(ValueError, match="increasing"):
        Slice([3, 2])


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_slice_matches_torch(dtype, rng):
    require_torch()
    x = rng.standard_normal((2, 6, 3, 2))
    _check(Slice([1, 4]), lambda t: (t[:, :1], t[:, 1:4], t[:, 4:]), [x], dtype)
    _check(Slice(num_outputs=2, axis=-1), lambda t: (t[..., :1], t[..., 1:]), [x], dtype)
