"""Checkpoints as safetensors or .npz: arrays plus JSON metadata, never pickle, written atomically.

A checkpoint is ``tensors`` (a flat ``{name: ndarray}``) plus ``meta`` (a JSON-able dict: epoch,
iteration, config, generator states, ...). The format follows the file extension:

* ``.safetensors``: the tensors, and ``meta`` as a JSON string under the metadata key
  ``"layerwise"`` (the safetensors header holds only strings).
* ``.npz``: one ``.npy`` member per tensor (written with ``allow_pickle=False``) and ``meta`` as
  UTF-8 JSON bytes in a uint8 member named ``__layerwise_meta__``.

Loading never runs code (``np.load(..., allow_pickle=False)``; safetensors has no code path).
Saving writes a temporary file in the same directory, fsyncs it, and ``os.replace``-s it over
the target, so a crash or Ctrl-C during a save leaves the previous checkpoint intact.

Nested training state (a solver's per-param buffers, the loader's permutation) goes through
:func:`pack_state` / :func:`unpack_state`, which move the arrays into ``tensors`` and leave
``{"__tensor__": name}`` references in the JSON tree.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..backend import is_array, to_numpy

SUFFIXES = (".safetensors", ".npz")
META_KEY = "__layerwise_meta__"
SAFETENSORS_META_KEY = "layerwise"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, truncated or not a layerwise checkpoint."""


def _fmt(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        hint = (" (a PyTorch file: layerwise reads only its own checkpoints, which hold no pickled code)"
                if suffix in (".pt", ".pth", ".ckpt", ".bin") else "")
        raise CheckpointError(f"checkpoint {path}: unknown extension {suffix!r}{hint}; pass a .safetensors or .npz "
                              "checkpoint written by layerwise")
    return suffix


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"{type(v).__name__} is not JSON-serialisable; put arrays in tensors (see pack_state)")


def _meta_bytes(meta: dict[str, Any], path: Path) -> bytes:
    if not isinstance(meta, dict):
        raise TypeError(f"save_checkpoint {path}: meta must be a dict, got {type(meta).__name__}")
    try:
        doc = {"format_version": FORMAT_VERSION, "meta": meta}
        return json.dumps(doc, default=_json_default, sort_keys=True).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_checkpoint {path}: meta is not JSON-able: {e}") from None


def _check_tensors(tensors: dict[str, Any], path: Path) -> dict[str, np.ndarray]:
    out = {}
    for k, v in tensors.items():
        if not isinstance(k, str) or not k or k == META_KEY:
            raise ValueError(f"save_checkpoint {path}: bad tensor name {k!r} (non-empty str, not {META_KEY!r})")
        a = to_numpy(v) if is_array(v) else np.asarray(v)
        if a.dtype.hasobject or a.dtype.kind not in "biufc":
            raise TypeError(f"save_checkpoint {path}: tensor {k!r} has dtype {a.dtype}; only numeric arrays "
                            "can be stored (no pickled objects)")
        out[k] = a if a.flags.c_contiguous else np.array(a, order="C")  # (ascontiguousarray makes 0-d 1-d)
    return out


def _write_safetensors(f: BinaryIO, tensors: dict[str, np.ndarray], meta: bytes) -> None:
    from safetensors.numpy import save

    f.write(save(tensors, metadata={SAFETENSORS_META_KEY: meta.decode("utf-8")}))


def _write_npz(f: BinaryIO, tensors: dict[str, np.ndarray], meta: bytes) -> None:
    items = list(tensors.items()) + [(META_KEY, np.frombuffer(meta, dtype=np.uint8))]
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in items:
            with zf.open(name + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


_WRITERS: dict[str, Callable[[BinaryIO, dict[str, np.ndarray], bytes], None]] = {
    ".safetensors": _write_safetensors, ".npz": _write_npz}


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/file system allows it
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` and ``meta`` to ``path`` atomically (format from the extension).

    Args:
        path: a ``.safetensors`` or ``.npz`` file; parent directories are created.
        tensors: flat ``{name: array}`` of numeric arrays (CuPy arrays are copied to the host).
        meta: a JSON-able dict (NumPy scalars are converted).

    Returns:
        The path written.

    Raises:
        ValueError / TypeError: bad extension, tensor name or dtype, or meta that is not JSON-able;
            nothing is written then.
    """
    path = Path(path)
    writer = _WRITERS[_fmt(path)]
    arrays = _check_tensors(tensors, path)
    meta_raw = _meta_bytes(meta, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f, arrays, meta_raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:  # includes KeyboardInterrupt: never leave the half-written temp file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None:  # disk full, file-size limit: name the checkpoint
            raise type(e)(e.errno, e.strerror, str(path)) from None
        raise
    _fsync_dir(path.parent)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed mid-save
        with contextlib.suppress(OSError):
            stale.unlink()
    return path


def _parse_meta(raw: bytes | str, path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
        return doc["meta"] if isinstance(doc, dict) and "format_version" in doc else doc
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path}: metadata is not valid JSON ({e}); the file is corrupt") from None


def _open_checks(path: Path) -> str:
    fmt = _fmt(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return fmt


def _load_safetensors(path: Path, with_tensors: bool) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}
    except Exception as e:  # SafetensorError and friends: the file is not a complete safetensors file
        raise CheckpointError(f"checkpoint {path}: corrupt or truncated safetensors file ({e}); "
                              "use an earlier checkpoint") from None
    if SAFETENSORS_META_KEY not in header:
        raise CheckpointError(f"checkpoint {path}: a safetensors file without layerwise metadata; "
                              "it was not written by save_checkpoint")
    return tensors, _parse_meta(header[SAFETENSORS_META_KEY], path)


def _load_npz(path: Path, with_tensors: bool) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # np.load would try a pickle for anything else
        raise CheckpointError(f"checkpoint {path}: not an .npz (zip) file (it starts with {magic!r}); the file is "
                              "corrupt or in another format: use an earlier checkpoint")
    try:
        with np.load(path, allow_pickle=False) as f:
            if META_KEY not in f.files:
                raise CheckpointError(f"checkpoint {path}: an .npz without {META_KEY!r}; it was not written by "
                                      "save_checkpoint")
            meta_raw = f[META_KEY].tobytes()
            names = [k for k in f.files if k != META_KEY] if with_tensors else []
            tensors = {k: f[k] for k in names}
    except CheckpointError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise CheckpointError(f"checkpoint {path}: holds pickled objects, which are refused (loading them "
                                  "would run code)") from None
        raise CheckpointError(f"checkpoint {path}: corrupt or truncated .npz file ({e})") from None
    except Exception as e:  # BadZipFile, EOFError, OSError, zlib.error: the zip is damaged
        raise CheckpointError(f"checkpoint {path}: corrupt or truncated .npz file ({type(e).__name__}: {e}); "
                              "use an earlier checkpoint") from None
    return tensors, _parse_meta(meta_raw, path)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; never executes code.

    Returns:
        (tensors, meta): NumPy arrays by name and the metadata dict.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is corrupt, truncated or not a layerwise checkpoint (the message
            names the file).
    """
    path = Path(path)
    loader = _load_safetensors if _open_checks(path) == ".safetensors" else _load_npz
    return loader(path, True)


def read_checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Only the metadata of a checkpoint (cheap: the tensors are not read)."""
    path = Path(path)
    loader = _load_safetensors if _open_checks(path) == ".safetensors" else _load_npz
    return loader(path, False)[1]


def find_latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest readable checkpoint in ``run_dir`` or ``run_dir/checkpoints`` (for ``--resume auto``).

    Newest = latest modification time (ties: larger ``meta["iteration"]``, then name). Hidden
    temporary files of an interrupted save are ignored; an unreadable checkpoint is skipped with
    a warning. Returns None when there is none.
    """
    run_dir = Path(run_dir)
    files = [p for d in (run_dir, run_dir / "checkpoints") if d.is_dir() for p in d.iterdir()
             if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")]
    files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)
    candidates = []
    for p in files:
        try:
            meta = read_checkpoint_meta(p)
        except (CheckpointError, OSError) as e:
            warnings.warn(f"find_latest_checkpoint: skipping {p}: {e}", stacklevel=2)
            continue
        it = meta.get("iteration", -1) if isinstance(meta, dict) else -1
        candidates.append((p.stat().st_mtime_ns, it if isinstance(it, int) else -1, p.name, p))
    return max(candidates)[3] if candidates else None


def pack_state(state: Any, prefix: str = "") -> tuple[dict[str, np.ndarray], Any]:
    """Split a nested state (dicts, lists, arrays, JSON values) into tensors and a JSON tree.

    Each array moves into ``tensors`` under its path (``prefix/key/subkey``, list items by index)
    and is replaced in the tree by ``{"__tensor__": path}``. Tuples become lists.

    Example:
        >>> tensors, meta = pack_state({"epoch": 2, "perm": np.arange(3)}, "loader")
        >>> list(tensors), meta
        (['loader/perm'], {'epoch': 2, 'perm': {'__tensor__': 'loader/perm'}})
    """
    tensors: dict[str, np.ndarray] = {}

    def walk(v: Any, key: str) -> Any:
        if is_array(v):
            if key in tensors:
                raise ValueError(f"pack_state: two arrays map to the name {key!r}")
            tensors[key] = to_numpy(v)
            return {"__tensor__": key}
        if isinstance(v, dict):
            return {str(k): walk(x, f"{key}/{k}" if key else str(k)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x, f"{key}/{i}" if key else str(i)) for i, x in enumerate(v)]
        if isinstance(v, np.generic):
            return v.item()
        return v

    return tensors, walk(state, prefix)


def unpack_state(meta: Any, tensors: dict[str, np.ndarray]) -> Any:
    """Inverse of :func:`pack_state`: put the arrays back where the references are."""
    if isinstance(meta, dict):
        if set(meta) == {"__tensor__"}:
            key = meta["__tensor__"]
            if key not in tensors:
                raise CheckpointError(f"unpack_state: the checkpoint has no tensor {key!r} that its metadata names")
            return tensors[key]
        return {k: unpack_state(v, tensors) for k, v in meta.items()}
    if isinstance(meta, list):
        return [unpack_state(v, tensors) for v in meta]
    return meta


__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_meta", "find_latest_checkpoint",
           "pack_state", "unpack_state", "CheckpointError"]
