"""The fused (channels-first) dense block and transition against the reference layers and PyTorch."""
import numpy as np
import pytest

from layerwise.core import Net
from layerwise.functional import cnhw
from layerwise.functional.workspace import Workspace
from layerwise.models import DenseBlock, DenseNetConfig, build_densenet, densenet_bc
from layerwise.models.dense_block import Transition
from layerwise.models.dense_fast import FusedDenseBlock, FusedTransition
from layerwise.testing import gradcheck

def _perturb(block, rng):
    """Non-trivial BN affine params and running statistics, so every term of the math matters."""
    for name, p in block.named_params().items():
        if len(p.shape) == 1:
            base = 1.0 if name.endswith("weight") else 0.0
            p.data[...] = base + 0.3 * rng.standard_normal(p.shape)
    for name, b in block.named_buffers().items():
        if name.endswith("running_mean"):
            b[...] = 0.2 * rng.standard_normal(b.shape)
        elif name.endswith("running_var"):
            b[...] = 0.5 + rng.random(b.shape)


def _pair(num_layers, k, bn_size, x, dtype, rng):
    ref = DenseBlock(num_layers, k, bn_size=bn_size)
    ref.setup(x.shape, dtype=dtype)
    _perturb(ref, rng)
    inner = DenseBlock(num_layers, k, bn_size=bn_size)
    inner.setup(x.shape, dtype=dtype)
    inner.load_state_dict(ref.state_dict())
    return ref, FusedDenseBlock(inner)


def _run(block, x, dy, mode):
    {"train": block.train, "eval_grad": lambda: block.eval(grad=True), "eval": block.eval}[mode]()
    block.zero_grad()
    y = block.forward(x).copy()
    dx = block.backward(dy).copy() if mode != "eval" else None
    grads = {k: p.grad.copy() for k, p in block.named_params().items()}
    bufs = {k: np.array(b, dtype=np.float64) for k, b in block.named_buffers().items()}
    return y, dx, grads, bufs


def _close(a, b, rtol, what):
    scale = max(float(np.max(np.abs(a))), 1e-30)
    err = float(np.max(np.abs(a - b))) / scale
    assert err <= rtol, f"{what}: max |diff| / max |ref| = {err:.3e} > {rtol:.0e}"


@pytest.mark.parametrize("mode", ["train", "eval_grad", "eval"])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_fast_block_matches_reference(rng, backend, mode, dtype, rtol):
    x = (rng.standard_normal((3, 5, 6, 7)) + 0.5).astype(dtype)
    ref, fast = _pair(4, 3, 2, x, dtype, rng)
    dy = rng.standard_normal((3, 5 + 4 * 3, 6, 7)).astype(dtype)
    for step in range(2):   # the second step sees the running statistics the first one updated
        y0, dx0, g0, b0 = _run(ref, x, dy, mode)
        y1, dx1, g1, b1 = _run(fast, x, dy, mode)
        assert y1.dtype == dtype and y1.shape == y0.shape
        _close(y0, y1, rtol, f"output (step {step})")
        if dx0 is not None:
            _close(dx0, dx1, rtol, "input grad")
        assert g0.keys() == g1.keys() and len(g0) == 4 * 6
        for name in g0:
            if mode == "eval":
                assert not g1[name].any()
            else:
                _close(g0[name], g1[name], rtol, f"grad {name}")
        assert b0.keys() == b1.keys()
        for name in b0:
            np.testing.assert_allclose(b1[name], b0[name], rtol=rtol, atol=rtol, err_msg=name)
    if mode == "train":
        assert int(b1["denselayer1.norm1.num_batches_tracked"]) == 2


def test_fast_block_gradcheck(rng, backend):
    block = DenseBlock(2, 2, bn_size=2)
    block.setup((2, 3, 4, 5), dtype=np.float64)
    _perturb(block, rng)
    report = gradcheck(FusedDenseBlock(block), rng.standard_normal((2, 3, 4, 5)))
    assert len(report.entries) == 1 + 2 * 6   # the input and every param of the block (2 layers x 6) were checked


def test_fast_block_eval_gradcheck(rng, backend):
    block = DenseBlock(2, 2, bn_size=2)
    block.setup((2, 3, 4, 4), dtype=np.float64)
    _perturb(block, rng)
    fused = FusedDenseBlock(block)
    fused.eval(grad=True)
    gradcheck(fused, rng.standard_normal((2, 3, 4, 4)))


def test_numba_and_numpy_kernels_agree(rng):
    if cnhw._nb is None:
        pytest.skip("numba is not installed: only the NumPy kernels exist")
    x = rng.standard_normal((5, 2, 3, 4)).astype(np.float32)
    s, t = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    dA = rng.standard_normal(x.shape).astype(np.float32)
    out = {}
    for be in ("numpy", "numba"):
        old = cnhw.set_backend(be)
        try:
            a = cnhw.bn_relu(x, s, t, np.empty_like(x))
            P = np.zeros((5, 2, 5, 6), np.float32)
            cnhw.bn_relu_pad(x, s, t, P)
            mean, var, r1, r2 = (np.empty(5) for _ in range(4))
            cnhw.row_stats(x, mean, var)
            G = np.ones_like(x)
            cnhw.relu_bwd_sums(dA, a, x, s, G, r1, r2)
            out[be] = (a, P, mean, var, G, r1, r2)
        finally:
            cnhw.set_backend(old)
    for u, v in zip(out["numpy"], out["numba"]):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    assert (out["numpy"][0] == 0).any() and (out["numpy"][0] > 0).any()     # the ReLU is active both ways


def test_fast_path_reuses_buffers_and_refuses_what_it_cannot_run(rng):
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    block = FusedDenseBlock(DenseBlock(3, 2))
    y = block.forward(x)
    assert np.shares_memory(y, block.cache["F"]) and y.transpose(1, 0, 2, 3).flags.c_contiguous   # a CNHW view
    np.testing.assert_array_equal(y[:, :4], x)
    dx = block.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.transpose(1, 0, 2, 3).flags.c_contiguous
    assert not block.cache                              # F and the statistics are released after backward
    scratch = {k: id(v) for k, v in block.workspace._bufs.items()}
    y2 = block.forward(x)
    block.backward(np.ones_like(y))
    assert {k: id(v) for k, v in block.workspace._bufs.items()} == scratch   # scratch reused, not reallocated
    assert not np.shares_memory(y, y2)                 # each forward's output stays valid
    with pytest.raises(ValueError, match="FusedDenseBlock.*without a preceding forward"):
        block.backward(np.ones_like(y))
    with pytest.raises(ValueError, match="bottleneck layers without dropout"):
        FusedDenseBlock(DenseBlock(2, 2, dropout=0.2))
    with pytest.raises(ValueError, match="FusedDenseBlock.*dtype float64.*astype"):
        block.forward(x.astype(np.float64))


def test_fusion_pass_fuses_dense_blocks_and_says_why_not(rng, caplog):
    net = Net(inputs="x")
    net.add(DenseBlock(2, 2), name="ok")
    net.add(DenseBlock(2, 2, dropout=0.2), name="drop")
    net.add(Transition(4), name="tr")
    with caplog.at_level("INFO", logger="layerwise.fusion"):
        net.forward(rng.standard_normal((2, 4, 6, 6)).astype(np.float32))
    kinds = {s.name: type(s.layer).__name__ for s in net.steps}
    assert kinds == {"ok": "FusedDenseBlock", "drop": "DenseBlock", "tr": "FusedTransition"}
    assert any("drop: densenet.dense_block not fused" in line and "dropout" in line for line in net.fusion_report)
    assert "dropout" in caplog.text                    # the reason is logged, not silent
    assert all(s.layer.workspace is net.workspace for s in net.steps if s.fused)   # one workspace per Net
    assert len(net.workspace) > 0
    net.eval()
    assert len(net.workspace) == 0                     # eval frees the training scratch
    odd = Net(inputs="x")
    odd.add(Transition(3), name="tr")
    odd.forward(rng.standard_normal((2, 4, 5, 5)).astype(np.float32))
    assert not odd.steps[0].fused and "odd spatial size" in odd.fusion_report[0]


def test_densenet_bc_defaults_to_fast_and_matches_reference(rng):
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 1])
    nets = {}
    for impl in ("reference", "fast"):
        net = densenet_bc(depth=10, growth_rate=4, num_classes=3, impl=impl)
        net.setup(x.shape)
        nets[impl] = net
    assert densenet_bc(depth=10, growth_rate=4).config.impl == "fast"
    assert nets["fast"].state_dict().keys() == nets["reference"].state_dict().keys()
    outs = {}
    for impl, net in nets.items():
        net.train()
        logits = net.forward(x)
        dx = net.backward(np.eye(3, dtype=np.float32)[y])
        outs[impl] = (logits, dx, {k: p.grad.copy() for k, p in net.named_params().items()})
    _close(outs["reference"][0], outs["fast"][0], 2e-5, "logits")
    _close(outs["reference"][1], outs["fast"][1], 2e-5, "input grad")
    for k in outs["reference"][2]:
        _close(outs["reference"][2][k], outs["fast"][2][k], 2e-4, k)


@pytest.mark.parametrize("train", [True, False])
def test_fast_densenet_bc_matches_torch(rng, train):
    from layerwise.testing.oracle import require_torch

    torch = require_torch()
    from tests.oracle.test_models_oracle import compare, torch_densenet

    cfg = DenseNetConfig(block_config=(2, 3), growth_rate=4, bottleneck=True, bn_size=2, compression=0.5,
                         num_classes=5, impl="fast")
    ours = build_densenet(cfg)
    compare(torch, ours, torch_densenet(torch, cfg, in_ch=2), rng.standard_normal((3, 2, 8, 8)), lambda k: k, train)
    fused = [type(s.layer).__name__ for s in ours["features"].steps if s.fused]
    assert fused == ["FusedDenseBlock", "FusedTransition", "FusedDenseBlock"]


def test_workspace_zeroes_on_new_shape_and_frees():
    ws = Workspace()
    a = ws.get("test-ws", (2, 3), np.float32, zero=True)
    a[...] = 7
    b = ws.get("test-ws", (2, 3), np.float32, zero=True)
    assert (b == 7).all()                              # same shape: contents kept (borders stay zero)
    c = ws.get("test-ws", (3, 2), np.float32, zero=True)
    assert (c == 0).all()
    assert ws.nbytes == 24 and len(Workspace()) == 0   # workspaces are separate objects, no global pool
    ws.clear()
    assert ws.nbytes == 0


def _transition_pair(x, dtype, rng, out=5):
    ref = Transition(out)
    ref.setup(x.shape, dtype=dtype)
    _perturb(ref, rng)
    inner = Transition(out)
    inner.setup(x.shape, dtype=dtype)
    inner.load_state_dict(ref.state_dict())
    return ref, FusedTransition(inner)


@pytest.mark.parametrize("mode", ["train", "eval_grad", "eval"])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_fast_transition_matches_reference(rng, backend, mode, dtype, rtol):
    x = (rng.standard_normal((3, 7, 6, 4)) + 0.3).astype(dtype)
    ref, fast = _transition_pair(x, dtype, rng)
    assert ref.state_dict().keys() == fast.tr.state_dict().keys()
    assert {"norm.weight", "conv.weight", "norm.running_var"} <= set(fast.tr.state_dict())
    dy = rng.standard_normal((3, 5, 3, 2)).astype(dtype)
    for _ in range(2):
        y0, dx0, g0, b0 = _run(ref, x, dy, mode)
        y1, dx1, g1, b1 = _run(fast, x, dy, mode)
        assert y1.shape == (3, 5, 3, 2)
        _close(y0, y1, rtol, "output")
        if dx0 is not None:
            _close(dx0, dx1, rtol, "input grad")
            for name in g0:
                _close(g0[name], g1[name], rtol, f"grad {name}")
        for name in b0:
            np.testing.assert_allclose(b1[name], b0[name], rtol=rtol, atol=rtol, err_msg=name)


def test_fast_transition_gradcheck_and_refusals(rng, backend):
    tr = Transition(3)
    tr.setup((2, 4, 4, 6), dtype=np.float64)
    _perturb(tr, rng)
    gradcheck(FusedTransition(tr), rng.standard_normal((2, 4, 4, 6)))
    with pytest.raises(ValueError, match="even height and width"):
        FusedTransition(Transition(3)).forward(rng.standard_normal((2, 4, 5, 5)).astype(np.float32))
    with pytest.raises(ValueError, match="without dropout"):
        FusedTransition(Transition(3, dropout=0.1))
