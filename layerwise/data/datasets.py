"""Data sets in their published formats, all returned as :class:`ArrayDataset`.

=================  ==========================================================  ==================
name               files (in ``root``, ``root/<name>`` or torchvision's layout)  x shape
=================  ==========================================================  ==================
``digits``         none: scikit-learn's embedded 8x8 digits                     (N, 1, 8, 8)
``mnist``          train-images-idx3-ubyte[.gz], ... t10k-labels-idx1-ubyte     (N, 1, 28, 28)
``fashion_mnist``  same four IDX names as MNIST                                 (N, 1, 28, 28)
``cifar10``        cifar-10-batches-py/ (or the .tar.gz itself)                 (N, 3, 32, 32)
``cifar100``       cifar-100-python/ (or the .tar.gz itself)                    (N, 3, 32, 32)
``npz``            a .npz with x, y (or x_train/y_train/x_test/y_test)          as stored (NCHW)
``folder``         root/[train|test/]class_name/*.png|jpg|bmp|gif               (N, C, H, W)
=================  ==========================================================  ==================

Pixel values are scaled to [0, 1] (uint8 / 255, digits / 16). Sources without a test split of
their own (digits, an npz with only x and y, a folder without train/ and test/) are split by
:func:`stratified_split`: per class, 20 % to the test set, seed 0; the split is the same on every
machine and run (``test_fraction=`` and ``split_seed=`` change it).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.registry import lookup, register, registered
from .dataset import ArrayDataset, DataError, check_dataset, stratified_split
from .idx import read_idx

SPLITS = ("train", "test")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def default_root() -> Path:
    """``$LAYERWISE_DATA`` if set, else ``$XDG_CACHE_HOME/layerwise`` (``~/.cache/layerwise``)."""
    if os.environ.get("LAYERWISE_DATA"):
        return Path(os.environ["LAYERWISE_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "layerwise"


def canonical_name(name: str) -> str:
    """'Fashion-MNIST' -> 'fashion_mnist', 'CIFAR-10' -> 'cifar10'."""
    key = name.strip().lower().replace("-", "_")
    return {"cifar_10": "cifar10", "cifar_100": "cifar100", "fashionmnist": "fashion_mnist"}.get(key, key)


def available_datasets() -> list[str]:
    return registered("dataset")


def load_dataset(name: str, root: str | os.PathLike | None = None, split: str = "train", **kw: Any) -> ArrayDataset:
    """Load the ``split`` ('train' or 'test') of data set ``name`` from ``root``.

    Args:
        name: one of :func:`available_datasets` (case and '-' / '_' do not matter).
        root: the data directory (default :func:`default_root`); for 'npz' a .npz file or a
            directory of ``train.npz`` / ``test.npz``; for 'folder' the image directory.
        split: 'train' or 'test'.
        **kw: source options: ``test_fraction``, ``split_seed`` (digits, npz, folder),
            ``label_mode`` ('fine' | 'coarse', cifar100), ``size`` ((H, W) resize, folder),
            ``mode`` ('L' | 'RGB', folder).

    Raises:
        DataError: missing, truncated or corrupt files, or data that fails :func:`check_dataset`
            (empty, NaN/Inf, labels out of range); the message names the file and what to do.
        KeyError: unknown data set name.

    Example:
        >>> train = load_dataset("digits")
        >>> train.x.shape[1:], train.num_classes
        ((1, 8, 8), 10)
    """
    if split not in SPLITS:
        raise ValueError(f"load_dataset: split must be 'train' or 'test', got {split!r}")
    source: Callable[..., ArrayDataset] = lookup("dataset", canonical_name(name))
    root_path = Path(root).expanduser() if root is not None else default_root()
    where = "built in" if canonical_name(name) == "digits" else str(root_path)
    try:
        ds = source(root_path, split, **kw)
    except DataError as e:
        if where in str(e) or where == "built in":
            raise
        raise type(e)(f"{e} (data set {canonical_name(name)!r} from {where})") from None  # name the file
    return check_dataset(ds, where)


def _take_split(x: np.ndarray, y: np.ndarray, split: str, classes: Any, name: str,
                test_fraction: float = 0.2, split_seed: int = 0) -> ArrayDataset:
    train_idx, test_idx = stratified_split(y, test_fraction, split_seed)
    idx = train_idx if split == "train" else test_idx
    return ArrayDataset(x[idx], y[idx], classes, f"{name}/{split}")


# ----------------------------------------------------------------------------- digits
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's embedded digits as (images (1797, 8, 8) in 0..16, labels).

    Importing ``sklearn.datasets`` costs seconds (it pulls in SciPy), so the CSV that scikit-learn
    ships (64 pixel columns, then the label) is read directly when it is where scikit-learn keeps
    it; otherwise ``sklearn.datasets.load_digits`` is used. Both give the same arrays.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    for base in (spec.submodule_search_locations or []) if spec else []:
        csv = Path(base) / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            table = np.loadtxt(csv, delimiter=",")
            if table.shape == (1797, 65):
                return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target.astype(np.int64)


@register("dataset", "digits")
def _digits(root: Path, split: str, test_fraction: float = 0.2, split_seed: int = 0) -> ArrayDataset:
    images, target = _digits_arrays()
    x = (images[:, None] / 16.0).astype(np.float32)                 # (1797, 1, 8, 8) in [0, 1]
    return _take_split(x, target, split, [str(k) for k in range(10)], "digits", test_fraction, split_seed)


# ----------------------------------------------------------------------------- MNIST, Fashion-MNIST
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find_file(dirs: list[Path], names: list[str]) -> Path | None:
    for d in dirs:
        for n in names:
            if (d / n).is_file():
                return d / n
    return None


def _idx_source(name: str, torch_dir: str, classes: list[str]) -> Callable[..., ArrayDataset]:
    def load(root: Path, split: str) -> ArrayDataset:
        dirs = [root / name, root, root / name / "raw", root / torch_dir / "raw"]
        found = []
        for base in IDX_FILES[split]:
            variants = [base + ".gz", base, base.replace("-idx", ".idx") + ".gz", base.replace("-idx", ".idx")]
            path = _find_file(dirs, variants)
            if path is None:
                raise DataError(
                    f"{name}: no {base}[.gz] in {root / name} or {root}. Run `layerwise download {name} --root "
                    f"{root}`, or put the four files {', '.join(f + '.gz' for f in sum(IDX_FILES.values(), ()))} "
                    f"in {root / name} by hand.")
            found.append(path)
        images, labels = read_idx(found[0], ndim=3), read_idx(found[1], ndim=1)
        if len(images) != len(labels):
            raise DataError(f"{name}: {found[0]} holds {len(images)} images but {found[1]} holds {len(labels)} "
                            "labels; the files do not belong together")
        if images.dtype != np.uint8 or labels.dtype != np.uint8:
            raise DataError(f"{name}: expected uint8 IDX files, got {images.dtype} images and {labels.dtype} labels")
        if len(labels) and labels.max() >= len(classes):
            raise DataError(f"{name}: {found[1]} has label {int(labels.max())}; expected 0..{len(classes) - 1}")
        x = images[:, None].astype(np.float32) / np.float32(255)          # (N, 1, 28, 28)
        return ArrayDataset(x, labels.astype(np.int64), classes, f"{name}/{split}")

    return load


register("dataset", "mnist")(_idx_source("mnist", "MNIST", [str(k) for k in range(10)]))
register("dataset", "fashion_mnist")(_idx_source("fashion_mnist", "FashionMNIST", FASHION_CLASSES))


# ----------------------------------------------------------------------------- npz
def _as_images(x: np.ndarray, where: str) -> np.ndarray:
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255)
    elif not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"{where}: x must be numeric, got dtype {x.dtype}")
    if x.ndim == 3:                                                   # (N, H, W) -> (N, 1, H, W)
        x = x[:, None]
    if x.ndim not in (2, 4):
        raise DataError(f"{where}: x must be (N, C, H, W), (N, H, W) or (N, F), got shape {x.shape}")
    return x


@register("dataset", "npz")
def _npz(root: Path, split: str, test_fraction: float = 0.2, split_seed: int = 0) -> ArrayDataset:
    path = root / f"{split}.npz" if root.is_dir() else root
    if not path.is_file():
        raise DataError(f"npz: {path} does not exist; pass root=FILE.npz (arrays x, y) or a directory holding "
                        "train.npz and test.npz")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as e:
        raise DataError(f"npz: {path}: {e} (object arrays are refused because loading them runs code; "
                        "store plain numeric arrays)") from None
    except Exception as e:  # zipfile.BadZipFile, EOFError, OSError, zlib.error ...
        raise DataError(f"npz: {path} is not a readable .npz file ({type(e).__name__}: {e})") from None
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
    if f"x_{split}" in arrays and f"y_{split}" in arrays:
        return ArrayDataset(_as_images(arrays[f"x_{split}"], str(path)), arrays[f"y_{split}"], classes,
                            f"npz/{split}")
    if "x" not in arrays or "y" not in arrays:
        raise DataError(f"npz: {path} must hold arrays 'x' and 'y' (or x_train, y_train, x_test, y_test); "
                        f"it holds {sorted(arrays)}")
    x, y = _as_images(arrays["x"], str(path)), arrays["y"]
    if len(x) != len(y):
        raise DataError(f"npz: {path}: x has {len(x)} rows but y has {len(y)}")
    if root.is_dir():
        return ArrayDataset(x, y, classes, f"npz/{split}")
    return _take_split(x, y, split, classes, "npz", test_fraction, split_seed)


# CIFAR and folder-of-images sources register themselves on import.
from . import cifar as _cifar  # noqa: E402,F401
from . import folder as _folder  # noqa: E402,F401

__all__ = ["load_dataset", "available_datasets", "default_root", "canonical_name", "FASHION_CLASSES"]
