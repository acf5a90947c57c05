"""A prototxt's Caffe names get Caffe's defaults: SigmoidCrossEntropyLoss's normalisation (BATCH_SIZE
unless told otherwise) and a solver.prototxt's momentum (0 when left out, for every solver type)."""
import numpy as np
import pytest

pytest.importorskip("google.protobuf", reason="Caffe import needs protobuf: pip install 'layerwise[interop]'")

import layerwise as lw  # noqa: E402
from layerwise.config import load_config  # noqa: E402
from layerwise.interop import load_caffe, load_caffe_solver  # noqa: E402
from layerwise.solvers import build_solver  # noqa: E402
from layerwise.train.build import _solver_kwargs  # noqa: E402

NET = """
input: "data" input_shape { dim: 4 dim: 3 }
input: "target" input_shape { dim: 4 dim: 3 }
layer { name: "loss" type: "SigmoidCrossEntropyLoss" bottom: "data" bottom: "target" top: "loss" %s }
"""


@pytest.mark.parametrize("loss_param, divisor", [
    ("", 4),                                              # the layer's own default: BATCH_SIZE
    ("loss_param { normalize: false }", 4),
    ("loss_param { normalize: true }", 12),               # VALID without ignore_label: every element
    ("loss_param { normalization: VALID }", 12),
    ("loss_param { normalization: FULL }", 12),
    ("loss_param { normalization: BATCH_SIZE }", 4),
    ("loss_param { normalization: NONE }", 1),
])
def test_sigmoid_cross_entropy_loss_normalises_as_caffe(loss_param, divisor, rng):
    net = load_caffe(NET % loss_param, phase="TRAIN")
    z, t = rng.standard_normal((4, 3)), rng.random((4, 3))
    total = np.sum(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))
    assert float(net.forward(z, t)) == pytest.approx(total / divisor)


def test_sigmoid_cross_entropy_loss_with_ignore_label_is_refused():
    from layerwise.interop import CaffeError
    with pytest.raises(CaffeError, match="ignore_label"):
        load_caffe(NET % "loss_param { ignore_label: -1 }", phase="TRAIN")


@pytest.mark.parametrize("kind, attr, value", [
    ("Nesterov", "momentum", 0.0), ("SGD", "momentum", 0.0), ("Adam", "betas", (0.0, 0.999)),
    ("AdaDelta", "rho", 0.0), ("RMSProp", "momentum", 0.0),
])
def test_solver_prototxt_without_momentum_has_caffes_zero(kind, attr, value):
    sol = load_caffe_solver(f'base_lr: 0.01 type: "{kind}" lr_policy: "fixed"\n')
    cfg = load_config(sol.config)
    s = build_solver(cfg.solver.name, {"w": lw.Param(np.zeros(2))}, **_solver_kwargs(cfg))
    assert getattr(s, attr) == pytest.approx(value)
