"""Writers for small files in the real published formats (IDX, CIFAR python batches), for tests."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX encoding written from the spec (independent of layerwise.data.write_idx)."""
    code = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D}[arr.dtype]
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_mnist(d: Path, n_train: int = 12, n_test: int = 5, gz: bool = True, seed: int = 0) -> dict:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            raw = idx_bytes(arr)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (d / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (d / name).write_bytes(raw)
        data[split] = (images, labels)
    return data


def _s(b: bytes) -> bytes:  # a Python 2 ``str`` (SHORT_BINSTRING / BINSTRING)
    return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<I", len(b)) + b)


def _i(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])                           # BININT1
    return b"M" + struct.pack("<H", v) if 0 <= v < 65536 else b"J" + struct.pack("<i", v)


def py2_pickle(d: dict) -> bytes:
    """What Python 2's cPickle.dump(d, f, 2) writes for a CIFAR batch: str keys, numpy uint8 arrays."""
    out = bytearray(b"\x80\x02}(")                      # PROTO 2, EMPTY_DICT, MARK
    for k, v in d.items():
        out += _s(k)
        if isinstance(v, np.ndarray):
            assert v.dtype == np.uint8 and v.ndim == 2
            out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _i(0) + b"\x85" + _s(b"b") + b"\x87R"
            out += b"(" + _i(1) + _i(v.shape[0]) + _i(v.shape[1]) + b"\x86"
            out += b"cnumpy\ndtype\n" + _s(b"u1") + _i(0) + _i(1) + b"\x87R"
            out += b"(" + _i(3) + _s(b"|") + b"NNN" + _i(-1) + _i(-1) + _i(0) + b"tb"
            out += b"\x89" + _s(v.tobytes()) + b"tb"
        elif isinstance(v, list):
            out += b"](" + b"".join(_i(x) if isinstance(x, int) else _s(x) for x in v) + b"e"
        elif isinstance(v, int):
            out += _i(v)
        else:
            out += _s(v)
    return bytes(out + b"u.")                             # SETITEMS, STOP


def cifar_batch(n: int, num_classes: int = 10, seed: int = 0, label_key: bytes = b"labels"):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, num_classes, n).tolist()
    batch = {b"batch_label": b"training batch 1 of 5", label_key: labels, b"data": data,
             b"filenames": [b"img_%d.png" % i for i in range(n)]}
    return batch, data, labels


def py3_pickle(d: dict) -> bytes:
    return pickle.dumps(d, protocol=2)
