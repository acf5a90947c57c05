"""Recycled gradient sums: while training, a Net sums the gradients of a blob read by several
layers into recycled arrays of its workspace (``Workspace.recycled``: one that nobody
references any more), so they are reused from step to step. Checked against the same Net in
``eval(grad=True)`` (no pool; these layers compute the same in both modes) over several
steps, with a three-way fan-out, an Eltwise whose backward hands its dy on as-is, and nested
Nets whose input gradient is a recycled sum; a sum the caller holds (the top Net's input
gradient here) is never handed out again."""
import numpy as np
import pytest

import layerwise as lw
from layerwise.core import Net
from layerwise.functional.workspace import Workspace


def _block(seed):
    """A nested Net: x feeds a Linear, a ReLU and the sum (three readers)."""
    net = Net(inputs="x", seed=seed, name="block")
    net.add(lw.Linear(6), "x", "h", name="fc")
    net.add(lw.ReLU(), "x", "r", name="relu")
    net.add(lw.Eltwise("sum"), ["h", "r", "x"], "y", name="sum")
    return net


def _net():
    net = Net(inputs="data", seed=3)
    net.add(lw.Linear(6), "data", "a0", name="fc0")
    net.add(lw.Linear(6), "data", "a1", name="fc1")                # "data": its gradient is a sum
    net.add(lw.Eltwise("sum"), ["a0", "a1"], "a", name="join")
    net.add(_block(1), "a", "b", name="block1")
    net.add(_block(2), "b", "c", name="block2")
    net.add(lw.Eltwise("sum"), ["c", "a"], "d", name="skip")      # "a": read by block1 and skip
    net.add(lw.Linear(3), "d", "out", name="head")
    return net


def _grads(net, x, dy):
    y = net.forward(x)
    dx = net.backward(dy)
    g = {k: p.grad.copy() for k, p in net.named_params().items()}
    net.zero_grad()
    return y, dx, g


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pooled_sums_equal_fresh_sums_over_steps(dtype, rng):
    net = _net()
    net.setup((4, 5))
    net.astype(dtype)
    net.propagate_down = (True,)
    ref = _net()
    ref.setup((4, 5))
    ref.astype(dtype)
    ref.load_state_dict(net.state_dict())
    ref.propagate_down = (True,)
    ref.eval(grad=True)
    net.train()
    kept = []
    for _ in range(3):
        x = rng.standard_normal((4, 5)).astype(dtype)
        dy = rng.standard_normal((4, 3)).astype(dtype)
        y, dx, g = _grads(net, x, dy)
        y0, dx0, g0 = _grads(ref, x, dy)
        tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(y, y0, **tol)
        np.testing.assert_allclose(dx, dx0, **tol)
        for k in g0:
            np.testing.assert_allclose(g[k], g0[k], **tol, err_msg=k)
        kept.append((dx, dx.copy()))
    for dx, copy in kept:                  # the caller's input gradients were not reused
        np.testing.assert_array_equal(dx, copy)
    assert any(ws_arrays for ws_arrays in net.workspace._recycled.values())   # sums were recycled
    ws = net.workspace
    assert ws.nbytes > 0
    net.eval()
    assert ws.nbytes == 0                  # eval frees the pool with the rest of the workspace


def test_pool_reuses_arrays_across_steps(rng):
    net = _net()
    net.setup((4, 5))
    net.train()
    x, dy = rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal((4, 3)).astype(np.float32)
    _grads(net, x, dy)
    first = net.workspace.nbytes
    assert first > 0
    for _ in range(3):
        _grads(net, x, dy)
    assert net.workspace.nbytes == first   # no new arrays: the same ones every step


def test_recycled_hands_out_only_arrays_nobody_references():
    ws = Workspace()
    a = ws.recycled((3, 4), np.float32)
    b = ws.recycled((3, 4), np.float32)
    assert a is not b                                   # a is held here
    v = a.T[1:]                                         # a view holds a too
    del a
    c = ws.recycled((3, 4), np.float32)
    assert c is not v.base and c is not b
    del v
    assert ws.recycled((3, 4), np.float32).shape == (3, 4)
    assert ws.nbytes == 3 * 12 * 4                      # the freed one came back, no fourth array
    assert ws.recycled((3, 4), np.float64).dtype == np.float64   # another dtype, another array
    ws.clear()
    assert ws.nbytes == 0


def test_recycled_keeps_a_bounded_number_of_arrays_per_shape():
    """A caller that keeps every array (features gathered through a hook, say) gets new ones, and
    the workspace does not grow with them past RECYCLED_PER_SHAPE."""
    from layerwise.functional import workspace as wsmod
    ws = Workspace()
    held = [ws.recycled((2, 3), np.float32) for _ in range(3 * wsmod.RECYCLED_PER_SHAPE)]
    assert len({id(a) for a in held}) == len(held)
    assert ws.nbytes == wsmod.RECYCLED_PER_SHAPE * 2 * 3 * 4
    del held
    again = ws.recycled((2, 3), np.float32)
    assert any(again is a for a in ws._recycled[((2, 3), np.dtype(np.float32).str, "numpy")])


def test_sums_keep_the_memory_order_of_their_terms(rng):
    """A sum of channels-first gradients is channels-first too (the layers below read it so)."""
    from layerwise.core.net import _recycled_like
    ws = Workspace()
    g = np.zeros((5, 2, 3, 4), np.float32).transpose(1, 0, 2, 3)
    out = _recycled_like(ws, g, np)
    assert out.shape == g.shape and out.strides == g.strides
