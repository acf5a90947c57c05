"""CIFAR-10 and CIFAR-100 from the official python batches, decoded without executing code.

The batches are Python 2 pickles of dicts: ``data`` a uint8 (N, 3072) array (1024 red, 1024 green,
1024 blue values per row, each a 32x32 image in row-major order), ``labels`` (CIFAR-10) or
``fine_labels`` / ``coarse_labels`` (CIFAR-100) lists of ints, plus names. They are read with
:func:`~layerwise.data.safe_pickle.load_plain_pickle`, which refuses anything but plain data.
"""
from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.registry import register
from .dataset import ArrayDataset, DataError
from .safe_pickle import load_plain_pickle

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cifar_reader(root: Path, dirname: str, tarname: str, member: str, name: str) -> Callable[[str], bytes | None]:
    """A function file -> bytes that reads from the extracted directory or straight from the tarball."""
    for d in (root / dirname, root / name / dirname, root, root / name):
        if (d / member).is_file():
            return lambda f: (d / f).read_bytes() if (d / f).is_file() else None
    for tar_path in (root / tarname, root / name / tarname):
        if tar_path.is_file():
            try:
                tar = tarfile.open(tar_path, "r:*")
                names = set(tar.getnames())
            except (tarfile.TarError, OSError, EOFError) as e:
                raise DataError(f"{name}: {tar_path} is corrupt or truncated ({e}); delete it and run "
                                f"`layerwise download {name}` again") from None

            def read(f: str, tar: tarfile.TarFile = tar, names: set[str] = names,
                     tar_path: Path = tar_path) -> bytes | None:
                key = f"{dirname}/{f}"
                if key not in names:
                    return None
                try:
                    return tar.extractfile(key).read()  # type: ignore[union-attr]
                except (tarfile.TarError, OSError, EOFError) as e:
                    raise DataError(f"{name}: {tar_path}: cannot read {key} ({e}); the archive is corrupt") from None

            return read
    raise DataError(f"{name}: found neither {root / dirname}/{member} nor {root / tarname}. Run `layerwise download "
                    f"{name} --root {root}`, or download {tarname} by hand from https://www.cs.toronto.edu/~kriz/ "
                    f"and put it (or its extracted {dirname}/ folder) in {root}.")


def _get(d: dict, key: str) -> Any:
    return d[key] if key in d else d.get(key.encode())


def read_cifar_batch(raw: bytes, where: str, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one CIFAR python batch (safely, see :mod:`.safe_pickle`) into uint8 (N, 3, 32, 32) and labels."""
    batch = load_plain_pickle(raw, where)
    if not isinstance(batch, dict):
        raise DataError(f"{where}: expected a CIFAR batch (a dict with 'data' and '{label_key}'), "
                        f"got a {type(batch).__name__}")
    data, labels = _get(batch, "data"), _get(batch, label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: 'data' must be a uint8 (N, 3072) array, got {desc}")
    if labels is None:
        raise DataError(f"{where}: batch has no '{label_key}' key; keys are {sorted(map(str, batch))}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: '{label_key}' must be a list of integers") from None
    if y.shape != (len(data),):
        raise DataError(f"{where}: {len(data)} images but '{label_key}' has shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{where}: labels must be in 0..{num_classes - 1}, found {int(y.min())}..{int(y.max())}")
    return data.reshape(-1, 3, 32, 32), y


def _names(meta: Any, key: str, default: list[str]) -> list[str]:
    names = _get(meta, key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != len(default):
        return default
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]


def _cifar_source(name: str, dirname: str, tarname: str, files: dict[str, list[str]], meta_file: str,
                  num_classes: int) -> Callable[..., ArrayDataset]:
    def load(root: Path, split: str, label_mode: str = "fine") -> ArrayDataset:
        if label_mode not in ("fine", "coarse"):
            raise ValueError(f"{name}: label_mode must be 'fine' or 'coarse', got {label_mode!r}")
        k = 20 if num_classes == 100 and label_mode == "coarse" else num_classes
        label_key = "labels" if num_classes == 10 else f"{label_mode}_labels"
        read = _cifar_reader(root, dirname, tarname, files[split][0], name)
        xs, ys = [], []
        for f in files[split]:
            raw = read(f)
            if raw is None:
                raise DataError(f"{name}: {dirname}/{f} is missing; download the data set again")
            x, y = read_cifar_batch(raw, f"{name}: {dirname}/{f}", label_key, k)
            xs.append(x)
            ys.append(y)
        meta_raw = read(meta_file)
        meta = load_plain_pickle(meta_raw, f"{name}: {dirname}/{meta_file}") if meta_raw is not None else None
        default = CIFAR10_CLASSES if k == 10 else [str(i) for i in range(k)]
        key = "label_names" if num_classes == 10 else f"{label_mode}_label_names"
        x = np.concatenate(xs).astype(np.float32) / np.float32(255)     # (N, 3, 32, 32)
        return ArrayDataset(x, np.concatenate(ys), _names(meta, key, default), f"{name}/{split}")

    return load


register("dataset", "cifar10")(_cifar_source(
    "cifar10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
    {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}, "batches.meta", 10))
register("dataset", "cifar100")(_cifar_source(
    "cifar100", "cifar-100-python", "cifar-100-python.tar.gz", {"train": ["train"], "test": ["test"]}, "meta", 100))


__all__ = ["read_cifar_batch", "CIFAR10_CLASSES"]
