"""The fusion pass, propagate_down and Net hooks: fused forms against the unfused reference."""
import numpy as np
import pytest

import layerwise as lw
from layerwise.core import Net, NetHook
from layerwise.functional import bn_act, cnhw
from layerwise.testing import gradcheck


def _block(fuse, c=4, pre=False):
    """A ResNet basic block (conv-bn-relu-conv-bn-add-relu), or with ``pre`` batch norms that
    do not follow a conv (bn-relu-conv-sum-bn-add-relu-conv), which fuse without the convs."""
    net = Net(inputs="x", fuse=fuse)
    if pre:
        net.add(lw.BatchNorm2d(), "x", "b1", name="bn1")
        net.add(lw.ReLU(), "b1", "r1", name="relu1")
        net.add(lw.Conv2d(c, 3, padding=1, bias=False), "r1", "c1", name="conv1")
        net.add(lw.Eltwise("sum"), ["c1", "x"], "s1", name="sum1")
        net.add(lw.BatchNorm2d(), "s1", "b2", name="bn2")
        net.add(lw.Eltwise("sum"), ["b2", "x"], "add", name="add")
        net.add(lw.ReLU(), "add", "r2", name="relu")
        net.add(lw.Conv2d(c, 3, padding=1), "r2", "out", name="conv2")
        return net
    net.add(lw.Conv2d(c, 3, padding=1, bias=False), "x", "c1", name="conv1")
    net.add(lw.BatchNorm2d(), "c1", "b1", name="bn1")
    net.add(lw.ReLU(), "b1", "r1", name="relu1")
    net.add(lw.Conv2d(c, 3, padding=1), "r1", "c2", name="conv2")
    net.add(lw.BatchNorm2d(), "c2", "b2", name="bn2")
    net.add(lw.Eltwise("sum"), ["b2", "x"], "add", name="add")
    net.add(lw.ReLU(), "add", "out", name="relu")
    return net


_STEPS = {False: (["conv1+bn1+relu1", "conv2+bn2+add+relu"], ["ConvBatchNorm", "ConvBatchNorm"]),
          True: (["bn1+relu1", "conv1", "sum1", "bn2+add+relu", "conv2"], ["BatchNormReLU", "BatchNormAddReLU"])}


def _perturb(net, rng):
    for name, p in net.named_params().items():
        if p.data.ndim == 1:
            p.data[...] = (1.0 if name.endswith("weight") else 0.0) + 0.3 * rng.standard_normal(p.shape)
    for name, b in net.named_buffers().items():
        if name.endswith("running_mean"):
            b[...] = 0.2 * rng.standard_normal(b.shape)
        elif name.endswith("running_var"):
            b[...] = 0.5 + rng.uniform(0, 1, b.shape)


@pytest.mark.parametrize("c,pre", [(4, False), (8, False), (8, True)])   # 4 channels: cfim2col convs; 8: cftaps
@pytest.mark.parametrize("mode", ["train", "eval_grad", "eval"])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 3e-5)])
def test_fused_resnet_block_equals_unfused(rng, backend, mode, dtype, rtol, c, pre):
    x = rng.standard_normal((3, c, 5, 6)).astype(dtype)
    dy = rng.standard_normal((3, c, 5, 6)).astype(dtype)
    ref, fused = _block(False, c, pre), _block(True, c, pre)
    for n in (ref, fused):
        n.setup(x.shape, dtype=dtype)
    _perturb(ref, rng)
    fused.load_state_dict(ref.state_dict())
    res = {}
    for key, net in (("ref", ref), ("fused", fused)):
        if mode == "train":
            net.train()
        else:
            net.eval(grad=mode == "eval_grad")
        outs = []
        for _ in range(2):     # the second pass sees the running statistics the first one moved
            net.zero_grad()
            y = net.forward(x).copy()
            dx = net.backward(dy).copy() if mode != "eval" else None
            outs.append((y, dx, {k: p.grad.copy() for k, p in net.named_params().items()}))
        res[key] = outs, {k: np.array(b, np.float64) for k, b in net.named_buffers().items()}
    names, kinds = _STEPS[pre]
    assert [s.name for s in fused.steps] == names
    assert [type(s.layer).__name__ for s in fused.steps if s.fused] == kinds
    assert all(not s.fused for s in ref.steps)
    assert list(fused.state_dict()) == list(ref.state_dict())
    for (y0, dx0, g0), (y1, dx1, g1) in zip(res["ref"][0], res["fused"][0]):
        np.testing.assert_allclose(y1, y0, rtol=rtol, atol=rtol)
        if mode == "eval":
            continue
        np.testing.assert_allclose(dx1, dx0, rtol=rtol, atol=rtol * 10)
        for k in g0:
            np.testing.assert_allclose(g1[k], g0[k], rtol=rtol * 10, atol=rtol * 10, err_msg=k)
    for k, b in res["ref"][1].items():
        np.testing.assert_allclose(res["fused"][1][k], b, rtol=rtol, atol=rtol, err_msg=k)


def _step_outputs(net, x):
    """{step path: its first output} of one forward of ``net`` (through the Net's hooks)."""
    seen = {}

    class Grab(NetHook):
        def after_forward(self, path, st, ys, leaf):
            seen[path] = ys[0]
    with net.hooks(Grab()):
        net.forward(x)
    return seen


def test_fused_output_is_written_into_the_next_convs_grid(rng, backend):
    """conv1+bn1+relu1 writes its output into the input grid of conv2 (which reads it with no
    copy); the gaps of that grid are checked, so a grid with a non-zero gap is copied instead."""
    from layerwise.functional import conv as fconv
    net = _block(True, 8)
    x = rng.standard_normal((2, 8, 5, 6)).astype(np.float32)
    net.setup(x.shape)
    step = net.steps[0]
    assert step.name == "conv1+bn1+relu1" and step.layer.out_conv is net.steps[1].nodes[0].layer
    seen = _step_outputs(net, x)
    y1 = seen["conv1+bn1+relu1"]
    Xg = net.steps[1].layer.cache["conv"].saved["Xg"]
    assert not y1.flags.c_contiguous and np.shares_memory(y1, Xg)
    g = fconv.tap_grid(y1.shape, (8, 8, 3, 3), (1, 1), (1, 1))
    G = fconv._grid_of(y1, g)
    assert G is not None and G.shape == Xg.shape and fconv._data_ptr(G) == fconv._data_ptr(Xg)
    Xg[0, 0] = 1.0                                          # a gap that is not zero: not a grid
    assert fconv._grid_of(y1, g) is None
    np.testing.assert_array_equal(fconv._tap_input(y1, g)[:, g.lead:], Xg[:, g.lead:])


@pytest.mark.parametrize("use_blas", [True, False])
@pytest.mark.parametrize("c,stride,tail", [(8, 1, "relu"), (8, 1, "add"), (3, 1, "relu"), (8, 2, None)])
def test_conv_batchnorm_gradcheck(rng, backend, use_blas, c, stride, tail):
    """float64 gradcheck through ConvBatchNorm: training, and eval with gradients; the taps
    route (8 channels) through BLAS and through xp.matmul, cfim2col (3 channels, stride 2)."""
    from layerwise.functional import blas
    old = blas.set_enabled(use_blas)
    try:
        conv, bn = lw.Conv2d(4, 3, stride, padding=1), lw.BatchNorm2d()
        xs = (2, c, 5, 4)
        out = bn.setup(conv.setup(xs, dtype=np.float64), dtype=np.float64)
        f = lw.ConvBatchNorm(conv, bn, None if tail is None else lw.ReLU(),
                             lw.Eltwise("sum") if tail == "add" else None)
        bn.weight.data[...] = [0.7, -1.3, 1.1, 0.4]
        inputs = [rng.standard_normal(xs)] + ([rng.standard_normal(out)] if tail == "add" else [])
        report = gradcheck(f, *inputs)
        assert len(report.entries) == len(inputs) + 4        # inputs, conv weight and bias, bn weight and bias
        bn.buffer("running_var")[...] = [0.5, 2.0, 1.5, 0.8]
        bn.buffer("running_mean")[...] = [0.1, -0.2, 0.3, 0.0]
        f.eval(grad=True)
        gradcheck(f, *inputs)
    finally:
        blas.set_enabled(old)


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


@pytest.mark.parametrize("residual", [False, True])
def test_forward_into_a_fresh_grid_zeroes_its_gaps_in_the_same_pass(rng, backend, residual):
    """At inference a fused layer's output grid is new each call, its gaps unset: the writer
    (``bn_act.forward_into_grid``) puts y in the interior and zeros everywhere else, lead and
    tail columns included, whatever the memory held (NaN here)."""
    from layerwise.functional import conv as fconv
    C, N, H, W = 3, 4, 5, 6
    g = fconv.tap_grid((N, C, H, W), (C, C, 3, 3), (1, 1), (1, 1))
    G = np.full((C, g.Ng), np.nan, np.float32)
    x = rng.standard_normal((C, N, H, W)).astype(np.float32)
    r = rng.standard_normal((N, C, H, W)).astype(np.float32).transpose(1, 0, 2, 3) if residual else None
    s, t = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    y = bn_act.forward_into_grid(x, s, t, r, True, bn_act.Grid(G, g.lead, g.Hg, g.Wg))
    ref = np.maximum(x * s[:, None, None, None] + t[:, None, None, None] + (0 if r is None else r), 0)
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)
    assert np.shares_memory(y, G)
    rest = G.copy()
    rest[:, g.lead:g.lead + N * g.Hg * g.Wg].reshape(C, N, g.Hg, g.Wg)[:, :, :H, :W] = 0
    assert (rest == 0).all()                       # every gap, lead and tail column written: zero
    assert fconv._grid_of(y.transpose(1, 0, 2, 3), g) is not None   # a grid a convolution reads in place
    with pytest.raises(ValueError, match="do not fit the grid"):
        bn_act.forward_into_grid(np.zeros((C, N, H + 2, W), np.float32), s, t, None, True,
                                 bn_act.Grid(G, g.lead, g.Hg, g.Wg))


@pytest.mark.parametrize("c,hw", [(8, (5, 6)), (16, (8, 8))])      # cftaps; Winograd (with Numba)
def test_inference_output_lands_in_the_next_convs_grid_in_place(rng, backend, c, hw):
    """In eval mode (no workspace) conv1+bn1+relu1 writes its output into a new grid, gaps
    zeroed as it writes: conv2 reads it in place (``_grid_of`` finds the grid), and the block
    computes what the unfused one does."""
    from layerwise.functional import conv as fconv
    ref, net = _block(False, c), _block(True, c)
    x = rng.standard_normal((2, c, *hw)).astype(np.float32)
    for n in (ref, net):
        n.setup(x.shape)
    _perturb(ref, rng)
    net.load_state_dict(ref.state_dict())
    ref.eval()
    net.eval()
    seen = _step_outputs(net, x)
    y1 = seen["conv1+bn1+relu1"]
    g = fconv.tap_grid(y1.shape, (c, c, 3, 3), (1, 1), (1, 1))
    assert fconv._grid_of(y1, g) is not None
    np.testing.assert_allclose(seen["conv2+bn2+add+relu"], ref.forward(x), rtol=3e-5, atol=3e-5)
    held = y1.copy()
    for _ in range(2):
        net.forward(rng.standard_normal(x.shape).astype(np.float32))
    np.testing.assert_array_equal(y1, held)   # a grid someone still reads is never handed out again
    del seen, y1
    net.forward(x)
    kept = net.workspace.nbytes
    for _ in range(3):
        net.forward(rng.standard_normal(x.shape).astype(np.float32))
    assert net.workspace.nbytes == kept     # recycled, not grown


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("gap", [0.5, np.inf, np.nan])
def test_bn_act_sums_on_gapped_grids_read_by_planes(rng, residual, gap):
    """Maps that are the interiors of grids (rows shorter than their stride; what a conv's output
    and a gradient grid are) take the plane kernels: their statistics and backward sums equal
    the NumPy reference's on the same values, whatever the gap columns hold (an inf or NaN
    there sends them back to the row kernels)."""
    if cnhw._nb is None:
        pytest.skip("numba is not installed: only the NumPy kernels exist")
    C, N, H, W = 3, 4, 5, 6

    def grid():
        g = np.full((C, N, H + 1, W + 2), gap, np.float32)
        g[:, :, :H, :W] = rng.standard_normal((C, N, H, W))
        return g[:, :, :H, :W]
    x, dy = grid(), grid()
    r = grid() if residual else None
    assert bn_act._plane(dy, x, r) is not None and bn_act._plane(x, np.ascontiguousarray(x)) is None
    s, t = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    outs = {}
    for b in ("numpy", "numba"):
        old = cnhw.set_backend(b)
        try:
            mean, var, r1, r2 = np.empty(C), np.empty(C), np.empty(C), np.empty(C)
            bn_act.stats(x, mean, var)
            bn_act.backward_sums(dy, x, s, t, r, True, r1, r2)
            outs[b] = (mean, var, r1, r2)
        finally:
            cnhw.set_backend(old)
    for u, v in zip(outs["numpy"], outs["numba"]):
        assert np.isfinite(v).all()
        np.testing.assert_allclose(v, u, rtol=1e-5, atol=1e-5)


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

    def spy(dy, ctx, need_dx=True, need_dW=True, **kw):
        calls.append((need_dx, need_dW))
        return real(dy, ctx, need_dx, need_dW, **kw)

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


def _two_blocks(fuse, c=8):
    """Two ResNet blocks, each a nested Net (as models.resnet builds them), and a head."""
    top = Net(inputs="x", fuse=fuse)
    top.add(lw.Conv2d(c, 3, padding=1, bias=False), "x", "c0", name="conv0")
    top.add(lw.BatchNorm2d(), "c0", "b0", name="bn0")
    top.add(lw.ReLU(), "b0", "r0", name="relu0")
    top.add(_block(fuse, c), "r0", "y1", name="block1")
    top.add(_block(fuse, c), "y1", "y2", name="block2")
    top.add(lw.GlobalAvgPool2d(), "y2", "p", name="pool")
    return top


def test_block_output_is_written_into_the_next_blocks_conv_grid(rng, backend):
    """The Net links producers to the convolution that reads their output across nested Nets
    (Layer.input_conv / set_output_conv): block1's last fused layer writes into block2's conv1
    grid, the stem into block1's; the top Net's output is linked to nothing."""
    net = _two_blocks(True)
    x = rng.standard_normal((2, 8, 5, 6)).astype(np.float32)
    net.setup(x.shape)
    b1, b2 = net["block1"], net["block2"]
    assert net.input_conv(0) is net["conv0"]
    assert b2.input_conv(0) is b2["conv1"]
    assert net.steps[0].layer.out_conv is b1["conv1"]
    assert b1.steps[-1].layer.out_conv is b2["conv1"]
    assert b2.steps[-1].layer.out_conv is None
    seen = _step_outputs(net, x)
    Xg = b2.steps[0].layer.cache["conv"].saved["Xg"]
    assert np.shares_memory(seen["block1"], Xg)
    # every Net of the tree shares one workspace, which eval() frees
    assert b1.workspace is net.workspace and b2.steps[0].layer.workspace is net.workspace
    assert len(net.workspace) > 0
    net.eval()
    assert len(net.workspace) == 0 and net.workspace.nbytes == 0   # the training scratch is gone
    y = net.forward(x)
    kept = net.workspace.nbytes
    for _ in range(2):
        y = net.forward(x)                  # inference reuses what it keeps: grids nobody reads any more
    assert net.workspace.nbytes == kept and np.isfinite(y).all()


@pytest.mark.parametrize("c,shape", [(8, (3, 8, 5, 6)), (16, (2, 16, 8, 8))])
def test_grids_are_reused_across_steps_and_give_the_unfused_numbers(c, shape, rng, backend):
    """Training steps reuse the same input and gradient grids (their zero gaps written once),
    and the numbers of every step equal the unfused Net's: forward, input and param grads.
    At 16 channels on 8x8 maps the convolutions run Winograd (with Numba), whose chunk buffers
    and forward output the fused layers take from the workspace: the same ones every step."""
    ref, fused = _two_blocks(False, c), _two_blocks(True, c)
    for n in (ref, fused):
        n.setup(shape, dtype=np.float64)
    _perturb(ref, rng)
    fused.load_state_dict(ref.state_dict())
    ptrs = []
    for _ in range(3):
        x = rng.standard_normal(shape)
        dy = rng.standard_normal((shape[0], c, 1, 1))
        outs = []
        for n in (ref, fused):
            n.zero_grad()
            y = n.forward(x)
            dx = n.backward(dy)
            outs.append((y, dx, {k: p.grad.copy() for k, p in n.named_params().items()}))
        np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=1e-10, atol=1e-10)
        for k, g in outs[0][2].items():
            np.testing.assert_allclose(outs[1][2][k], g, rtol=1e-10, atol=1e-10, err_msg=k)
        ptrs.append({k: b.__array_interface__["data"][0] for k, b in fused.workspace._bufs.items()})
    assert ptrs[1] == ptrs[2] and any("input_grid" in k[0] for k in ptrs[2]) and any("dy_grid" in k[0] for k in ptrs[2])
    if c == 16 and backend == "numba":
        # Winograd ran (its chunk buffers are there) and the fused layers' outputs y are kept
        assert any(k[0] == "winograd.V0" for k in ptrs[2]) and any(k[0].endswith(".y") for k in ptrs[2])
