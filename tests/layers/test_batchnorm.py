"""BatchNorm: float64 gradcheck in train and eval, running statistics, buffers, errors."""
import numpy as np
import pytest

from layerwise.core import LayerError
from layerwise.layers.batchnorm import BatchNorm1d, BatchNorm2d
from layerwise.testing import gradcheck


def with_affine(layer, x, rng):
    layer.setup(x.shape)
    if layer.affine:  # non-trivial weight and bias so their gradients matter
        layer.weight.data[...] = rng.uniform(0.5, 1.5, layer.weight.shape)
        layer.bias.data[...] = rng.standard_normal(layer.bias.shape)
    return layer


@pytest.mark.parametrize("cls,shape", [(BatchNorm2d, (2, 3, 3, 2)), (BatchNorm2d, (1, 2, 3, 3)),
                                       (BatchNorm1d, (5, 3)), (BatchNorm1d, (2, 3, 4))])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_train_gradcheck(cls, shape, affine, rng):
    x = rng.standard_normal(shape) * 2 + 1
    gradcheck(with_affine(cls(affine=affine), x, rng), x)


@pytest.mark.parametrize("cls,shape", [(BatchNorm2d, (2, 3, 3, 2)), (BatchNorm1d, (1, 3))])
def test_batchnorm_eval_gradcheck_uses_running_stats(cls, shape, rng):
    x = rng.standard_normal(shape)
    bn = with_affine(cls(), x, rng)
    bn.set_buffer("running_mean", rng.standard_normal(shape[1]).astype(np.float32))
    bn.set_buffer("running_var", rng.uniform(0.5, 2, shape[1]).astype(np.float32))
    bn.eval(grad=True)
    gradcheck(bn, x)
    rm, rv = bn.buffer("running_mean"), bn.buffer("running_var")
    y = bn.forward(x)
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    expect = (x - rm.reshape(bshape)) / np.sqrt(rv.reshape(bshape) + bn.eps) * bn.weight.data.reshape(bshape) \
        + bn.bias.data.reshape(bshape)
    np.testing.assert_allclose(y, expect, rtol=1e-12)


def test_batchnorm_train_normalises_and_updates_running_stats(rng):
    x = (rng.standard_normal((8, 3, 4, 4)) * 3 + 2).astype(np.float32)
    bn = BatchNorm2d(momentum=0.1)
    y = bn.forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-3)
    m = 8 * 16
    np.testing.assert_allclose(bn.buffer("running_mean"), 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(bn.buffer("running_var"), 0.9 + 0.1 * x.var(axis=(0, 2, 3)) * m / (m - 1), rtol=1e-5)
    assert int(bn.buffer("num_batches_tracked")) == 1
    assert bn.buffer("running_mean").dtype == np.float32
    assert sorted(bn.state_dict()) == ["bias", "num_batches_tracked", "running_mean", "running_var", "weight"]
    bn.eval()
    y = bn.forward(x)
    assert not bn.cache and int(bn.buffer("num_batches_tracked")) == 1


def test_batchnorm_cumulative_average_when_momentum_none(rng):
    bn = BatchNorm1d(momentum=None)
    xs = [rng.standard_normal((4, 2)).astype(np.float32) for _ in range(3)]
    for x in xs:
        bn.forward(x)
    np.testing.assert_allclose(bn.buffer("running_mean"), np.mean([x.mean(0) for x in xs], 0), rtol=1e-5)


def test_batchnorm_bad_input():
    with pytest.raises(LayerError, match=r"BatchNorm2d 'bn'.*4-D input of shape \(N, C, H, W\), got shape \(2, 3\)"):
        BatchNorm2d(name="bn").forward(np.zeros((2, 3), np.float32))
    with pytest.raises(LayerError, match=r"BatchNorm1d 'bn'.*more than one value per channel"):
        BatchNorm1d(name="bn").forward(np.zeros((1, 3), np.float32))
    bn = BatchNorm1d(name="bn")
    bn.forward(np.zeros((2, 3), np.float32))
    with pytest.raises(LayerError, match="built for 3"):
        bn.forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm2d(momentum=2)
