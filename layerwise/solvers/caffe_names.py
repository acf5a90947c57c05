"""Caffe's names and Caffe's defaults, in one place: every reader of Caffe's spelling uses these tables.

layerwise's own names are PyTorch's (``lr``, ``eps``, ``betas``, ``step_size``); Caffe's solver.prototxt
(caffe.proto's ``SolverParameter``) calls the same things ``base_lr``, ``delta``, ``momentum`` /
``momentum2``, ``stepsize``. The training config (``layerwise.config``), ``build_solver``,
``build_policy`` and the lr schedule of a run (``layerwise.train.build``) all translate through
this module, and only this module knows the two vocabularies.

Caffe's names mean Caffe's defaults: a solver spec that uses any Caffe-only key (``type``,
``solver_type``, ``base_lr``, ``delta``, ``momentum2``, ``rms_decay``, ``regularization_type``,
``stepsize``, ``stepvalue``) gets, for every option it leaves out, the default caffe.proto gives
that field (``CAFFE_SOLVER_DEFAULTS``), not PyTorch's. docs/solvers.md sets the two tables side by
side.
"""
from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CONFIG_ALIASES", "SOLVER_POLICY_KEYS", "SOLVER_OPTIONS", "MOMENTUM_MEANS", "POLICY_OPTIONS",
           "CAFFE_ONLY_KEYS", "CAFFE_SOLVER_DEFAULTS", "speaks_caffe", "caffe_defaults",
           "given_option", "solver_options", "takes_option", "policy_options"]

# --------------------------------------------------------------------------------- the config file
#: Other spellings of the training config's keys, per section ("" = the top level) -> ours: Caffe's
#: solver.prototxt names (base_lr, type, solver_type, snapshot, random_seed) and a few common ones.
CONFIG_ALIASES: dict[str, dict[str, str]] = {
    "solver": {"base_lr": "lr", "type": "name", "solver_type": "name", "weight_decay_l2": "weight_decay"},
    "lr_policy": {"type": "name", "policy": "name", "warmup": "warmup_epochs"},
    "model": {"type": "name", "args": "kwargs"},
    "data": {"dataset": "name", "path": "root"},
    "augment": {"padding": "crop_padding", "random_crop": "crop_padding", "mirror": "flip", "hflip": "flip"},
    "": {"max_epoch": "epochs", "max_epochs": "epochs", "batch": "batch_size",
         "snapshot": "checkpoint_every", "snapshot_every": "checkpoint_every", "random_seed": "seed",
         "output_dir": "out_dir", "augmentation": "augment", "optimizer": "solver", "scheduler": "lr_policy",
         "lr_schedule": "lr_policy", "dataset": "data"},
}

#: Caffe's solver.prototxt keeps the lr policy inside the solver: these solver keys move to the config's
#: ``lr_policy`` section, to the named field, or (None) into ``lr_policy.kwargs``.
SOLVER_POLICY_KEYS: dict[str, str | None] = {"lr_policy": "name", "gamma": None, "power": None, "stepsize": None,
                                             "stepvalue": None, "warmup_epochs": "warmup_epochs"}

# ------------------------------------------------------------------------------ solver options
#: Caffe's SolverParameter field -> the solver constructors' argument, for every solver.
SOLVER_OPTIONS: dict[str, str] = {"base_lr": "lr", "delta": "eps", "rms_decay": "alpha",
                                  "regularization_type": "regularization"}

#: Caffe reuses ``momentum`` (and ``momentum2``) as each rule's decay rates: what they mean per solver
#: (keyed by the solver class's lower-cased name). ``beta1``/``beta2`` are the halves of ``betas``.
#: Everywhere else ``momentum`` is the solver's own ``momentum`` argument (SGD, Nesterov, RMSProp).
MOMENTUM_MEANS: dict[str, dict[str, str]] = {
    "adam": {"momentum": "beta1", "momentum2": "beta2"},
    "adamw": {"momentum": "beta1", "momentum2": "beta2"},
    "adadelta": {"momentum": "rho"},
}

#: Caffe's lr-policy fields -> the policies' arguments.
POLICY_OPTIONS: dict[str, str] = {"stepsize": "step_size", "stepvalue": "milestones"}

#: Keys only Caffe uses: a solver spec with any of them speaks Caffe (and gets Caffe's defaults).
CAFFE_ONLY_KEYS = frozenset({"type", "solver_type", "base_lr", "delta", "momentum2", "rms_decay",
                             "regularization_type", "stepsize", "stepvalue"})

# ------------------------------------------------------------------------------ Caffe's defaults
#: caffe.proto's SolverParameter: the value of each field a solver.prototxt leaves out, for the solvers
#: that take it (AdaGrad takes no momentum, SGD no delta). ``nesterov`` is ours: Caffe's SGD type is plain
#: momentum (its Nesterov is a type of its own). ``base_lr`` is left out on purpose: Caffe's 0 trains
#: nothing, so the learning rate always comes from the spec (or the config's default).
CAFFE_SOLVER_DEFAULTS: dict[str, Any] = {"momentum": 0.0, "weight_decay": 0.0, "delta": 1e-8, "momentum2": 0.999,
                                         "rms_decay": 0.99, "nesterov": False}


def speaks_caffe(keys: Iterable[Any]) -> bool:
    """Whether a solver spec with these keys uses Caffe's names (any of ``CAFFE_ONLY_KEYS``)."""
    return any(str(k) in CAFFE_ONLY_KEYS for k in keys)


def _renames(cls: type) -> dict[str, str]:
    return {**SOLVER_OPTIONS, **MOMENTUM_MEANS.get(cls.__name__.lower(), {})}


def given_option(cls: type, key: str, given: Iterable[Any]) -> bool:
    """Whether the option names ``given`` already set what ``key`` means for solver class ``cls``,
    under our name or Caffe's (for Adam, ``momentum`` is set by ``momentum``, ``beta1`` or ``betas``)."""
    keys = {str(k) for k in given}
    target = _renames(cls).get(key, key)
    return key in keys or target in keys or (target in ("beta1", "beta2") and "betas" in keys)


def caffe_defaults(cls: type, given: Iterable[str]) -> dict[str, Any]:
    """Caffe's defaults (under Caffe's names) of the options solver class ``cls`` takes that ``given``
    sets under neither name: ``caffe_defaults(Adam, ["base_lr"])`` is ``{"momentum": 0.0,
    "momentum2": 0.999, "delta": 1e-8, "weight_decay": 0.0}`` (so Adam's beta1 is 0, as in Caffe)."""
    keys = {str(k) for k in given}
    return {k: v for k, v in CAFFE_SOLVER_DEFAULTS.items() if takes_option(cls, k) and not given_option(cls, k, keys)}


def takes_option(cls: type, key: str) -> bool:
    """Whether solver class ``cls`` takes option ``key`` under our name or Caffe's (``momentum`` for
    Adam means beta1: True)."""
    accepted = set(inspect.signature(cls).parameters)
    target = _renames(cls).get(key, key)
    return target in accepted or (target in ("beta1", "beta2") and "betas" in accepted)


def solver_options(cls: type, options: Mapping[str, Any], tag: str) -> dict[str, Any]:
    """``options`` with Caffe's names replaced by ``cls``'s constructor arguments.

    ``base_lr`` -> ``lr``, ``delta`` -> ``eps``, ``rms_decay`` -> ``alpha``, ``regularization_type`` ->
    ``regularization``; for Adam(W) ``momentum``/``momentum2`` -> ``betas``, for AdaDelta ``momentum``
    -> ``rho``. ``beta1``/``beta2`` fill the halves of ``betas`` (the other half keeps the given
    ``betas`` or the constructor's default).

    Raises:
        TypeError: an option given under both names (``lr`` and ``base_lr``, ``betas`` and ``momentum``).
    """
    out = dict(options)
    for caffe, ours in _renames(cls).items():
        if caffe in out:
            if ours in out:
                raise TypeError(f"{tag}: both {caffe!r} and {ours!r} given; use one")
            out[ours] = out.pop(caffe)
    if "beta1" in out or "beta2" in out:
        if "betas" in out:
            given = sorted(k for k in ("beta1", "beta2") if k in out)
            raise TypeError(f"{tag}: both 'betas' and {given} given (momentum and momentum2 are Caffe's beta1 "
                            "and beta2); use one")
        param = inspect.signature(cls).parameters.get("betas")
        if param is None:
            raise TypeError(f"{tag}: beta1/beta2 (Caffe's momentum/momentum2) are Adam's; {cls.__name__} has no betas")
        b1, b2 = param.default
        out["betas"] = (out.pop("beta1", b1), out.pop("beta2", b2))
    return out


def policy_options(options: Mapping[str, Any], tag: str) -> dict[str, Any]:
    """``options`` with Caffe's lr-policy names (``stepsize``, ``stepvalue``) replaced by ours.

    Raises:
        TypeError: an argument given under both names (``stepsize`` and ``step_size``).
    """
    out = dict(options)
    for caffe, ours in POLICY_OPTIONS.items():
        if caffe in out:
            if ours in out:
                raise TypeError(f"{tag}: both {caffe!r} and {ours!r} given; use one")
            out[ours] = out.pop(caffe)
    return out
