"""Behaviour of the loss layers: conventions, bad input, extreme logits, centre updates."""
import numpy as np
import pytest

import layerwise as lw
from layerwise.core import LayerError, build, lookup
from layerwise.losses import accuracy


# ------------------------------------------------------------------ conventions
def test_euclidean_is_caffe_half_sum_over_batch():
    p = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 0.0]])
    t = np.zeros_like(p)
    loss = lw.EuclideanLoss()
    assert float(loss.forward(p, t)) == pytest.approx((1 + 4 + 1 + 9) / (2 * 3))
    np.testing.assert_allclose(loss.backward(), p / 3)
    assert float(lw.MSELoss().forward(p, t)) == pytest.approx(15 / 6)


@pytest.mark.parametrize("reduction,div", [("mean", 3.5), ("valid", 5), ("batch_size", 2), ("full", 6), ("sum", 1)])
def test_softmax_ce_divisors(reduction, div):
    z = np.zeros((2, 2, 3))                                   # every position: loss log 2
    y = np.array([[0, 1, -100], [1, 0, 1]])
    w = [1.0, 0.5]                                            # 'mean' divides by 1 + .5 + .5 + 1 + .5
    loss = lw.SoftmaxCrossEntropyLoss(reduction=reduction, weight=w if reduction == "mean" else None)
    wsum = np.array([1.0, 0.5])[[0, 1, 1, 0, 1]]
    total = (wsum if reduction == "mean" else np.ones(5)).sum() * np.log(2)
    assert float(loss.forward(z, y)) == pytest.approx(total / div)


def test_softmax_ce_all_ignored_gives_zero_without_warning():
    loss = lw.SoftmaxCrossEntropyLoss()
    assert float(loss.forward(np.ones((2, 3)), np.array([-100, -100]))) == 0.0
    assert not loss.backward().any()


def test_registry_names_and_caffe_aliases():
    for alias, cls in [("SoftmaxWithLoss", lw.SoftmaxCrossEntropyLoss), ("cross_entropy", lw.SoftmaxCrossEntropyLoss),
                       ("EuclideanLoss", lw.EuclideanLoss), ("SigmoidCrossEntropyLoss", lw.SigmoidCrossEntropyLoss),
                       ("HingeLoss", lw.HingeLoss), ("ContrastiveLoss", lw.ContrastiveLoss),
                       ("MultinomialLogisticLoss", lw.CrossEntropyLoss), ("CenterLoss", lw.CenterLoss)]:
        assert lookup("loss", alias) is cls
    assert isinstance(build("loss", "SoftmaxCrossEntropyLoss", ignore_index=3), lw.SoftmaxCrossEntropyLoss)


def test_loss_weight_and_upstream_gradient_scale_backward():
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((3, 4)), np.array([0, 1, 2])
    ref = lw.SoftmaxCrossEntropyLoss()
    ref.forward(z, y)
    g = ref.backward()
    layer = lw.SoftmaxCrossEntropyLoss(loss_weight=0.25)
    layer.forward(z, y)
    np.testing.assert_allclose(layer.backward(2.0), 0.5 * g)
    assert layer.cache == {}                                  # freed after backward


def test_float32_in_float32_out():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 4)).astype(np.float32)
    for loss, t in [(lw.SoftmaxCrossEntropyLoss(), np.array([0, 1, 3])), (lw.MSELoss(), z * 0.5),
                    (lw.HingeLoss(), np.array([0, 1, 3])), (lw.SigmoidCrossEntropyLoss(), np.full((3, 4), 0.5))]:
        v = loss.forward(z, t)
        assert v.dtype == np.float32 and loss.backward().dtype == np.float32


# ------------------------------------------------------------------ extreme logits
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_give_finite_exact_losses(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype)
    ce = lw.SoftmaxCrossEntropyLoss()
    v = float(ce.forward(z, np.array([1, 0])))
    assert v == pytest.approx((2e4 + 2e4 + np.log(2)) / 2)
    g = ce.backward()
    np.testing.assert_allclose(g, np.array([[1, -1, 0], [-1, 0.5, 0.5]]) / 2, atol=1e-7)
    t = np.array([[1.0, 0.0, 0.5], [1.0, 1.0, 0.0]], dtype=dtype)
    sce = lw.SigmoidCrossEntropyLoss(reduction="sum")
    assert float(sce.forward(z, t)) == pytest.approx(np.log(2) + 1e4 + 1e4)
    np.testing.assert_allclose(sce.backward(), np.array([[0, 0, 0], [-1, 0, 1]]), atol=1e-7)
    zb, yb = np.array([1e4, -1e4], dtype=dtype), np.array([-1, -1])
    lg = lw.LogisticLoss(reduction="sum")
    assert float(lg.forward(zb, yb)) == pytest.approx(1e4)
    np.testing.assert_allclose(lg.backward(), [1, 0], atol=1e-7)
    for loss, args in [(lw.ExponentialLoss(), (zb, yb)), (lw.KLDivLoss(), (-np.abs(z), np.full(z.shape, 1 / 3, dtype))),
                       (lw.SoftmaxCrossEntropyLoss(label_smoothing=0.1), (z, np.array([2, 0]))),
                       (lw.HingeLoss(mode="crammer_singer", norm=2), (z, np.array([1, 0])))]:
        v = loss.forward(*args)
        assert np.isfinite(v) and np.isfinite(loss.backward()).all()


# ------------------------------------------------------------------ bad input
def _all_losses():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 4))
    y, yb = np.array([0, 1, 2]), np.array([[1, -1, 1, 1]] * 3)
    return [(lw.SoftmaxCrossEntropyLoss(), [z, y]), (lw.CrossEntropyLoss(), [np.full((3, 4), 0.25), y]),
            (lw.SigmoidCrossEntropyLoss(), [z, np.full((3, 4), 0.5)]), (lw.KLDivLoss(), [z, np.full((3, 4), 0.25)]),
            (lw.EuclideanLoss(), [z, z]), (lw.MSELoss(), [z, z]), (lw.L1Loss(), [z, z]),
            (lw.SmoothL1Loss(), [z, z]), (lw.HuberLoss(), [z, z]), (lw.HingeLoss(), [z, y]),
            (lw.PerceptronLoss(), [z, yb]), (lw.ExponentialLoss(), [z, yb]), (lw.LogisticLoss(), [z, yb]),
            (lw.HingeEmbeddingLoss(), [z, yb]), (lw.ContrastiveLoss(), [z, z, np.array([1, 0, 1])]),
            (lw.TripletLoss(), [z, z, z]), (lw.CenterLoss(3), [z, y])]


@pytest.mark.parametrize("i", range(17))
def test_nan_in_prediction_names_the_loss(i):
    layer, inputs = _all_losses()[i]
    inputs[0] = inputs[0].copy()
    inputs[0][1, 2] = np.nan
    with pytest.raises(LayerError, match=type(layer).__name__ + ".*NaN"):
        layer.forward(*inputs)


@pytest.mark.parametrize("layer,labels", [
    (lw.SoftmaxCrossEntropyLoss(), np.array([0, 4, 1])), (lw.SoftmaxCrossEntropyLoss(), np.array([0, -2, 1])),
    (lw.CrossEntropyLoss(), np.array([0, 9, 1])), (lw.HingeLoss(mode="weston_watkins"), np.array([0, 1, 4])),
    (lw.CenterLoss(2), np.array([0, 1, 2]))])
def test_labels_out_of_range_are_rejected(layer, labels):
    pred = np.full((3, 4), 0.25)
    with pytest.raises(LayerError, match=f"{type(layer).__name__}.*out of range"):
        layer.forward(pred, labels)


@pytest.mark.parametrize("layer,pred,target", [
    (lw.MSELoss(), np.zeros((3, 4)), np.zeros((3, 5))),
    (lw.SoftmaxCrossEntropyLoss(), np.zeros((3, 4)), np.zeros(4, dtype=int)),
    (lw.SoftmaxCrossEntropyLoss(weight=[1, 2]), np.zeros((3, 4)), np.zeros(3, dtype=int)),
    (lw.HingeLoss(), np.zeros((3, 4)), np.zeros((3, 4), dtype=int)),
    (lw.SigmoidCrossEntropyLoss(), np.zeros((3, 4)), np.zeros((4, 3)))])
def test_shape_mismatch_is_a_clear_error(layer, pred, target):
    with pytest.raises(LayerError, match=type(layer).__name__ + ".*(shape|weight)"):
        layer.forward(pred, target)


def test_other_bad_inputs():
    z = np.zeros((2, 3))
    with pytest.raises(LayerError, match="integer"):
        lw.SoftmaxCrossEntropyLoss().forward(z, np.array([0.0, 1.0]))
    with pytest.raises(LayerError, match="-1, \\+1"):
        lw.LogisticLoss().forward(z, np.ones((2, 3)) * 0)
    with pytest.raises(LayerError, match="probabilities"):
        lw.CrossEntropyLoss().forward(z - 1, np.array([0, 1]))
    with pytest.raises(LayerError, match=r"\[0, 1\]"):
        lw.SigmoidCrossEntropyLoss().forward(z, z + 2)
    with pytest.raises(LayerError, match="TripletLoss"):
        lw.TripletLoss().forward(z, z, np.zeros((2, 4)))
    with pytest.raises(LayerError, match="backward"):
        lw.MSELoss().backward()
    with pytest.raises(ValueError, match="reduction='none'"):
        lw.MSELoss(reduction="none")
    with pytest.raises(ValueError, match="reduction must be one of"):
        lw.ContrastiveLoss(reduction="valid")
    with pytest.raises(ValueError, match="norm"):
        lw.HingeLoss(norm=3)


# ------------------------------------------------------------------ references
def test_hinge_matches_sklearn_binary_and_crammer_singer():
    from sklearn.metrics import hinge_loss
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal(8), np.where(rng.random(8) < 0.5, -1, 1)
    assert float(lw.HingeLoss(mode="binary").forward(z, y)) == pytest.approx(hinge_loss(y, z), rel=1e-12)
    Z, Y = rng.standard_normal((8, 4)), rng.integers(0, 4, 8)
    Y[:4] = [0, 1, 2, 3]
    assert float(lw.HingeLoss(mode="crammer_singer").forward(Z, Y)) == pytest.approx(
        hinge_loss(Y, Z, labels=[0, 1, 2, 3]), rel=1e-12)


def test_center_loss_alpha_rule_moves_centres_as_wen_et_al():
    x = np.array([[1.0, 0.0], [3.0, 2.0], [-1.0, -1.0]])
    y = np.array([0, 0, 1])
    layer = lw.CenterLoss(3, alpha=0.5)
    layer.forward(x, y)
    assert "centers" in layer.state_dict() and layer.params() == []
    dx = layer.backward()
    np.testing.assert_allclose(dx, x / 3)                         # centres started at 0
    # delta_0 = sum (c - x) / (1 + 2) = -(4, 2)/3; c_0 = 0 - 0.5 delta_0
    np.testing.assert_allclose(layer.centers, [[2 / 3, 1 / 3], [-0.25, -0.25], [0, 0]])
    layer.eval(grad=True)
    layer.forward(x, y)
    layer.backward()
    np.testing.assert_allclose(layer.centers, [[2 / 3, 1 / 3], [-0.25, -0.25], [0, 0]])   # frozen in eval


def test_multitask_reports_each_loss_and_routes_gradients():
    rng = np.random.default_rng(0)
    z, lab = rng.standard_normal((3, 4)), np.array([0, 1, 2])
    p, t = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    mt = lw.MultiTaskLoss({"cls": lw.SoftmaxCrossEntropyLoss(), "reg": lw.EuclideanLoss(loss_weight=2.0)})
    assert mt.num_inputs == 4
    v = float(mt.forward(z, lab, p, t))
    assert v == pytest.approx(mt.losses["cls"] + 2.0 * mt.losses["reg"])
    dz, dlab, dp, dt = mt.backward()
    assert dlab is None and dt is None
    np.testing.assert_allclose(dp, 2.0 * (p - t) / 3)
    with pytest.raises(LayerError, match="4 input"):
        mt.forward(z, lab, p)


def test_accuracy_topk():
    z = np.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [0.3, 0.3, 0.4]])
    y = np.array([2, 0, 0, 1])
    assert accuracy(z, y) == (0.25,) and accuracy(z, y, topk=1) == 0.25
    assert accuracy(z, y, topk=(1, 2, 3)) == (0.25, 0.75, 1.0)
    assert accuracy(z, np.array([2, 0, -1, -1]), topk=1, ignore_index=-1) == 0.5
    with pytest.raises(ValueError, match="labels"):
        accuracy(z, np.array([0, 1, 2, 3]))


def test_sigmoid_ce_caffes_name_divides_by_n_pytorchs_by_every_element():
    # current Caffe (sigmoid_cross_entropy_loss_layer.cpp): no normalization/normalize -> BATCH_SIZE
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal((4, 3)), rng.random((4, 3))
    total = float(lw.SigmoidCrossEntropyLoss(reduction="sum").forward(z, t))
    caffe = build("loss", "SigmoidCrossEntropyLoss")
    assert caffe.reduction == "batch_size" and float(caffe.forward(z, t)) == pytest.approx(total / 4)
    for name in ("BCEWithLogitsLoss", "bce_with_logits", "binary_cross_entropy_with_logits"):
        torch_named = build("loss", name)
        assert isinstance(torch_named, lw.SigmoidCrossEntropyLoss) and torch_named.reduction == "mean"
        assert float(torch_named.forward(z, t)) == pytest.approx(total / 12)
    g_caffe = caffe.backward()
    torch_named.forward(z, t)
    np.testing.assert_allclose(g_caffe, torch_named.backward() * 3)   # the same gradient, 12/4 times larger
