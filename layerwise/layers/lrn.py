"""Local response normalisation (Krizhevsky et al. 2012; Caffe's LRN layer, torch's LocalResponseNorm)."""
from __future__ import annotations

from ..backend import Array, Shape, get_array_module
from ..core import Layer, register

__all__ = ["LRN"]

_REGIONS = ("across_channels", "within_channel")


def window_sum(a: Array, axis: int, before: int, after: int) -> Array:
    """``out[i] = sum(a[i - before : i + after + 1])`` along ``axis``, zeros outside (cumsum, no loop)."""
    xp = get_array_module(a)
    a = xp.moveaxis(a, axis, -1)
    n = a.shape[-1]
    pad = [(0, 0)] * (a.ndim - 1) + [(before + 1, after)]
    c = xp.cumsum(xp.pad(a, pad), axis=-1)                 # c[j] = sum of padded[:j]
    out = c[..., before + 1 + after:] - c[..., :n]         # padded[i + 1 : i + before + after + 2]
    return xp.moveaxis(out, -1, axis)


@register("layer", "LRN", "LocalResponseNorm")
class LRN(Layer):
    """Local response normalisation, across channels or within each channel (Caffe's two regions).

    across_channels (AlexNet; torch.nn.LocalResponseNorm):
        s[n, c] = k + alpha / size * sum_{c' = c - size//2}^{c + (size-1)//2} x[n, c']^2
    within_channel (size odd; Caffe's WITHIN_CHANNEL, a zero-padded size x size box):
        s[n, c, h, w] = k + alpha / size^2 * sum_{|h'-h|, |w'-w| <= size//2} x[n, c, h', w']^2
    Forward:  y = x * s^(-beta).
    Backward: dx = dy * s^(-beta) - (2 alpha beta / D) x * W^T(dy * x * s^(-beta-1)),
              D = size (across) or size^2 (within) and W^T the window sum read backwards
              (the same window when it is symmetric).

    Caffe's WITHIN_CHANNEL always adds 1 (its k is ignored); the Caffe importer passes k=1.

    Args:
        size: window length (channels, or pixels per side within a channel).
        alpha, beta, k: as in the formulas (Caffe's defaults 1, 0.75, 1; torch's alpha is 1e-4).
        region: "across_channels" or "within_channel".

    Shapes: x (N, C, *) (across) or (N, C, H, W) (within) -> y of the same shape.
    Caches: x and s.

    Example:
        >>> import numpy as np
        >>> LRN(3, alpha=3.0, beta=1.0, k=1.0).forward(np.ones((1, 3, 1, 1)))[:, :, 0, 0].tolist()
        [[0.3333333333333333, 0.25, 0.3333333333333333]]
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0, *,
                 region: str = "across_channels", name: str | None = None) -> None:
        super().__init__(name=name)
        if isinstance(size, bool) or int(size) != size or size < 1:
            raise ValueError(f"LRN: size must be a positive int, got {size!r}")
        region = str(region).lower()
        if region not in _REGIONS:
            raise ValueError(f"LRN: region must be one of {_REGIONS}, got {region!r}")
        if region == "within_channel" and size % 2 == 0:
            raise ValueError(f"LRN: within_channel needs an odd size (a centred window, as Caffe), got {size}")
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)
        self.region = region

    def _output_shape(self, shape: Shape) -> Shape:
        if self.region == "within_channel":
            self.expect_ndim(shape, 4, "(N, C, H, W)")
        elif len(shape) < 3:
            raise self.error(f"expected an input of shape (N, C, *) with at least 3 dims, got {tuple(shape)}")
        return shape

    def _sum(self, a: Array, transpose: bool = False) -> Array:
        if self.region == "across_channels":
            before, after = self.size // 2, (self.size - 1) // 2
            if transpose:
                before, after = after, before
            return window_sum(a, 1, before, after)
        r = self.size // 2
        return window_sum(window_sum(a, 2, r, r), 3, r, r)

    def _div(self) -> int:
        return self.size if self.region == "across_channels" else self.size * self.size

    def _forward(self, x: Array) -> Array:
        s = self._sum(x * x)
        s *= self.alpha / self._div()
        s += self.k
        self.save(x=x, s=s)
        return x * s ** (-self.beta)

    def _backward(self, dy: Array) -> Array:
        x, s = self.cache["x"], self.cache["s"]
        sb = s ** (-self.beta)
        g = self._sum(dy * x * sb / s, transpose=True)
        return dy * sb - (2.0 * self.alpha * self.beta / self._div()) * x * g
