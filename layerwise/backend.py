"""The one place that knows NumPy from CuPy.

Layers never import cupy. They ask for the array module of their data::

    xp = get_array_module(x)
    y = xp.maximum(x, 0)

so the same layer code runs on the CPU (NumPy) and on the GPU (CuPy).
"""
from __future__ import annotations

from typing import Any

import numpy as np

try:  # CuPy is optional: only present on machines with a GPU.
    import cupy as _cupy
except Exception:  # pragma: no cover - depends on the machine
    _cupy = None

Array = Any  # numpy.ndarray or cupy.ndarray
Shape = tuple[int, ...]

DEFAULT_DTYPE = np.float32
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def cupy_available() -> bool:
    """True when CuPy imports and sees a GPU."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # pragma: no cover
        return False


def get_array_module(*arrays: Any):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or (_cupy is not None and isinstance(x, _cupy.ndarray))


def to_device(x: Any, device: str = "cpu"):
    """Move an array to ``'cpu'`` (NumPy) or ``'gpu'``/``'cuda'`` (CuPy)."""
    if device == "cpu":
        return to_numpy(x)
    if device in ("gpu", "cuda"):
        if _cupy is None:
            raise RuntimeError("to_device('gpu'): CuPy is not installed; pip install 'layerwise[gpu]'")
        return _cupy.asarray(x)
    raise ValueError(f"to_device: unknown device {device!r}; expected 'cpu' or 'gpu'")


def to_numpy(x: Any) -> np.ndarray:
    """Return a NumPy array (copying from the GPU when needed)."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy.asnumpy(x)
    return np.asarray(x)


def device_of(x: Any) -> str:
    return "gpu" if get_array_module(x) is not np else "cpu"


def as_dtype(dtype: Any) -> np.dtype:
    """Normalise a dtype spec ('float32', np.float64, ...) and check it is a float type."""
    dt = np.dtype(dtype)
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"unsupported dtype {dt}; expected one of float16, float32, float64")
    return dt


def erfc(x: Any):
    """The complementary error function for NumPy or CuPy arrays (NumPy itself has none)."""
    if get_array_module(x) is not np:
        from cupyx.scipy import special as cupy_special

        return cupy_special.erfc(x)
    from scipy import special

    return special.erfc(x)


def tune_malloc(trim_threshold: int = 2**31 - 1) -> bool:
    """Make glibc keep freed memory in the process instead of returning it to the OS.

    By default glibc serves large arrays with mmap and unmaps them on free, so a program
    that allocates fresh activations every step page-faults all of its memory in again
    every step (expensive on VMs). This sets ``M_MMAP_MAX = 0`` (large blocks come from the
    heap) and ``M_TRIM_THRESHOLD`` (the heap is not trimmed), the same as the environment
    ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<big>``. Call it explicitly (a CLI flag, a
    benchmark); importing layerwise never does. Peak RSS is unchanged; freed memory is
    reused instead of released.

    Returns:
        True when both settings were applied (Linux with glibc), False otherwise.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    ok = mallopt(M_MMAP_MAX, 0) == 1
    return bool(mallopt(M_TRIM_THRESHOLD, int(min(trim_threshold, 2**31 - 1))) == 1 and ok)
