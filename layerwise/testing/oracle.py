"""Helpers for the second check every layer passes: PyTorch as an independent oracle.

PyTorch is never a runtime dependency; tests call ``require_torch()``, which skips
the test with a clear reason where torch is not installed.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import to_numpy

# Relative agreement with the oracle per dtype (CONTRIBUTING.md, "Oracle").
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


def require_torch():
    """Import torch or skip the calling test with the reason and the install command."""
    import pytest

    return pytest.importorskip(
        "torch", reason="PyTorch oracle not installed: pip install torch==2.13.0 (make test installs it)"
    )


def to_torch(x: Any, requires_grad: bool = False):
    import torch

    a = np.asarray(to_numpy(x))
    t = torch.from_numpy(a if a.flags.c_contiguous else a.copy())  # keeps 0-d arrays 0-d
    if requires_grad:
        t.requires_grad_(True)
    return t


def assert_close(ours: Any, theirs: Any, rtol: float | None = None, atol: float | None = None,
                 what: str = "") -> None:
    """Assert ``|ours - theirs| <= atol + rtol * |theirs|`` elementwise, with a useful message.

    With ``rtol=None`` the dtype's default (1e-5 float32, 1e-10 float64) is used; ``atol``
    defaults to ``rtol`` times the largest magnitude of ``theirs`` (relative to the scale
    of the tensor, so values that cancel to ~0 do not demand impossible precision).
    """
    a = to_numpy(ours)
    b = theirs.detach().cpu().numpy() if hasattr(theirs, "detach") else to_numpy(theirs)
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shape {a.shape} != oracle shape {b.shape}")
    if rtol is None:
        rtol = RTOL.get(np.dtype(a.dtype), 1e-5)
    if atol is None:
        atol = rtol * max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-30)
    err = np.abs(a.astype(np.float64) - b.astype(np.float64))
    bound = atol + rtol * np.abs(b.astype(np.float64))
    if not np.all(err <= bound):
        i = np.unravel_index(int(np.argmax(err - bound)), err.shape) if err.ndim else ()
        raise AssertionError(
            f"{what}: max abs err {err.max():.3e} at {i}: ours {a[i]!r} vs oracle {b[i]!r} "
            f"(rtol={rtol:g}, atol={atol:.3g})"
        )
