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


def test_fusion_pass_leaves_the_option_unfused_and_says_why(rng):
    from layerwise.core import Net
    from layerwise.models.dense_fast import FusedTransition

    x = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    net = Net(inputs="x")
    net.add(Transition(3, relu=False), name="tr")
    ref = Transition(3, relu=False)
    ref.setup(x.shape)
    net.setup(x.shape)
    ref.load_state_dict(net["tr"].state_dict())
    np.testing.assert_array_equal(net.forward(x), ref.forward(x))
    assert not net.steps[0].fused and "without dropout" in net.fusion_report[0]
    with pytest.raises(ValueError, match="BN-ReLU-Conv-Pool"):
        FusedTransition(Transition(3, relu=False))
