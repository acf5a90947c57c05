"""Stochastic gradient descent: plain, with momentum, and Nesterov's accelerated gradient (NAG)."""
from __future__ import annotations

from typing import Any

from ..core.param import Param
from ..core.registry import register
from .base import Policy, Solver

__all__ = ["SGD", "Nesterov"]

_STYLES = ("caffe", "torch")


@register("solver", "sgd", "SGD")
class SGD(Solver):
    """Gradient descent, optionally with momentum or Nesterov momentum.

    Plain (momentum = 0):   X <- X - lr * g

    Momentum, ``momentum_style="caffe"`` (Caffe's SGDSolver; the default). V is the velocity and
    holds the learning rate:

        V <- mu * V - lr * g
        X <- X + V

    Momentum, ``momentum_style="torch"`` (torch.optim.SGD). B is a sum of gradients and the
    learning rate is applied outside it:

        B <- mu * B + (1 - dampening) * g      (first step: B = g)
        X <- X - lr * B

    With a constant lr the two are the same trajectory (V = -lr * B). They differ when lr
    changes: Caffe's velocity keeps the old lr's steps and decays them by mu, torch rescales
    the whole velocity at once.

    Nesterov (NAG, ``nesterov=True``): the gradient is taken at the look-ahead point X + mu V,

        V <- mu * V - lr * grad f(X + mu V);   X <- X + V.

    Changing variables to the look-ahead point Y = X + mu V (which is what the parameters hold,
    so the gradient the net computes is the one the rule needs) gives

        caffe:  V' = mu * V - lr * g;   Y <- Y + (1 + mu) * V' - mu * V
        torch:  B  = mu * B + g;        Y <- Y - lr * (g + mu * B)

    Args:
        params: see ``Solver``.
        lr: learning rate (number or policy).
        momentum: mu in [0, 1).
        dampening: torch's dampening of the gradient in the momentum sum, in [0, 1].
        weight_decay: L2 (or L1) coefficient, see ``Solver``.
        nesterov: use NAG (needs momentum > 0 and dampening = 0).
        momentum_style: ``"caffe"`` (lr inside V) or ``"torch"`` (lr outside B).
        regularization, clip_gradients, iter_size: see ``Solver``.

    Buffers: ``momentum.<param>`` (V or B) when momentum > 0.
    """

    def __init__(self, params: Any, lr: float | Policy = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, momentum_style: str = "caffe",
                 regularization: str = "L2", clip_gradients: float | None = None, iter_size: int = 1) -> None:
        super().__init__(params, lr, weight_decay=weight_decay, regularization=regularization,
                         clip_gradients=clip_gradients, iter_size=iter_size)
        self.momentum = self._check_range("momentum", momentum, 0.0, 1.0)
        self.dampening = self._check_range("dampening", dampening, 0.0, 1.0, hi_open=False)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError(f"{self._tag()}: Nesterov momentum needs momentum > 0 and dampening = 0, got "
                             f"momentum={self.momentum}, dampening={self.dampening}")
        if momentum_style not in _STYLES:
            raise ValueError(f"{self._tag()}: momentum_style must be one of {_STYLES}, got {momentum_style!r}")
        self.momentum_style = momentum_style
        self.buffer_names = ("momentum",) if self.momentum > 0 else ()

    def _update(self, name: str, p: Param, g: Any, lr: float) -> None:
        mu = self.momentum
        if mu == 0:
            p.data -= lr * g
            return
        first = self.iteration == 0  # torch fills the buffer with the undampened gradient first
        keep = 1.0 if first else 1.0 - self.dampening
        v = self.buffer("momentum", name)
        if self.momentum_style == "caffe":
            if self.nesterov:
                v_prev = v.copy()
                v *= mu
                v -= (lr * keep) * g                  # V <- mu V - lr g
                p.data += (1.0 + mu) * v - mu * v_prev
            else:
                v *= mu
                v -= (lr * keep) * g                  # V <- mu V - lr g
                p.data += v
        else:
            v *= mu
            v += keep * g                             # B <- mu B + (1 - d) g
            p.data -= lr * (g + mu * v) if self.nesterov else lr * v


@register("solver", "nesterov", "NAG")
class Nesterov(SGD):
    """Nesterov's accelerated gradient (Caffe's NesterovSolver): ``SGD(nesterov=True)`` with
    momentum 0.9 by default.

    V <- mu * V - lr * grad f(X + mu V);  X <- X + V   (see ``SGD`` for the form actually run).

    ``momentum=0`` is allowed, as in Caffe (whose default it is, when a solver.prototxt says
    ``type: "Nesterov"`` without a momentum): the step is then plain gradient descent.
    ``SGD(nesterov=True, momentum=0)`` is refused, as torch.optim.SGD refuses it.
    """

    def __init__(self, params: Any, lr: float | Policy = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0,
                 *, momentum_style: str = "caffe", regularization: str = "L2",
                 clip_gradients: float | None = None, iter_size: int = 1) -> None:
        super().__init__(params, lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum != 0,
                         momentum_style=momentum_style, regularization=regularization,
                         clip_gradients=clip_gradients, iter_size=iter_size)
