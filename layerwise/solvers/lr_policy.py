"""Learning-rate policies: pure functions of the iteration (Caffe's ``lr_policy`` set, plus cosine and warmup).

Each policy is a small frozen dataclass; calling it with the iteration ``it`` (0-based, the
number of updates already applied) returns the learning rate of the next update:

    fixed      lr = base_lr
    step       lr = base_lr * gamma ** floor(it / step_size)
    multistep  lr = base_lr * gamma ** (number of milestones <= it)
    exp        lr = base_lr * gamma ** it
    inv        lr = base_lr * (1 + gamma * it) ** (-power)
    poly       lr = base_lr * (1 - min(it, max_iter) / max_iter) ** power
    sigmoid    lr = base_lr / (1 + exp(-gamma * (it - step_size)))
    cosine     lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * min(it, max_iter) / max_iter)) / 2
    warmup     lr = policy(it) * (start_factor + (1 - start_factor) * it / warmup_iters)  for it < warmup_iters
               lr = policy(it)                                                            afterwards

Because a policy holds no state, the iteration is its whole position: a solver that saves its
iteration resumes its schedule exactly.

A policy class may declare ``run_defaults``: the arguments a training run fills in from its length
(in iterations) when its config leaves them out, e.g. cosine's ``max_iter`` = the whole run
(``layerwise.train.build.build_policy_from_config`` applies them; there is no list of names there).

Example:
    >>> p = build_policy("multistep", 0.1, gamma=0.1, milestones=[10, 20])
    >>> [round(p(i), 6) for i in (0, 9, 10, 25)]
    [0.1, 0.1, 0.01, 0.001]
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..core.registry import lookup, register, registered
from .caffe_names import policy_options

__all__ = ["Fixed", "Step", "MultiStep", "Exp", "Inv", "Poly", "Sigmoid", "Cosine", "Warmup",
           "build_policy", "run_defaults", "RunDefault"]

#: How a run fills in an argument it was not given: ``rule(total_iterations, milestone_fractions)``.
RunDefault = Callable[[int, Sequence[float]], Any]


def _whole_run(total: int, fractions: Sequence[float]) -> int:
    return total


def _third_of_run(total: int, fractions: Sequence[float]) -> int:
    return max(1, total // 3)


def _fractions_of_run(total: int, fractions: Sequence[float]) -> list[int]:
    return sorted({max(1, int(round(f * total))) for f in fractions})


def _check_it(name: str, it: Any) -> int:
    if isinstance(it, bool) or not isinstance(it, (int,)) and not hasattr(it, "__index__"):
        raise TypeError(f"lr_policy {name}: the iteration must be an integer, got {it!r}")
    it = int(it)
    if it < 0:
        raise ValueError(f"lr_policy {name}: the iteration must be >= 0, got {it}")
    return it


def _check_lr(name: str, base_lr: float) -> float:
    base_lr = float(base_lr)
    if not math.isfinite(base_lr) or base_lr < 0:
        raise ValueError(f"lr_policy {name}: base_lr must be a finite number >= 0, got {base_lr}; "
                         "a learning rate is a step size, pass a positive value such as 0.01")
    return base_lr


def _positive(name: str, what: str, v: float, *, integer: bool = False, allow_zero: bool = False) -> Any:
    bad = (v < 0) if allow_zero else (v <= 0)
    if bad or (integer and int(v) != v):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"lr_policy {name}: {what} must be {kind} {'>=' if allow_zero else '>'} 0, got {v!r}")
    return int(v) if integer else float(v)


@register("lr_policy", "fixed")
@dataclass(frozen=True)
class Fixed:
    """lr = base_lr."""

    base_lr: float

    def __post_init__(self):
        object.__setattr__(self, "base_lr", _check_lr("fixed", self.base_lr))

    def __call__(self, it: int) -> float:
        _check_it("fixed", it)
        return self.base_lr


@register("lr_policy", "step")
@dataclass(frozen=True)
class Step:
    """lr = base_lr * gamma ** floor(it / step_size)  (Caffe ``step``, torch ``StepLR``)."""

    base_lr: float
    step_size: int
    gamma: float = 0.1
    #: a run not told step_size divides by gamma after each third of it
    run_defaults: ClassVar[Mapping[str, RunDefault]] = {"step_size": _third_of_run}

    def __post_init__(self):
        object.__setattr__(self, "base_lr", _check_lr("step", self.base_lr))
        object.__setattr__(self, "step_size", _positive("step", "step_size", self.step_size, integer=True))
        object.__setattr__(self, "gamma", _positive("step", "gamma", self.gamma))

    def __call__(self, it: int) -> float:
        it = _check_it("step", it)
        return self.base_lr * self.gamma ** (it // self.step_size)


@register("lr_policy", "multistep")
@dataclass(frozen=True)
class MultiStep:
    """lr = base_lr * gamma ** (number of milestones <= it)  (Caffe ``multistep``, torch ``MultiStepLR``)."""

    base_lr: float
    milestones: tuple[int, ...] = field(default=())
    gamma: float = 0.1
    #: a run not told its milestones places them at its config's fractions of the run (50%, 75%)
    run_defaults: ClassVar[Mapping[str, RunDefault]] = {"milestones": _fractions_of_run}

    def __post_init__(self):
        object.__setattr__(self, "base_lr", _check_lr("multistep", self.base_lr))
        ms = tuple(_positive("multistep", "each milestone", m, integer=True) for m in self.milestones)
        if list(ms) != sorted(set(ms)):
            raise ValueError(f"lr_policy multistep: milestones must be strictly increasing, got {list(ms)}")
        object.__setattr__(self, "milestones", ms)
        object.__setattr__(self, "gamma", _positive("multistep", "gamma", self.gamma))

    def __call__(self, it: int) -> float:
        it = _check_it("multistep", it)
        return self.base_lr * self.gamma ** sum(1 for m in self.milestones if m <= it)


@register("lr_policy", "exp")
@dataclass(frozen=True)
class Exp:
    """lr = base_lr * gamma ** it  (Caffe ``exp``, torch ``ExponentialLR``)."""

    base_lr: float
    gamma: float

    def __post_init__(self):
        object.__setattr__(self, "base_lr", _check_lr("exp", self.base_lr))
        object.__setattr__(self, "gamma", _positive("exp", "gamma", self.gamma))

    def __call__(self, it: int) -> float:
        return self.base_lr * self.gamma ** _check_it("exp", it)


@register("lr_policy", "inv")
@dataclass(frozen=True)
class Inv:
    """lr = base_lr * (1 + gamma * it) ** (-power)  (Caffe ``inv``)."""

    base_lr: float
    gamma: float
    power: float

    def __post_init__(self):
        object.__setattr__(self, "base_lr", _check_lr("inv", self.base_lr))
        object.__setattr__(self, "gamma", _positive("inv", "gamma", self.gamma, allow_zero=True))
        object.__setattr__(self, "power", _positive("inv", "power", self.power, allow_zero=True))

    def __call__(self, it: int) -> float:
        return self.base_lr * (1.0 + self.gamma * _check_it("inv", it)) ** (-self.power)


@register("lr_policy", "poly")
@dataclass(frozen=True)
class Poly:
    """lr = base_lr * (1 - min(it, max_iter) / max_iter) ** power  (Caffe ``poly``; 0 after max_iter)."""

    base_lr: float
    max_iter: int
    power: float = 1.0
    #: a run not told max_iter decays to 0 at its last iteration
    run_defaults: ClassVar[Mapping[str, RunDefault]] = {"max_iter": _whole_run}

    def __post_init__(self):
        object.__setattr__(self, "base_lr", _check_lr("poly", self.base_lr))
        object.__setattr__(self, "max_iter", _positive("poly", "max_iter", self.max_iter, integer=True))
        object.__setattr__(self, "power", _positive("poly", "power", self.power, allow_zero=True))

    def __call__(self, it: int) -> float:
        it = min(_check_it("poly", it), self.max_iter)
        return self.base_lr * (1.0 - it / self.max_iter) ** self.power


@register("lr_policy", "sigmoid")
@dataclass(frozen=True)
class Sigmoid:
    """lr = base_lr / (1 + exp(-gamma * (it - step_size)))  (Caffe ``sigmoid``; gamma < 0 decays)."""

    base_lr: float
    gamma: float
    step_size: int

    def __post_init__(self):
        object.__setattr__(self, "base_lr", _check_lr("sigmoid", self.base_lr))
        object.__setattr__(self, "gamma", float(self.gamma))
        object.__setattr__(self, "step_size", _positive("sigmoid", "step_size", self.step_size,
                                                        integer=True, allow_zero=True))

    def __call__(self, it: int) -> float:
        z = -self.gamma * (_check_it("sigmoid", it) - self.step_size)
        # NOTE: written so that exp never overflows (pytest turns the warning into an error).
        if z >= 0:
            return self.base_lr * math.exp(-z) / (1.0 + math.exp(-z))
        return self.base_lr / (1.0 + math.exp(z))


@register("lr_policy", "cosine")
@dataclass(frozen=True)
class Cosine:
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * min(it, max_iter) / max_iter)) / 2.

    torch's ``CosineAnnealingLR(T_max=max_iter, eta_min)`` in closed form; it stays at
    ``eta_min`` after ``max_iter`` (no restart).
    """

    base_lr: float
    max_iter: int
    eta_min: float = 0.0
    #: a run not told max_iter anneals over all of it
    run_defaults: ClassVar[Mapping[str, RunDefault]] = {"max_iter": _whole_run}

    def __post_init__(self):
        object.__setattr__(self, "base_lr", _check_lr("cosine", self.base_lr))
        object.__setattr__(self, "max_iter", _positive("cosine", "max_iter", self.max_iter, integer=True))
        object.__setattr__(self, "eta_min", _positive("cosine", "eta_min", self.eta_min, allow_zero=True))

    def __call__(self, it: int) -> float:
        it = min(_check_it("cosine", it), self.max_iter)
        return self.eta_min + (self.base_lr - self.eta_min) * (1.0 + math.cos(math.pi * it / self.max_iter)) / 2.0


@register("lr_policy", "warmup")
@dataclass(frozen=True)
class Warmup:
    """Linear warmup composed with any policy.

    lr = policy(it) * (start_factor + (1 - start_factor) * it / warmup_iters) while
    it < warmup_iters, then policy(it): torch's ``LinearLR(start_factor, total_iters=warmup_iters)``
    chained (multiplied) with the inner schedule, evaluated at the same iteration.
    """

    policy: Callable[[int], float]
    warmup_iters: int
    start_factor: float = 1.0 / 3.0

    def __post_init__(self):
        if not callable(self.policy):
            raise TypeError(f"lr_policy warmup: policy must be a callable iteration -> lr (e.g. "
                            f"build_policy('cosine', 0.1, max_iter=1000)), got {self.policy!r}")
        object.__setattr__(self, "warmup_iters", _positive("warmup", "warmup_iters", self.warmup_iters,
                                                           integer=True, allow_zero=True))
        sf = float(self.start_factor)
        if not 0.0 <= sf <= 1.0:
            raise ValueError(f"lr_policy warmup: start_factor must be in [0, 1], got {sf}")
        object.__setattr__(self, "start_factor", sf)

    def __call__(self, it: int) -> float:
        it = _check_it("warmup", it)
        lr = self.policy(it)
        if it < self.warmup_iters:
            lr *= self.start_factor + (1.0 - self.start_factor) * it / self.warmup_iters
        return lr


def build_policy(name: str, base_lr: float, **kw: Any) -> Callable[[int], float]:
    """Build a registered policy by name; accepts Caffe's ``stepsize`` and ``stepvalue`` too.

    For ``warmup`` pass ``policy`` (a name or a callable; default ``fixed``), ``warmup_iters``,
    ``start_factor`` and the inner policy's own arguments:
    ``build_policy("warmup", 0.1, policy="cosine", warmup_iters=100, max_iter=1000)``.

    Raises:
        KeyError: unknown policy name (the message lists the known ones).
        TypeError / ValueError: a missing, unknown or bad argument, naming the policy.
    """
    if not isinstance(name, str):
        raise TypeError(f"build_policy: the policy name must be a string, got {name!r}")
    kw = policy_options(kw, f"lr_policy {name}")
    cls = lookup("lr_policy", name)
    if cls is Warmup:
        inner = kw.pop("policy", "fixed")
        outer = {k: kw.pop(k) for k in ("warmup_iters", "start_factor") if k in kw}
        if "warmup_iters" not in outer:
            raise TypeError("lr_policy warmup: warmup_iters is required (the number of iterations of the ramp)")
        inner = build_policy(inner, base_lr, **kw) if isinstance(inner, str) else inner
        return Warmup(inner, **outer)
    accepted = [p for p in inspect.signature(cls).parameters if p != "base_lr"]
    unknown = sorted(set(kw) - set(accepted))
    if unknown:
        raise TypeError(f"lr_policy {name}: unknown argument(s) {unknown}; {name} accepts {accepted}")
    try:
        return cls(base_lr, **kw)
    except TypeError as e:  # a missing required argument
        raise TypeError(f"lr_policy {name}: {e}; {name} accepts {accepted}") from None


def run_defaults(name: str, total: int, fractions: Sequence[float] = (0.5, 0.75)) -> dict[str, Any]:
    """The arguments of policy ``name`` a run of ``total`` iterations fills in when not given
    (``run_defaults`` of the policy's class; {} for a policy without any)."""
    rules: Mapping[str, RunDefault] = getattr(lookup("lr_policy", name), "run_defaults", {})
    return {arg: rule(int(total), fractions) for arg, rule in rules.items()}


def policy_names() -> list[str]:
    """The registered policy names."""
    return registered("lr_policy")
