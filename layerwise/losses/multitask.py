"""Multi-task losses: a weighted sum of child losses, and Fast R-CNN's classification +
foreground-only smooth-L1 localisation.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from ..backend import Array, Shape, get_array_module
from ..core.layer import LossLayer
from ..core.registry import register
from ._base import as_0d
from .classification import SoftmaxCrossEntropyLoss
from .regression import SmoothL1Loss

__all__ = ["MultiTaskLoss", "FastRCNNLoss"]


@register("loss", "MultiTaskLoss", "multitask")
class MultiTaskLoss(LossLayer):
    """L = sum_k w_k L_k over child losses, each with its own inputs; w_k is each child's
    ``loss_weight`` (so a Caffe net's per-loss weights carry over).

    Forward:  inputs are the children's inputs, concatenated in the children's order
              (a child with num_inputs = 2 takes two: prediction, target).
    Backward: d(scale L)/dx = scale * w_k * dL_k/dx for the inputs of child k (None for targets).
    The last unweighted values are kept in ``self.losses`` (name -> float) for logging.

    Example (DeepID2: identification + verification on a pair of faces):
        >>> from layerwise.losses import ContrastiveLoss
        >>> loss = MultiTaskLoss({"ident": SoftmaxCrossEntropyLoss(),
        ...                       "verif": ContrastiveLoss(margin=1.0, loss_weight=0.05)})
        >>> loss.num_inputs   # forward(logits, labels, feat1, feat2, same)
        5

    Shapes: whatever the children take -> ().  Caches: nothing (the children cache).
    """

    num_inputs = None

    def __init__(self, losses: Mapping[str, LossLayer] | Sequence[LossLayer], *, loss_weight: float = 1.0,
                 name: str | None = None) -> None:
        super().__init__(loss_weight=loss_weight, name=name)
        items = list(losses.items()) if isinstance(losses, Mapping) else [(str(i), l) for i, l in enumerate(losses)]
        if not items:
            raise ValueError("MultiTaskLoss: give at least one child loss")
        self._tasks: list[tuple[str, LossLayer, int]] = []   # (name, child, how many inputs it takes)
        for cname, loss in items:
            if not isinstance(loss, LossLayer) or loss.num_inputs is None:
                raise TypeError(f"MultiTaskLoss: child {cname!r} must be a LossLayer with a fixed num_inputs, "
                                f"got {loss!r}")
            self.add_child(cname, loss)
            self._tasks.append((cname, loss, loss.num_inputs))
        self.num_inputs = sum(n for _, _, n in self._tasks)
        self.losses: dict[str, float] = {}

    def _split(self, xs: tuple) -> Iterator[tuple[str, LossLayer, tuple]]:
        i = 0
        for cname, child, n in self._tasks:
            yield cname, child, xs[i:i + n]
            i += n

    def _output_shape(self, *shapes: Shape) -> Shape:
        for _, child, chunk in self._split(shapes):
            child.setup(*chunk)
        return ()

    def _forward(self, *xs: Array) -> Array:
        xp = get_array_module(*xs)
        total = 0.0
        for cname, child, chunk in self._split(xs):
            child.cache_enabled = self.cache_enabled
            v = child.forward(*chunk)
            self.losses[cname] = float(v)
            total = total + child.loss_weight * v
        dtype = next((x.dtype for x in xs if x.dtype.kind == "f"), None)
        return as_0d(xp, total, dtype)

    def _backward(self, scale: float):
        grads: list = []
        for _, child, n in self._tasks:
            g = child.backward(scale)
            g = tuple(g) if isinstance(g, tuple) else (g,)
            grads.extend(g + (None,) * (n - len(g)))
        return tuple(grads)


@register("loss", "FastRCNNLoss", "fast_rcnn")
class FastRCNNLoss(MultiTaskLoss):
    """Fast R-CNN's multi-task loss: L = L_cls(p, u) + lambda [u >= 1] L_loc(t^u, v).

    Forward:  L_cls = softmax cross-entropy of the class scores (mean over the N RoIs);
              L_loc = 1/N sum_{i: u_i >= 1} sum_{j in x,y,w,h} smoothL1_beta(t^{u_i}_ij - v_ij):
              only foreground RoIs (label u >= 1; 0 is background) are localised, and the sum is
              divided by all N RoIs, as in the paper. t^u is the box predicted for the true
              class u when bbox_pred has 4 * C columns (class-specific regression), or the
              single box when it has 4.
    Backward: the cross-entropy gradient for the scores; lambda * smoothL1'(t^u - v) / N in the
              4 columns of class u for foreground RoIs, 0 elsewhere.

    Shapes: cls_score (N, C), labels int (N,), bbox_pred (N, 4C) or (N, 4), bbox_targets (N, 4).
    Caches: fg (foreground mask), u (the labels); the children cache the rest.
    """

    def __init__(self, *, lam: float = 1.0, beta: float = 1.0, loss_weight: float = 1.0,
                 name: str | None = None) -> None:
        self._cls = SoftmaxCrossEntropyLoss()
        self._loc = SmoothL1Loss(beta=beta, reduction="batch_size", loss_weight=lam)
        super().__init__({"cls": self._cls, "loc": self._loc}, loss_weight=loss_weight, name=name)
        self.lam, self.beta = float(lam), float(beta)

    def _output_shape(self, *shapes: Shape) -> Shape:
        score, labels, bbox, target = shapes
        self._cls.setup(score, labels)
        N, C = score
        if tuple(target) != (N, 4) or tuple(bbox) not in ((N, 4), (N, 4 * C)):
            raise self.error(f"expected bbox_pred ({N}, 4) or ({N}, {4 * C}) and bbox_targets ({N}, 4), "
                             f"got {tuple(bbox)} and {tuple(target)}")
        return ()

    def _forward(self, score: Array, labels: Array, bbox: Array, target: Array) -> Array:
        xp = get_array_module(score)
        cls, loc = self._cls, self._loc
        cls.cache_enabled = loc.cache_enabled = self.cache_enabled
        l_cls = cls.forward(score, labels)
        N = score.shape[0]
        fg = (labels >= 1) & (labels < score.shape[1])          # background 0 and ignored labels excluded
        u = xp.where(fg, labels, 0)
        box = bbox.reshape(N, -1, 4)[xp.arange(N), u] if bbox.shape[1] != 4 else bbox   # (N, 4)
        box = xp.where(fg[:, None], box, target)                # background: zero difference
        l_loc = loc.forward(box, target)
        self.losses = {"cls": float(l_cls), "loc": float(l_loc)}
        self.save(fg=fg, u=u)
        return as_0d(xp, l_cls + loc.loss_weight * l_loc, score.dtype)

    def _backward(self, scale: float):
        fg, u = self.cache["fg"], self.cache["u"]
        d_score = self._cls.backward(scale)
        d_box = self._loc.backward(scale) * fg[:, None]         # (N, 4)
        assert self._in_shapes is not None   # set by the forward that backward follows
        cols = self._in_shapes[2][1]                            # bbox_pred's 4 or 4 * C columns
        if cols == 4:
            return d_score, None, d_box, None
        xp = get_array_module(d_box)
        N = d_box.shape[0]
        d_bbox = xp.zeros((N, cols // 4, 4), dtype=d_box.dtype)
        d_bbox[xp.arange(N), u] = d_box
        return d_score, None, d_bbox.reshape(N, -1), None
