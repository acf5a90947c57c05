"""Evaluation helpers (not layers): top-k accuracy."""
from __future__ import annotations

from collections.abc import Sequence

from ..backend import Array, get_array_module

__all__ = ["accuracy"]


def accuracy(logits: Array, labels: Array, topk: int | Sequence[int] = (1,),
             ignore_index: int | None = None) -> float | tuple[float, ...]:
    """Top-k accuracy of class scores.

    A position counts as correct for k when fewer than k classes score strictly higher than
    its label (ties count in the label's favour).

    Args:
        logits: scores (N, C) or (N, C, d1, ...) (logits or probabilities: only the order matters).
        labels: integer labels (N,) or (N, d1, ...).
        topk: one k (returns a float) or several (returns a tuple of floats).
        ignore_index: label value left out of the count.

    Returns:
        The fraction of correct positions for each k (0.0 when nothing is counted).

    Example:
        >>> import numpy as np
        >>> accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]), topk=1)
        0.5
    """
    xp = get_array_module(logits)
    if logits.ndim < 2 or tuple(labels.shape) != tuple(logits.shape[:1]) + tuple(logits.shape[2:]):
        raise ValueError(f"accuracy: expected logits (N, C, ...) and labels (N, ...), got shapes "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"accuracy: labels must be integers, got dtype {labels.dtype}")
    C = logits.shape[1]
    ks = (topk,) if isinstance(topk, int) else tuple(topk)
    if not ks or any(int(k) < 1 for k in ks):
        raise ValueError(f"accuracy: topk must be positive integers, got {topk!r}")
    valid = labels != ignore_index if ignore_index is not None else xp.ones(labels.shape, dtype=bool)
    if bool((valid & ((labels < 0) | (labels >= C))).any()):
        raise ValueError(f"accuracy: labels must be in [0, {C}) (the number of classes)")
    y = xp.where(valid, labels, 0)
    zy = xp.take_along_axis(logits, xp.expand_dims(y, 1), axis=1)   # (N, 1, d...)
    rank = (logits > zy).sum(axis=1)                                 # classes above the label
    n = int(valid.sum())
    out = tuple(float(((rank < int(k)) & valid).sum()) / n if n else 0.0 for k in ks)
    return out[0] if isinstance(topk, int) else out
