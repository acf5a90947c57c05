"""Batch transforms: ``t(x, rng) -> x`` on a whole (N, C, H, W) float32 batch at once.

The standard CIFAR augmentation of the DenseNet and ResNet papers is
``Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize(mean, std)])``.
Random transforms draw only from the ``rng`` they are given (the :class:`DataLoader` passes one
generator per batch, derived from its own seed), so augmentation is reproducible and resumable.
Transforms never modify their input in place.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..core.registry import register


def _check_nchw(x: np.ndarray, who: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{who}: expected a (N, C, H, W) batch, got shape {x.shape}")


@register("transform", "normalize")
class Normalize:
    """Per-channel standardisation: ``y[:, c] = (x[:, c] - mean[c]) / std[c]``.

    Args:
        mean: one value per channel (or one value for all).
        std: one positive value per channel (or one value for all).

    Shapes: x (N, C, H, W) or (N, C) -> same shape, float32.

    Example:
        >>> t = Normalize([0.5], [0.25])
        >>> float(t(np.ones((1, 1, 2, 2), np.float32), None)[0, 0, 0, 0])
        2.0
    """

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32)).ravel()
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32)).ravel()
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize: mean has {self.mean.size} values but std has {self.std.size}")
        if not np.all(self.std > 0) or not np.all(np.isfinite(self.mean)):
            raise ValueError(f"Normalize: std must be > 0 and mean finite, got mean={self.mean}, std={self.std}")

    @classmethod
    def fit(cls, x: np.ndarray) -> Normalize:
        """Per-channel mean and std of a (N, C, ...) array (use the training set only)."""
        axes = (0,) + tuple(range(2, x.ndim))
        return cls(x.mean(axis=axes, dtype=np.float64), x.std(axis=axes, dtype=np.float64))

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Normalize | None:
        """The normalisation a checkpoint's metadata records (``meta["normalize"]``: ``{mean, std}``,
        written by ``layerwise train``), or None when the model was trained on unnormalised data.

        Example:
            >>> Normalize.from_meta({"normalize": {"mean": [0.5], "std": [0.25]}})
            Normalize(mean=[0.5], std=[0.25])
            >>> Normalize.from_meta({}) is None
            True
        """
        norm = meta.get("normalize")
        if not norm:
            return None
        return cls(norm["mean"], norm["std"])

    def __call__(self, x: np.ndarray, rng: Any = None) -> np.ndarray:
        if x.ndim < 2 or self.mean.size not in (1, x.shape[1]):
            raise ValueError(f"Normalize: {self.mean.size} channel statistics for a batch of shape {x.shape}; "
                             "give one mean/std per channel (axis 1)")
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return ((x - self.mean.reshape(shape)) / self.std.reshape(shape)).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


@register("transform", "random_crop", "randomcrop")
class RandomCrop:
    """Pad every image by ``padding`` pixels (constant ``fill``) and crop a random ``size`` window.

    Each sample gets its own offset (oy, ox), drawn uniformly from 0..H+2p-h and 0..W+2p-w (all
    oy first, then all ox); the crop is one gather from a sliding-window view of the padded batch.

    Args:
        size: output size h (square) or (h, w).
        padding: pixels added on every side before cropping.
        fill: the padding value.

    Shapes: x (N, C, H, W) -> (N, C, h, w).
    """

    def __init__(self, size: int | Sequence[int], padding: int = 0, fill: float = 0.0) -> None:
        hw = tuple(int(s) for s in size) if isinstance(size, (Sequence, np.ndarray)) else (int(size), int(size))
        if len(hw) != 2 or min(hw) < 1:
            raise ValueError(f"RandomCrop: size must be a positive int or (h, w), got {size!r}")
        if int(padding) < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.size, self.padding, self.fill = hw, int(padding), float(fill)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_nchw(x, "RandomCrop")
        p, (h, w) = self.padding, self.size
        if p:
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=self.fill)
        n, _, hp, wp = x.shape
        if h > hp or w > wp:
            raise ValueError(f"RandomCrop: crop {h}x{w} is larger than the padded image {hp}x{wp}")
        oy = rng.integers(0, hp - h + 1, size=n)
        ox = rng.integers(0, wp - w + 1, size=n)
        windows = sliding_window_view(x, (h, w), axis=(2, 3))          # (N, C, hp-h+1, wp-w+1, h, w), a view
        return windows[np.arange(n), :, oy, ox]                        # (N, C, h, w), one gather

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


@register("transform", "random_horizontal_flip", "randomhorizontalflip", "flip")
class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p`` (one uniform draw per sample).

    Shapes: x (N, C, H, W) -> same.
    """

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_nchw(x, "RandomHorizontalFlip")
        flip = rng.random(len(x)) < self.p
        return np.where(flip[:, None, None, None], x[..., ::-1], x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply transforms in order, each with the same generator: ``Compose([t1, t2])(x, rng)``."""

    def __init__(self, transforms: Sequence[Any]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable as t(x, rng)")

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"


__all__ = ["Normalize", "RandomCrop", "RandomHorizontalFlip", "Compose"]
