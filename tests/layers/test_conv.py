"""Conv2d: float64 gradcheck over a grid of geometries, both code paths; errors; init; caches."""
import numpy as np
import pytest

from layerwise.core import LayerError, lookup
from layerwise.layers.conv import Conv2d
from layerwise.testing import gradcheck

# (x shape, out_channels, kernel, stride, padding, dilation, groups)
GRID = [
    ((2, 3, 5, 5), 4, 3, 1, 1, 1, 1),          # shifted GEMMs
    ((1, 3, 6, 5), 2, (3, 2), (2, 1), (1, 0), 1, 1),   # batch 1, rectangular, stride 2
    ((2, 4, 7, 7), 4, 3, 1, 2, 2, 1),          # dilation
    ((2, 4, 5, 6), 6, 3, 2, 1, 1, 2),          # groups
    ((1, 3, 5, 5), 3, 3, 1, 1, 1, 3),          # depthwise
    ((2, 3, 4, 3), 5, 1, 1, 0, 1, 1),          # 1x1: plain GEMM
    ((2, 2, 5, 5), 3, 1, 2, 0, 1, 1),          # 1x1 stride 2
    ((1, 2, 3, 3), 2, 3, 1, 0, 1, 1),          # kernel == input
]


@pytest.mark.parametrize("impl", ["gemm", "direct"])
@pytest.mark.parametrize("xs,o,k,s,p,d,g", GRID)
def test_conv2d_gradcheck(impl, xs, o, k, s, p, d, g, rng):
    conv = Conv2d(o, k, s, p, d, g, impl=impl)
    gradcheck(conv, rng.standard_normal(xs))


@pytest.mark.parametrize("xs,o,k,p,d", [((2, 3, 5, 5), 4, 3, 1, 1), ((2, 4, 7, 7), 4, 3, 2, 2),
                                         ((1, 2, 5, 4), 3, (2, 3), (1, 0), 1), ((1, 2, 3, 3), 2, 3, 0, 1)])
def test_conv2d_taps_gradcheck(xs, o, k, p, d, rng):
    """One GEMM per kernel tap on shifted views (stride 1), through BLAS and through xp.matmul."""
    from layerwise.functional import blas
    for use_blas in (True, False):
        old = blas.set_enabled(use_blas)
        try:
            gradcheck(Conv2d(o, k, 1, p, d, impl="cftaps"), rng.standard_normal(xs))
        finally:
            blas.set_enabled(old)



@pytest.mark.parametrize("xs,o,k,s,p,d", [((3, 2, 8, 8), 3, 5, 1, 0, 1), ((2, 3, 5, 6), 4, 3, 1, 1, 1),
                                           ((2, 2, 7, 6), 3, 3, 2, 1, 1), ((2, 2, 9, 8), 2, (3, 2), (2, 1), 2, 2)])
def test_conv2d_cfim2col_gradcheck(monkeypatch, xs, o, k, s, p, d, rng):
    """Channels-first im2col, by blocks of one image over two threads (BLAS) and with the full
    columns (xp.matmul)."""
    from layerwise.functional import blas, conv
    monkeypatch.setattr(conv, "COLS_BLOCK_BYTES", 1)
    for use_blas in (True, False):
        old, old_n = blas.set_enabled(use_blas), blas.set_num_threads(2)
        try:
            gradcheck(Conv2d(o, k, s, p, d, impl="cfim2col"), rng.standard_normal(xs))
        finally:
            blas.set_enabled(old)
            blas.set_num_threads(old_n)

def test_conv2d_no_bias_gradcheck_and_param_names(rng):
    conv = Conv2d(3, 3, padding=1, bias=False)
    gradcheck(conv, rng.standard_normal((1, 2, 4, 4)))
    assert list(conv.named_params()) == ["weight"]


def test_conv2d_gemm_and_direct_agree(rng):
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    a, b = Conv2d(6, 3, 2, 1, groups=2), Conv2d(6, 3, 2, 1, groups=2, impl="direct")
    ya, yb = a.forward(x), b.forward(x)
    np.testing.assert_allclose(ya, yb, rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(ya.shape).astype(np.float32)
    np.testing.assert_allclose(a.backward(dy), b.backward(dy), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.weight.grad, b.weight.grad, rtol=1e-5, atol=1e-5)


def test_conv2d_shapes_dtype_init_and_cache(rng):
    conv = Conv2d(8, 3, stride=2, padding=1)
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    assert conv.setup(x.shape) == (2, 8, 5, 5)
    assert conv.weight.shape == (8, 4, 3, 3) and conv.bias.shape == (8,)
    bound = 1 / np.sqrt(4 * 9)   # PyTorch's kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.weight.data).max() > 0.8 * bound
    y = conv.forward(x)
    assert y.dtype == np.float32 and conv.cache
    assert conv.backward(np.ones_like(y)).dtype == np.float32
    assert not conv.cache
    conv.eval()
    conv.forward(x)
    assert not conv.cache


def test_conv2d_caffe_alias():
    assert lookup("layer", "Convolution") is Conv2d


def test_conv2d_bad_input_errors_name_the_layer():
    with pytest.raises(LayerError, match=r"Conv2d 'c'.*larger than the padded input.*\(1, 3, 2, 2\)"):
        Conv2d(4, 3, name="c").forward(np.zeros((1, 3, 2, 2), np.float32))
    with pytest.raises(LayerError, match=r"Conv2d 'c'.*3 channels, not divisible by groups=2"):
        Conv2d(4, 3, groups=2, name="c").forward(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(LayerError, match=r"Conv2d 'c'.*4-D input of shape \(N, C, H, W\), got shape \(3, 5, 5\)"):
        Conv2d(4, 3, name="c").forward(np.zeros((3, 5, 5), np.float32))
    conv = Conv2d(4, 3, name="c")
    conv.forward(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(LayerError, match="built for 3"):
        conv.forward(np.zeros((1, 5, 5, 5), np.float32))
    with pytest.raises(ValueError, match="groups"):
        Conv2d(5, 3, groups=2)
    with pytest.raises(ValueError, match="impl"):
        Conv2d(5, 3, impl="fft")
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2d(5, 0)
