"""Direct calls into NumPy's own BLAS: GEMMs on strided views, accumulating (beta = 1), split
over threads by column ranges.

NumPy's ``matmul`` cannot accumulate into its output (``C += A @ B`` makes a temporary and a
second pass over C) and treats each call as a whole. A convolution done as kh*kw GEMMs on
shifted views of one padded input (``functional.conv``, method ``"cftaps"``) wants exactly
those two things: ``C = sum_t A_t @ B[:, s_t:s_t + n]`` with ``beta = 1`` and no copies. This
module finds the CBLAS ``?gemm`` of the BLAS library NumPy itself loaded (its OpenBLAS: so one
library, one thread pool) and calls it through ``ctypes`` on raw pointers.

    gemm(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc, dtype)    # pointers (ints), row-major
    parallel(fn, n)                  # fn(lo, hi) on a split of range(n), one part per thread
    parallel_chunks(fn, nchunks)     # fn(chunk, thread), chunks handed to whichever thread is free
    matmul(A, B, out, accumulate=)   # A @ B as such chunks of GEMMs (transposed views read in place)

Threads: a GEMM of 16 x 16 x 40k is too small for OpenBLAS's own threads to pay (they hand
work over and spin after every call; on these 2-vCPU machines 9 such calls ran 2x slower
with 2 OpenBLAS threads than with 1). ``parallel`` instead splits the columns into one
range per thread (as many threads as OpenBLAS is set to use), runs each range's GEMMs on
one OpenBLAS thread (OpenBLAS is set to 1 thread for the duration, then restored), and
``ctypes`` releases the GIL during each call, so Python threads run the ranges side by side.

When NumPy's BLAS cannot be found (NumPy built against MKL or Accelerate, an unknown
library name) or ``LAYERWISE_NO_BLAS=1`` is set, ``available()`` is False and ``reason()``
says why; callers then run the same algorithm through ``xp.matmul`` (``functional.conv``).
"""
from __future__ import annotations

import ctypes
import glob
import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

# (gemm symbol prefix -> integer type); tried in this order on each candidate library
_SYMBOLS = (("scipy_cblas_{}gemm64_", ctypes.c_int64), ("cblas_{}gemm64_", ctypes.c_int64),
            ("scipy_cblas_{}gemm", ctypes.c_int32), ("cblas_{}gemm", ctypes.c_int32))
_THREAD_FNS = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
               ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
               ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
               ("openblas_get_num_threads", "openblas_set_num_threads"))


class _Blas:
    def __init__(self) -> None:
        self.gemm: dict[str, Any] = {}
        self.get_threads: Callable[[], int] | None = None
        self.set_threads: Callable[[int], None] | None = None
        self.path = ""
        self.reason = ""
        self.lock = threading.Lock()
        self.pool: ThreadPoolExecutor | None = None
        self.pool_size = 0


def _candidates() -> list[str]:
    """Shared libraries that may be NumPy's BLAS: the ones bundled in NumPy's wheel, then any
    loaded BLAS library of this process (conda and system NumPy link one)."""
    base = os.path.dirname(os.path.dirname(np.__file__))
    found: list[str] = []
    for d in (os.path.join(base, "numpy.libs"), os.path.join(os.path.dirname(np.__file__), ".dylibs")):
        found += sorted(glob.glob(os.path.join(d, "*openblas*")))
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if line.count("/") else ""
                name = os.path.basename(path).lower()
                if ("blas" in name or "mkl_rt" in name) and ".so" in name and path not in found:
                    found.append(path)
    except OSError:  # not Linux: the bundled libraries are all we look at
        pass
    return found


def _load() -> _Blas:
    b = _Blas()
    if os.environ.get("LAYERWISE_NO_BLAS", "").strip() not in ("", "0"):
        b.reason = "LAYERWISE_NO_BLAS is set"
        return b
    libs = _candidates()
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for pattern, int_t in _SYMBOLS:
            fns = {}
            for ch, real in (("s", ctypes.c_float), ("d", ctypes.c_double)):
                fn = getattr(lib, pattern.format(ch), None)
                if fn is None:
                    break
                fn.restype = None
                fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, int_t, int_t, int_t, real, ctypes.c_void_p,
                               int_t, ctypes.c_void_p, int_t, real, ctypes.c_void_p, int_t]
                fns[ch] = fn
            if len(fns) == 2:
                b.gemm = {"float32": fns["s"], "float64": fns["d"]}
                b.path = path
                for get_name, set_name in _THREAD_FNS:
                    g, s = getattr(lib, get_name, None), getattr(lib, set_name, None)
                    if g is not None and s is not None:
                        g.restype, g.argtypes = ctypes.c_int, []
                        s.restype, s.argtypes = None, [ctypes.c_int]
                        b.get_threads, b.set_threads = g, s
                        break
                return b
    b.reason = ("no CBLAS sgemm/dgemm found in NumPy's BLAS (looked in: "
                f"{', '.join(os.path.basename(p) for p in libs) or 'no candidate library'})")
    return b


_B: _Blas | None = None


def _blas() -> _Blas:
    global _B
    if _B is None:
        _B = _load()
    return _B


_ENABLED = [True]


def set_enabled(flag: bool) -> bool:
    """Switch the direct BLAS route on or off (off: callers take their ``xp.matmul`` form, as
    when no BLAS is found; the tests run both). Returns the previous setting."""
    old = _ENABLED[0]
    _ENABLED[0] = bool(flag)
    return old


def available() -> bool:
    """Whether GEMMs can be called directly (NumPy's BLAS was found and is not switched off)."""
    return _ENABLED[0] and bool(_blas().gemm)


def reason() -> str:
    """Why ``available()`` is False ("" when it is True)."""
    if not _ENABLED[0]:
        return "switched off by blas.set_enabled(False)"
    return _blas().reason


def library() -> str:
    """The path of the BLAS library in use ("" when none)."""
    return _blas().path


def supports(*arrays: Any) -> bool:
    """Whether ``gemm`` can run on these arrays: NumPy float32/float64 of one dtype, BLAS found."""
    if not available():
        return False
    dt = arrays[0].dtype
    return all(isinstance(a, np.ndarray) and a.dtype == dt for a in arrays) and dt.name in _blas().gemm


def gemm(ta: bool, tb: bool, m: int, n: int, k: int, A: int, lda: int, B: int, ldb: int, beta: float,
         C: int, ldc: int, dtype: str) -> None:
    """``C (m, n) = op(A) @ op(B) + beta * C`` on row-major matrices given by data pointers (ints)
    and leading dimensions in elements; op(A) is A (m, k), or A^T when ``ta`` (A stored (k, m))."""
    _blas().gemm[dtype](_ROW_MAJOR, _TRANS if ta else _NO_TRANS, _TRANS if tb else _NO_TRANS, m, n, k, 1.0,
                        A, lda, B, ldb, beta, C, ldc)


_OVERRIDE: list[int | None] = [None]


def set_num_threads(n: int | None) -> int | None:
    """Threads that ``parallel`` splits work over (None: as many as OpenBLAS is set to use).
    Returns the previous setting."""
    old = _OVERRIDE[0]
    _OVERRIDE[0] = None if n is None else max(1, int(n))
    return old


def num_threads() -> int:
    b = _blas()
    if _OVERRIDE[0] is not None:
        return _OVERRIDE[0]
    return max(1, int(b.get_threads())) if b.get_threads is not None else 1


def parallel(fn: Callable[[int, int, int], None], n: int, nparts: int | None = None, *,
             one_blas_thread: bool = False) -> None:
    """Run ``fn(lo, hi, part)`` over ``nparts`` (default ``parts(n)``) contiguous parts of
    ``range(n)``, one per thread, with OpenBLAS on one thread inside each part (with a single
    part OpenBLAS keeps its threads, unless ``one_blas_thread``). Exceptions propagate."""
    b = _blas()
    k = parts(n) if nparts is None else max(1, int(nparts))
    if k == 1 and not one_blas_thread:
        fn(0, n, 0)
        return
    with b.lock:
        blas_threads = b.get_threads() if b.get_threads is not None else 1
        bounds = [n * i // k for i in range(k + 1)]
        if k > 1 and (b.pool is None or b.pool_size < k - 1):
            if b.pool is not None:
                b.pool.shutdown(wait=True)
            b.pool = ThreadPoolExecutor(k - 1, thread_name_prefix="layerwise-blas")
            b.pool_size = k - 1
        if b.set_threads is not None and blas_threads != 1:
            b.set_threads(1)
        try:
            pool = b.pool
            futures = [] if pool is None else [pool.submit(fn, bounds[i], bounds[i + 1], i) for i in range(1, k)]
            try:
                fn(bounds[0], bounds[1], 0)
            finally:
                for f in futures:
                    f.result()
        finally:
            if b.set_threads is not None and blas_threads != 1:
                b.set_threads(blas_threads)


def parallel_chunks(fn: Callable[[int, int], None], nchunks: int, nthreads: int | None = None) -> None:
    """Run ``fn(chunk, thread)`` for every chunk in ``range(nchunks)`` on ``nthreads`` threads
    (default ``num_threads()``, at most ``nchunks``), OpenBLAS on one thread inside each. The
    chunks are handed out one at a time, in order, to whichever thread is free: a thread
    slowed by another process on its core takes fewer chunks instead of keeping the others
    waiting at the end (equal fixed parts left one thread idle for ~10 ms a LeNet step).
    ``thread`` in ``[0, nthreads)`` says which thread runs the chunk (for per-thread scratch)."""
    k = max(1, min(num_threads() if nthreads is None else int(nthreads), nchunks))
    ticket = itertools.count()            # next() on a count is atomic under the GIL

    def run(lo: int, hi: int, thread: int) -> None:
        while True:
            chunk = next(ticket)
            if chunk >= nchunks:
                return
            fn(chunk, thread)
    parallel(run, k, k, one_blas_thread=True)


MATMUL_SERIAL_FLOPS = 4 << 20   # below this a product runs as one GEMM on the calling thread
# below this m*n*k, numpy.matmul: OpenBLAS runs such products on one thread itself (its
# SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD), and ctypes' call costs more than the product
SMALL_MNK = 65536 * 4
MATMUL_CHUNKS = 2               # chunks per thread (handed out dynamically: a slowed thread takes fewer)


def _operand(a: Any) -> tuple[bool, int] | None:
    """(transposed, leading dimension) of a 2-D array that CBLAS can read in place, else None."""
    it = a.itemsize
    if a.strides[1] == it and a.strides[0] % it == 0 and a.strides[0] >= it * max(1, a.shape[1]):
        return False, a.strides[0] // it
    if a.strides[0] == it and a.strides[1] % it == 0 and a.strides[1] >= it * max(1, a.shape[0]):
        return True, a.strides[1] // it
    return None


def matmul(A: Any, B: Any, out: Any = None, *, accumulate: bool = False) -> Any:
    """``out = A @ B`` (``out += A @ B`` with ``accumulate``) for 2-D NumPy arrays of one float
    dtype whose rows or columns are contiguous (transposed views are read in place), as CBLAS
    GEMMs on blocks of out's rows (or columns, when it has more of them) handed to our threads
    one at a time (``parallel_chunks``), OpenBLAS on one thread inside each; one GEMM on the
    calling thread below ``MATMUL_SERIAL_FLOPS``. OpenBLAS's own threads synchronise after every
    call by spinning: with another process on one of the two cores, LeNet's 800x500 linear layer
    took 24 ms instead of 1.4. ``numpy.matmul`` where CBLAS cannot be called and for products
    below ``SMALL_MNK`` (m*n*k)."""
    m, k = A.shape
    n = B.shape[1]
    if out is None:
        out = np.empty((m, n), dtype=A.dtype) if not accumulate else None
    if out is None or B.shape[0] != k or out.shape != (m, n):
        raise ValueError(f"blas.matmul: shapes {A.shape} @ {B.shape} -> {None if out is None else out.shape} "
                         f"do not chain; accumulate=True needs out of shape ({m}, {n})")
    opa, opb = _operand(A), _operand(B)
    if (m * n * k < SMALL_MNK or not supports(A, B, out) or opa is None or opb is None
            or out.strides[1] != out.itemsize or min(m, n, k) == 0):
        if accumulate:
            out += A @ B
        else:
            np.matmul(A, B, out=out)
        return out
    (ta, lda), (tb, ldb), ldc = opa, opb, out.strides[0] // out.itemsize
    it, dt, beta = A.itemsize, A.dtype.name, 1.0 if accumulate else 0.0
    a0, b0, c0 = A.ctypes.data, B.ctypes.data, out.ctypes.data
    by_rows = m >= n
    size = m if by_rows else n
    nt = num_threads()
    chunks = 1 if 2 * m * n * k < MATMUL_SERIAL_FLOPS or nt == 1 else min(MATMUL_CHUNKS * nt, max(1, size // 16))
    step = -(-size // chunks)

    def chunk(i: int, _: int) -> None:
        lo, hi = i * step, min(size, (i + 1) * step)
        if by_rows:     # rows lo:hi of op(A) and of out
            a = a0 + lo * (1 if ta else lda) * it
            gemm(ta, tb, hi - lo, n, k, a, lda, b0, ldb, beta, c0 + lo * ldc * it, ldc, dt)
        else:           # columns lo:hi of op(B) and of out
            b = b0 + lo * (ldb if tb else 1) * it
            gemm(ta, tb, m, hi - lo, k, a0, lda, b, ldb, beta, c0 + lo * it, ldc, dt)
    parallel_chunks(chunk, -(-size // step))
    return out


MIN_PART = 2048   # columns: below this a part's GEMMs are too small to pay for a thread


def parts(n: int) -> int:
    """How many parts ``parallel(fn, n)`` splits ``range(n)`` into."""
    return max(1, min(num_threads(), n // MIN_PART))


__all__ = ["available", "set_enabled", "reason", "library", "supports", "gemm", "parallel", "parallel_chunks", "matmul",
           "parts", "num_threads", "set_num_threads"]
