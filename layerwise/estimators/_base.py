"""The shared fitting loop: an objective from ``layerwise.objectives`` minimised by a solver
from ``layerwise.solvers``, plus the small helpers the estimators share.

    params, n_iter, losses = minimise(objective, {"w": w0}, solver="nesterov", lr=0.1, ...)

``objective(params) -> (value, grads)`` takes and returns dicts keyed like ``params``. Each
iteration writes the gradients into the Params' ``grad`` and calls ``solver.step()``: the same
rule, learning-rate policy, clipping and decay as a network's training step.
"""
from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..core.param import Param
from ..solvers import build_solver

__all__ = ["minimise", "check_solver_params", "add_intercept_column"]

Objective = Callable[[dict[str, np.ndarray]], "tuple[float, Mapping[str, np.ndarray]]"]

#: iterations in a row without an improvement of more than tol before the loop stops
N_ITER_NO_CHANGE = 10


def real_number(v: Any) -> float | None:
    """``v`` as a float when it is a real number (a bool is not), else None."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return None
    return float(v)


def check_solver_params(owner: str, solver: Any, lr: Any, max_iter: Any, tol: Any, exact: tuple[str, ...] = (),
                        allow_auto: bool = False) -> None:
    """Validate the common iterative parameters in ``fit`` (scikit-learn validates there, not in __init__).
    ``exact`` names the estimator's own procedures; ``allow_auto``: lr may be "auto" (1 / Lipschitz)."""
    from ..core.registry import registered

    names = {s.lower() for s in registered("solver")}
    if not isinstance(solver, str) or (solver.lower() not in names and solver not in exact):
        known = ", ".join(list(exact) + sorted(names))
        raise ValueError(f"{owner}: solver must be one of {known}, got {solver!r}")
    rate = real_number(lr)
    if not (allow_auto and isinstance(lr, str) and lr == "auto") and (
            rate is None or not rate > 0 or not math.isfinite(rate)):
        want = "'auto' (1 / the gradient's Lipschitz constant) or a number > 0" if allow_auto else "a number > 0"
        raise ValueError(f"{owner}: lr must be {want}, got {lr!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or int(max_iter) < 1:
        raise ValueError(f"{owner}: max_iter must be an integer >= 1, got {max_iter!r}")
    t = real_number(tol)
    if t is None or not t >= 0:
        raise ValueError(f"{owner}: tol must be a number >= 0, got {tol!r}")


def add_intercept_column(X: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """X with a trailing column of ones when the model has an intercept (it is the last weight)."""
    return np.hstack([X, np.ones((X.shape[0], 1))]) if fit_intercept else X


def minimise(objective: Objective, params: Mapping[str, np.ndarray], *, solver: str = "nesterov",
             lr: float = 0.01, max_iter: int = 100, tol: float = 1e-6, lr_policy: str | None = None,
             solver_options: Mapping[str, Any] | None = None, owner: str = "minimise",
             keep_best: bool = True, n_iter_no_change: int | None = N_ITER_NO_CHANGE
             ) -> tuple[dict[str, np.ndarray], int, list[float]]:
    """Minimise ``objective`` over ``params`` with a layerwise solver.

    Stops when the gradient's largest entry is <= tol, or (with ``n_iter_no_change``, for
    non-smooth objectives whose subgradient never vanishes) when the objective has not improved
    by more than ``tol * max(1, |best|)`` for that many iterations in a row (scikit-learn's SGD
    rule); otherwise after ``max_iter`` steps with a ``ConvergenceWarning``.

    Args:
        objective: ``params -> (value, grads)``, both dicts keyed like ``params`` (float64).
        params: the starting point (arrays are copied; Params, e.g. a net's own, are updated in place).
        solver: a registered solver name (``sgd``, ``nesterov``, ``adam``, ``rmsprop``, ...).
        lr: the base learning rate.
        max_iter: the most solver steps.
        tol: the stopping tolerance (above).
        lr_policy: a learning-rate policy name (``inv``, ``step``, ``cosine``...); its arguments and
            the solver's own options (momentum, betas...) come in ``solver_options``.
        owner: the estimator's name, for messages.
        keep_best: return the iterate with the lowest objective seen (the pocket rule: with a
            subgradient or a noisy rule the last iterate is not the best) instead of the last.
        n_iter_no_change: see above; None: stop on the gradient only (smooth objectives, where
            momentum makes the objective non-monotone).

    Returns:
        (params at the end, iterations run, objective value at each iteration).

    Raises:
        FloatingPointError: the objective became inf/NaN (the message says to lower lr).
    """
    P = {k: v if isinstance(v, Param) else Param(np.array(v, dtype=np.float64, copy=True), name=k)
         for k, v in params.items()}
    cfg = dict(solver_options or {})
    if lr_policy is not None and str(lr_policy).lower() != "fixed":
        cfg["lr_policy"] = lr_policy
    opt = build_solver(solver, P, lr=float(lr), **cfg)
    best, best_params, stall, losses = math.inf, None, 0, []
    converged = False
    for it in range(max_iter):
        with np.errstate(over="ignore", invalid="ignore"):      # a diverging run is reported just below
            value, grads = objective({k: p.data for k, p in P.items()})
        value = float(value)
        if not math.isfinite(value):
            raise FloatingPointError(f"{owner}: the objective became {value} at iteration {it} with solver "
                                     f"{solver!r}, lr={lr:g}; lower lr")
        losses.append(value)
        improved = not math.isfinite(best) or value < best - tol * max(1.0, abs(best))
        stall = 0 if improved else stall + 1
        if value < best:
            best = value
            if keep_best:
                best_params = {k: p.data.copy() for k, p in P.items()}
        gmax = max(float(np.max(np.abs(g))) if np.size(g) else 0.0 for g in grads.values())
        if gmax <= tol or (n_iter_no_change is not None and stall >= n_iter_no_change):
            converged = True
            break
        for k, g in grads.items():
            P[k].grad[...] = g
        opt.step()
    n_iter = len(losses)
    last = {k: p.data.copy() for k, p in P.items()}
    if not converged:
        warnings.warn(f"{owner}: solver {solver!r} did not converge in max_iter={max_iter} iterations "
                      f"(tol={tol:g}); increase max_iter or lr", ConvergenceWarning, stacklevel=3)
        with np.errstate(over="ignore", invalid="ignore"):
            final = float(objective(last)[0])                # the last step's result is not evaluated yet
        if keep_best and final < best:
            best_params = last
    out = best_params if keep_best and best_params is not None else last
    return out, n_iter, losses
