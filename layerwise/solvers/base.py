"""Solver: the step every rule shares (Caffe's SGDSolver::ApplyUpdate), plus build_solver.

One ``step()``:

    lr  = policy(iteration)                                    learning rate of this update
    c   = min(1, clip_gradients / ||G||)   (||G|| over all params)   global-norm clipping
    g   = c * grad / iter_size                                 average of the accumulated passes
    g  += wd * decay_mult * w          (L2)   or  wd * decay_mult * sign(w)  (L1)
    rule(g, lr * lr_mult)                                      the subclass's update
    iteration += 1

A subclass writes ``_update`` (and lists its buffers); nothing else. Solvers see only
Params, never layer types.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..backend import get_array_module, to_numpy
from ..core.layer import Layer, NamedParams
from ..core.param import Param
from ..core.registry import lookup, registered
from .caffe_names import POLICY_OPTIONS, caffe_defaults, solver_options, speaks_caffe
from .lr_policy import Fixed, build_policy

__all__ = ["Solver", "build_solver"]

Policy = Callable[[int], float]


def _named_params(owner: str, params: Any) -> dict[str, Param]:
    named: dict[str, Any]
    if isinstance(params, Layer):
        named = params.named_params()
    elif isinstance(params, Mapping):
        named = dict(params)
    elif isinstance(params, Param):
        named = {"0": params}
    elif isinstance(params, Iterable) and not isinstance(params, (str, bytes)):
        named = {str(i): p for i, p in enumerate(params)}
    else:
        raise TypeError(f"{owner}: params must be a Layer, a dict name -> Param or a list of Params, "
                        f"got {type(params).__name__}")
    if not named:
        raise ValueError(f"{owner}: got no params to optimise; build the net first (run a forward or "
                         "setup) so its params exist, then create the solver")
    seen: dict[int, str] = {}
    for name, p in named.items():
        if not isinstance(p, Param):
            raise TypeError(f"{owner}: param {name!r} must be a layerwise Param, got {type(p).__name__}")
        if id(p) in seen:
            raise ValueError(f"{owner}: the same Param appears twice, as {seen[id(p)]!r} and {name!r}; "
                             "pass each param once")
        seen[id(p)] = name
    return named


def _unbuilt_owner(params: Any) -> Layer | None:
    """The layer whose params are still to come: ``params`` is a Layer that is not built, or the
    (empty) ``named_params()`` of one; otherwise None (the params are bound at once)."""
    owner: Any = None
    if isinstance(params, Layer):
        owner = params
    elif isinstance(params, NamedParams) and not params:
        owner = params.owner
    return owner if isinstance(owner, Layer) and not owner.built else None


class Solver:
    """Base class of the solvers: the shared step, the learning rate and the saved state.

    Args:
        params: a Layer (its ``named_params()``), a dict name -> Param, or a list of Params
            (named "0", "1", ...). The names key the state dict.
        lr: the learning rate, a number or a policy (a callable iteration -> lr, see
            ``layerwise.solvers.lr_policy``).
        weight_decay: decay coefficient ``wd`` (times each param's ``decay_mult``).
        regularization: ``"L2"`` (g += wd * w) or ``"L1"`` (g += wd * sign(w)).
        clip_gradients: clip the global L2 norm of all gradients to this value (None: off).
            As in Caffe it is applied to the accumulated gradient, before ``/ iter_size``.
        iter_size: how many backward passes the caller accumulates into the grads before
            each ``step()``; the step divides by it.

    Attributes:
        iteration: the number of updates applied so far (the policy's position).

    Params with ``lr_mult == 0`` are frozen: not clipped, not decayed, not updated.
    """

    #: buffers the rule keeps per param, given the options (keys ``"<buffer>.<param name>"``).
    buffer_names: tuple[str, ...] = ()
    #: True when the rule applies its own (decoupled) weight decay: the base adds none to g.
    decoupled_weight_decay = False

    def __init__(self, params: Any, lr: float | Policy = 0.01, *, weight_decay: float = 0.0,
                 regularization: str = "L2", clip_gradients: float | None = None,
                 iter_size: int = 1) -> None:
        # A layer that is not built yet has no params: bind them on first use (see ``params``).
        self._owner: Layer | None = _unbuilt_owner(params)
        self._params: dict[str, Param] | None = None if self._owner is not None else _named_params(self._tag(), params)
        self.policy = self._as_policy(lr)
        wd = float(weight_decay)
        if not math.isfinite(wd) or wd < 0:
            raise ValueError(f"{self._tag()}: weight_decay must be >= 0, got {weight_decay!r}")
        self.weight_decay = wd
        reg = str(regularization).upper()
        if reg not in ("L1", "L2"):
            raise ValueError(f"{self._tag()}: regularization must be 'L1' or 'L2', got {regularization!r}")
        self.regularization = reg
        if clip_gradients is not None and not clip_gradients > 0:  # Caffe's "< 0 = off" is None here
            raise ValueError(f"{self._tag()}: clip_gradients must be > 0 (a max global norm) or None "
                             f"for no clipping, got {clip_gradients!r}")
        self.clip_gradients = None if clip_gradients is None else float(clip_gradients)
        if isinstance(iter_size, bool) or int(iter_size) != iter_size or iter_size < 1:
            raise ValueError(f"{self._tag()}: iter_size must be an integer >= 1 (the number of accumulated "
                             f"backward passes per step), got {iter_size!r}")
        self.iter_size = int(iter_size)
        self.iteration = 0
        self.state: dict[str, Any] = {}

    # ------------------------------------------------------------------ params
    @property
    def params(self) -> dict[str, Param]:
        """``name -> Param`` this solver updates. Given a layer (or its ``named_params()``) before the
        layer was built, the solver binds the layer's params here, on first use after the first forward
        (or ``setup``); using the solver before then is an error that says so."""
        if self._params is None:
            owner = self._owner
            assert owner is not None
            if not owner.built:
                raise ValueError(f"{self._tag()}: the params of {owner!r} do not exist yet: layers create them "
                                 "from the input's shape on the first forward; run net.forward(x) (or "
                                 "net.setup(input_shape)) before solver.step() or solver.state_dict()")
            self._params = _named_params(self._tag(), owner.named_params())
        return self._params

    @property
    def bound(self) -> bool:
        """Whether the params are bound (always, unless the solver was given an unbuilt layer's params)."""
        return self._params is not None

    # ----------------------------------------------------------------- helpers
    def _tag(self) -> str:
        return type(self).__name__

    def _as_policy(self, lr: Any) -> Policy:
        if callable(lr):
            return lr
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)):
            raise TypeError(f"{self._tag()}: lr must be a number or a policy (callable iteration -> lr), "
                            f"got {type(lr).__name__}")
        if not math.isfinite(float(lr)) or lr < 0:
            raise ValueError(f"{self._tag()}: lr must be a finite number >= 0, got {lr!r}; "
                             "the learning rate is a step size, e.g. lr=0.01")
        return Fixed(float(lr))

    def _check_range(self, what: str, v: float, lo: float, hi: float, hi_open: bool = True) -> float:
        v = float(v)
        ok = lo <= v < hi if hi_open else lo <= v <= hi
        if not ok:
            raise ValueError(f"{self._tag()}: {what} must be in [{lo}, {hi}{')' if hi_open else ']'}, got {v!r}")
        return v

    def _check_nonneg(self, what: str, v: float) -> float:
        v = float(v)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{self._tag()}: {what} must be a finite number >= 0, got {v!r}")
        return v

    def buffer(self, kind: str, name: str, fill: float = 0.0) -> Any:
        """The buffer ``kind`` of param ``name``, created on first use (filled with ``fill``) on the
        device the param lives on then, so a solver built before ``net.to('gpu')`` still works."""
        key = f"{kind}.{name}"
        buf = self.state.get(key)
        if buf is None:
            p = self.params[name]
            buf = self.state[key] = get_array_module(p.data).full_like(p.data, fill)
        return buf

    # ---------------------------------------------------------- learning rate
    @property
    def lr(self) -> float:
        """The learning rate of the next update: ``policy(iteration)``."""
        lr = float(self.policy(self.iteration))
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"{self._tag()}: the lr policy returned {lr!r} at iteration {self.iteration}; "
                             "a policy must return a finite learning rate >= 0")
        return lr

    @lr.setter
    def lr(self, value: float | Policy) -> None:
        """Replace the policy (a number gives a constant lr from now on, like torch's group['lr'] = v)."""
        self.policy = self._as_policy(value)

    def lr_at(self, iteration: int) -> float:
        """The learning rate of update number ``iteration`` (0-based) under this solver's schedule."""
        return float(self.policy(iteration))

    # -------------------------------------------------------------------- step
    def zero_grad(self) -> None:
        for p in self.params.values():
            p.zero_grad()

    def step(self) -> None:
        """Apply one update from the gradients accumulated in ``Param.grad``."""
        lr = self.lr
        active = [(n, p) for n, p in self.params.items() if p.lr_mult != 0]
        scale = 1.0
        if self.clip_gradients is not None:
            # summed on the device, one host sync (not one per param)
            sq = sum((p.grad.astype(get_array_module(p.grad).float64, copy=False) ** 2).sum() for _, p in active)
            norm = math.sqrt(float(sq))
            if not math.isfinite(norm):
                raise FloatingPointError(f"{self._tag()}: the global gradient norm is {norm}; a gradient "
                                         "holds inf/NaN (lower the learning rate or check the loss)")
            if norm > self.clip_gradients:
                scale = self.clip_gradients / norm
        scale /= self.iter_size
        for name, p in active:
            g = p.grad if scale == 1.0 else p.grad * scale
            wd = self.weight_decay * p.decay_mult
            if wd != 0.0 and not self.decoupled_weight_decay:
                xp = get_array_module(p.data)
                g = g + wd * (p.data if self.regularization == "L2" else xp.sign(p.data))
            self._update(name, p, g, lr * p.lr_mult)
        self.iteration += 1

    def _update(self, name: str, p: Param, g: Any, lr: float) -> None:
        """The rule: change ``p.data`` in place from the gradient ``g`` (read only) and ``lr``."""
        raise NotImplementedError(f"{type(self).__name__} must implement _update")

    # ------------------------------------------------------------------ state
    def _expected_keys(self) -> dict[str, tuple[int, ...]]:
        return {f"{b}.{n}": p.shape for b in self.buffer_names for n, p in self.params.items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every buffer (``"<buffer>.<param name>"``), ``iteration`` and ``lr`` as NumPy arrays (copies).

        ``iteration`` is the policy's position (policies are pure functions of it); ``lr`` is the
        learning rate of the next update, restored on load only when the lr is a constant.
        """
        sd = {"iteration": np.array(self.iteration, dtype=np.int64),
              "lr": np.array(self.lr, dtype=np.float64)}
        for key in self._expected_keys():
            kind, name = key.split(".", 1)
            sd[key] = to_numpy(self.buffer(kind, name)).copy()
        return sd

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore buffers and the iteration from ``state_dict()``'s output (checks names and shapes)."""
        expected = self._expected_keys()
        want = set(expected) | {"iteration", "lr"}
        missing, unexpected = sorted(want - set(state)), sorted(set(state) - want)
        if missing or unexpected:
            raise ValueError(f"{self._tag()}.load_state_dict: missing keys {missing}, unexpected keys "
                             f"{unexpected}; build the same solver type with the same options (momentum, "
                             "amsgrad, centered, ...) over the same param names before loading")
        for key, shape in expected.items():
            if tuple(np.shape(state[key])) != shape:
                raise ValueError(f"{self._tag()}.load_state_dict: {key!r} has shape {tuple(np.shape(state[key]))}, "
                                 f"expected {shape} (the param's shape)")
        it = np.asarray(state["iteration"])
        if it.shape != () or it.dtype.kind not in "iu" or int(it) < 0:
            raise ValueError(f"{self._tag()}.load_state_dict: 'iteration' must be a 0-d integer array >= 0, "
                             f"got {it!r}")
        for key in expected:
            kind, name = key.split(".", 1)
            p = self.params[name]
            xp = get_array_module(p.data)
            self.state[key] = xp.array(state[key], dtype=p.data.dtype)
        self.iteration = int(it)
        if isinstance(self.policy, Fixed):
            self.policy = self._as_policy(float(np.asarray(state["lr"])))

    def __repr__(self) -> str:
        n = len(self.params) if self.bound else "unbound"
        return f"{type(self).__name__}(params={n}, lr={self.lr:g}, iteration={self.iteration})"


# --------------------------------------------------------------- build_solver
# The lr-policy arguments build_solver hands to build_policy (ours, and Caffe's spellings).
_POLICY_KEYS = frozenset({"gamma", "power", "step_size", "milestones", "max_iter", "eta_min", "warmup_iters",
                          "start_factor"}) | frozenset(POLICY_OPTIONS)


def build_solver(name: str, params: Any, **cfg: Any) -> Solver:
    """Build a registered solver from a config, accepting PyTorch's and Caffe's names.

    Caffe names (``layerwise.solvers.caffe_names``): ``base_lr`` -> ``lr``; ``lr_policy`` with its
    ``gamma``, ``power``, ``stepsize``, ``stepvalue``, ``max_iter`` (and ``eta_min``, ``warmup_iters``,
    ``start_factor``) -> an lr policy; ``momentum``/``momentum2`` -> ``betas`` for Adam(W);
    ``momentum`` -> ``rho`` for AdaDelta; ``delta`` -> ``eps``; ``rms_decay`` -> ``alpha``;
    ``regularization_type`` -> ``regularization``. ``beta1``/``beta2`` are accepted for ``betas``.

    Caffe's names mean Caffe's defaults: given any Caffe-only key (``base_lr``, ``delta``,
    ``momentum2``, ``rms_decay``, ``regularization_type``, ``stepsize``, ``stepvalue``), every option
    left out takes caffe.proto's default (momentum 0, so Adam's beta1 and AdaDelta's rho are 0 too;
    delta 1e-8; momentum2 0.999; rms_decay 0.99; weight_decay 0). Otherwise the constructor's
    (PyTorch's) defaults apply. docs/solvers.md has both tables.

    Example:
        >>> solver = build_solver("SGD", net, base_lr=0.1, momentum=0.9, lr_policy="step",
        ...                       gamma=0.1, stepsize=1000, weight_decay=5e-4)  # doctest: +SKIP
    """
    cls = lookup("solver", name)
    tag = f"build_solver({name!r})"
    cfg = dict(cfg)
    if speaks_caffe(cfg):
        cfg = {**caffe_defaults(cls, cfg), **cfg}
    cfg = solver_options(cls, cfg, tag)
    policy = cfg.pop("lr_policy", None)
    pkw = {k: cfg.pop(k) for k in list(cfg) if k in _POLICY_KEYS}
    if policy is not None:
        base_lr = cfg.pop("lr", None)
        if base_lr is None:
            raise TypeError(f"{tag}: lr_policy {policy!r} needs a base learning rate (lr or base_lr)")
        if "warmup_iters" in pkw and str(policy).lower() != "warmup":
            pkw["policy"] = policy
            policy = "warmup"
        cfg["lr"] = build_policy(policy, base_lr, **pkw)
    elif pkw:
        raise TypeError(f"{tag}: {sorted(pkw)} are lr policy arguments, but no lr_policy was given")
    accepted = [p for p in inspect.signature(cls).parameters if p != "params"]
    unknown = sorted(set(cfg) - set(accepted))
    if unknown:
        raise TypeError(f"{tag}: unknown option(s) {unknown}; {cls.__name__} accepts {accepted} "
                        f"(known solvers: {', '.join(registered('solver'))})")
    return cls(params, **cfg)
