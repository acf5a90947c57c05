"""Finite-difference gradient checking, the first of the two checks every layer passes.

The objective is ``L = sum_k sum(r_k * y_k)`` over the layer's outputs with fixed random
``r_k``, so every output element matters; its analytic gradient is ``backward(*r)``.
Each checked element is perturbed by +-eps and the central difference
``(L(x + eps) - L(x - eps)) / (2 eps)`` is compared with the analytic value:

    |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)

Everything runs in float64 (the layer is converted in place). Layers that draw random numbers
(Dropout's mask, RReLU's slopes: any module with ``rng_state`` / ``set_rng_state``) have their
generators restored before every forward, so all evaluations see the same draws.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import get_array_module, to_numpy
from ..core.layer import Layer, LossLayer


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree; the message names the worst element."""


@dataclass
class GradcheckEntry:
    name: str
    checked: int
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple
    analytic: float
    numeric: float
    ok: bool


@dataclass
class GradcheckReport:
    layer: str
    entries: list[GradcheckEntry] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.entries)

    def __str__(self) -> str:
        lines = [f"gradcheck {self.layer}: {'OK' if self.ok else 'FAILED'}",
                 f"  {'tensor':<28}{'checked':>8}{'max abs err':>14}{'max rel err':>14}  worst (analytic vs numeric)"]
        for e in self.entries:
            lines.append(f"  {e.name:<28}{e.checked:>8}{e.max_abs_err:>14.3e}{e.max_rel_err:>14.3e}  "
                         f"{e.worst_index} {e.analytic:.8g} vs {e.numeric:.8g}{'' if e.ok else '  <-- FAIL'}")
        return "\n".join(lines)


def _tuple(y: Any) -> tuple:
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def gradcheck(layer: Layer, *inputs: Any, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-5,
              seed: int = 0, max_elements: int = 300, check_inputs: bool = True, check_params: bool = True,
              raise_on_fail: bool = True) -> GradcheckReport:
    """Compare ``layer.backward`` with central differences, for inputs and params.

    Args:
        layer: any Layer (also a Net or a LossLayer); converted to float64 in place.
        *inputs: the inputs of ``forward``; float ones are converted to float64 and
            checked, others (integer labels) are passed through unchanged.
        eps: the finite-difference step.
        atol, rtol: the tolerance (see the module docstring).
        seed: seeds the projection ``r`` and the choice of elements in big tensors.
        max_elements: tensors larger than this are checked on a random subset.
        check_inputs, check_params: what to check.
        raise_on_fail: raise GradcheckError (with the report) when any element fails.

    Returns:
        A GradcheckReport; ``str(report)`` is a table of the errors.

    Random draws are held fixed (generators with ``rng_state`` are restored before each
    forward); the inputs should be kept away from kinks (ReLU at 0, ties in max pooling).
    """
    rng = np.random.default_rng(seed)
    layer.astype(np.float64)
    if not layer.cache_enabled:
        raise GradcheckError(f"gradcheck {layer!r}: the layer does not cache for backward (eval mode?); "
                             "use layer.train() or layer.eval(grad=True)")
    xs = [x.astype(np.float64) if getattr(x, "dtype", None) is not None and x.dtype.kind == "f" else x
          for x in inputs]
    scale = layer.loss_weight if isinstance(layer, LossLayer) else 1.0

    outs = _tuple(layer.forward(*xs))                   # builds the layer and its generators
    draws: list[tuple[Callable[[Any], Any], Any]] = []  # (set_rng_state, the state after the first forward)
    for m in layer.modules():
        get, put = getattr(m, "rng_state", None), getattr(m, "set_rng_state", None)
        if callable(get) and callable(put):
            draws.append((put, get()))

    def forward() -> tuple:
        for put, state in draws:                         # the same masks / slopes every time
            put(state)
        return _tuple(layer.forward(*xs))

    rs = [rng.standard_normal(np.shape(o)) for o in outs]
    xp = get_array_module(*[x for x in xs if hasattr(x, "shape")])
    rs = [xp.asarray(r) for r in rs]

    def objective() -> float:
        ys = forward()
        return float(sum(float((r * y).sum()) for r, y in zip(rs, ys))) * scale

    # analytic
    forward()
    layer.zero_grad()
    if isinstance(layer, LossLayer):
        dxs = _tuple(layer.backward(float(rs[0])))
    else:
        dxs = _tuple(layer.backward(*rs))
    dxs = dxs + (None,) * (len(xs) - len(dxs))

    targets: list[tuple[str, Any, Any]] = []
    if check_inputs:
        for i, (x, dx) in enumerate(zip(xs, dxs)):
            if dx is not None and getattr(x, "dtype", None) is not None and x.dtype.kind == "f":
                targets.append((f"input[{i}]", x, dx.copy()))
    if check_params:
        for pname, p in layer.named_params().items():
            targets.append((f"param {pname}", p.data, p.grad.copy()))

    report = GradcheckReport(layer=repr(layer))
    for name, arr, grad in targets:
        n = arr.size
        flat_idx = np.arange(n) if n <= max_elements else rng.choice(n, size=max_elements, replace=False)
        num = np.empty(len(flat_idx))
        ana = to_numpy(grad).reshape(-1)[flat_idx].astype(np.float64)
        for j, fi in enumerate(flat_idx):
            idx = np.unravel_index(int(fi), arr.shape)
            orig = float(arr[idx])
            arr[idx] = orig + eps
            fp = objective()
            arr[idx] = orig - eps
            fm = objective()
            arr[idx] = orig
            num[j] = (fp - fm) / (2 * eps)
        abs_err = np.abs(ana - num)
        bound = atol + rtol * np.maximum(np.abs(ana), np.abs(num))
        rel_err = abs_err / np.maximum(np.maximum(np.abs(ana), np.abs(num)), 1e-300)
        w = int(np.argmax(abs_err - bound)) if len(flat_idx) else 0
        report.entries.append(GradcheckEntry(
            name=name, checked=len(flat_idx),
            max_abs_err=float(abs_err.max()) if len(flat_idx) else 0.0,
            max_rel_err=float(rel_err.max()) if len(flat_idx) else 0.0,
            worst_index=tuple(int(i) for i in np.unravel_index(int(flat_idx[w]), arr.shape)) if len(flat_idx) else (),
            analytic=float(ana[w]) if len(flat_idx) else 0.0,
            numeric=float(num[w]) if len(flat_idx) else 0.0,
            ok=bool(np.all(abs_err <= bound)),
        ))
    layer.zero_grad()
    if raise_on_fail and not report.ok:
        raise GradcheckError(str(report))
    if not report.entries:
        raise GradcheckError(f"gradcheck {layer!r}: nothing to check (no float inputs with gradients, no params)")
    return report
