"""Each rule against a few-line NumPy reference written from its formula, and the shared step."""
from __future__ import annotations

import numpy as np
import pytest

import layerwise as lw
from layerwise.core import Layer, Param, lookup
from layerwise.solvers import (SGD, AdaDelta, AdaGrad, Adam, AdamW, Nesterov, RMSProp, Solver, build_policy,
                               build_solver)
from tests.solvers.problems import Quadratic, TinyMLP, make_params, run

STEPS, CHANGE_AT, LR_DROP = 60, 30, 0.2


def _lr(base):   # the lr every reference sees at update t (0-based)
    return lambda t: base * (LR_DROP if t >= CHANGE_AT else 1.0)


# ------------------------------------------------------------ NumPy references (one per formula)
def ref_caffe_momentum(x, g, s, lr, t, mu):
    s["v"] = mu * s.get("v", 0.0) - lr * g          # V <- mu V - lr g
    return x + s["v"]                               # X <- X + V


def ref_torch_momentum(x, g, s, lr, t, mu):
    s["b"] = mu * s["b"] + g if "b" in s else g     # B <- mu B + g
    return x - lr * s["b"]                          # X <- X - lr B


def ref_caffe_nesterov(x, g, s, lr, t, mu):
    v_old = s.get("v", 0.0)
    s["v"] = mu * v_old - lr * g
    return x + (1 + mu) * s["v"] - mu * v_old


def ref_adagrad(x, g, s, lr, t, eps):
    s["h"] = s.get("h", 0.0) + g ** 2
    return x - lr * g / (np.sqrt(s["h"]) + eps)


def ref_adadelta(x, g, s, lr, t, rho, eps):
    s["eg"] = rho * s.get("eg", 0.0) + (1 - rho) * g ** 2
    dx = -np.sqrt(s.get("edx", 0.0) + eps) / np.sqrt(s["eg"] + eps) * g    # -RMS[dX]_{t-1} / RMS[g]_t g
    s["edx"] = rho * s.get("edx", 0.0) + (1 - rho) * dx ** 2
    return x + lr * dx


def ref_rmsprop(x, g, s, lr, t, alpha, eps):
    s["ms"] = alpha * s.get("ms", 0.0) + (1 - alpha) * g ** 2
    return x - lr * g / (np.sqrt(s["ms"]) + eps)


def ref_adam(x, g, s, lr, t, b1, b2, eps, caffe, wd_decoupled=0.0):
    x = x * (1 - lr * wd_decoupled)
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g ** 2
    n = t + 1
    if caffe:
        return x - lr * np.sqrt(1 - b2 ** n) / (1 - b1 ** n) * s["m"] / (np.sqrt(s["v"]) + eps)
    return x - lr * (s["m"] / (1 - b1 ** n)) / (np.sqrt(s["v"] / (1 - b2 ** n)) + eps)


def run_reference(rule, problem, base_lr, steps=STEPS, **hp):
    xs = {k: v.copy() for k, v in problem.init.items()}
    states = {k: {} for k in xs}
    for t in range(steps):
        gs = problem.grads(xs)
        xs = {k: rule(xs[k], gs[k], states[k], _lr(base_lr)(t), t, **hp) for k in xs}
    return xs


REFERENCE_CASES = {
    "sgd_caffe_momentum": (lambda p, lr: SGD(p, lr, momentum=0.9), ref_caffe_momentum, {"mu": 0.9}, 0.05),
    "sgd_torch_momentum": (lambda p, lr: SGD(p, lr, momentum=0.9, momentum_style="torch"),
                           ref_torch_momentum, {"mu": 0.9}, 0.05),
    "nesterov_caffe": (lambda p, lr: Nesterov(p, lr, momentum=0.8), ref_caffe_nesterov, {"mu": 0.8}, 0.05),
    "adagrad": (lambda p, lr: AdaGrad(p, lr, eps=1e-3), ref_adagrad, {"eps": 1e-3}, 0.3),
    "adadelta": (lambda p, lr: AdaDelta(p, lr, rho=0.8, eps=1e-4), ref_adadelta, {"rho": 0.8, "eps": 1e-4}, 1.0),
    "rmsprop": (lambda p, lr: RMSProp(p, lr, alpha=0.9, eps=1e-3), ref_rmsprop, {"alpha": 0.9, "eps": 1e-3}, 0.01),
    "adam_caffe": (lambda p, lr: Adam(p, lr, betas=(0.8, 0.99), eps=0.05), ref_adam,
                   {"b1": 0.8, "b2": 0.99, "eps": 0.05, "caffe": True}, 0.05),
    "adam_torch": (lambda p, lr: Adam(p, lr, betas=(0.8, 0.99), eps=0.05, eps_style="torch"), ref_adam,
                   {"b1": 0.8, "b2": 0.99, "eps": 0.05, "caffe": False}, 0.05),
    "adamw_caffe": (lambda p, lr: AdamW(p, lr, eps=0.05, weight_decay=0.3), ref_adam,
                    {"b1": 0.9, "b2": 0.999, "eps": 0.05, "caffe": True, "wd_decoupled": 0.3}, 0.05),
}


@pytest.mark.parametrize("problem_cls", [Quadratic, TinyMLP], ids=["quadratic", "mlp"])
@pytest.mark.parametrize("case", sorted(REFERENCE_CASES))
def test_rule_matches_numpy_reference_with_lr_change(case, problem_cls):
    make, rule, hp, base_lr = REFERENCE_CASES[case]
    problem = problem_cls(seed=2)
    params = make_params(problem)
    solver = make(params, build_policy("multistep", base_lr, milestones=[CHANGE_AT], gamma=LR_DROP))
    run(solver, params, problem, STEPS)
    ref = run_reference(rule, problem, base_lr, **hp)
    for k, p in params.items():
        np.testing.assert_allclose(p.data, ref[k], rtol=1e-10, atol=1e-12, err_msg=f"{case} param {k}")
        assert not np.allclose(p.data, problem.init[k], atol=1e-3), f"{case}: param {k} did not move"


def test_nesterov_is_nag_with_the_gradient_at_the_look_ahead_point():
    """NAG as docs/solvers.md writes it (Sutskever et al. 2013): V <- mu V - lr grad f(X + mu V);
    X <- X + V. Our params hold Y = X + mu V."""
    problem, mu, lr = Quadratic(seed=4), 0.9, 0.03
    params = make_params(problem)
    run(Nesterov(params, lr, momentum=mu), params, problem, 40)
    x = {k: v.copy() for k, v in problem.init.items()}      # Y_0 = X_0 since V_0 = 0
    v = {k: np.zeros_like(a) for k, a in x.items()}
    for _ in range(40):
        g = problem.grads({k: x[k] + mu * v[k] for k in x})
        v = {k: mu * v[k] - lr * g[k] for k in x}
        x = {k: x[k] + v[k] for k in x}
    for k, p in params.items():
        np.testing.assert_allclose(p.data, x[k] + mu * v[k], rtol=1e-10, atol=1e-12)
    # torch style gives the same trajectory while lr is constant
    params_t = make_params(problem)
    run(Nesterov(params_t, lr, momentum=mu, momentum_style="torch"), params_t, problem, 40)
    for k in params:
        np.testing.assert_allclose(params_t[k].data, params[k].data, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------- the shared step
def _param(values, grad, **kw):
    p = Param(np.array(values, dtype=np.float64), **kw)   # a copy: the tests reuse `values`
    p.grad[...] = grad
    return p


def test_global_norm_clipping_scales_all_grads_and_skips_frozen_params():
    a, b = _param([0.0, 0.0], [3.0, 0.0]), _param([0.0], [4.0])        # global norm 5
    frozen = _param([1.0], [100.0], lr_mult=0.0)
    SGD({"a": a, "b": b, "f": frozen}, lr=1.0, clip_gradients=1.0).step()
    np.testing.assert_allclose(a.data, [-0.6, 0.0])
    np.testing.assert_allclose(b.data, [-0.8])
    assert frozen.data[0] == 1.0
    c = _param([0.0], [0.5])
    SGD([c], lr=1.0, clip_gradients=1.0).step()        # under the threshold: untouched
    assert c.data[0] == -0.5


def test_clipping_a_nan_gradient_raises():
    p = _param([0.0], [np.nan])
    with pytest.raises(FloatingPointError, match="inf/NaN"):
        SGD([p], lr=0.1, clip_gradients=1.0).step()


def test_iter_size_divides_the_accumulated_gradient():
    problem = TinyMLP(seed=0)
    acc, single = make_params(problem), make_params(problem)
    s_acc, s_single = Adam(acc, 0.01, iter_size=3), Adam(single, 0.01)
    rng = np.random.default_rng(0)
    for _ in range(5):
        gs = [{k: rng.standard_normal(p.shape) for k, p in acc.items()} for _ in range(3)]
        for k in acc:
            acc[k].zero_grad()
            for g in gs:
                acc[k].grad += g[k]
            single[k].grad[...] = sum(g[k] for g in gs) / 3
        s_acc.step()
        s_single.step()
    for k in acc:
        np.testing.assert_allclose(acc[k].data, single[k].data, rtol=1e-12)


def test_weight_decay_l2_l1_and_decay_mult():
    w = np.array([2.0, -3.0, 0.0])
    l2 = _param(w, [1.0, 1.0, 1.0])
    SGD([l2], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(l2.data, w - 0.1 * (1.0 + 0.5 * w))
    l1 = _param(w, [1.0, 1.0, 1.0])
    SGD([l1], lr=0.1, weight_decay=0.5, regularization="L1").step()
    np.testing.assert_allclose(l1.data, w - 0.1 * (1.0 + 0.5 * np.sign(w)))
    half = _param(w, [1.0, 1.0, 1.0], decay_mult=0.5, lr_mult=2.0)
    SGD([half], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(half.data, w - 0.2 * (1.0 + 0.25 * w))


def test_adamw_decay_is_decoupled_from_the_gradient():
    w = np.array([2.0, -3.0])
    p = _param(w, [0.0, 0.0])                           # zero gradient: only the shrinkage acts
    AdamW([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.data, w * (1 - 0.05), rtol=1e-15)
    q = _param(w, [0.0, 0.0])                           # coupled L2 in Adam moves by ~lr instead
    Adam([q], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(q.data, w - 0.1 * np.sign(w), rtol=1e-6)


@pytest.mark.parametrize("make", [lambda p: SGD(p, 0.1, momentum=0.9), lambda p: AdaGrad(p, 0.1),
                                  lambda p: AdaDelta(p), lambda p: RMSProp(p, 0.01), lambda p: Adam(p, 0.01),
                                  lambda p: AdamW(p, 0.01)])
def test_float32_params_stay_float32(make):
    p = Param(np.ones((2, 3), np.float32))
    p.grad[...] = 0.5
    s = make([p])
    for _ in range(3):
        s.step()
    assert p.data.dtype == np.float32 and all(v.dtype == np.float32 for v in s.state.values())
    assert np.all(p.data < 1.0)


# ------------------------------------------------------------------------- state save/restore
STATE_CASES = {
    "sgd_momentum": lambda p, lr: SGD(p, lr, momentum=0.9, weight_decay=1e-3),
    "sgd_torch_nesterov": lambda p, lr: SGD(p, lr, momentum=0.9, nesterov=True, momentum_style="torch"),
    "adagrad": lambda p, lr: AdaGrad(p, lr, lr_decay=0.01, initial_accumulator_value=0.1),
    "adadelta": lambda p, lr: AdaDelta(p, lr),
    "rmsprop_centered": lambda p, lr: RMSProp(p, lr, momentum=0.5, centered=True),
    "adam_amsgrad": lambda p, lr: Adam(p, lr, amsgrad=True, clip_gradients=1.0),
    "adamw": lambda p, lr: AdamW(p, lr, iter_size=2),
}


@pytest.mark.parametrize("case", sorted(STATE_CASES))
def test_save_restore_in_the_middle_continues_bit_for_bit(case):
    problem, make = TinyMLP(seed=1), STATE_CASES[case]
    policy = build_policy("step", 0.02, step_size=7, gamma=0.5)    # the lr depends on the position
    params = make_params(problem)
    solver = make(params, policy)
    run(solver, params, problem, 10)
    saved = solver.state_dict()
    saved_params = {k: p.data.copy() for k, p in params.items()}
    run(solver, params, problem, 10)

    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in saved.values())
    assert saved["iteration"].shape == () and int(saved["iteration"]) == 10
    resumed = {k: Param(v.copy(), name=k) for k, v in saved_params.items()}
    solver2 = make(resumed, policy)
    solver2.load_state_dict(saved)
    assert solver2.iteration == 10 and solver2.lr == solver.policy(10)
    run(solver2, resumed, problem, 10)
    for k in params:
        assert np.array_equal(resumed[k].data, params[k].data), f"{case}: param {k} differs after resume"
    fresh = make({k: Param(v.copy(), name=k) for k, v in saved_params.items()}, policy)
    run(fresh, fresh.params, problem, 10)
    assert any(not np.array_equal(fresh.params[k].data, params[k].data) for k in params), \
        "a solver that did NOT load the state should differ (else the test proves nothing)"


def test_state_dict_keys_are_buffer_dot_param_name():
    p = {"fc.weight": Param(np.zeros((2, 2))), "fc.bias": Param(np.zeros(2))}
    assert set(SGD(p, 0.1, momentum=0.9).state_dict()) == {"iteration", "lr", "momentum.fc.weight", "momentum.fc.bias"}
    assert set(SGD(p, 0.1).state_dict()) == {"iteration", "lr"}
    assert set(Adam(p, amsgrad=True).state_dict()) >= {"exp_avg.fc.bias", "exp_avg_sq.fc.bias", "max_exp_avg_sq.fc.bias"}


def test_constant_lr_set_through_the_setter_is_restored():
    p = [Param(np.zeros(2))]
    s = SGD(p, 0.1)
    s.lr = 0.003
    s2 = SGD([Param(np.zeros(2))], 0.1)
    s2.load_state_dict(s.state_dict())
    assert s2.lr == 0.003


def test_load_state_dict_errors_name_the_problem():
    p = {"w": Param(np.zeros((2, 3)))}
    sd = SGD(p, 0.1, momentum=0.9).state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['momentum.w'\]"):
        SGD(p, 0.1, momentum=0.9).load_state_dict({k: v for k, v in sd.items() if k != "momentum.w"})
    with pytest.raises(ValueError, match="unexpected keys"):
        SGD(p, 0.1).load_state_dict(sd)                  # saved with momentum, loaded without
    with pytest.raises(ValueError, match="shape"):
        SGD(p, 0.1, momentum=0.9).load_state_dict({**sd, "momentum.w": np.zeros((3, 2))})
    with pytest.raises(ValueError, match="iteration"):
        SGD(p, 0.1, momentum=0.9).load_state_dict({**sd, "iteration": np.array(1.5)})


# ------------------------------------------------------------------------- params and config
class _Tiny(Layer):
    def _build(self, shape):
        self.add_param("weight", np.ones((2, shape[1])))
        self.add_param("bias", np.zeros(2))


def test_params_from_a_layer_a_dict_a_list():
    layer = _Tiny()
    layer.setup((1, 3))
    assert sorted(SGD(layer, 0.1).params) == ["bias", "weight"]
    assert sorted(SGD(layer.named_params(), 0.1).params) == ["bias", "weight"]
    assert list(SGD(layer.params(), 0.1).params) == ["0", "1"]
    s = SGD(layer, 0.1)
    for p in layer.params():
        p.grad[...] = 1.0
    s.zero_grad()
    assert all(np.all(p.grad == 0) for p in layer.params())


def test_lr_property_follows_the_policy_and_the_setter():
    s = SGD([Param(np.zeros(1))], lr=build_policy("exp", 1.0, gamma=0.5))
    assert s.lr == 1.0
    s.step()
    assert s.iteration == 1 and s.lr == 0.5
    s.lr = 0.01
    assert s.lr == 0.01


def test_registry_names():
    assert lookup("solver", "SGD") is SGD and lookup("solver", "sgd") is SGD
    assert lookup("solver", "Nesterov") is Nesterov
    for name, cls in [("adagrad", AdaGrad), ("adadelta", AdaDelta), ("rmsprop", RMSProp), ("adam", Adam),
                      ("adamw", AdamW)]:
        assert lookup("solver", name) is cls and issubclass(cls, Solver)


def test_build_solver_accepts_caffe_names():
    p = [Param(np.zeros(2))]
    adam = build_solver("Adam", p, base_lr=0.01, momentum=0.8, momentum2=0.99, delta=1e-6,
                        regularization_type="L1", weight_decay=0.1)
    assert (adam.lr, adam.betas, adam.eps, adam.regularization, adam.weight_decay) == (0.01, (0.8, 0.99), 1e-6, "L1", 0.1)
    assert build_solver("AdaDelta", p, momentum=0.95, delta=1e-5).rho == 0.95
    assert build_solver("RMSProp", p, base_lr=0.1, rms_decay=0.9).alpha == 0.9
    sgd = build_solver("SGD", p, base_lr=0.1, momentum=0.9, lr_policy="step", gamma=0.1, stepsize=2,
                       clip_gradients=5.0, iter_size=2)
    assert [sgd.policy(i) for i in (0, 2)] == [0.1, pytest.approx(0.01)]
    assert (sgd.momentum, sgd.clip_gradients, sgd.iter_size) == (0.9, 5.0, 2)
    warm = build_solver("nesterov", p, lr=1.0, lr_policy="cosine", max_iter=10, warmup_iters=2, start_factor=0.5)
    assert warm.policy(0) == 0.5 and warm.policy(10) == 0.0
    torchy = build_solver("adamw", p, lr=0.01, betas=[0.5, 0.6], weight_decay=0.0)
    assert torchy.betas == (0.5, 0.6)


@pytest.mark.parametrize("call,exc,words", [
    (lambda p: SGD(p, lr=-0.1), ValueError, "lr must be"),
    (lambda p: SGD(p, lr=float("inf")), ValueError, "lr must be"),
    (lambda p: SGD(p, lr="0.1"), TypeError, "lr must be a number or a policy"),
    (lambda p: SGD(p, 0.1, momentum=1.0), ValueError, r"momentum must be in \[0.0, 1.0\)"),
    (lambda p: SGD(p, 0.1, momentum=-0.1), ValueError, "momentum"),
    (lambda p: SGD(p, 0.1, nesterov=True), ValueError, "Nesterov momentum needs momentum > 0"),
    (lambda p: SGD(p, 0.1, momentum=0.9, momentum_style="keras"), ValueError, "momentum_style"),
    (lambda p: SGD(p, 0.1, weight_decay=-1), ValueError, "weight_decay"),
    (lambda p: SGD(p, 0.1, regularization="L3"), ValueError, "regularization"),
    (lambda p: SGD(p, 0.1, clip_gradients=0), ValueError, "clip_gradients"),
    (lambda p: SGD(p, 0.1, iter_size=0), ValueError, "iter_size"),
    (lambda p: Adam(p, betas=(0.9, 1.0)), ValueError, "betas"),
    (lambda p: Adam(p, betas=0.9), ValueError, "betas"),
    (lambda p: Adam(p, eps_style="x"), ValueError, "eps_style"),
    (lambda p: AdamW(p, regularization="L1"), ValueError, "L2 shrinkage"),
    (lambda p: RMSProp(p, alpha=1.0), ValueError, "alpha"),
    (lambda p: AdaDelta(p, rho=1.5), ValueError, "rho"),
    (lambda p: AdaGrad(p, eps=-1), ValueError, "eps"),
    (lambda p: SGD([], 0.1), ValueError, "no params"),
    (lambda p: SGD([p[0], p[0]], 0.1), ValueError, "twice"),
    (lambda p: SGD([np.zeros(2)], 0.1), TypeError, "Param"),
    (lambda p: SGD(3, 0.1), TypeError, "params must be"),
    (lambda p: build_solver("sgdd", p), KeyError, "unknown solver 'sgdd'"),
    (lambda p: build_solver("sgd", p, lr=0.1, lr_policy="nope"), KeyError, "unknown lr_policy"),
    (lambda p: build_solver("sgd", p, lr=0.1, momentun=0.9), TypeError, "momentun"),
    (lambda p: build_solver("sgd", p, lr=0.1, gamma=0.1), TypeError, "no lr_policy"),
    (lambda p: build_solver("sgd", p, lr_policy="step", stepsize=2), TypeError, "base learning rate"),
    (lambda p: SGD(p, lr=lambda it: -1.0).step(), ValueError, "policy returned -1.0"),
])
def test_bad_input_raises_a_clear_error(call, exc, words):
    with pytest.raises(exc, match=words):
        call([Param(np.zeros(2))])


def test_a_solver_given_an_unbuilt_nets_params_binds_them_on_first_use():
    """The README's order: the solver is created before the first forward (Keras's optimizers build
    their slots on first use the same way); before the params exist it says what to do."""
    net = lw.Sequential(lw.Linear(4), lw.ReLU(), lw.Linear(2), seed=0)
    sgd = lw.SGD(net.named_params(), lr=0.1, momentum=0.9)
    adam = lw.Adam(net, lr=0.01)  # a Layer works the same way
    assert not sgd.bound and "unbound" in repr(sgd)
    with pytest.raises(ValueError, match=r"do not exist yet.*net.forward\(x\)"):
        sgd.step()
    with pytest.raises(ValueError, match="do not exist yet"):
        adam.state_dict()
    x, y = np.random.default_rng(0).standard_normal((5, 3)), np.array([0, 1, 0, 1, 1])
    loss = lw.SoftmaxCrossEntropyLoss()
    net.forward(x.astype(np.float32))
    w0 = net[0].weight.data.copy()
    loss.forward(net.forward(x.astype(np.float32)), y)
    net.backward(loss.backward())
    sgd.step()
    assert sgd.bound and set(sgd.params) == set(net.named_params()) and sgd.params["0.weight"] is net[0].weight
    assert not np.array_equal(net[0].weight.data, w0)
    assert set(adam.state_dict()) == {"iteration", "lr"} | {f"{b}.{n}" for b in ("exp_avg", "exp_avg_sq")
                                                            for n in net.named_params()}


def test_a_built_net_and_explicit_lists_bind_at_once():
    net = lw.Sequential(lw.Linear(3), seed=0)
    net.setup((2, 4))
    assert lw.SGD(net.named_params(), lr=0.1).bound
    assert lw.SGD(net, lr=0.1).bound
    with pytest.raises(ValueError, match="got no params"):
        lw.SGD([], lr=0.1)
