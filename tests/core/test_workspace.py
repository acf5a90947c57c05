"""Workspace.get: named scratch reused across calls; asking as last time returns the same view,
a new shape (grown or not) a view of the name's current buffer, zero-filled on a shape change
when asked; clear() frees everything."""
import numpy as np

from layerwise.functional.workspace import Workspace


def test_same_request_returns_the_same_view():
    ws = Workspace()
    a = ws.get("x", (3, 4), np.float32)
    assert ws.get("x", (3, 4), np.float32) is a
    assert a.shape == (3, 4) and a.dtype == np.float32


def test_a_new_shape_views_the_current_buffer_and_old_requests_follow_it():
    ws = Workspace()
    a = ws.get("x", (2, 2), np.float64)
    b = ws.get("x", (4, 5), np.float64)            # grows: a new buffer
    assert not np.shares_memory(a, b)
    c = ws.get("x", (2, 2), np.float64)            # the old shape again: a view of the new buffer
    assert c is not a and np.shares_memory(b, c)
    d = ws.get("x", (3,), np.float64)              # smaller: the same buffer, no growth
    assert np.shares_memory(b, d)


def test_zero_fills_on_a_shape_change_only():
    ws = Workspace()
    a = ws.get("g", (2, 3), np.float32, zero=True)
    assert (a == 0).all()
    a[:] = 5
    assert (ws.get("g", (2, 3), np.float32, zero=True) == 5).all()    # same shape: left as written
    b = ws.get("g", (3, 2), np.float32, zero=True)                    # new shape: zeroed
    assert (b == 0).all()
    b[:] = 7
    assert (ws.get("g", (2, 3), np.float32, zero=True) == 0).all()    # a change back zeroes again


def test_names_and_dtypes_are_separate_and_clear_frees():
    ws = Workspace()
    a = ws.get("x", (4,), np.float32)
    b = ws.get("y", (4,), np.float32)
    c = ws.get("x", (4,), np.float64)
    assert not np.shares_memory(a, b) and not np.shares_memory(a, c)
    assert ws.get("x", (4,), np.float32) is not c and np.shares_memory(ws.get("x", (4,), np.float32), a)
    ws.clear()
    assert not np.shares_memory(ws.get("x", (4,), np.float32), a)
