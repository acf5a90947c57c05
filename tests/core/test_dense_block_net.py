"""A two-layer dense block (BN-ReLU-Conv, concatenation: the DenseNet pattern) as one Net.

Checked as a whole: the data blob and the first concatenation each feed two layers (fan-out
sums), Concat splits the error, BN back-propagates through its batch statistics, and the
input gradient of the block is checked too (a first layer's input gradient is otherwise never
exercised).
"""
import numpy as np
import pytest

from layerwise.core import Net
from layerwise.layers.activations import ReLU
from layerwise.layers.batchnorm import BatchNorm2d
from layerwise.layers.concat import Concat
from layerwise.layers.conv import Conv2d
from layerwise.testing import gradcheck


def dense_block(growth: int = 2, impl: str = "gemm") -> Net:
    net = Net(inputs="data", outputs="cat2")
    prev = "data"
    for i in (1, 2):
        net.add(BatchNorm2d(), inputs=prev, outputs=f"bn{i}", name=f"bn{i}")
        net.add(ReLU(), inputs=f"bn{i}", outputs=f"relu{i}", name=f"relu{i}")
        net.add(Conv2d(growth, 3, padding=1, impl=impl), inputs=f"relu{i}", outputs=f"new{i}", name=f"conv{i}")
        net.add(Concat(axis=1), inputs=[prev, f"new{i}"], outputs=f"cat{i}", name=f"cat{i}")
        prev = f"cat{i}"
    return net


def randomise_bn(net: Net, rng) -> None:
    for name in ("bn1", "bn2"):
        bn = net[name]
        bn.weight.data[...] = rng.uniform(0.5, 1.5, bn.weight.shape)
        bn.bias.data[...] = rng.uniform(-0.5, 0.5, bn.bias.shape)


@pytest.mark.parametrize("impl", ["gemm", "direct"])
def test_dense_block_net_gradcheck_with_input_gradient(impl):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4, 4))
    net = dense_block(2, impl)
    assert net.setup(x.shape) == (2, 7, 4, 4)
    randomise_bn(net, rng)
    net.astype(np.float64)
    # keep the ReLUs away from their kink so central differences are valid
    blobs = {"data": x}
    for node in net.nodes:
        blobs[node.outputs[0]] = node.layer.forward(*[blobs[b] for b in node.inputs])
    assert min(np.abs(blobs["bn1"]).min(), np.abs(blobs["bn2"]).min()) > 1e-3
    report = gradcheck(net, x)
    names = [e.name for e in report.entries]
    assert "input[0]" in names
    assert {"param conv1.weight", "param conv2.bias", "param bn1.weight", "param bn2.bias"} <= set(names)


def test_dense_block_fan_out_sums_gradients():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 4))
    net = dense_block()
    net.setup(x.shape, dtype=np.float64)
    y = net.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = net.backward(dy)
    # the data blob reaches the output directly (through both concats) and through bn1 and bn2:
    # its gradient is the direct copy of dy plus the gradient through the BN branches
    net.forward(x)
    dy_direct_only = np.zeros_like(dy)
    dy_direct_only[:, :3] = dy[:, :3]
    dx_all = dx
    dx_branches = net.backward(dy - dy_direct_only)
    np.testing.assert_allclose(dx_all, dy[:, :3] + dx_branches, rtol=1e-12, atol=1e-12)
    assert all(not layer.cache for layer in net.modules())
