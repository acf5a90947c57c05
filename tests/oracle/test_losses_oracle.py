"""Every loss against PyTorch: forward value and input gradients, float32 and float64.

Where PyTorch has no such loss (Caffe's one-vs-all hinge, Crammer-Singer, contrastive,
center loss, perceptron, exponential) the reference is the formula written in torch ops and
differentiated by torch's autograd.
"""
import numpy as np
import pytest

import layerwise as lw
from layerwise.testing.oracle import assert_close, require_torch, to_torch

DTYPES = [np.float32, np.float64]


def run_oracle(layer, torch_fn, inputs, grad, dtype, loss_weight=1.0):
    """Compare layer.forward/backward with torch_fn + autograd.

    inputs: list of arrays; grad: list of bools (which inputs are differentiable floats).
    """
    torch = require_torch()
    layer.loss_weight = loss_weight
    xs = [x.astype(dtype) if x.dtype.kind == "f" else x for x in inputs]
    val = layer.forward(*xs)
    assert val.shape == () and val.dtype == dtype
    gs = layer.backward()
    gs = gs if isinstance(gs, tuple) else (gs,)
    ts = [to_torch(x, requires_grad=g) for x, g in zip(xs, grad)]
    tv = torch_fn(*ts)
    (tv * loss_weight).backward()
    assert_close(val, tv, what=f"{layer!r} forward")
    for i, (g, t, need) in enumerate(zip(gs, ts, grad)):
        if need:
            assert g is not None and g.dtype == dtype
            assert_close(g, t.grad, what=f"{layer!r} grad of input {i}")
        else:
            assert g is None


# ------------------------------------------------------------------ softmax cross-entropy
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_ce_matches_torch_hard_labels(rng, dtype):
    torch = require_torch()
    z, y = rng.standard_normal((6, 5)) * 3, rng.integers(0, 5, 6)
    run_oracle(lw.SoftmaxCrossEntropyLoss(), lambda z, y: torch.nn.functional.cross_entropy(z, y),
               [z, y], [True, False], dtype, loss_weight=0.7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_softmax_ce_matches_torch_ignore_index_and_weights_spatial(rng, dtype, reduction):
    torch = require_torch()
    z = rng.standard_normal((3, 4, 2, 3)) * 2
    y = rng.integers(0, 4, (3, 2, 3))
    y[0, 0, 0] = y[2, 1, 2] = -1
    w = rng.uniform(0.2, 2.0, 4)
    layer = lw.SoftmaxCrossEntropyLoss(ignore_index=-1, weight=w, reduction=reduction)
    run_oracle(layer, lambda z, y: torch.nn.functional.cross_entropy(
        z, y, weight=torch.tensor(w, dtype=z.dtype), ignore_index=-1, reduction=reduction),
        [z, y], [True, False], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_ce_matches_torch_label_smoothing_with_weights(rng, dtype):
    torch = require_torch()
    z, y = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    y[1] = -100
    w = rng.uniform(0.5, 1.5, 4)
    layer = lw.SoftmaxCrossEntropyLoss(weight=w, label_smoothing=0.2)
    run_oracle(layer, lambda z, y: torch.nn.functional.cross_entropy(
        z, y, weight=torch.tensor(w, dtype=z.dtype), label_smoothing=0.2), [z, y], [True, False], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_ce_matches_torch_soft_targets(rng, dtype):
    torch = require_torch()
    z = rng.standard_normal((4, 3, 2))
    t = rng.dirichlet(np.ones(3), size=(4, 2)).transpose(0, 2, 1).copy()   # (N, C, d)
    w = np.array([0.5, 1.0, 2.0])
    layer = lw.SoftmaxCrossEntropyLoss(weight=w, label_smoothing=0.1)
    run_oracle(layer, lambda z, t: torch.nn.functional.cross_entropy(
        z, t, weight=torch.tensor(w, dtype=z.dtype), label_smoothing=0.1), [z, t], [True, False], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_ce_matches_torch_at_extreme_logits(rng, dtype):
    torch = require_torch()
    z = np.where(rng.random((4, 5)) < 0.5, -1e4, 1e4)
    y = np.array([0, 1, 2, 3])
    run_oracle(lw.SoftmaxCrossEntropyLoss(), lambda z, y: torch.nn.functional.cross_entropy(z, y),
               [z, y], [True, False], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_on_probabilities_matches_torch_nll_of_log(rng, dtype):
    torch = require_torch()
    p = rng.dirichlet(np.ones(4), size=6)
    y = rng.integers(0, 4, 6)
    y[2] = -100
    w = rng.uniform(0.5, 2, 4)
    layer = lw.CrossEntropyLoss(weight=w)
    run_oracle(layer, lambda p, y: torch.nn.functional.nll_loss(
        torch.log(p), y, weight=torch.tensor(w, dtype=p.dtype)), [p, y], [True, False], dtype)


# ------------------------------------------------------------------ sigmoid / KL
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pos_weight", [None, [0.5, 2.0, 3.0]])
def test_sigmoid_ce_matches_torch(rng, dtype, pos_weight):
    torch = require_torch()
    z = rng.standard_normal((5, 3)) * 4
    z[0, 0], z[1, 1] = 1e4, -1e4
    t = rng.random((5, 3))
    kw = {} if pos_weight is None else {"pos_weight": torch.tensor(pos_weight, dtype=torch.float64 if dtype == np.float64 else torch.float32)}
    # PyTorch's name, PyTorch's default (the mean over elements); Caffe's name, Caffe's (the sum over N)
    run_oracle(lw.BCEWithLogitsLoss(pos_weight=pos_weight),
               lambda z, t: torch.nn.functional.binary_cross_entropy_with_logits(z, t, **kw),
               [z, t], [True, False], dtype)
    run_oracle(lw.SigmoidCrossEntropyLoss(pos_weight=pos_weight),
               lambda z, t: torch.nn.functional.binary_cross_entropy_with_logits(z, t, reduction="sum", **kw) / 5,
               [z, t], [True, False], dtype)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction,log_target", [("mean", False), ("batchmean", False), ("sum", True)])
def test_kl_div_matches_torch(rng, dtype, reduction, log_target):
    torch = require_torch()
    x = np.log(rng.dirichlet(np.ones(4), size=3))
    t = rng.dirichlet(np.ones(4), size=3)
    t[0, 1] = 0.0
    if log_target:
        t = np.log(rng.dirichlet(np.ones(4), size=3))
    run_oracle(lw.KLDivLoss(reduction=reduction, log_target=log_target),
               lambda x, t: torch.nn.functional.kl_div(x, t, reduction=reduction, log_target=log_target),
               [x, t], [True, False], dtype)


# ------------------------------------------------------------------ regression
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["mse", "l1", "smooth_l1", "huber", "euclidean"])
def test_regression_losses_match_torch(rng, dtype, name):
    torch = require_torch()
    F = torch.nn.functional
    p, t = rng.standard_normal((4, 3, 2)) * 2, rng.standard_normal((4, 3, 2))
    layer, fn = {
        "mse": (lw.MSELoss(), F.mse_loss),
        "l1": (lw.L1Loss(reduction="sum"), lambda a, b: F.l1_loss(a, b, reduction="sum")),
        "smooth_l1": (lw.SmoothL1Loss(beta=0.5), lambda a, b: F.smooth_l1_loss(a, b, beta=0.5)),
        "huber": (lw.HuberLoss(delta=1.5), lambda a, b: F.huber_loss(a, b, delta=1.5)),
        # Caffe's 1/(2N) sum of squares
        "euclidean": (lw.EuclideanLoss(), lambda a, b: 0.5 * F.mse_loss(a, b, reduction="sum") / a.shape[0]),
    }[name]
    run_oracle(layer, fn, [p, t], [True, False], dtype, loss_weight=2.0)


# ------------------------------------------------------------------ margin losses
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1, 2])
def test_weston_watkins_hinge_matches_torch_multi_margin(rng, dtype, p):
    torch = require_torch()
    z, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    layer = lw.HingeLoss(mode="weston_watkins", norm=p, margin=0.8, reduction="full")
    run_oracle(layer, lambda z, y: torch.nn.functional.multi_margin_loss(z, y, p=p, margin=0.8),
               [z, y], [True, False], dtype)


def _torch_ovr_hinge(torch, p):
    def fn(z, y):
        sign = torch.ones_like(z)
        sign[torch.arange(z.shape[0]), y] = -1
        return (torch.clamp(1 + sign * z, min=0) ** p).sum() / z.shape[0]
    return fn


def _torch_crammer_singer(torch, p):
    def fn(z, y):
        N = z.shape[0]
        zy = z[torch.arange(N), y]
        other = z.clone()
        other[torch.arange(N), y] = -torch.inf
        return (torch.clamp(1 + other.max(dim=1).values - zy, min=0) ** p).mean()
    return fn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("mode", ["ovr", "crammer_singer"])
def test_multiclass_hinge_matches_torch_formula(rng, dtype, p, mode):
    torch = require_torch()
    z, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    ref = _torch_ovr_hinge(torch, p) if mode == "ovr" else _torch_crammer_singer(torch, p)
    run_oracle(lw.HingeLoss(mode=mode, norm=p), ref, [z, y], [True, False], dtype)


def _pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["hinge", "hinge2", "perceptron", "exponential", "logistic", "hinge_embedding"])
def test_binary_margin_losses_match_torch(rng, dtype, name):
    torch = require_torch()
    F = torch.nn.functional
    z, y = rng.standard_normal((5, 2)) * 2, _pm1(rng, (5, 2))
    layer, fn = {
        "hinge": (lw.HingeLoss(mode="binary"), lambda z, y: torch.clamp(1 - y * z, min=0).mean()),
        "hinge2": (lw.HingeLoss(mode="binary", norm=2), lambda z, y: (torch.clamp(1 - y * z, min=0) ** 2).mean()),
        "perceptron": (lw.PerceptronLoss(), lambda z, y: torch.relu(-y * z).mean()),
        "exponential": (lw.ExponentialLoss(), lambda z, y: torch.exp(-y * z).mean()),
        "logistic": (lw.LogisticLoss(), lambda z, y: F.soft_margin_loss(z, y.to(z.dtype))),
        "hinge_embedding": (lw.HingeEmbeddingLoss(margin=1.5),
                            lambda z, y: F.hinge_embedding_loss(z, y.to(z.dtype), margin=1.5)),
    }[name]
    run_oracle(layer, fn, [z, y], [True, False], dtype)


# ------------------------------------------------------------------ embedding losses
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_matches_torch_formula(rng, dtype, legacy):
    torch = require_torch()
    a, b = rng.standard_normal((6, 3)) * 0.5, rng.standard_normal((6, 3)) * 0.5
    y = np.array([1, 0, 1, 0, 0, 1])
    m = 1.5

    def ref(a, b, y):
        d2 = ((a - b) ** 2).sum(1)
        yf = y.to(a.dtype)
        far = torch.clamp(m - d2, min=0) if legacy else torch.clamp(m - torch.sqrt(d2), min=0) ** 2
        return (yf * d2 + (1 - yf) * far).sum() / (2 * a.shape[0])
    run_oracle(lw.ContrastiveLoss(margin=m, legacy_version=legacy), ref, [a, b, y], [True, True, False], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_triplet_matches_torch(rng, dtype):
    torch = require_torch()
    a, p, n = (rng.standard_normal((7, 4)) for _ in range(3))
    run_oracle(lw.TripletLoss(margin=0.5),
               lambda a, p, n: torch.nn.functional.triplet_margin_loss(a, p, n, margin=0.5),
               [a, p, n], [True, True, True], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_center_loss_trained_centres_match_torch(rng, dtype):
    torch = require_torch()
    x, y = rng.standard_normal((6, 3)), np.array([0, 2, 2, 1, 0, 2])
    layer = lw.CenterLoss(4, alpha=None)
    layer.setup(x.shape, y.shape, dtype=dtype)
    c0 = rng.standard_normal((4, 3)).astype(dtype)
    layer.centers[...] = c0
    tc = to_torch(c0, requires_grad=True)
    run_oracle(layer, lambda x, y: 0.5 * ((x - tc[y]) ** 2).sum() / x.shape[0], [x, y], [True, False], dtype)
    assert_close(layer.named_params()["centers"].grad, tc.grad, what="centre grad")


# ------------------------------------------------------------------ multi-task
@pytest.mark.parametrize("dtype", DTYPES)
def test_multitask_deepid2_matches_torch_sum(rng, dtype):
    torch = require_torch()
    F = torch.nn.functional
    z, lab = rng.standard_normal((4, 5)), rng.integers(0, 5, 4)
    f1, f2, same = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), np.array([1, 0, 0, 1])
    layer = lw.MultiTaskLoss({"ident": lw.SoftmaxCrossEntropyLoss(),
                              "verif": lw.ContrastiveLoss(margin=2.0, loss_weight=0.3)})

    def ref(z, lab, f1, f2, same):
        d2 = ((f1 - f2) ** 2).sum(1)
        s = same.to(z.dtype)
        verif = (s * d2 + (1 - s) * torch.clamp(2.0 - torch.sqrt(d2), min=0) ** 2).sum() / (2 * 4)
        return F.cross_entropy(z, lab) + 0.3 * verif
    run_oracle(layer, ref, [z, lab, f1, f2, same], [True, False, True, True, False], dtype, loss_weight=0.5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per_class", [True, False])
def test_fast_rcnn_loss_matches_torch_formula(rng, dtype, per_class):
    torch = require_torch()
    F = torch.nn.functional
    N, C = 6, 3
    score, u = rng.standard_normal((N, C)), np.array([0, 1, 2, 0, 2, 1])
    bbox = rng.standard_normal((N, 4 * C if per_class else 4))
    v = rng.standard_normal((N, 4))
    layer = lw.FastRCNNLoss(lam=2.0)

    def ref(score, u, bbox, v):
        box = bbox.reshape(N, -1, 4)[torch.arange(N), u] if per_class else bbox
        fg = (u >= 1).to(score.dtype)[:, None]
        loc = (F.smooth_l1_loss(box, v, reduction="none") * fg).sum() / N
        return F.cross_entropy(score, u) + 2.0 * loc
    run_oracle(layer, ref, [score, u, bbox, v], [True, False, True, False], dtype)
