"""A folder of images: ``root/class_name/*.png`` (or ``root/train/...`` and ``root/test/...``).

Class names are the sorted sub-folder names (label k = k-th name), as in torchvision's
ImageFolder. Images are decoded by :func:`layerwise.data.images.read_image` (Pillow); all must have
one size unless ``size=(H, W)`` is given (then resized with its bilinear filter).
Without train/ and test/ sub-folders, the files are split by :func:`stratified_split`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.registry import register
from .dataset import ArrayDataset, DataError, stratified_split
from .images import IMAGE_SUFFIXES, image_mode, open_image, read_image


def _read_images(files: list[Path], size: Any, mode: str | None) -> np.ndarray:
    """All ``files`` as one (N, C, H, W) float32 batch in [0, 1] (decoded by ``images.read_image``)."""
    try:
        imgs = [open_image(f) for f in files]  # one file per image: the per-sample loop is I/O, not arithmetic
    except DataError as e:
        raise DataError(f"folder: {e}; delete or replace it") from None
    if mode is None:
        mode = "L" if all(image_mode(im) == "L" for im in imgs) else "RGB"
    arrays: list[np.ndarray] = []
    for f, im in zip(files, imgs):
        a = read_image(im, mode=mode, size=size)
        if arrays and a.shape != arrays[0].shape:
            raise DataError(f"folder: {f} is {a.shape[2]}x{a.shape[1]} but {files[0]} is "
                            f"{arrays[0].shape[2]}x{arrays[0].shape[1]}; pass size=(H, W) to resize all images")
        arrays.append(a)
    return np.stack(arrays)


def _scan(d: Path) -> tuple[list[Path], list[int], list[str]]:
    classes = sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    files, labels = [], []
    for k, c in enumerate(classes):
        found = sorted(p for p in (d / c).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        files += found
        labels += [k] * len(found)
    return files, labels, classes


@register("dataset", "folder")
def _folder(root: Path, split: str, size: Any = None, mode: str | None = None, test_fraction: float = 0.2,
            split_seed: int = 0) -> ArrayDataset:
    if not root.is_dir():
        raise DataError(f"folder: {root} is not a directory; expected root/class_name/*.png "
                        "(or root/train/class_name/... and root/test/class_name/...)")
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    files, labels, classes = _scan(root / split if has_splits else root)
    if not files:
        raise DataError(f"folder: no images ({', '.join(IMAGE_SUFFIXES)}) under {root}/<class_name>/")
    if has_splits:
        train_classes = _scan(root / "train")[2] if split == "test" else classes
        if classes != train_classes:
            raise DataError(f"folder: class folders of {root / 'test'} {classes} differ from those of "
                            f"{root / 'train'} {train_classes}")
        return ArrayDataset(_read_images(files, size, mode), labels, classes, f"folder/{split}")
    y = np.asarray(labels, dtype=np.int64)
    train_idx, test_idx = stratified_split(y, test_fraction, split_seed)
    idx = train_idx if split == "train" else test_idx
    return ArrayDataset(_read_images([files[i] for i in idx], size, mode), y[idx], classes, f"folder/{split}")


__all__ = ["IMAGE_SUFFIXES"]
