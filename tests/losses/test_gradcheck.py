"""Float64 finite-difference gradchecks of every loss (inputs kept away from kinks)."""
import numpy as np
import pytest

import layerwise as lw
from layerwise.testing import gradcheck


def away(x, kinks, gap=0.05):
    """Move entries of x that lie within gap of a kink value to kink + gap (or - gap)."""
    x = x.copy()
    for k in np.atleast_1d(kinks):
        near = np.abs(x - k) < gap
        x[near] = k + np.where(x[near] >= k, gap, -gap) * 2
    return x


def pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1, 1)


def cases(rng):
    z4, y4 = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    p, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    d = away(p - t, [0.0, 0.7, -0.7, 1.3, -1.3])
    yb = pm1(rng, (6,))
    zb = rng.standard_normal(6) * 2
    zb_h = away(yb * zb, [1.0, 0.0]) * yb                  # margins away from the hinge kinks
    yl = np.array([1, 2, 0, -100, 3])
    return {
        "euclidean": (lw.EuclideanLoss(), [p, t]),
        "mse": (lw.MSELoss(reduction="sum"), [p, t]),
        "l1": (lw.L1Loss(), [t + d, t]),
        "smooth_l1": (lw.SmoothL1Loss(beta=0.7), [t + d, t]),
        "huber": (lw.HuberLoss(delta=1.3), [t + d, t]),
        "softmax_ce": (lw.SoftmaxCrossEntropyLoss(weight=[1.0, 2.0, 0.5, 1.5], label_smoothing=0.1), [z4, yl]),
        "softmax_ce_spatial": (lw.SoftmaxCrossEntropyLoss(reduction="valid"),
                               [rng.standard_normal((2, 3, 2, 2)), rng.integers(0, 3, (2, 2, 2))]),
        "softmax_ce_soft": (lw.SoftmaxCrossEntropyLoss(), [z4, rng.dirichlet(np.ones(4), 5)]),
        "ce_probs": (lw.CrossEntropyLoss(), [rng.dirichlet(np.ones(4), 5) * 0.9 + 0.02, y4]),
        "sigmoid_ce": (lw.SigmoidCrossEntropyLoss(pos_weight=2.0), [z4, rng.random((5, 4))]),
        "bce_with_logits": (lw.BCEWithLogitsLoss(), [z4, rng.random((5, 4))]),
        "kl_div": (lw.KLDivLoss(reduction="batchmean"), [np.log(rng.dirichlet(np.ones(4), 3)), rng.dirichlet(np.ones(4), 3)]),
        "hinge_binary": (lw.HingeLoss(mode="binary", norm=2), [zb_h, yb]),
        "perceptron": (lw.PerceptronLoss(), [zb_h, yb]),
        "exponential": (lw.ExponentialLoss(), [zb, yb]),
        "logistic": (lw.LogisticLoss(), [zb, yb]),
        "hinge_embedding": (lw.HingeEmbeddingLoss(margin=1.0), [away(np.abs(zb), [1.0]), yb]),
        "contrastive": (lw.ContrastiveLoss(margin=1.0), [p, p + rng.standard_normal((3, 4)) * 0.2, np.array([1, 0, 0])]),
        "contrastive_legacy": (lw.ContrastiveLoss(margin=1.0, legacy_version=True),
                               [p, p + rng.standard_normal((3, 4)) * 0.2, np.array([0, 1, 0])]),
        "triplet": (lw.TripletLoss(margin=1.0), [p, p + 0.1 * t, p + 0.5 * rng.standard_normal((3, 4))]),
        "center_param": (lw.CenterLoss(4, alpha=None), [z4, y4]),
    }


NAMES = list(cases(np.random.default_rng(0)))


@pytest.mark.parametrize("name", NAMES)
def test_loss_gradcheck_float64(name):
    rng = np.random.default_rng(1)
    layer, inputs = cases(rng)[name]
    layer.loss_weight = 0.7
    report = gradcheck(layer, *inputs)
    assert report.ok and report.entries


@pytest.mark.parametrize("mode", ["ovr", "weston_watkins", "crammer_singer"])
@pytest.mark.parametrize("norm", [1, 2])
def test_multiclass_hinge_gradcheck(mode, norm):
    rng = np.random.default_rng(2)
    # scores on a grid of spacing 0.3 offset by 0.1: no margin term sits on its kink at 0
    z = rng.integers(-5, 6, (5, 4)) * 0.3 + 0.1 * np.arange(4)
    gradcheck(lw.HingeLoss(mode=mode, norm=norm, margin=1.05), z, rng.integers(0, 4, 5))


def test_center_loss_gradcheck_alpha_mode_in_eval_grad():
    # eval(grad=True): backward works but the alpha rule does not move the centres
    rng = np.random.default_rng(3)
    layer = lw.CenterLoss(3, alpha=0.5).eval(grad=True)
    gradcheck(layer, rng.standard_normal((4, 2)), np.array([0, 2, 2, 1]))


def test_multitask_gradcheck():
    rng = np.random.default_rng(4)
    layer = lw.MultiTaskLoss([lw.SoftmaxCrossEntropyLoss(), lw.MSELoss(loss_weight=0.3)])
    gradcheck(layer, rng.standard_normal((3, 4)), np.array([0, 3, 1]), rng.standard_normal((3, 2)),
              rng.standard_normal((3, 2)))


def test_fast_rcnn_gradcheck():
    rng = np.random.default_rng(5)
    v = rng.standard_normal((4, 4))
    bbox = rng.standard_normal((4, 12))
    u = np.array([0, 1, 2, 2])
    sel = bbox.reshape(4, 3, 4)[np.arange(4), u]
    bbox.reshape(4, 3, 4)[np.arange(4), u] = v + away(sel - v, [1.0, -1.0])
    gradcheck(lw.FastRCNNLoss(lam=1.5), rng.standard_normal((4, 3)), u, bbox, v)


# Each loss module's loss classes, so a new loss without a gradcheck fails here.
LOSS_MODULES = ["classification", "regression", "margin", "embedding", "multitask"]
GRADCHECKED_ELSEWHERE = {"HingeLoss", "MultiTaskLoss", "CenterLoss", "FastRCNNLoss"}  # tests below/above


@pytest.mark.parametrize("module", LOSS_MODULES)
def test_every_loss_class_is_gradchecked(module):
    import importlib
    import inspect

    from layerwise.core import LossLayer
    from layerwise.losses._base import ElementwiseLoss, Loss

    mod = importlib.import_module(f"layerwise.losses.{module}")
    classes = {n for n, c in inspect.getmembers(mod, inspect.isclass)
               if issubclass(c, LossLayer) and c.__module__ == mod.__name__ and not n.startswith("_")
               and c not in (Loss, ElementwiseLoss)}
    checked = {type(layer).__name__ for layer, _ in cases(np.random.default_rng(0)).values()}
    missing = classes - checked - GRADCHECKED_ELSEWHERE
    assert classes, f"no loss classes found in layerwise.losses.{module}"
    assert not missing, f"losses in {module} with no gradcheck case: {sorted(missing)}"
