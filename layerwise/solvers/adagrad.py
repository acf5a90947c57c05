"""AdaGrad: per-coordinate learning rates from the sum of all past squared gradients."""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..core.param import Param
from ..core.registry import register
from .base import Policy, Solver

__all__ = ["AdaGrad", "Adagrad"]


@register("solver", "adagrad")
class AdaGrad(Solver):
    """AdaGrad (Duchi, Hazan and Singer, 2011).

    For each coordinate i, at update t = 1, 2, ...:

        H_i <- H_i + g_i^2                        (H starts at initial_accumulator_value)
        X_i <- X_i - lr_t * g_i / (sqrt(H_i) + eps),    lr_t = lr / (1 + (t - 1) * lr_decay)

    Caffe and torch.optim.Adagrad agree on this form (eps outside the square root).
    A coordinate with large past gradients gets a small step, a rarely-moving one a large step.

    Args:
        params, lr: see ``Solver``.
        lr_decay: torch's extra 1 / (1 + (t - 1) * lr_decay) factor (0: off).
        weight_decay, regularization, clip_gradients, iter_size: see ``Solver``.
        initial_accumulator_value: the starting value of H (>= 0).
        eps: added to sqrt(H) (Caffe's ``delta``).

    Buffers: ``sum.<param>`` (H).
    """

    buffer_names = ("sum",)

    def __init__(self, params: Any, lr: float | Policy = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, regularization: str = "L2",
                 clip_gradients: float | None = None, iter_size: int = 1) -> None:
        super().__init__(params, lr, weight_decay=weight_decay, regularization=regularization,
                         clip_gradients=clip_gradients, iter_size=iter_size)
        self.lr_decay = self._check_nonneg("lr_decay", lr_decay)
        self.initial_accumulator_value = self._check_nonneg("initial_accumulator_value", initial_accumulator_value)
        self.eps = self._check_nonneg("eps", eps)

    def _update(self, name: str, p: Param, g: Any, lr: float) -> None:
        xp = get_array_module(p.data)
        h = self.buffer("sum", name, fill=self.initial_accumulator_value)
        h += g * g
        lr_t = lr / (1.0 + self.iteration * self.lr_decay)
        p.data -= lr_t * g / (xp.sqrt(h) + self.eps)


Adagrad = AdaGrad  # torch.optim's spelling
