"""The fusion pass, propagate_down and Net hooks: fused forms against the unfused reference."""
import numpy as np
import pytest

import layerwise as lw
from layerwise.core import Net, NetHook
from layerwise.functional import bn_act, cnhw
from layerwise.testing import gradcheck

def _block(fuse):
    net = Net(inputs="x", fuse=fuse)
    net.add(lw.Conv2d(4, 3, padding=1, bias=False), "x", "c1", name="conv1")
    net.add(lw.BatchNorm2d(), "c1", "b1", name="bn1")
    net.add(lw.ReLU(), "b1", "r1", name="relu1")
    net.add(lw.Conv2d(4, 3, padding=1, bias=False), "r1", "c2", name="conv2")
    net.add(lw.BatchNorm2d(), "c2", "b2", name="bn2")
    net.add(lw.Eltwise("sum"), ["b2", "x"], "add", name="add")
    net.add(lw.ReLU(), "add", "out", name="relu")
    return net


def _perturb(net, rng):
    for name, p in net.named_params().items():
        if p.data.ndim == 1:
            p.data[...] = (1.0 if name.endswith("weight") else 0.0) + 0.3 * rng.standard_normal(p.shape)


@pytest.mark.parametrize("mode", ["train", "eval_grad"])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 3e-5)])
def test_fused_resnet_block_equals_unfused(rng, backend, mode, dtype, rtol):
    x = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    dy = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    ref, fused = _block(False), _block(True)
    for n in (ref, fused):
        n.setup(x.shape, dtype=dtype)
    _perturb(ref, rng)
    fused.load_state_dict(ref.state_dict())
    res = {}
    for key, net in (("ref", ref), ("fused", fused)):
        net.train() if mode == "train" else net.eval(grad=True)
        outs = []
        for _ in range(2):     # the second pass sees the running statistics the first one moved
            net.zero_grad()
            y = net.forward(x).copy()
            dx = net.backward(dy).copy()
            outs.append((y, dx, {k: p.grad.copy() for k, p in net.named_params().items()}))
        res[key] = outs, {k: np.array(b, np.float64) for k, b in net.named_buffers().items()}
    assert [s.name for s in fused.steps] == ["conv1", "bn1+relu1", "conv2", "bn2+add+relu"]
    assert [type(s.layer).__name__ for s in fused.steps if s.fused] == ["BatchNormReLU", "BatchNormAddReLU"]
    assert all(not s.fused for s in ref.steps)
    for (y0, dx0, g0), (y1, dx1, g1) in zip(res["ref"][0], res["fused"][0]):
        np.testing.assert_allclose(y1, y0, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(dx1, dx0, rtol=rtol, atol=rtol * 10)
        for k in g0:
            np.testing.assert_allclose(g1[k], g0[k], rtol=rtol * 10, atol=rtol * 10, err_msg=k)
    for k, b in res["ref"][1].items():
        np.testing.assert_allclose(res["fused"][1][k], b, rtol=rtol, atol=rtol, err_msg=k)


def test_fused_layers_gradcheck(rng, backend):
    bn, relu = lw.BatchNorm2d(), lw.ReLU()
    bn.setup((3, 2, 3, 4), dtype=np.float64)
    bn.weight.data[...] = [0.7, -1.3]
    f = lw.BatchNormReLU(bn, relu)
    gradcheck(f, rng.standard_normal((3, 2, 3, 4)))
    bn2 = lw.BatchNorm2d()
    bn2.setup((3, 2, 3, 4), dtype=np.float64)
    g = lw.BatchNormAddReLU(bn2, lw.Eltwise("sum"), lw.ReLU())
    report = gradcheck(g, rng.standard_normal((3, 2, 3, 4)), rng.standard_normal((3, 2, 3, 4)))
    assert len(report.entries) == 4                      # x, r, weight, bias
    g.eval(grad=True)
    gradcheck(g, rng.standard_normal((3, 2, 3, 4)), rng.standard_normal((3, 2, 3, 4)))


def test_bn_act_numba_and_numpy_kernels_agree(rng):
    if cnhw._nb is None:
        pytest.skip("numba is not installed: only the NumPy kernels exist")
    x, r, dy = (rng.standard_normal((3, 50)).astype(np.float32) for _ in range(3))
    s, t = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    al, be = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    outs = {}
    for b in ("numpy", "numba"):
        old = cnhw.set_backend(b)
        try:
            y = bn_act.forward(x, s, t, r, True, np.empty_like(x))
            r1, r2, dr = np.empty(3), np.empty(3), np.empty_like(x)
            bn_act.backward_sums(dy, x, s, t, r, True, r1, r2, dr)
            dx = bn_act.backward_apply(dy, x, s, t, r, True, al, be, np.empty_like(x))
            outs[b] = (y, r1, r2, dr, dx)
        finally:
            cnhw.set_backend(old)
    for u, v in zip(outs["numpy"], outs["numba"]):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5)
    assert (outs["numpy"][0] == 0).any() and (outs["numpy"][0] > 0).any()


def test_fusion_respects_blobs_read_elsewhere_and_net_outputs(rng):
    net = Net(inputs="x", outputs=("b", "r"))
    net.add(lw.BatchNorm2d(), "x", "b", name="bn")       # "b" is a net output: must exist
    net.add(lw.ReLU(), "b", "r", name="relu")
    net.forward(rng.standard_normal((2, 3, 4, 4)))
    assert not any(s.fused for s in net.steps)
    net2 = Net(inputs="x", outputs=("r", "t"))
    net2.add(lw.BatchNorm2d(), "x", "b", name="bn")      # "b" read by two layers
    net2.add(lw.ReLU(), "b", "r", name="relu")
    net2.add(lw.TanH(), "b", "t", name="tanh")
    net2.forward(rng.standard_normal((2, 3, 4, 4)))
    assert not any(s.fused for s in net2.steps)
    seq = lw.Sequential(lw.BatchNorm2d(), lw.ReLU(negative_slope=0.1))   # a leaky ReLU is not fused
    seq.forward(rng.standard_normal((2, 3, 4, 4)))
    assert not any(s.fused for s in seq.steps)
    fused = lw.Sequential(lw.BatchNorm2d(), lw.ReLU())
    fused.forward(rng.standard_normal((2, 3, 4, 4)))
    assert fused.steps[0].fused and list(fused.state_dict()) == list(seq.state_dict())   # same names


def test_propagate_down_first_conv_skips_dx_and_frozen_params_get_no_grad(rng, monkeypatch):
    from layerwise.functional import conv as fconv
    calls = []
    real = fconv.conv2d_backward

    def spy(dy, ctx, need_dx=True, need_dW=True):
        calls.append((need_dx, need_dW))
        return real(dy, ctx, need_dx, need_dW)

    monkeypatch.setattr("layerwise.layers.conv.conv2d_backward", spy)
    net = lw.Sequential(lw.Conv2d(3, 3, padding=1), lw.ReLU(), lw.Conv2d(2, 3, padding=1))
    x = rng.standard_normal((2, 1, 5, 5))
    y = net.forward(x)
    net.propagate_down = (False,)                          # the images need no gradient (the Trainer's setting)
    assert net.backward(np.ones_like(y)) is None
    assert calls == [(True, True), (False, True)]         # backward runs last conv first
    calls.clear()
    net[0].weight.requires_grad = False                   # a frozen stem
    net[0].bias.requires_grad = False
    net.zero_grad()
    net.forward(x)
    net.backward(np.ones_like(y))
    assert calls == [(False, True)]                       # the stem's backward is skipped entirely
    assert not net[0].weight.grad.any() and net[2].weight.grad.any()
    net.propagate_down = None                             # a Net used as a layer: input grads by default
    net.forward(x)
    assert net.backward(np.ones_like(y)).shape == x.shape


def test_hooks_see_every_step_with_paths_and_leaves(rng):
    class Rec(NetHook):
        def __init__(self):
            self.events = []

        def after_forward(self, path, step, ys, leaf):
            self.events.append(("f", path, leaf))

        def after_backward(self, path, step, dxs, leaf):
            self.events.append(("b", path, leaf))

    inner = Net(inputs="x")
    inner.add(lw.BatchNorm2d(), name="bn")
    inner.add(lw.ReLU(), name="relu")
    net = Net(inputs="x")
    net.add(lw.Conv2d(2, 1), name="conv")
    net.add(inner, name="block")
    rec = Rec()
    x = rng.standard_normal((2, 3, 4, 4))
    with net.hooks(rec):
        y = net.forward(x)
        net.backward(np.ones_like(y))
    assert rec.events == [("f", "conv", True), ("f", "block.bn+relu", True), ("f", "block", False),
                          ("b", "block.bn+relu", True), ("b", "block", False), ("b", "conv", True)]
    rec2 = Rec()
    with net.hooks(rec2, depth=0):
        net.forward(x)
    assert rec2.events == [("f", "conv", True), ("f", "block", True)]
    net.forward(x)                                        # outside the block: no hooks left behind
    assert len(rec2.events) == 2 and not net._hooks and not inner._hooks
