"""Accuracy as a layer (Caffe's Accuracy): a metric node inside a Net, with no gradient."""
from __future__ import annotations

from ..backend import Array, Shape, get_array_module
from ..core import Layer, register

__all__ = ["Accuracy"]


@register("layer", "Accuracy")
class Accuracy(Layer):
    """Top-k accuracy of class scores against integer labels, as a 0-d output.

    Forward:  y = mean over positions of [fewer than k classes score strictly above the label's].
    Backward: none (a metric): returns no gradient for either input.
    Shapes: scores (N, C, *), labels (N, *) -> y ().
    Caches: nothing.

    Args:
        top_k: k.
        ignore_label: a label value left out of the count (Caffe's ignore_label).

    Example:
        >>> import numpy as np
        >>> float(Accuracy().forward(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])))
        0.5
    """

    num_inputs = 2

    def __init__(self, top_k: int = 1, *, ignore_label: int | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        if int(top_k) < 1:
            raise ValueError(f"Accuracy: top_k must be >= 1, got {top_k}")
        self.top_k, self.ignore_label = int(top_k), ignore_label

    def _output_shape(self, scores: Shape, labels: Shape) -> Shape:
        if len(scores) < 2 or tuple(labels) != tuple(scores[:1]) + tuple(scores[2:]):
            raise self.error(f"expected scores (N, C, *) and labels (N, *), got shapes {tuple(scores)} and "
                             f"{tuple(labels)}")
        return ()

    def _forward(self, scores: Array, labels: Array) -> Array:
        from ..losses.metrics import accuracy
        xp = get_array_module(scores)
        lab = labels.astype(xp.int64) if labels.dtype.kind == "f" else labels
        self.save()
        return xp.asarray(accuracy(scores, lab, topk=self.top_k, ignore_index=self.ignore_label),
                          dtype=scores.dtype)

    def _backward(self, dy: Array):
        return None, None
