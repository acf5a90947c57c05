"""Classification metrics for the trainer: top-k counts, confusion matrix, and a running mean.

(Top-k accuracy as a fraction is ``layerwise.losses.accuracy``.)

All functions take logits (or scores) of shape (N, K) and integer labels of shape (N,)
and work on NumPy or CuPy arrays; results are Python numbers or NumPy arrays.
"""
from __future__ import annotations

import numpy as np

from ..backend import Array, get_array_module, to_numpy


def _check(logits: Array, labels: Array, fn: str) -> None:
    if logits.ndim != 2:
        raise ValueError(f"{fn}: expected logits of shape (N, K), got shape {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"{fn}: expected labels of shape ({logits.shape[0]},), got shape {tuple(labels.shape)}")


def topk_correct(logits: Array, labels: Array, k: int = 1) -> int:
    """How many rows have their label among the k highest scores.

    Ties are broken by the index order of ``argsort`` (stable), as in ``torch.topk``'s usual use.
    """
    _check(logits, labels, "topk_correct")
    xp = get_array_module(logits)
    k = min(int(k), logits.shape[1])
    if k == 1:
        return int((xp.argmax(logits, axis=1) == labels).sum())
    top = xp.argpartition(-logits, k - 1, axis=1)[:, :k]  # (N, k), unordered
    return int((top == labels[:, None]).any(axis=1).sum())


def confusion_matrix(pred: Array, labels: Array, num_classes: int) -> np.ndarray:
    """Counts ``M[true, predicted]`` of shape (K, K), as int64 (rows: true class)."""
    pred, labels = to_numpy(pred).astype(np.int64), to_numpy(labels).astype(np.int64)
    if pred.shape != labels.shape:
        raise ValueError(f"confusion_matrix: pred shape {pred.shape} != labels shape {labels.shape}")
    bad = (labels < 0) | (labels >= num_classes) | (pred < 0) | (pred >= num_classes)
    if bad.any():
        raise ValueError(f"confusion_matrix: labels/predictions must lie in [0, {num_classes}); "
                         f"got {int(min(labels.min(), pred.min()))}..{int(max(labels.max(), pred.max()))}")
    counts = np.bincount(labels * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def format_confusion(m: np.ndarray, class_names: list[str] | None = None) -> str:
    """The confusion matrix as a text table, rows = true class, columns = predicted."""
    k = m.shape[0]
    names = [str(c) for c in (class_names or range(k))]
    w = max(max(len(n) for n in names), len(str(int(m.max()))) if m.size else 1, 4)
    head = " " * (w + 1) + "  ".join(n[:w].rjust(w) for n in names) + "   <- predicted"
    rows = [f"{names[i][:w].rjust(w)} " + "  ".join(str(int(v)).rjust(w) for v in m[i]) for i in range(k)]
    return "\n".join([head] + rows)


class Average:
    """A running weighted mean (e.g. the loss over an epoch, weighted by batch size)."""

    def __init__(self, total: float = 0.0, count: float = 0.0) -> None:
        self.total, self.count = float(total), float(count)

    def update(self, value: float, weight: float = 1.0) -> None:
        self.total += float(value) * weight
        self.count += weight

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else float("nan")

    def state(self) -> list[float]:
        return [self.total, self.count]


__all__ = ["topk_correct", "confusion_matrix", "format_confusion", "Average"]
