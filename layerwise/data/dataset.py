"""ArrayDataset (images and labels in memory) and the deterministic stratified split.

Every source in :mod:`layerwise.data` ends as an ``ArrayDataset``: ``x`` float32 (N, C, H, W)
(or (N, F) for feature vectors) and ``y`` int64 (N,). Indexing takes an index array and
returns a batch, which is all the :class:`~layerwise.data.DataLoader` needs.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class DataError(ValueError):
    """A data file or array is missing, corrupt or of the wrong shape; the message names it."""


class ArrayDataset:
    """Images (or feature vectors) and integer labels held in memory.

    Args:
        x: (N, C, H, W) or (N, F) array; stored as float32 (a copy only when the dtype differs).
        y: (N,) integer class labels; stored as int64.
        classes: class names, ``classes[k]`` for label k (default ``["0", ..., "K-1"]``).
        name: a label for messages and logs (e.g. ``"digits/train"``).

    Raises:
        DataError: when x and y disagree in length, y is not 1-D integers, or x has fewer
            than 2 dimensions.

    Example:
        >>> ds = ArrayDataset(np.zeros((4, 1, 2, 2)), [0, 1, 0, 1])
        >>> xb, yb = ds[np.array([0, 3])]
        >>> xb.shape, yb.tolist()
        ((2, 1, 2, 2), [0, 1])
    """

    def __init__(self, x: Any, y: Any, classes: Sequence[str] | None = None, name: str = "") -> None:
        x = np.asarray(x)
        y = np.asarray(y)
        label = name or "ArrayDataset"
        if x.ndim < 2:
            raise DataError(f"{label}: x must be (N, C, H, W) or (N, F), got shape {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{label}: y must be a 1-D array of {len(x)} labels (one per row of x), "
                            f"got shape {y.shape}")
        if len(y) and not np.issubdtype(y.dtype, np.integer):
            if (y.dtype.kind not in "fb" or not np.isfinite(y).all() or np.abs(y).max() > 2**53
                    or not np.all(np.equal(np.mod(y, 1), 0))):
                raise DataError(f"{label}: y must hold integer class labels, got dtype {y.dtype}"
                                + (" with non-integer, huge or NaN values" if y.dtype.kind == "f" else ""))
        if x.dtype.kind not in "biuf":
            raise DataError(f"{label}: x must be a numeric array, got dtype {x.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):  # values too big for float32 become inf: check_dataset
            self.x = np.ascontiguousarray(x, dtype=np.float32)  # names them instead of a cast warning
        self.y = np.ascontiguousarray(y, dtype=np.int64)
        if len(self.y) and self.y.min() < 0:
            raise DataError(f"{label}: labels must be >= 0, found {int(self.y.min())}")
        n_classes = int(self.y.max()) + 1 if len(self.y) else 0
        if classes is None:
            classes = [str(k) for k in range(n_classes)]
        self.classes = [str(c) for c in classes]
        if len(self.classes) < n_classes:
            raise DataError(f"{label}: {len(self.classes)} class names but labels go up to {n_classes - 1}")
        self.name = name

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, idx: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.x[idx], self.y[idx]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (1, 8, 8) for digits."""
        return tuple(self.x.shape[1:])

    def subset(self, idx: Any, name: str | None = None) -> ArrayDataset:
        """A new dataset holding the rows ``idx`` (copies), with the same class names."""
        idx = np.asarray(idx)
        return ArrayDataset(self.x[idx], self.y[idx], self.classes, self.name if name is None else name)

    def __repr__(self) -> str:
        return (f"ArrayDataset(name={self.name!r}, n={len(self)}, sample_shape={self.sample_shape}, "
                f"classes={self.num_classes})")


def check_dataset(ds: ArrayDataset, where: str) -> ArrayDataset:
    """The checks every data source passes at load: not empty, finite, labels in range, sane shapes.

    Args:
        ds: the loaded data set.
        where: the file or directory it came from (named in every message).

    Returns:
        ``ds`` itself.

    Raises:
        DataError: naming ``where``, what is wrong (with the first bad sample) and the fix.
    """
    label = f"{ds.name or 'data set'} ({where})"
    if len(ds) == 0:
        raise DataError(f"{label}: the data set is empty (0 samples); check the files or the split")
    if any(d == 0 for d in ds.x.shape[1:]):
        raise DataError(f"{label}: samples have shape {ds.sample_shape}, with a zero-sized dimension")
    finite = np.isfinite(ds.x.reshape(len(ds), -1)).all(axis=1)                  # (N,) per sample
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(f"{label}: {len(bad)} sample(s) hold NaN or Inf values (the first is sample {int(bad[0])}); "
                        "remove or repair them")
    if ds.y.max() >= ds.num_classes:
        raise DataError(f"{label}: label {int(ds.y.max())} is out of range for {ds.num_classes} classes "
                        f"(0..{ds.num_classes - 1}); check the labels or the class names")
    return ds


def stratified_split(y: np.ndarray, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified train/test split of the indices of ``y``.

    For each class k (in increasing order) the indices of that class are permuted by
    ``numpy.random.default_rng(seed)`` (one generator, classes drawn in order) and the first
    ``round(test_fraction * n_k)`` go to the test set. Both index arrays come back sorted, so
    the split depends only on ``y``, ``test_fraction`` and ``seed``.

    Returns:
        (train_idx, test_idx), int64 arrays.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"stratified_split: test_fraction must be in (0, 1), got {test_fraction}")
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    test_parts = []
    for k in np.unique(y):
        members = np.flatnonzero(y == k)
        n_test = int(round(test_fraction * len(members)))
        test_parts.append(rng.permutation(members)[:n_test])
    test_idx = np.sort(np.concatenate(test_parts)) if test_parts else np.zeros(0, np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask).astype(np.int64), test_idx.astype(np.int64)
