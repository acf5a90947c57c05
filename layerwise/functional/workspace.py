"""Workspace: named scratch arrays reused across calls (no page faults per step).

Fresh large arrays every step are expensive on these machines: glibc hands freed blocks back
to the OS and each new array faults its pages in again. A fused layer therefore asks its
workspace for scratch by name; the same buffer comes back next step. A workspace belongs
to one Net (its fused layers share it, since they run one after the other), not to the
process: two nets never share scratch, and ``clear()`` frees it (a Net does so when it is
put in eval mode, so inference keeps no training scratch). Arrays whose lifetime no layer
knows (a Net's gradient sums, inference grids) are ``recycled``: reused once nothing
references them any more.
"""
from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from ..backend import Array

# At most this many recycled arrays of one shape are kept (a ResNet keeps 1-4 of each).
RECYCLED_PER_SHAPE = 8


class Workspace:
    """Scratch buffers by name. Not shared between threads: one Net runs at a time."""

    def __init__(self) -> None:
        self._bufs: dict[tuple, Array] = {}
        self._shapes: dict[tuple, tuple] = {}
        self._recycled: dict[tuple, list[Array]] = {}   # arrays handed out by ``recycled``, by shape
        self._last: dict[str, tuple] = {}     # name -> (shape, dtype, xp, view) of its last ``get``

    def get(self, name: str, shape, dtype: Any, xp: Any = np, zero: bool = False) -> Array:
        """A ``shape`` array of ``dtype`` backed by the buffer ``name`` (grown when too small).

        With ``zero=True`` it is zero-filled whenever ``name`` is asked for with a new shape
        (regions a caller never writes, like a padded border, then stay zero).
        """
        # asked for as last time: the same view again (8 us less a call, a few hundred calls a
        # ResNet-56 step; on this path the buffer and its zeroing are as the last call left them)
        last = self._last.get(name)
        if last is not None and last[0] == shape and last[1] is dtype and last[2] is xp:
            return last[3]
        dtype_in = dtype
        dtype = np.dtype(dtype)
        n = math.prod(shape)
        key = (name, dtype.str, xp.__name__)
        buf = self._bufs.get(key)
        if buf is None or buf.size < n:
            buf = xp.empty(max(n, 1), dtype=dtype)
            self._bufs[key] = buf
            self._shapes.pop(key, None)
        arr = buf[:n].reshape(shape)
        if zero and self._shapes.get(key) != tuple(shape):
            arr.fill(0)
        self._shapes[key] = tuple(shape)
        self._last[name] = (shape, dtype_in, xp, arr)
        return arr

    # Arrays for values whose lifetime the caller cannot tell (an inference's activations and
    # grids, a Net's sums of gradients, handed on through its blobs): ``recycled`` hands out an array of the shape asked
    # for that nobody uses any more, else a new one it keeps. "Nobody uses it" is read off its
    # reference count: the list here holds one reference, and every view of it (any reshape,
    # transpose or slice a layer made) holds one more. So the pool holds at most as many arrays
    # of a shape as were alive at once, and they are reused instead of faulted in afresh.
    def recycled(self, shape: tuple[int, ...], dtype: Any, xp: Any = np) -> Array:
        """A C-contiguous ``shape`` array of ``dtype``, contents undefined, not referenced by anyone
        else (a pooled one whose users are gone, else a new one added to the pool)."""
        key = (tuple(int(d) for d in shape), np.dtype(dtype).str, xp.__name__)
        arrays = self._recycled.setdefault(key, [])
        for a in arrays:
            if sys.getrefcount(a) <= 3:          # the list, the loop variable, getrefcount's argument
                return a
        a = xp.empty(key[0], dtype=dtype)
        if len(arrays) < RECYCLED_PER_SHAPE:    # a caller keeping every output (features through a
            arrays.append(a)                     # hook, say) must not make the pool grow with them
        return a

    def clear(self) -> None:
        """Free every buffer."""
        self._bufs.clear()
        self._shapes.clear()
        self._last.clear()
        self._recycled.clear()

    @property
    def nbytes(self) -> int:
        pooled = [a for arrays in self._recycled.values() for a in arrays]
        return int(sum(b.nbytes for b in self._bufs.values()) + sum(a.nbytes for a in pooled))

    def __len__(self) -> int:
        return len(self._bufs)


__all__ = ["Workspace"]
