"""Metric-learning losses on feature vectors: contrastive (DeepID2's verification signal,
Caffe's ContrastiveLoss), triplet margin, and the center loss of Wen et al. (ECCV 2016).
"""
from __future__ import annotations

from ..backend import Array, Shape, get_array_module
from ..core.registry import register
from ._base import Loss, as_0d

__all__ = ["ContrastiveLoss", "TripletLoss", "CenterLoss"]


def _flat(x: Array) -> Array:
    return x.reshape(x.shape[0], -1)


def _safe_div(xp, num: Array, den: Array) -> Array:
    """num / den with 0 where den == 0 (no divide-by-zero warning)."""
    ok = den > 0
    return xp.where(ok, num / xp.where(ok, den, 1), 0)


@register("loss", "ContrastiveLoss", "contrastive")
class ContrastiveLoss(Loss):
    """Contrastive loss on pairs (Hadsell et al. 2006; Caffe's ContrastiveLoss; DeepID2's
    verification loss). y = 1: similar pair, pulled together; y = 0: pushed beyond the margin.

    Forward:  d_i = ||a_i - b_i||_2;
              l_i = 1/2 [y_i d_i^2 + (1 - y_i) max(0, m - d_i)^2]
              (legacy_version: (1 - y_i) max(0, m - d_i^2), Caffe's legacy form);
              L = 1/D sum_i l_i, D = N by default: Caffe's 1/(2N) sum.
    Backward: dl/da = y (a - b) - (1 - y) max(0, m - d) (a - b) / d   (0 at d = 0);
              legacy: -(1 - y) [m > d^2] (a - b);   dl/db = -dl/da.

    Shapes: a, b (N, ...) features of one shape, y (N,) or (N, 1) in {0, 1} -> ().
    Caches: g = dL/da * D, div = D.
    """

    num_inputs = 3
    reductions = ("mean", "sum", "batch_size")

    def __init__(self, *, margin: float = 1.0, legacy_version: bool = False, reduction: str = "mean",
                 loss_weight: float = 1.0, name: str | None = None) -> None:
        super().__init__(reduction=reduction, loss_weight=loss_weight, name=name)
        if not margin > 0:
            raise ValueError(f"ContrastiveLoss: margin must be > 0, got {margin!r}")
        self.margin, self.legacy_version = float(margin), bool(legacy_version)

    def _output_shape(self, a: Shape, b: Shape, y: Shape):
        if tuple(a) != tuple(b) or len(a) < 2:
            raise self.error(f"expected two feature arrays of one shape (N, D...), got {tuple(a)} and {tuple(b)}")
        if tuple(y) not in ((a[0],), (a[0], 1)):
            raise self.error(f"expected pair labels of shape ({a[0]},), got {tuple(y)}")
        return ()

    def _forward(self, a: Array, b: Array, y: Array) -> Array:
        self.check_float(a, "first features")
        self.check_float(b, "second features")
        xp = get_array_module(a)
        if not bool(((y == 0) | (y == 1)).all()):
            raise self.error("pair labels must be 1 (similar) or 0 (dissimilar); "
                             "map {-1, +1} labels with (y + 1) // 2")
        y = y.reshape(-1, 1).astype(a.dtype)
        diff = _flat(a) - _flat(b)                              # (N, D)
        d2 = (diff * diff).sum(axis=1, keepdims=True)           # (N, 1)
        m = self.margin
        if self.legacy_version:
            h = xp.maximum(m - d2, 0)
            loss = 0.5 * (y * d2 + (1 - y) * h)
            g = (y - (1 - y) * (h > 0)) * diff
        else:
            d = xp.sqrt(d2)
            h = xp.maximum(m - d, 0)
            loss = 0.5 * (y * d2 + (1 - y) * h * h)
            g = y * diff - (1 - y) * _safe_div(xp, h, d) * diff
        div = self.divisor(a.shape[:1])
        self.save(g=g.reshape(a.shape), div=div)
        return as_0d(xp, loss.sum() / div, a.dtype)

    def _backward(self, scale: float):
        da = self.cache["g"] * (scale / self.cache["div"])
        return da, -da, None


@register("loss", "TripletLoss", "triplet_margin")
class TripletLoss(Loss):
    """Triplet margin loss (FaceNet; PyTorch's ``triplet_margin_loss`` with p = 2).

    Forward:  d(u, v) = ||u - v + eps||_2 (PyTorch's pairwise_distance, eps = 1e-6);
              l_i = max(0, d(a_i, p_i) - d(a_i, n_i) + margin);  L = 1/D sum_i l_i, D = N.
    Backward: with r = [l_i > 0], u_ap = (a - p + eps) / d_ap, u_an = (a - n + eps) / d_an:
              dl/da = r (u_ap - u_an), dl/dp = -r u_ap, dl/dn = r u_an.

    Shapes: anchor, positive, negative (N, D) -> ().  Caches: ga, gp, gn (the three gradients * D), div = D.
    """

    num_inputs = 3
    reductions = ("mean", "sum", "batch_size")

    def __init__(self, *, margin: float = 1.0, eps: float = 1e-6, reduction: str = "mean",
                 loss_weight: float = 1.0, name: str | None = None) -> None:
        super().__init__(reduction=reduction, loss_weight=loss_weight, name=name)
        if not margin >= 0:
            raise ValueError(f"TripletLoss: margin must be >= 0, got {margin!r}")
        self.margin, self.eps = float(margin), float(eps)

    def _output_shape(self, a: Shape, p: Shape, n: Shape):
        if not (tuple(a) == tuple(p) == tuple(n)) or len(a) != 2:
            raise self.error(f"expected anchor, positive and negative of one shape (N, D), got "
                             f"{tuple(a)}, {tuple(p)}, {tuple(n)}")
        return ()

    def _forward(self, a: Array, p: Array, n: Array) -> Array:
        for x, what in ((a, "anchor"), (p, "positive"), (n, "negative")):
            self.check_float(x, what)
        xp = get_array_module(a)
        dp, dn = a - p + self.eps, a - n + self.eps             # (N, D)
        d_ap = xp.sqrt((dp * dp).sum(axis=1, keepdims=True))
        d_an = xp.sqrt((dn * dn).sum(axis=1, keepdims=True))
        loss = xp.maximum(d_ap - d_an + self.margin, 0)
        div = self.divisor(a.shape[:1])
        if self.cache_enabled:
            r = (loss > 0).astype(a.dtype)
            u_ap, u_an = r * _safe_div(xp, dp, d_ap), r * _safe_div(xp, dn, d_an)
            self.save(ga=u_ap - u_an, gp=-u_ap, gn=u_an, div=div)
        return as_0d(xp, loss.sum() / div, a.dtype)

    def _backward(self, scale: float):
        s = scale / self.cache["div"]
        return self.cache["ga"] * s, self.cache["gp"] * s, self.cache["gn"] * s


@register("loss", "CenterLoss", "center")
class CenterLoss(Loss):
    """Center loss (Wen et al., ECCV 2016): pulls each feature towards its class centre.

    Forward:  L = 1/(2 D) sum_i ||x_i - c_{y_i}||^2, D = N (caffe-face's normalisation).
    Backward: dL/dx_i = (x_i - c_{y_i}) / D.
    Centres, two ways (decided by ``alpha``):
      alpha = a float (default 0.5; Wen et al.'s Algorithm 1, caffe-face): ``centers`` is a
        BUFFER (in state_dict, not trained by the solver). Each backward in training mode
        applies  c_j <- c_j - alpha * delta_j,  delta_j = sum_{i: y_i = j} (c_j - x_i) / (1 + n_j),
        n_j the number of samples of class j in the batch (independent of loss_weight and the
        solver's learning rate). No update in eval mode. NOTE: this is the one layer whose backward
        changes state, as in caffe-face; with gradient accumulation (iter_size > 1) the centres move
        once per backward, not once per solver step. Use alpha=None for solver-driven centres.
      alpha = None: ``centers`` is a PARAM trained by the solver with the true gradient
        dL/dc_j = -sum_{i: y_i = j} (x_i - c_j) / D (scaled by loss_weight).
    Centres start at 0 and are created lazily with the feature dimension.

    Shapes: features (N, F), labels int (N,) in [0, num_classes) -> ().  Centres (num_classes, F).
    Caches: diff = x - c_y, y (the labels), div = D.
    """

    reductions = ("mean", "sum", "batch_size")

    def __init__(self, num_classes: int, *, alpha: float | None = 0.5, reduction: str = "mean",
                 loss_weight: float = 1.0, name: str | None = None) -> None:
        super().__init__(reduction=reduction, loss_weight=loss_weight, name=name)
        if int(num_classes) < 1:
            raise ValueError(f"CenterLoss: num_classes must be >= 1, got {num_classes!r}")
        if alpha is not None and not 0 < alpha <= 1:
            raise ValueError(f"CenterLoss: alpha must be in (0, 1] (or None to train the centres), got {alpha!r}")
        self.num_classes = int(num_classes)
        self.alpha = None if alpha is None else float(alpha)

    def _build(self, x: Shape, y: Shape) -> None:
        from .. import init
        c = init.constant((self.num_classes, x[1]))
        if self.alpha is None:
            self.add_param("centers", c)
        else:
            self.add_buffer("centers", c)

    @property
    def centers(self) -> Array:
        """The (num_classes, F) centres (a view of the param data or the buffer)."""
        return self._params["centers"].data if self.alpha is None else self.buffer("centers")

    def _output_shape(self, x: Shape, y: Shape):
        if len(x) != 2 or tuple(y) != (x[0],):
            raise self.error(f"expected features (N, F) and integer labels (N,), got {tuple(x)} and {tuple(y)}")
        if self.centers.shape[1] != x[1]:
            raise self.error(f"the centres have {self.centers.shape[1]} features but the input has {x[1]}; "
                             "use one CenterLoss per feature size")
        return ()

    def _forward(self, x: Array, y: Array) -> Array:
        self.check_float(x, "features")
        self.check_labels(y, self.num_classes)
        xp = get_array_module(x)
        diff = x - self.centers[y]                              # (N, F)
        div = self.divisor(x.shape[:1])
        self.save(diff=diff, y=y, div=div)
        return as_0d(xp, 0.5 * (diff * diff).sum() / div, x.dtype)

    def _backward(self, scale: float) -> Array:
        diff, y, div = self.cache["diff"], self.cache["y"], self.cache["div"]
        xp = get_array_module(diff)
        onehot = (y[:, None] == xp.arange(self.num_classes)).astype(diff.dtype)   # (N, K)
        per_class = onehot.T @ diff                                                 # (K, F)
        if self.alpha is None:
            self._params["centers"].grad -= per_class * (scale / div)
        elif self.training:
            counts = onehot.sum(axis=0)[:, None]                                    # (K, 1)
            delta = -per_class / (1 + counts)
            self.set_buffer("centers", self.centers - self.alpha * delta)
        return diff * (scale / div)
