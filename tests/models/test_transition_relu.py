"""DenseNet's transition without the ReLU after its BN (the paper's text): option, default, fast refusal."""
import numpy as np
import pytest

from layerwise.models import build_densenet
from layerwise.models.dense_block import Transition
from layerwise.testing import gradcheck


def test_default_keeps_the_relu_and_the_option_drops_it():
    assert list(Transition(4).children()) == ["norm", "relu", "conv", "pool"]
    assert list(Transition(4, relu=False).children()) == ["norm", "conv", "pool"]
    net = build_densenet(block_config=(1, 1), growth_rate=2, transition_relu=False, impl="reference")
    assert "relu" not in net.children()["features"].children()["transition1"].children()
    assert "relu" in build_densenet(block_config=(1, 1), growth_rate=2).children()["features"] \
        .children()["transition1"].children()


def test_no_relu_forward_is_bn_conv_pool_so_negative_values_pass(rng):
    x = rng.standard_normal((3, 4, 4, 4))
    tr = Transition(2, relu=False)
    tr.setup(x.shape, dtype=np.float64)
    y = tr.forward(x)
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    a = (x - mean) / np.sqrt(var + 1e-5)                                         # BN, weight 1 bias 0
    w = tr.children()["conv"].weight.data[:, :, 0, 0]
    z = np.einsum("oc,nchw->nohw", w, a)
    want = z.reshape(3, 2, 2, 2, 2, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    with_relu = Transition(2)
    with_relu.setup(x.shape, dtype=np.float64)
    with_relu.children()["conv"].weight.data[...] = w[:, :, None, None]
    assert not np.allclose(with_relu.forward(x), y)                             # the ReLU made a difference


def test_gradcheck_without_relu(rng):
    assert gradcheck(Transition(3, relu=False), rng.standard_normal((2, 4, 4, 4))).ok


def test_fast_impl_refuses_the_option_and_runs_the_reference(rng):
    x = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    fast, ref = Transition(3, relu=False, impl="fast"), Transition(3, relu=False)
    fast.setup(x.shape), ref.setup(x.shape)
    ref.load_state_dict(fast.state_dict())
    np.testing.assert_array_equal(fast.forward(x), ref.forward(x))
    assert not fast._ran_fast
    dy = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(fast.backward(dy), ref.backward(dy))


@pytest.mark.torch
def test_no_relu_matches_torch_bn_conv_pool(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 4, 4, 4))
    tr = Transition(3, relu=False)
    tr.setup(x.shape, dtype=np.float64)
    w = tr.children()["conv"].weight.data
    t = torch.nn.Sequential(torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 3, 1, bias=False),
                            torch.nn.AvgPool2d(2)).double()
    with torch.no_grad():
        t[1].weight.copy_(torch.from_numpy(w))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = t(xt)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(tr.forward(x), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tr.backward(dy), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tr.children()["conv"].weight.grad, t[1].weight.grad.numpy(), rtol=1e-10, atol=1e-12)
