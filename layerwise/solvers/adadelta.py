"""AdaDelta: a step whose units follow from running averages of squared gradients and steps."""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..core.param import Param
from ..core.registry import register
from .base import Policy, Solver

__all__ = ["AdaDelta", "Adadelta"]


@register("solver", "adadelta")
class AdaDelta(Solver):
    """AdaDelta (Zeiler, 2012).

    Both running averages start at 0; per coordinate:

        E[g^2]  <- rho * E[g^2] + (1 - rho) * g^2
        dX       = - sqrt(E[dX^2] + eps) / sqrt(E[g^2] + eps) * g      i.e. -RMS[dX]_{t-1} / RMS[g]_t * g
        E[dX^2] <- rho * E[dX^2] + (1 - rho) * dX^2
        X       <- X + lr * dX

    Zeiler's method has no learning rate (lr = 1, the default). Caffe and torch.optim.Adadelta
    both multiply the step by lr AFTER it enters E[dX^2], as here.

    Args:
        params, lr: see ``Solver``.
        rho: decay of both running averages, in [0, 1] (Caffe's ``momentum`` for AdaDelta).
        eps: inside both square roots (Caffe's ``delta``).
        weight_decay, regularization, clip_gradients, iter_size: see ``Solver``.

    Buffers: ``square_avg.<param>`` (E[g^2]), ``acc_delta.<param>`` (E[dX^2]).
    """

    buffer_names = ("square_avg", "acc_delta")

    def __init__(self, params: Any, lr: float | Policy = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, *, regularization: str = "L2",
                 clip_gradients: float | None = None, iter_size: int = 1) -> None:
        super().__init__(params, lr, weight_decay=weight_decay, regularization=regularization,
                         clip_gradients=clip_gradients, iter_size=iter_size)
        self.rho = self._check_range("rho", rho, 0.0, 1.0, hi_open=False)
        self.eps = self._check_nonneg("eps", eps)

    def _update(self, name: str, p: Param, g: Any, lr: float) -> None:
        xp = get_array_module(p.data)
        rho = self.rho
        sq, acc = self.buffer("square_avg", name), self.buffer("acc_delta", name)
        sq *= rho
        sq += (1.0 - rho) * g * g
        delta = xp.sqrt(acc + self.eps) / xp.sqrt(sq + self.eps) * g      # -dX
        acc *= rho
        acc += (1.0 - rho) * delta * delta
        p.data -= lr * delta


Adadelta = AdaDelta  # torch.optim's spelling
