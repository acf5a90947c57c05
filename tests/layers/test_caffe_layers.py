"""Layers added for model interop (LRN, ConvTranspose2d, Scale, Power, Exp, Log, Threshold,
ConstantPad2d, Accuracy): float64 gradchecks, errors, and PyTorch oracles (forward and backward)."""
import numpy as np
import pytest

from layerwise import LRN, Accuracy, ConstantPad2d, ConvTranspose2d, Exp, Log, Power, Scale, Threshold
from layerwise.core import LayerError
from layerwise.testing import gradcheck
from layerwise.testing.oracle import assert_close, require_torch, to_torch


@pytest.mark.parametrize("size,region", [(3, "across_channels"), (4, "across_channels"), (5, "across_channels"),
                                         (3, "within_channel"), (5, "within_channel")])
def test_lrn_gradcheck(size, region, rng):
    gradcheck(LRN(size, alpha=0.7, beta=0.75, k=1.5, region=region), rng.standard_normal((2, 5, 4, 3)))


def test_lrn_rejects_even_within_channel_and_bad_rank():
    with pytest.raises(ValueError, match="odd size"):
        LRN(4, region="within_channel")
    with pytest.raises(LayerError, match="at least 3 dims"):
        LRN(3).forward(np.ones((2, 3)))


@pytest.mark.parametrize("args", [
    dict(out_channels=4, kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(out_channels=4, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), groups=2, dilation=2),
    dict(out_channels=3, kernel_size=1, bias=False),
])
def test_conv_transpose_gradcheck(args, rng):
    gradcheck(ConvTranspose2d(**args), rng.standard_normal((2, 4, 3, 4)))


def test_conv_transpose_errors():
    with pytest.raises(ValueError, match="output_padding"):
        ConvTranspose2d(2, 3, stride=1, output_padding=1)
    layer = ConvTranspose2d(2, 3)
    layer.forward(np.ones((1, 4, 3, 3)))
    with pytest.raises(LayerError, match="built for 4"):
        layer.forward(np.ones((1, 5, 3, 3)))


def test_scale_power_pad_gradcheck(rng):
    x = rng.standard_normal((2, 6, 3, 2))
    gradcheck(Scale(bias=True), x)
    gradcheck(Scale(axis=2, num_axes=-1), x)
    gradcheck(Power(3.0, scale=0.5, shift=2.0), x)
    gradcheck(Power(0.5, scale=1.0, shift=5.0), x)
    gradcheck(Exp(base=2.0, scale=0.5, shift=0.1), x)
    gradcheck(Log(scale=0.5, shift=3.0), x)
    gradcheck(Log(base=10.0, scale=2.0, shift=9.0), x)
    gradcheck(ConstantPad2d((1, 0, 2, 1), value=0.5), x)


def test_threshold_accuracy(rng):
    t = Threshold(0.5)
    x = np.array([[0.2, 0.7, 0.5]])
    assert t.forward(x).tolist() == [[0.0, 1.0, 0.0]]
    assert np.all(t.backward(np.ones_like(x)) == 0)
    acc = Accuracy(top_k=2)
    scores = np.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    assert float(acc.forward(scores, np.array([0.0, 0.0, 0.0]))) == pytest.approx(1 / 3)
    assert acc.backward(np.float64(1.0)) == (None, None)


# ----------------------------------------------------------------------------------- torch oracle
def _check(ours, torch_fn, xs, dtype, params=()):
    """Forward and backward (inputs and params) of ``ours`` against torch_fn(*xs, *params)."""
    torch = require_torch()
    xs = [x.astype(dtype) for x in xs]
    ours.astype(dtype)
    ys = ours.forward(*xs)
    ys = ys if isinstance(ys, tuple) else (ys,)
    rng = np.random.default_rng(1)
    dys = [rng.standard_normal(y.shape).astype(dtype) for y in ys]
    ours.zero_grad()
    dxs = ours.backward(*dys)
    dxs = dxs if isinstance(dxs, tuple) else (dxs,)
    xt = [to_torch(x, requires_grad=True) for x in xs]
    pt = [to_torch(p.data, requires_grad=True) for p in params]
    yt = torch_fn(*xt, *pt)
    yt = yt if isinstance(yt, (tuple, list)) else (yt,)
    torch.autograd.backward(list(yt), [to_torch(d) for d in dys])
    for y, t in zip(ys, yt):
        assert_close(y, t, what=f"{ours!r} forward")
    for dx, t in zip(dxs, xt):
        assert_close(dx, t.grad, what=f"{ours!r} dx")
    for p, t in zip(params, pt):
        assert_close(p.grad, t.grad, what=f"{ours!r} d{p.name}")


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [3, 4, 5])
def test_lrn_across_matches_torch(size, dtype, rng):
    torch = require_torch()
    x = rng.standard_normal((2, 7, 4, 3)) * 3
    _check(LRN(size, alpha=0.3, beta=0.75, k=2.0), lambda t: torch.nn.functional.local_response_norm(
        t, size, 0.3, 0.75, 2.0), [x], dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lrn_within_matches_torch(dtype, rng):
    torch = require_torch()
    F = torch.nn.functional

    def within(t):  # Caffe: x * (1 + alpha * avgpool_{3x3, pad 1, padding counted}(x^2))^-beta
        return t * (1 + 0.5 * F.avg_pool2d(t * t, 3, 1, 1, count_include_pad=True)) ** -0.75
    _check(LRN(3, alpha=0.5, beta=0.75, k=1.0, region="within_channel"), within,
           [rng.standard_normal((2, 3, 5, 4))], dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("args", [
    dict(out_channels=4, kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(out_channels=6, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), groups=2, dilation=2),
    dict(out_channels=3, kernel_size=4, stride=2, padding=1, bias=False),
])
def test_conv_transpose_matches_torch(args, dtype, rng):
    torch = require_torch()
    layer = ConvTranspose2d(**args)
    x = rng.standard_normal((2, 4, 3, 4))
    layer.setup(x.shape)
    kw = {k: args[k] for k in ("stride", "padding", "output_padding", "groups", "dilation") if k in args}
    params = [layer.weight] + ([layer.bias] if layer.bias is not None else [])
    _check(layer, lambda t, w, b=None: torch.nn.functional.conv_transpose2d(t, w, b, **kw), [x], dtype, params)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scale_power_exp_log_pad_match_torch(dtype, rng):
    torch = require_torch()
    x = rng.standard_normal((2, 6, 3, 2))
    s = Scale(bias=True)
    s.setup(x.shape)
    s.weight.data[...] = rng.standard_normal(6)
    s.bias.data[...] = rng.standard_normal(6)
    _check(s, lambda t, w, b: t * w.view(1, -1, 1, 1) + b.view(1, -1, 1, 1), [x], dtype, [s.weight, s.bias])
    _check(Power(3.0, scale=0.5, shift=2.0), lambda t: (2.0 + 0.5 * t) ** 3, [x], dtype)
    _check(Exp(base=2.0, scale=0.5, shift=0.1), lambda t: 2.0 ** (0.1 + 0.5 * t), [x], dtype)
    _check(Exp(), torch.exp, [x], dtype)
    _check(Log(base=10.0, scale=2.0, shift=9.0), lambda t: torch.log10(9.0 + 2.0 * t), [x], dtype)
    _check(ConstantPad2d((1, 0, 2, 1), value=0.5), lambda t: torch.nn.functional.pad(t, (1, 0, 2, 1), value=0.5),
           [x], dtype)
