"""The copy-free DenseBlock: bit-identical to a Net of Concat layers, caches freed, memory linear."""
import tracemalloc

import numpy as np
import pytest

from layerwise.core import Net
from layerwise.layers import Concat
from layerwise.models import DenseBlock, DenseLayer
from layerwise.testing import gradcheck


def concat_block(num_layers, k, **kw) -> Net:
    """The textbook dense block: H_l reads Concat(x_0, ..., x_{l-1}); output Concat(x_0, ..., x_L)."""
    net = Net(inputs="x", name="plain")
    feats = ["x"]
    for i in range(num_layers):
        src = feats[0] if i == 0 else f"cat{i}"
        net.add(DenseLayer(k, **kw), src, f"y{i + 1}", name=f"denselayer{i + 1}")
        feats.append(f"y{i + 1}")
        net.add(Concat(axis=1), list(feats), f"cat{i + 1}", name=f"cat{i + 1}")
    return net


def run(layer, x, dy, train=True):
    layer.train(train) if train else layer.eval(grad=True)
    layer.zero_grad()
    y = layer.forward(x)
    dx = layer.backward(dy)
    grads = {k: p.grad.copy() for k, p in layer.named_params().items()}
    return y.copy(), dx.copy(), grads, {k: np.array(b, copy=True) for k, b in layer.named_buffers().items()}


def build_pair(num_layers, k, x, dtype, **kw):
    ref = concat_block(num_layers, k, memory_efficient=False, **kw)
    ref.setup(x.shape, dtype=dtype)
    block = DenseBlock(num_layers, k, **kw)
    block.setup(x.shape, dtype=dtype)
    block.load_state_dict(ref.state_dict())
    return ref, block


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bottleneck", [True, False])
@pytest.mark.parametrize("memory_efficient", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_dense_block_bit_identical_to_concat_net(rng, dtype, bottleneck, memory_efficient, train):
    x = rng.standard_normal((3, 5, 6, 6)).astype(dtype)
    ref, block = build_pair(4, 3, x, dtype, bottleneck=bottleneck)
    block.memory_efficient = memory_efficient
    dy = rng.standard_normal((3, 5 + 4 * 3, 6, 6)).astype(dtype)
    y0, dx0, g0, b0 = run(ref, x, dy, train)
    y1, dx1, g1, b1 = run(block, x, dy, train)
    assert y1.dtype == dtype and y1.shape == y0.shape
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(dx1, dx0)
    assert g1.keys() == g0.keys() and len(g0) == 4 * (6 if bottleneck else 3)
    for name in g0:
        np.testing.assert_array_equal(g1[name], g0[name], err_msg=name)
    for name in b0:  # running statistics updated exactly once, also when BN-ReLU-Conv1 is recomputed
        np.testing.assert_array_equal(b1[name], b0[name], err_msg=name)
    assert int(b1["denselayer1.norm1.num_batches_tracked"]) == (1 if train else 0)


def test_dense_block_with_dropout_bit_identical(rng):
    x = rng.standard_normal((2, 4, 5, 5))
    ref, block = build_pair(3, 2, x, np.float64, bottleneck=True, dropout=0.3)
    dy = rng.standard_normal((2, 10, 5, 5))
    y0, dx0, g0, _ = run(ref, x, dy)
    y1, dx1, g1, _ = run(block, x, dy)
    assert (y1[:, 4:] == 0).any()  # dropout is active
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(dx1, dx0)
    for name in g0:
        np.testing.assert_array_equal(g1[name], g0[name], err_msg=name)


def test_dense_block_writes_features_in_place_and_frees_caches(rng):
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    block = DenseBlock(3, 2)
    y = block.forward(x)
    assert y.shape == (2, 10, 5, 5) and y.flags.c_contiguous
    np.testing.assert_array_equal(y[:, :4], x)
    # memory-efficient: the first BN/ReLU/conv of every layer holds nothing after forward
    for layer in block.dense_layers:
        assert all(not m.cache for m in layer._segment)
        assert np.shares_memory(layer.cache["x"], y)   # a view of the shared buffer, not a copy
    block.backward(np.ones_like(y))
    assert all(not m.cache for m in block.modules())


@pytest.mark.parametrize("bottleneck", [True, False])
def test_dense_block_gradcheck(rng, bottleneck):
    block = DenseBlock(2, 2, bottleneck=bottleneck, bn_size=2)
    gradcheck(block, rng.standard_normal((2, 3, 4, 4)))


def test_dense_block_rejects_bad_input():
    with pytest.raises(ValueError, match="DenseBlock.*4-D"):
        DenseBlock(2, 2).forward(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="num_layers"):
        DenseBlock(0, 2)
    with pytest.raises(ValueError, match="growth_rate"):
        DenseLayer(0)


def _retained_bytes(num_layers, memory_efficient):
    """Bytes a training forward leaves allocated (buffer + caches) for one dense block."""
    x = np.random.default_rng(0).standard_normal((2, 24, 8, 8)).astype(np.float32)
    block = DenseBlock(num_layers, 12, bottleneck=True, memory_efficient=memory_efficient)
    block.setup(x.shape)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    y = block.forward(x)
    kept = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    block.backward(np.ones_like(y))
    return kept


def test_dense_block_memory_grows_linearly_when_memory_efficient():
    _retained_bytes(2, True)   # warm-up: the first call JIT-compiles the BN kernels (numba's memory, not the block's)
    # depths where the quadratic part dominates the fixed per-layer part: the channels-first layers
    # keep fewer copies than the NCHW ones did, so at 4/8/16 layers the growth was harder to see
    on = [_retained_bytes(n, True) for n in (6, 12, 24)]
    off = [_retained_bytes(n, False) for n in (6, 12, 24)]
    assert all(a < b for a, b in zip(on, off))
    # linear: doubling L at most about doubles what is kept; quadratic: the increments grow
    on_inc = (on[1] - on[0], on[2] - on[1])
    off_inc = (off[1] - off[0], off[2] - off[1])
    assert on_inc[1] / on_inc[0] < 2.3
    assert off_inc[1] / off_inc[0] > 2.5
