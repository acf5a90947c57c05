"""Critical points of a 2-D test function, told apart by the eigenvalues of the Hessian.

At a critical point the gradient is 0; the second-order Taylor expansion
f(p + d) ~ f(p) + 1/2 d^T H d then decides what it is:

    all eigenvalues of H > 0          minimum  (f grows in every direction)
    all eigenvalues of H < 0          maximum
    eigenvalues of both signs         saddle   (f falls along the negative eigenvectors)
    an eigenvalue ~ 0                 degenerate (second order does not decide)

A gradient-norm stopping rule (stop when ||grad f|| < tol) stops at all of them alike; the
Hessian is what tells a minimum from a saddle. ``find_critical_points`` finds every critical
point in the plotted box by Newton's method on grad f = 0 from a grid of starts (Newton's
step goes to saddles and maxima as readily as to minima, which is why it finds them all).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

__all__ = ["CriticalPoint", "hessian", "classify", "find_critical_points"]

KINDS = ("minimum", "maximum", "saddle", "degenerate")


class CriticalPoint(NamedTuple):
    point: tuple[float, float]
    kind: str                          # one of KINDS
    eigenvalues: tuple[float, float]   # of the Hessian, ascending
    value: float                       # f at the point


def hessian(grad: Callable[[Any, Any], np.ndarray], x: Any, y: Any, h: float = 1e-5) -> np.ndarray:
    """The Hessian by central differences of the analytic gradient, symmetrised.

    ``x``, ``y`` are floats (returns (2, 2)) or arrays of n points (returns (n, 2, 2)).
    The error is O(h^2) from the third derivatives plus ~eps |grad| / h from rounding.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    gx = (np.asarray(grad(x + h, y)) - np.asarray(grad(x - h, y))) / (2 * h)    # column d grad / dx
    gy = (np.asarray(grad(x, y + h)) - np.asarray(grad(x, y - h))) / (2 * h)
    H = np.stack([gx, gy], axis=-1)                 # (2, [n,] 2): H[i, j] = d g_i / d p_j
    H = np.moveaxis(H, 0, -2)                       # ([n,] 2, 2)
    return 0.5 * (H + np.swapaxes(H, -1, -2))


def classify(H: np.ndarray, rtol: float = 1e-6) -> tuple[str, tuple[float, float]]:
    """The kind of a critical point from its Hessian (2, 2) and the eigenvalues, ascending.

    An eigenvalue counts as 0 when |lambda| <= rtol * max(1, max |lambda|).
    """
    lam = np.linalg.eigvalsh(np.asarray(H, np.float64))
    zero = rtol * max(1.0, float(np.abs(lam).max()))
    if np.any(np.abs(lam) <= zero):
        kind = "degenerate"
    elif lam[0] > 0:
        kind = "minimum"
    elif lam[-1] < 0:
        kind = "maximum"
    else:
        kind = "saddle"
    return kind, (float(lam[0]), float(lam[1]))


def find_critical_points(f: Callable[[Any, Any], Any], grad: Callable[[Any, Any], np.ndarray],
                         xlim: tuple[float, float], ylim: tuple[float, float], *, grid: int = 21,
                         iters: int = 60, gtol: float = 1e-9) -> list[CriticalPoint]:
    """Every critical point of f in the box xlim x ylim, classified, sorted by f.

    Newton's method x <- x - H^+ grad f (pseudo-inverse, step capped at a tenth of the box)
    runs from a grid x grid of starts at once; the points where ||grad f|| < gtol (relative to
    the gradient's scale over the box) inside the box are kept, duplicates merged.
    """
    xs = np.linspace(*xlim, grid)
    ys = np.linspace(*ylim, grid)
    X, Y = (a.ravel() for a in np.meshgrid(xs, ys))
    P = np.stack([X, Y], axis=1)                                       # (n, 2)
    span = max(xlim[1] - xlim[0], ylim[1] - ylim[0])
    g_scale = max(1.0, float(np.median(np.linalg.norm(np.asarray(grad(X, Y)).T, axis=1))))
    for _ in range(iters):
        g = np.asarray(grad(P[:, 0], P[:, 1])).T                       # (n, 2)
        step = np.einsum("nij,nj->ni", np.linalg.pinv(hessian(grad, P[:, 0], P[:, 1])), g)
        norm = np.linalg.norm(step, axis=1, keepdims=True)
        P = P - step * np.minimum(1.0, 0.1 * span / np.maximum(norm, 1e-300))
        P = np.where(np.isfinite(P), P, 1e6)                           # diverged: out of the box
    g = np.linalg.norm(np.asarray(grad(P[:, 0], P[:, 1])).T, axis=1)
    inside = ((P[:, 0] >= xlim[0]) & (P[:, 0] <= xlim[1]) & (P[:, 1] >= ylim[0]) & (P[:, 1] <= ylim[1]))
    found: list[CriticalPoint] = []
    for p in P[inside & (g < gtol * g_scale)]:
        if any(np.hypot(p[0] - c.point[0], p[1] - c.point[1]) < 1e-5 * span for c in found):
            continue
        kind, lam = classify(hessian(grad, p[0], p[1]))
        found.append(CriticalPoint((float(p[0]), float(p[1])), kind, lam, float(f(p[0], p[1]))))
    return sorted(found, key=lambda c: c.value)
