"""RMSProp: divide the gradient by a running average of its recent magnitude."""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..core.param import Param
from ..core.registry import register
from .base import Policy, Solver

__all__ = ["RMSProp", "RMSprop"]


@register("solver", "rmsprop")
class RMSProp(Solver):
    """RMSProp (Tieleman and Hinton, 2012).

    Per coordinate, MS starting at 0:

        MS <- alpha * MS + (1 - alpha) * g^2
        X  <- X - lr * g / (sqrt(MS) + eps)

    (the decay is ``alpha``, torch's name for Caffe's ``rms_decay``; Caffe's ``delta`` is
    ``eps``). Caffe and torch.optim.RMSprop agree on this form. torch's options are here too:

        centered:  A <- alpha * A + (1 - alpha) * g;  the denominator is sqrt(MS - A^2) + eps
        momentum:  B <- momentum * B + g / denominator;  X <- X - lr * B

    Args:
        params, lr: see ``Solver``.
        alpha: decay of the mean square, in [0, 1).
        eps: added to the root mean square.
        weight_decay, regularization, clip_gradients, iter_size: see ``Solver``.
        momentum: torch's momentum on the scaled step, in [0, 1).
        centered: divide by the estimated standard deviation instead of the RMS.

    Buffers: ``square_avg.<param>``; ``momentum.<param>`` when momentum > 0;
    ``grad_avg.<param>`` when centered.
    """

    def __init__(self, params: Any, lr: float | Policy = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 regularization: str = "L2", clip_gradients: float | None = None, iter_size: int = 1) -> None:
        super().__init__(params, lr, weight_decay=weight_decay, regularization=regularization,
                         clip_gradients=clip_gradients, iter_size=iter_size)
        self.alpha = self._check_range("alpha", alpha, 0.0, 1.0)
        self.eps = self._check_nonneg("eps", eps)
        self.momentum = self._check_range("momentum", momentum, 0.0, 1.0)
        self.centered = bool(centered)
        self.buffer_names = (("square_avg",) + (("momentum",) if self.momentum > 0 else ())
                             + (("grad_avg",) if self.centered else ()))

    def _update(self, name: str, p: Param, g: Any, lr: float) -> None:
        xp = get_array_module(p.data)
        a = self.alpha
        ms = self.buffer("square_avg", name)
        ms *= a
        ms += (1.0 - a) * g * g
        if self.centered:
            ga = self.buffer("grad_avg", name)
            ga *= a
            ga += (1.0 - a) * g
            denom = xp.sqrt(ms - ga * ga) + self.eps
        else:
            denom = xp.sqrt(ms) + self.eps
        if self.momentum > 0:
            b = self.buffer("momentum", name)
            b *= self.momentum
            b += g / denom
            p.data -= lr * b
        else:
            p.data -= lr * g / denom


RMSprop = RMSProp  # torch.optim's spelling
