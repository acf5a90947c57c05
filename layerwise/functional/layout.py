"""The channels-first layout that layers hand to each other without copies.

A 4-D activation is always an array of shape (N, C, H, W) to the user and in every
layer's contract. In memory it may be laid out channels-first, ``(C, N, H, W)``: then
``x.transpose(1, 0, 2, 3)`` is C-contiguous and each channel is one contiguous row of the
matrix ``X (C, N*H*W)``, in which a 1x1 convolution is one GEMM and a convolution of any
kernel one GEMM over shifted or unfolded columns. Layers that work in that layout
(convolution, batch normalization, their fused forms) accept either memory order, and
return their outputs as the NCHW *view* of a channels-first array; element-wise layers
(ReLU, Eltwise, Dropout) keep whatever order their input has (NumPy's ``order='K'``).
So a chain of such layers pays no transposes; the first one copies the input once and
a layer that needs NCHW memory (Flatten's reshape, say) copies once.
"""
from __future__ import annotations

from ..backend import Array, get_array_module


def is_cnhw(x: Array) -> bool:
    """Whether the (N, C, H, W) array ``x`` is laid out channels-first in memory."""
    return x.ndim == 4 and x.transpose(1, 0, 2, 3).flags.c_contiguous


def to_cnhw(x: Array) -> Array:
    """(N, C, H, W) -> a C-contiguous (C, N, H, W) array; free when ``x`` is already laid out so."""
    t = x.transpose(1, 0, 2, 3)
    return t if t.flags.c_contiguous else get_array_module(x).ascontiguousarray(t)


def from_cnhw(X: Array) -> Array:
    """(C, N, H, W) -> its (N, C, H, W) view (no copy)."""
    return X.transpose(1, 0, 2, 3)


__all__ = ["is_cnhw", "to_cnhw", "from_cnhw"]
