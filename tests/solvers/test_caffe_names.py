"""Caffe's names mean Caffe's defaults (layerwise.solvers.caffe_names, docs/solvers.md): one table of
names, one rule for Caffe's reuse of ``momentum``, and build_solver/build_policy reading them."""
from pathlib import Path

import numpy as np
import pytest

import layerwise as lw
from layerwise.solvers import Nesterov, build_solver
from layerwise.solvers.caffe_names import CAFFE_SOLVER_DEFAULTS, caffe_defaults, solver_options, speaks_caffe
from layerwise.solvers.lr_policy import build_policy, run_defaults


def params():
    return {"w": lw.Param(np.array([1.0, -2.0, 0.5]))}


def test_caffe_proto_defaults_are_the_table():
    # caffe.proto's SolverParameter (layerwise/interop/caffe.proto): momentum and weight_decay are plain
    # optional floats (0), delta 1e-8, momentum2 0.999, rms_decay 0.99
    assert CAFFE_SOLVER_DEFAULTS == {"momentum": 0.0, "weight_decay": 0.0, "delta": 1e-8, "momentum2": 0.999,
                                     "rms_decay": 0.99, "nesterov": False}
    text = (Path(lw.__file__).parent / "interop" / "caffe.proto").read_text()
    for line in ("optional float delta = 31 [default = 1e-8];", "optional float momentum2 = 39 [default = 0.999];",
                 "optional float rms_decay = 38 [default = 0.99];", "optional float momentum = 11;",
                 "optional float weight_decay = 12;"):
        assert line in text, line


@pytest.mark.parametrize("name, caffe, torch", [
    ("Adam", {"betas": (0.0, 0.999), "eps": 1e-8}, {"betas": (0.9, 0.999), "eps": 1e-8}),
    ("AdaDelta", {"rho": 0.0, "eps": 1e-8}, {"rho": 0.9, "eps": 1e-6}),
    ("AdaGrad", {"eps": 1e-8}, {"eps": 1e-10}),
    ("RMSProp", {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0}, {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0}),
    ("Nesterov", {"momentum": 0.0}, {"momentum": 0.9}),
    ("SGD", {"momentum": 0.0, "nesterov": False}, {"momentum": 0.0, "nesterov": False}),
])
def test_caffe_names_bring_caffe_defaults_ours_bring_pytorchs(name, caffe, torch):
    by_caffe = build_solver(name, params(), base_lr=0.1)          # base_lr: Caffe's spelling
    by_ours = build_solver(name, params(), lr=0.1)
    assert {k: getattr(by_caffe, k) for k in caffe} == caffe
    assert {k: getattr(by_ours, k) for k in torch} == torch


def test_given_options_beat_caffe_defaults_under_either_name():
    s = build_solver("Adam", params(), base_lr=1e-3, momentum=0.9, eps=1e-6)
    assert s.betas == (0.9, 0.999) and s.eps == 1e-6
    s = build_solver("Adam", params(), base_lr=1e-3, betas=(0.8, 0.99))
    assert s.betas == (0.8, 0.99)
    s = build_solver("AdaDelta", params(), base_lr=1.0, rho=0.95)
    assert s.rho == 0.95 and s.eps == 1e-8


def test_momentum_means_beta1_and_rho_in_one_place():
    s = build_solver("adam", params(), lr=1e-3, momentum=0.5, momentum2=0.9)
    assert s.betas == (0.5, 0.9)
    assert build_solver("adamw", params(), lr=1e-3, beta2=0.98).betas == (0.9, 0.98)
    assert build_solver("adadelta", params(), lr=1.0, momentum=0.8).rho == 0.8
    assert build_solver("rmsprop", params(), lr=1e-2, momentum=0.3).momentum == 0.3   # RMSProp's own
    assert solver_options(lw.Adam, {"momentum": 0.7}, "t") == {"betas": (0.7, 0.999)}
    with pytest.raises(TypeError, match="both 'betas'"):
        build_solver("adam", params(), lr=1e-3, momentum=0.5, betas=(0.9, 0.999))
    with pytest.raises(TypeError, match="both 'base_lr' and 'lr'"):
        build_solver("sgd", params(), lr=0.1, base_lr=0.1)
    with pytest.raises(TypeError, match="unknown option"):
        build_solver("adagrad", params(), lr=0.1, momentum=0.9)       # AdaGrad has none, as Caffe's


def test_speaks_caffe_and_the_defaults_it_fills():
    assert speaks_caffe(["base_lr"]) and speaks_caffe(["stepsize"]) and speaks_caffe(["type"])
    assert not speaks_caffe(["lr", "momentum", "lr_policy", "gamma", "weight_decay"])
    assert caffe_defaults(lw.Adam, ["base_lr"]) == {"momentum": 0.0, "weight_decay": 0.0, "delta": 1e-8,
                                                     "momentum2": 0.999}
    assert caffe_defaults(lw.Adam, ["betas", "eps"]) == {"weight_decay": 0.0}
    assert caffe_defaults(lw.AdaGrad, []) == {"weight_decay": 0.0, "delta": 1e-8}


def test_caffe_nesterov_without_momentum_is_plain_gradient_descent():
    # Caffe's default momentum is 0, and its solver tests run Nesterov with it: the update is -lr * g
    nag = build_solver("Nesterov", params(), base_lr=0.1)
    plain = build_solver("SGD", params(), lr=0.1)
    for s in (nag, plain):
        s.params["w"].grad[...] = [0.5, -1.0, 2.0]
        s.step()
        s.params["w"].grad[...] = [1.0, 1.0, -1.0]
        s.step()
    np.testing.assert_array_equal(nag.params["w"].data, plain.params["w"].data)
    assert Nesterov(params(), lr=0.1).momentum == 0.9                  # the class keeps its own default
    with pytest.raises(ValueError, match="momentum > 0"):
        lw.SGD(params(), lr=0.1, nesterov=True)                         # torch's rule for SGD(nesterov=True)


def test_policy_names_translate_once():
    p = build_policy("step", 1.0, stepsize=2, gamma=0.5)
    assert [p(i) for i in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert build_policy("multistep", 1.0, stepvalue=[1, 3])(3) == pytest.approx(0.01)
    with pytest.raises(TypeError, match="both 'stepsize' and 'step_size'"):
        build_policy("step", 1.0, stepsize=2, step_size=3)
    s = build_solver("SGD", params(), base_lr=1.0, lr_policy="step", stepsize=2, gamma=0.5)
    assert [s.policy(i) for i in (1, 2)] == [1.0, 0.5]


def test_run_defaults_are_declared_by_the_policies():
    assert run_defaults("cosine", 300) == {"max_iter": 300}
    assert run_defaults("poly", 300) == {"max_iter": 300}
    assert run_defaults("step", 300) == {"step_size": 100}
    assert run_defaults("multistep", 300, (0.5, 0.75)) == {"milestones": [150, 225]}
    assert run_defaults("fixed", 300) == run_defaults("exp", 300) == {}
