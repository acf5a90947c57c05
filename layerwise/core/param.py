"""Param: a trainable array and its gradient, side by side (Caffe's Blob data/diff)."""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module


class Param:
    """A trained tensor.

    Attributes:
        data: the value, an array of any float dtype.
        grad: the accumulated gradient, same shape and dtype as ``data``. Layers ADD
            into it in ``backward``; ``zero_grad`` (the training loop) clears it.
        name: short name inside its layer (``weight``, ``bias``).
        lr_mult: per-param multiplier of the learning rate (Caffe's ParamSpec).
        decay_mult: per-param multiplier of the weight decay.
        requires_grad: False freezes the param (PyTorch's flag): layers then compute no
            gradient for it, and a Net skips the backward of layers whose inputs and params
            need none (Caffe's ``propagate_down`` / ``param_propagate_down``).
    """

    __slots__ = ("data", "grad", "name", "lr_mult", "decay_mult", "requires_grad")

    def __init__(self, data: Any, name: str = "", lr_mult: float = 1.0, decay_mult: float = 1.0):
        xp = get_array_module(data)
        self.data = data
        self.grad = xp.zeros_like(data)
        self.name = name
        self.lr_mult = float(lr_mult)
        self.decay_mult = float(decay_mult)
        self.requires_grad = True

    @property
    def needs_grad(self) -> bool:
        """Whether backward must compute this param's gradient: not frozen, and lr_mult != 0."""
        return self.requires_grad and self.lr_mult != 0

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def astype(self, dtype) -> Param:
        """Convert data and grad in place to ``dtype`` (returns self)."""
        self.data = self.data.astype(dtype, copy=False)
        self.grad = self.grad.astype(dtype, copy=False)
        return self

    def __repr__(self) -> str:
        return f"Param({self.name!r}, shape={self.shape}, dtype={self.dtype})"
