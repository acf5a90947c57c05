"""The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/), gzipped or not.

Layout (all integers big-endian)::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions D
    4*D bytes   the dimension sizes, uint32 each
    then        prod(dims) elements, row-major

Every field is checked, so a truncated or corrupt file stops with an error that names the
file and what was expected instead of failing deep inside NumPy.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import DataError

IDX_DTYPES: dict[int, np.dtype[Any]] = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {dt.newbyteorder("=").str.lstrip("<>|="): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


MAX_DECOMPRESSED = 4 << 30  # 4 GiB: MNIST's largest file is 47 MB; more is a "zip bomb"


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        out, rest = [], raw
        total = 0
        while rest[:2] == _GZIP_MAGIC:  # a gzip file may hold several members
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out.append(d.decompress(rest, MAX_DECOMPRESSED - total + 1))
            total += len(out[-1])
            if total > MAX_DECOMPRESSED or d.unconsumed_tail:
                raise DataError(f"{path}: decompresses to more than {MAX_DECOMPRESSED >> 30} GiB; not an IDX data "
                                "file (a compression bomb?)")
            if not d.eof:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
            rest = d.unused_data
        return b"".join(out)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip file ({e}); delete it and download it again "
                        f"(`layerwise download NAME`)") from None


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (plain or gzip, detected from the content) into a native-endian array.

    Args:
        path: the file.
        ndim: the number of dimensions expected (3 for images, 1 for labels), or None.

    Raises:
        DataError: on a bad magic number, an unknown element type, an unexpected number of
            dimensions, or a data section shorter or longer than the header says.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: not an IDX file: {len(raw)} bytes, shorter than the 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file: magic number {raw[:4].hex()} should be 0000TTDD with type "
                        f"TT in {{08, 09, 0b, 0c, 0d, 0e}}; is it the right file, and not an HTML error page?")
    dtype, nd = IDX_DTYPES[raw[2]], raw[3]
    if ndim is not None and nd != ndim:
        raise DataError(f"{path}: expected an IDX file with {ndim} dimension(s), the header says {nd}; "
                        "are the image and label files swapped?")
    header = 4 + 4 * nd
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header: {nd} dimensions need {header} bytes, file has {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=nd, offset=4))
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow on a forged header
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise DataError(f"{path}: IDX file {what}: header says {'x'.join(map(str, dims))} {dtype.name} = "
                        f"{expected} bytes of data, found {found}; download the file again")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, arr: np.ndarray, compress: bool | None = None) -> None:
    """Write ``arr`` as an IDX file (gzip when ``compress`` or the name ends in .gz)."""
    path = Path(path)
    arr = np.asarray(arr)
    key = arr.dtype.newbyteorder("=").str.lstrip("<>|=")
    if key not in _CODES:
        raise ValueError(f"write_idx: dtype {arr.dtype} has no IDX code; use uint8, int8, int16, int32, "
                         "float32 or float64")
    code = _CODES[key]
    data = (bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
            + arr.astype(IDX_DTYPES[code]).tobytes())
    if compress or (compress is None and path.suffix == ".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
