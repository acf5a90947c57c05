"""Adam and AdamW: momentum on the gradient, per-coordinate scale from its running square."""
from __future__ import annotations

import math
from typing import Any

from ..backend import get_array_module
from ..core.param import Param
from ..core.registry import register
from .base import Policy, Solver

__all__ = ["Adam", "AdamW"]

_STYLES = ("caffe", "torch")


@register("solver", "adam")
class Adam(Solver):
    """Adam (Kingma and Ba, 2015): adaptive moment estimation.

    m and v start at 0; at update t = 1, 2, ... (t = iteration + 1):

        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2

    ``eps_style="caffe"`` (Caffe's AdamSolver and section 2 of the paper; the default): the
    bias corrections are folded into the step size and eps is added to sqrt(v):

        X <- X - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)

    ``eps_style="torch"`` (torch.optim.Adam, Algorithm 1 of the paper): eps is added to the
    bias-corrected root:

        X <- X - lr * m_hat / (sqrt(v_hat) + eps),   m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t)

    The two differ only through eps: Caffe's equals torch's with eps * sqrt(1 - beta2^t), a
    smaller eps in the first few thousand updates. ``amsgrad=True`` uses vmax = max(vmax, v)
    in place of v. ``weight_decay`` is L2 added to the gradient (torch's Adam); see ``AdamW``
    for decoupled decay.

    Args:
        params, lr: see ``Solver``.
        betas: (beta1, beta2), each in [0, 1) (Caffe's ``momentum``, ``momentum2``).
        eps: Caffe's ``delta``.
        weight_decay, regularization, clip_gradients, iter_size: see ``Solver``.
        amsgrad: keep the running maximum of v.
        eps_style: ``"caffe"`` or ``"torch"``, where eps goes (above).

    Buffers: ``exp_avg.<param>`` (m), ``exp_avg_sq.<param>`` (v), ``max_exp_avg_sq.<param>``
    with amsgrad.
    """

    def __init__(self, params: Any, lr: float | Policy = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 eps_style: str = "caffe", regularization: str = "L2", clip_gradients: float | None = None,
                 iter_size: int = 1) -> None:
        super().__init__(params, lr, weight_decay=weight_decay, regularization=regularization,
                         clip_gradients=clip_gradients, iter_size=iter_size)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{self._tag()}: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (self._check_range("betas[0]", betas[0], 0.0, 1.0),
                      self._check_range("betas[1]", betas[1], 0.0, 1.0))
        self.eps = self._check_nonneg("eps", eps)
        self.amsgrad = bool(amsgrad)
        if eps_style not in _STYLES:
            raise ValueError(f"{self._tag()}: eps_style must be one of {_STYLES}, got {eps_style!r}")
        self.eps_style = eps_style
        self.buffer_names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())

    def _update(self, name: str, p: Param, g: Any, lr: float) -> None:
        xp = get_array_module(p.data)
        b1, b2 = self.betas
        t = self.iteration + 1
        m, v = self.buffer("exp_avg", name), self.buffer("exp_avg_sq", name)
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * g * g
        if self.amsgrad:
            vmax = self.buffer("max_exp_avg_sq", name)
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        if self.eps_style == "caffe":
            p.data -= (lr * math.sqrt(bc2) / bc1) * m / (xp.sqrt(v) + self.eps)
        else:
            p.data -= (lr / bc1) * m / (xp.sqrt(v) / math.sqrt(bc2) + self.eps)


@register("solver", "adamw")
class AdamW(Adam):
    """AdamW (Loshchilov and Hutter, 2019): Adam with decoupled weight decay.

    Before the Adam step of ``Adam`` (same ``eps_style``), the weights shrink directly:

        X <- X * (1 - lr * weight_decay * decay_mult)

    instead of adding weight_decay * X to the gradient (which Adam would then rescale per
    coordinate). Default weight_decay 0.01, as torch.optim.AdamW. Only L2 shrinkage exists here.
    """

    decoupled_weight_decay = True

    def __init__(self, params: Any, lr: float | Policy = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 eps_style: str = "caffe", regularization: str = "L2", clip_gradients: float | None = None,
                 iter_size: int = 1) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, eps_style=eps_style,
                         regularization=regularization, clip_gradients=clip_gradients, iter_size=iter_size)
        if self.regularization != "L2":
            raise ValueError(f"{self._tag()}: decoupled weight decay is L2 shrinkage only; for L1 use "
                             "Adam(weight_decay=..., regularization='L1')")

    def _update(self, name: str, p: Param, g: Any, lr: float) -> None:
        wd = self.weight_decay * p.decay_mult
        if wd != 0.0:
            p.data *= 1.0 - lr * wd
        super()._update(name, p, g, lr)
