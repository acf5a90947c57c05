import math

import pytest

from layerwise.core import lookup
from layerwise.solvers import build_policy
from layerwise.solvers.lr_policy import Fixed, Step, Warmup

# (policy, base_lr, kwargs, {iteration: hand-computed lr})
TABLE = [
    ("fixed", 0.1, {}, {0: 0.1, 5: 0.1, 10**6: 0.1}),
    ("step", 0.1, {"step_size": 3, "gamma": 0.5}, {0: 0.1, 2: 0.1, 3: 0.05, 5: 0.05, 6: 0.025, 7: 0.025}),
    ("step", 0.1, {"stepsize": 3, "gamma": 0.5}, {3: 0.05}),                     # Caffe's spelling
    ("multistep", 1.0, {"milestones": [2, 5], "gamma": 0.1}, {0: 1.0, 1: 1.0, 2: 0.1, 4: 0.1, 5: 0.01, 99: 0.01}),
    ("multistep", 1.0, {"stepvalue": [2], "gamma": 0.5}, {1: 1.0, 2: 0.5}),      # Caffe's spelling
    ("exp", 2.0, {"gamma": 0.5}, {0: 2.0, 1: 1.0, 3: 0.25}),
    ("inv", 1.0, {"gamma": 1.0, "power": 2.0}, {0: 1.0, 1: 0.25, 3: 0.0625}),
    ("poly", 1.0, {"max_iter": 4, "power": 2.0}, {0: 1.0, 1: 0.5625, 2: 0.25, 3: 0.0625, 4: 0.0, 10: 0.0}),
    ("poly", 0.5, {"max_iter": 10}, {0: 0.5, 5: 0.25}),
    ("sigmoid", 1.0, {"gamma": math.log(3.0), "step_size": 2}, {1: 0.25, 2: 0.5, 3: 0.75}),
    ("sigmoid", 1.0, {"gamma": -math.log(3.0), "step_size": 2}, {1: 0.75, 3: 0.25, 10**6: 0.0}),
    ("cosine", 1.0, {"max_iter": 4, "eta_min": 0.2}, {0: 1.0, 1: 0.2 + 0.4 * (1 + math.sqrt(0.5)), 2: 0.6, 4: 0.2, 9: 0.2}),
    ("warmup", 1.0, {"warmup_iters": 4, "start_factor": 0.2}, {0: 0.2, 1: 0.4, 2: 0.6, 3: 0.8, 4: 1.0, 50: 1.0}),
    ("warmup", 1.0, {"policy": "step", "step_size": 2, "gamma": 0.5, "warmup_iters": 4, "start_factor": 0.0},
     {0: 0.0, 1: 0.25, 2: 0.25, 3: 0.375, 4: 0.25, 6: 0.125}),
]


@pytest.mark.parametrize("name,base_lr,kw,expected", TABLE, ids=[f"{t[0]}-{i}" for i, t in enumerate(TABLE)])
def test_policy_matches_hand_computed_table(name, base_lr, kw, expected):
    policy = build_policy(name, base_lr, **kw)
    for it, lr in expected.items():
        assert policy(it) == pytest.approx(lr, rel=1e-12, abs=1e-15), f"{name} at iteration {it}"


def test_policies_are_registered_and_pure():
    for name in ("fixed", "step", "multistep", "exp", "inv", "poly", "sigmoid", "cosine", "warmup"):
        assert lookup("lr_policy", name) is not None
    p = build_policy("step", 0.1, step_size=2)
    assert [p(i) for i in (3, 0, 3)] == [p(3), p(0), p(3)]   # no hidden state
    with pytest.raises(Exception):
        p.base_lr = 1.0   # frozen


def test_warmup_accepts_a_callable_inner_policy():
    w = Warmup(Step(1.0, step_size=10), warmup_iters=2, start_factor=0.5)
    assert w(0) == 0.5 and w(1) == 0.75 and w(2) == 1.0 and w(10) == pytest.approx(0.1)
    assert build_policy("warmup", 1.0, policy=Fixed(3.0), warmup_iters=1, start_factor=0.0)(0) == 0.0


@pytest.mark.parametrize("call,exc,words", [
    (lambda: build_policy("nope", 0.1), KeyError, "unknown lr_policy 'nope'"),
    (lambda: build_policy("step", 0.1), TypeError, "step"),
    (lambda: build_policy("step", 0.1, step_size=2, gama=0.1), TypeError, "gama"),
    (lambda: build_policy("step", 0.1, step_size=0), ValueError, "step_size"),
    (lambda: build_policy("fixed", -0.1), ValueError, "base_lr"),
    (lambda: build_policy("fixed", float("nan")), ValueError, "base_lr"),
    (lambda: build_policy("multistep", 0.1, milestones=[5, 2]), ValueError, "increasing"),
    (lambda: build_policy("poly", 0.1, max_iter=0), ValueError, "max_iter"),
    (lambda: build_policy("warmup", 0.1), TypeError, "warmup_iters"),
    (lambda: build_policy("warmup", 0.1, warmup_iters=3, start_factor=2.0), ValueError, "start_factor"),
    (lambda: Warmup("cosine", warmup_iters=3), TypeError, "callable"),
    (lambda: build_policy("fixed", 0.1)(-1), ValueError, "iteration"),
    (lambda: build_policy("fixed", 0.1)(1.5), TypeError, "iteration"),
])
def test_bad_policy_input_raises_a_clear_error(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
