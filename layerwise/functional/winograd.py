"""Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional
Neural Networks", 2015): a 3x3, stride-1 convolution with 2.25x fewer multiplications.

One dimension, F(2, 3): two outputs of a 3-tap correlation over four inputs d0..d3,

    y0 = d0 g0 + d1 g1 + d2 g2,        y1 = d1 g0 + d2 g1 + d3 g2,

take four products instead of six:

    m0 = (d0 - d2) g0                  m1 = (d1 + d2) (g0 + g1 + g2) / 2
    m3 = (d1 - d3) g2                  m2 = (d2 - d1) (g0 - g1 + g2) / 2
    y0 = m0 + m1 + m2                  y1 = m1 - m2 - m3

(expand: m1 + m2 = d1 g1 + d2 (g0 + g2) and m1 - m2 = d1 (g0 + g2) + d2 g1). In matrices,
y = A^T [(G g) * (B^T d)] with * elementwise and

    B^T = [[1,  0, -1,  0],     G = [[1,    0,   0],     A^T = [[1, 1,  1,  0],
           [0,  1,  1,  0],          [1/2,  1/2, 1/2],          [0, 1, -1, -1]]
           [0, -1,  1,  0],          [1/2, -1/2, 1/2],
           [0,  1,  0, -1]]          [0,    0,   1]]

Nesting the 1-D algorithm in both directions gives the 2x2 outputs of a 4x4 input tile d:

    Y = A^T [U * V] A,   U = G g G^T (4x4),   V = B^T d B (4x4)      (16 products, not 36)

and with channels (x: C in, y: K out) the sum over c moves inside, since A^T (.) A is linear:

    Y[k] = A^T [ sum_c U[k, c] * V[c] ] A
    M[k, a, t] = sum_c U[k, a, c] V[c, a, t]       for each of the 16 positions a = 4i + j

so per position a the channel sum is one matrix product ``M[:, a] = U[:, a] (K, C) @ V[:, a]
(C, T)`` over all T tiles: 16 GEMMs of 16*K*C*T multiply-adds against 36*K*C*T directly.

Tiles. Output tile (th, tw) is y[2th:2th+2, 2tw:2tw+2]; it reads the 4x4 window
xpad[2th:2th+4, 2tw:2tw+4] of the zero-padded input (Hp = Ho + 2 rows, Wp = Wo + 2 columns).
TH = ceil(Ho/2), TW = ceil(Wo/2); tile t = r*TW + tw with the tile row r = n*TH + th. When Ho
is odd the last tile row keeps only its first output row, and its window's fourth row lies
one past the padded input: it is read as zeros (in exact arithmetic it feeds only the dropped
row); likewise for odd Wo and the columns.

Input. The padded input is read off a flat grid ``Gr (C, L)`` with zero gaps, the layout of the
``cftaps`` convolution (``functional.conv.tap_grid``): padded pixel (r, q) of image n sits at
column ``base + n*Sg + r*Wg + q`` (for 0 <= r < Hp, 0 <= q < Wp), and every such column that
is not an input pixel holds a zero. No padded copy is made.

Layouts (``Tiling`` describes the geometry):

    U (K, 16, C)   transformed weights         U[k, a] = (G W[k, c] G^T)[i, j],  a = 4i + j
    V (C, 16, T)   transformed input tiles     V[c, a, t] = (B^T d_{c,t} B)[i, j]
    M (K, 16, T)   products summed over c      M[k, a] = U[k, a, :] @ V[:, a, :]
    Y (K, N, Ho, Wo)                           2x2 blocks A^T M[k, :, t] A

so every GEMM operand has unit-stride rows (leading dimension 16*C or 16*T), and the 16 rows
of one channel are one contiguous block (the transforms write them together; a row stride
that is an odd multiple of 64 bytes keeps the 16 rows in 16 different cache sets).

The backward's input gradient is the same algorithm: dx is a 3x3 stride-1 convolution of dy
padded by (2 - ph, 2 - pw) with ``W'[c, k] = rot180(W[k, c])`` (``functional.conv``).

The weight gradient is the transposed algorithm, F(3x3, 2x2). In one dimension
dg_j = sum_i dy_i d_{i+j} is the derivative of sum_i dy_i y_i with respect to g_j, and from
y = A^T [(G g) * (B^T d)]:

    dg = G^T [(A dy) * (B^T d)]            (A dy = (dy0, dy0 + dy1, dy0 - dy1, -dy1))

so with the 2x2 block e of dy under each output tile, summed over the tiles t:

    dW[k, c] = G^T [ sum_t (A e_{k,t} A^T) * (B^T d_{c,t} B) ] G
    Mw[k, a, c] = sum_t D[k, a, t] V[c, a, t]      (D (K, 16, T): A e A^T; V as the forward's)

16 GEMMs that sum over the tiles, then the 4x4 -> 3x3 back-transform per (k, c).

Each transform exists as NumPy/CuPy code (``xp``, the reference, and what CuPy and
``LAYERWISE_NO_NUMBA=1`` run) and as a Numba kernel (``_winograd_numba``: one pass over memory;
NumPy arrays, when ``cnhw`` is on its Numba backend). ``conv`` and ``weight_grad`` run a whole
convolution: on NumPy with Numba they work through chunks of tile rows small enough to stay in
cache (transforms and 16 GEMMs per chunk; a Numba GEMM for thin products, OpenBLAS for wide
ones), the chunks handed to whichever of our threads is free (``blas.parallel_chunks``);
elsewhere they transform all tiles at once and multiply with ``xp.matmul``.

    U = weight_transform(W)                       # (K, C, 3, 3) -> (K, 16, C)
    input_transform(Gr, tl, r0, r1, V)            # tile rows [r0, r1) -> V[:, :, :(r1-r0)*TW]
    output_transform(M, Y, tl, r0, r1)            # M[:, :, :(r1-r0)*TW] -> Y's 2x2 blocks
    Y = conv(Gr, tl, U)                           # all of it: Y (K, N, Ho, Wo)
    dy_transform(Dg, base, tl, r0, r1, D)         # dy's 2x2 blocks -> D[:, :, :(r1-r0)*TW]
    dW = weight_grad(Gr, tl, Dg, base)            # all of it: dW (K, C, 3, 3)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import Array, get_array_module
from . import blas, cnhw
from .workspace import Workspace

B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

# Tiles per chunk (each chunk: its transforms and 16 GEMMs, on one thread): as many as keep the
# chunk's V and M (or V and D) within CHUNK_BYTES, between MIN_ and MAX_CHUNK_TILES. Measured on
# one core of the EPYC (512 KiB L2, 32 MiB L3 shared with other jobs; float32, batch 64), forward
# / weight gradient in ms for chunks of 128 / 256 / 512 tiles:
#   64->64 @8     OpenBLAS  3.5 / 4.3   4.4 / 4.1   4.7 / 6.2
#   128->128 @8   OpenBLAS 11.0 / 13.1 10.6 / 12.6 11.1 / 17.1
#   32->32 @16    Numba     4.4 / 4.9   4.0 / 4.6   4.0 / 4.2   (OpenBLAS 6.2 / 6.6 at 128)
# (larger chunks, 4-8 MiB, had run best on a quiet machine but lost 30-50% when other jobs
# shared the L3.)
CHUNK_BYTES = 2 << 20
MIN_CHUNK_TILES = 128
MAX_CHUNK_TILES = 1024
# Chunks are handed to whichever of our threads is free (``blas.parallel_chunks``): with a core
# taken by another process, equal fixed shares left the faster thread waiting (in one profile
# ResNet-56's 8x8 convolutions took 3x their one-core time); at least this many chunks per thread
CHUNKS_PER_THREAD = 2
# the Numba GEMMs (``gemm``: 4 rows x 8 channels, ``gemm_nt``: 4 x 4; 107-176 GFLOP/s on one core
# of the Zen 5 EPYC at K = C = 16-64) when either side has at most this many channels, OpenBLAS
# beyond. Whole convolutions, 2 threads, batch 64, ms forward / weight gradient (Numba vs OpenBLAS
# for the products): 64->64 @8 1.11 / 1.14 vs 1.64 / 1.78 with OpenBLAS's AVX-512 kernels (1.16 /
# 1.46 vs 1.30 / 1.69 with its AVX2 ones); 128->128 @8 4.10 / 4.46 vs 2.81 / 4.03: OpenBLAS wins.
NUMBA_GEMM_MAX = 64


@dataclass(frozen=True)
class Tiling:
    """Where the padded input of one F(2x2, 3x3) convolution lies on its grid, and its tiles.

    ``N`` images of ``Ho x Wo`` outputs; padded pixel (r, q) of image n at grid column
    ``base + n*Sg + r*Wg + q`` (r < Hp = Ho + 2, q < Wp = Wo + 2)."""

    N: int
    Ho: int
    Wo: int
    base: int
    Sg: int
    Wg: int

    @property
    def TH(self) -> int:
        return (self.Ho + 1) // 2

    @property
    def TW(self) -> int:
        return (self.Wo + 1) // 2

    @property
    def Hp(self) -> int:
        return self.Ho + 2

    @property
    def Wp(self) -> int:
        return self.Wo + 2

    @property
    def rows(self) -> int:
        """Tile rows (n, th) in all."""
        return self.N * self.TH

    def last_column(self) -> int:
        """The highest grid column a full read of the padded inputs touches."""
        return self.base + (self.N - 1) * self.Sg + (self.Hp - 1) * self.Wg + self.Wp - 1


def check_grid(Gr: Array, tl: Tiling) -> None:
    """ValueError unless the grid holds every column the tiling reads."""
    if Gr.ndim != 2 or tl.base < 0 or tl.last_column() >= Gr.shape[1] or tl.Wg < tl.Wp - 2:
        raise ValueError(f"winograd: grid of shape {tuple(Gr.shape)} does not hold the padded inputs of {tl} "
                         f"(last column read: {tl.last_column()}); build it with functional.conv.tap_grid")


# ----------------------------------------------------------------------- NumPy / CuPy
def _np_weight(W: Array) -> Array:
    xp = get_array_module(W)
    Gx = xp.asarray(G, dtype=W.dtype)
    K, C = W.shape[:2]
    U = Gx @ W @ Gx.T                                            # (K, C, 4, 4) = G g G^T
    return xp.ascontiguousarray(U.reshape(K, C, 16).transpose(0, 2, 1))


def _tile_index(xp, tl: Tiling, r0: int, r1: int, size: int):
    """(n, rows, cols) of the ``size`` x ``size`` blocks under the tiles of tile rows [r0, r1):
    n (R,) images, rows (R, 1, size, 1) and cols (1, TW, 1, size) map coordinates, 2 apart."""
    r = xp.arange(r0, r1)
    n, th = r // tl.TH, r % tl.TH
    u = xp.arange(size)
    rows = (2 * th)[:, None, None, None] + u[None, None, :, None]
    cols = 2 * xp.arange(tl.TW)[None, :, None, None] + u[None, None, None, :]
    return n, rows, cols


def _np_input(Gr: Array, tl: Tiling, r0: int, r1: int, V: Array) -> None:
    xp = get_array_module(Gr)
    C = Gr.shape[0]
    n, rows, cols = _tile_index(xp, tl, r0, r1, 4)
    inside = (rows < tl.Hp) & (cols < tl.Wp)                                   # (R, TW, 4, 4)
    pos = tl.base + n[:, None, None, None] * tl.Sg + rows * tl.Wg + cols
    D = xp.where(inside, Gr[:, xp.where(inside, pos, 0)], 0)                  # (C, R, TW, 4, 4) tiles d
    Bt = xp.asarray(B_T, dtype=Gr.dtype)
    Vt = Bt @ D @ Bt.T                                                         # B^T d B
    nt = (r1 - r0) * tl.TW
    V[:, :, :nt] = Vt.reshape(C, nt, 16).transpose(0, 2, 1)


def _np_output(M: Array, Y: Array, tl: Tiling, r0: int, r1: int) -> None:
    xp = get_array_module(M)
    K = M.shape[0]
    nt = (r1 - r0) * tl.TW
    At = xp.asarray(A_T, dtype=M.dtype)
    Mt = M[:, :, :nt].transpose(0, 2, 1).reshape(K, r1 - r0, tl.TW, 4, 4)
    O = At @ Mt @ At.T                                                         # (K, R, TW, 2, 2) = A^T m A
    n, rows, cols = _tile_index(xp, tl, r0, r1, 2)
    shape = (r1 - r0, tl.TW, 2, 2)
    keep = (rows < tl.Ho) & (cols < tl.Wo)
    nn = xp.broadcast_to(n[:, None, None, None], shape)[keep]
    Y[:, nn, xp.broadcast_to(rows, shape)[keep], xp.broadcast_to(cols, shape)[keep]] = O[:, keep]


def _np_dy(Dg: Array, base: int, tl: Tiling, r0: int, r1: int, D: Array) -> None:
    """D[k, a, t] = (A e A^T)[i, j] for the 2x2 block e of dy under tile t (zeros past Ho, Wo);
    dy[n, h, w] at grid column base + n*Sg + h*Wg + w."""
    xp = get_array_module(Dg)
    K = Dg.shape[0]
    n, rows, cols = _tile_index(xp, tl, r0, r1, 2)
    inside = (rows < tl.Ho) & (cols < tl.Wo)
    pos = base + n[:, None, None, None] * tl.Sg + rows * tl.Wg + cols
    E = xp.where(inside, Dg[:, xp.where(inside, pos, 0)], 0)                  # (K, R, TW, 2, 2)
    A = xp.asarray(A_T.T, dtype=Dg.dtype)                                      # (4, 2)
    nt = (r1 - r0) * tl.TW
    D[:, :, :nt] = (A @ E @ A.T).reshape(K, nt, 16).transpose(0, 2, 1)


def _np_finish_wgrad(Mw: Array) -> Array:
    """``dW[k, c] = G^T Mw[k, :, c] G``: the 4x4 sums of products back to a 3x3 gradient."""
    xp = get_array_module(Mw)
    K, _, C = Mw.shape
    Gx = xp.asarray(G, dtype=Mw.dtype)
    M4 = Mw.transpose(0, 2, 1).reshape(K, C, 4, 4)
    return xp.ascontiguousarray(Gx.T @ M4 @ Gx)                               # (K, C, 3, 3)


# ----------------------------------------------------------------------- Numba
_kernels: dict[str, Any] = {}


def _compile() -> dict[str, Any]:
    """The Numba kernels (``_winograd_numba``), imported on first use."""
    if not _kernels:
        from . import _winograd_numba as m
        _kernels.update(weight=m.weight, input=m.input_tf, output=m.output_tf, gemm=m.gemm, chunks=m.chunks,
                        output_epi=m.output_epi,
                        dy=m.dy_tf, gemm_nt=m.gemm_nt, wgrad_chunks=m.wgrad_chunks, finish=m.finish_wgrad)
    return _kernels


def _numba(*arrays: Array) -> bool:
    return cnhw._use_numba(*arrays) and all(a.flags.c_contiguous for a in arrays)


def _finish_wgrad(Mw: Array) -> Array:
    """``_np_finish_wgrad`` by the Numba kernel where it runs (NumPy's batched 3x4 @ 4x4 @ 4x3
    products cost about 17 ms of a ResNet-56 step, 4,096 tiny matrices per 64-channel conv)."""
    if _numba(Mw):
        K, _, C = Mw.shape
        dW = np.empty((K, C, 3, 3), dtype=Mw.dtype)
        _compile()["finish"](Mw, dW)
        return dW
    return _np_finish_wgrad(Mw)


# ----------------------------------------------------------------------- public API
def weight_transform(W: Array) -> Array:
    """``U (K, 16, C)``: ``U[k, 4i + j, c] = (G W[k, c] G^T)[i, j]`` of a 3x3 weight ``W (K, C, 3, 3)``."""
    if W.ndim != 4 or W.shape[2:] != (3, 3):
        raise ValueError(f"winograd.weight_transform: expected W (K, C, 3, 3), got {tuple(W.shape)}")
    if cnhw._use_numba(W):
        K, C = W.shape[:2]
        U = np.empty((K, 16, C), dtype=W.dtype)
        _compile()["weight"](np.ascontiguousarray(W), U)
        return U
    return _np_weight(W)


def input_transform(Gr: Array, tl: Tiling, r0: int, r1: int, V: Array) -> Array:
    """Fill ``V[:, :, :(r1 - r0)*TW]`` (V (C, 16, >= that)) with ``B^T d B`` of the tiles of tile
    rows [r0, r1), read off the grid ``Gr (C, L)`` (see the module docstring)."""
    check_grid(Gr, tl)
    if _numba(Gr) and cnhw._use_numba(V) and V.strides[2] == V.itemsize:
        _compile()["input"](Gr, tl.base, tl.Sg, tl.Wg, tl.Hp, tl.Wp, tl.TH, tl.TW, r0, r1, V)
    else:
        _np_input(Gr, tl, r0, r1, V)
    return V


def output_transform(M: Array, Y: Array, tl: Tiling, r0: int, r1: int) -> Array:
    """Write ``A^T M[k, :, t] A`` of the tiles of tile rows [r0, r1) (``M (K, 16, >= (r1-r0)*TW)``)
    into their places in ``Y (K, N, Ho, Wo)``, dropping what lies past Ho or Wo."""
    if _numba(Y) and cnhw._use_numba(M) and M.strides[2] == M.itemsize:
        _compile()["output"](M, Y, tl.TH, tl.TW, r0, r1, np.empty((8, (r1 - r0) * tl.TW), dtype=M.dtype))
    else:
        _np_output(M, Y, tl, r0, r1)
    return Y


def product(U: Array, V: Array, M: Array, nt: int) -> Array:
    """``M[:, a, :nt] = U[:, a, :] @ V[:, a, :nt]`` for the 16 positions a (the Numba kernel on
    NumPy arrays, else ``xp.matmul``)."""
    if _numba(U) and cnhw._use_numba(V, M) and V.strides[2] == V.itemsize and M.strides[2] == M.itemsize:
        _compile()["gemm"](U, V, M, nt)
    else:
        xp = get_array_module(V)
        M[:, :, :nt] = xp.matmul(U.transpose(1, 0, 2), V[:, :, :nt].transpose(1, 0, 2)).transpose(1, 0, 2)
    return M


def _chunk_rows(tl: Tiling, C: int, K: int, itemsize: int, threads: int) -> int:
    """Tile rows per chunk: V and M of a chunk within CHUNK_BYTES (see there), but at least
    CHUNKS_PER_THREAD chunks per thread where there are enough tile rows."""
    tiles = min(MAX_CHUNK_TILES, max(MIN_CHUNK_TILES, CHUNK_BYTES // ((C + K) * 16 * itemsize)))
    rc = max(1, tiles // tl.TW)
    if threads > 1:
        rc = min(rc, max(1, tl.rows // (CHUNKS_PER_THREAD * threads)))
    return rc


def _padded_cols(nt: int, itemsize: int) -> int:
    """A row length >= nt whose size in bytes is an odd multiple of 64 (the 16 rows of a channel
    then fall into different cache sets; at a multiple of 4 KiB they evicted each other)."""
    lines = -(-nt * itemsize // 64)
    lines += 1 - lines % 2
    return lines * 64 // itemsize


def _scratch(ws: Workspace | None, name: str, shape: tuple[int, ...], dtype: Any) -> Array:
    """A chunk buffer: from the workspace ``ws`` when given (the same memory every step), else new.
    Fresh ones cost a ResNet-56 training step about 20,000 page faults (0.7 GB of chunk buffers
    per step, each faulted in again after glibc handed it back)."""
    return np.empty(shape, dtype=dtype) if ws is None else ws.get(name, shape, dtype)


def _row_ranges(rows: int, rc: int, threads: int) -> list[tuple[int, int]]:
    """The chunks' tile-row ranges: ``rc`` rows each, but the last ``threads * rc`` rows in chunks
    of half that. Chunks go to whichever thread is free, so a call ends when its last chunk does:
    the other thread idles for up to a chunk's time (a ResNet-56 step summed 20 ms of it over
    its 162 calls, measured); half-size chunks at the end halve that."""
    out, a = [], 0
    while a < rows:
        size = rc if threads == 1 or rows - a > threads * rc else max(1, rc // 2)
        out.append((a, min(rows, a + size)))
        a += size
    return out


def _chunking(tl: Tiling, C: int, K: int, dtype: Any, ws: Workspace | None):
    """``(rows per chunk, row ranges of the chunks, threads, padded chunk width, per-thread (V, M)
    buffers)`` for ``conv`` and ``weight_grad``: V (C, 16, width) and M (K, 16, width) of a chunk.
    The buffers are made here, on the calling thread: made in the pool's threads they would come
    from per-thread malloc arenas."""
    isz = np.dtype(dtype).itemsize
    threads = blas.num_threads()
    rc = _chunk_rows(tl, C, K, isz, threads)
    ranges = _row_ranges(tl.rows, rc, threads)
    tcp = _padded_cols(rc * tl.TW, isz)
    nthreads = max(1, min(threads, len(ranges)))
    vm = [(_scratch(ws, f"winograd.V{t}", (C, 16, tcp), dtype), _scratch(ws, f"winograd.M{t}", (K, 16, tcp), dtype))
          for t in range(nthreads)]
    return rc, ranges, nthreads, tcp, vm


@dataclass(frozen=True)
class Epilogue:
    """What ``conv`` applies to its outputs as it writes them (an inference epilogue: a folded
    batch norm's shift, a residual sum and a ReLU, in one pass with the output transform):
    ``y = act(conv + bias[k] [+ R[k, n, h, w]])``, written into the interior of the grid ``G
    (K, L)`` (y[k, n, h, w] at column ``lead + n*Hg*Wg + h*Wg + w``: the input grid of the
    convolution that reads y, ``functional.conv.input_grid``); with ``gaps`` every other column
    of G is zeroed too (a recycled grid whose gaps hold anything). R: (K, N, Ho, Wo) maps,
    last axis unit-stride (a view of a grid is fine)."""

    bias: Array
    relu: bool
    G: Array
    lead: int
    Hg: int
    Wg: int
    gaps: bool
    R: Array | None = None

    def interior(self, N: int, Ho: int, Wo: int) -> Array:
        """The (K, N, Ho, Wo) view of y in G."""
        K = self.G.shape[0]
        return self.G[:, self.lead:self.lead + N * self.Hg * self.Wg].reshape(K, N, self.Hg, self.Wg)[:, :, :Ho, :Wo]


def _check_epilogue(ep: Epilogue, K: int, tl: Tiling, dtype: Any) -> None:
    G = ep.G
    if (G.ndim != 2 or G.shape[0] != K or G.dtype != dtype or not G.flags.c_contiguous or ep.Hg < tl.Ho
            or ep.Wg < tl.Wo or ep.lead < 0 or ep.lead + tl.N * ep.Hg * ep.Wg > G.shape[1]):
        raise ValueError(f"winograd.conv: the epilogue's grid {G.dtype} {tuple(G.shape)} (lead {ep.lead}, blocks "
                         f"of {ep.Hg}x{ep.Wg}) does not hold {tl.N} outputs of {tl.Ho}x{tl.Wo} and {K} channels "
                         f"of {dtype}")
    if ep.bias.shape != (K,):
        raise ValueError(f"winograd.conv: the epilogue's bias must have shape ({K},), got {tuple(ep.bias.shape)}")
    if ep.R is not None and (tuple(ep.R.shape) != (K, tl.N, tl.Ho, tl.Wo) or ep.R.dtype != dtype):
        raise ValueError(f"winograd.conv: the epilogue's residual must be {dtype} {(K, tl.N, tl.Ho, tl.Wo)}, got "
                         f"{ep.R.dtype} {tuple(ep.R.shape)}")


def _np_epilogue(Y: Array, ep: Epilogue) -> Array:
    """The epilogue on a finished Y (the reference, and what odd Ho, Wo and CuPy run)."""
    xp = get_array_module(Y)
    K, N, Ho, Wo = Y.shape
    v = Y + ep.bias.astype(Y.dtype).reshape(K, 1, 1, 1)
    if ep.R is not None:
        v += ep.R
    if ep.relu:
        xp.maximum(v, 0, out=v)
    if ep.gaps:
        ep.G[:, :ep.lead] = 0
        ep.G[:, ep.lead + N * ep.Hg * ep.Wg:] = 0
        blocks = ep.G[:, ep.lead:ep.lead + N * ep.Hg * ep.Wg].reshape(K, N, ep.Hg, ep.Wg)
        blocks[:, :, Ho:] = 0
        blocks[:, :, :Ho, Wo:] = 0
    out = ep.interior(N, Ho, Wo)
    out[...] = v
    return out


def conv(Gr: Array, tl: Tiling, U: Array, ws: Workspace | None = None, out: Array | None = None,
         epilogue: Epilogue | None = None) -> Array:
    """``Y (K, N, Ho, Wo)``: the 3x3 stride-1 correlation of the padded inputs on the grid
    ``Gr (C, L)`` with the weights whose transform is ``U (K, 16, C)``; the chunks' scratch comes
    from ``ws`` when given; Y is written into ``out`` (C-contiguous, that shape) when given.
    With an ``epilogue`` the result is ``act(Y + bias [+ R])`` in the epilogue's grid (returned:
    its (K, N, Ho, Wo) interior), applied as the outputs are written when Ho and Wo are even."""
    xp = get_array_module(Gr)
    C, K = Gr.shape[0], U.shape[0]
    if U.shape != (K, 16, C):
        raise ValueError(f"winograd.conv: U must be (K, 16, C) = (K, 16, {C}) for a grid of {C} channels, "
                         f"got {tuple(U.shape)}")
    check_grid(Gr, tl)
    if out is not None and (out.shape != (K, tl.N, tl.Ho, tl.Wo) or out.dtype != Gr.dtype
                            or not out.flags.c_contiguous):
        raise ValueError(f"winograd.conv: out must be a C-contiguous {Gr.dtype} array of shape "
                         f"{(K, tl.N, tl.Ho, tl.Wo)}, got {out.dtype} {tuple(out.shape)}")
    if epilogue is not None:
        _check_epilogue(epilogue, K, tl, Gr.dtype)
    Rv = None
    if epilogue is not None and epilogue.R is not None and _numba(Gr, U):
        from .bn_act import _flat
        Rv = _flat(epilogue.R)
    fused = (epilogue is not None and _numba(Gr, U, epilogue.G) and tl.Ho % 2 == 0 and tl.Wo % 2 == 0
             and (epilogue.R is None or Rv is not None))
    if epilogue is not None and not fused:
        Y = conv(Gr, tl, U, ws, out if out is not None else (None if ws is None else ws.recycled(
            (K, tl.N, tl.Ho, tl.Wo), Gr.dtype)))
        return _np_epilogue(Y, epilogue)
    Y = None if fused else xp.empty((K, tl.N, tl.Ho, tl.Wo), dtype=Gr.dtype) if out is None else out
    if not _numba(Gr, U):
        V = xp.empty((C, 16, tl.rows * tl.TW), dtype=Gr.dtype)
        _np_input(Gr, tl, 0, tl.rows, V)
        M = xp.matmul(U.transpose(1, 0, 2), V.transpose(1, 0, 2)).transpose(1, 0, 2)   # (K, 16, T)
        _np_output(M, Y, tl, 0, tl.rows)
        return Y
    k = _compile()
    isz = Gr.itemsize
    use_blas = min(K, C) > NUMBA_GEMM_MAX and blas.supports(Gr, U)
    rc, ranges, nthreads, tcp, vm = _chunking(tl, C, K, Gr.dtype, ws)
    bufs = [(V, M, _scratch(ws, f"winograd.P{t}", (8, rc * tl.TW), Gr.dtype)) for t, (V, M) in enumerate(vm)]
    args = (tl.base, tl.Sg, tl.Wg, tl.Hp, tl.Wp, tl.TH, tl.TW)
    ep = epilogue if fused else None
    if ep is not None:
        G = ep.G
        bias = xp.ascontiguousarray(ep.bias, dtype=Gr.dtype)
        Rf, sr = Rv if Rv is not None else (G[0, :1], np.zeros(3, dtype=np.int64))
        if ep.gaps:
            G[:, :ep.lead] = 0
            G[:, ep.lead + tl.N * ep.Hg * ep.Wg:] = 0
        eargs = (bias, Rf, sr, ep.R is not None, ep.relu, G, ep.lead, ep.Hg, ep.Wg, ep.gaps)

    def chunk(i: int, thread: int) -> None:
        V, M, P = bufs[thread]
        a, b = ranges[i]
        if not use_blas and not fused:
            k["chunks"](Gr, *args, U, V, M, Y, a, b, rc, P)
            return
        k["input"](Gr, *args, a, b, V)
        nt = (b - a) * tl.TW
        if use_blas:
            u0, v0, m0, dt = U.ctypes.data, V.ctypes.data, M.ctypes.data, Gr.dtype.name
            for p in range(16):
                blas.gemm(False, False, K, nt, C, u0 + p * C * isz, 16 * C, v0 + p * tcp * isz, 16 * tcp, 0.0,
                          m0 + p * tcp * isz, 16 * tcp, dt)
        else:
            k["gemm"](U, V, M, nt)
        if fused:
            k["output_epi"](M, tl.Ho, tl.Wo, tl.TH, tl.TW, a, b, P, *eargs)
        else:
            k["output"](M, Y, tl.TH, tl.TW, a, b, P)

    blas.parallel_chunks(chunk, len(ranges), nthreads)
    return ep.interior(tl.N, tl.Ho, tl.Wo) if ep is not None else Y


def dy_transform(Dg: Array, base: int, tl: Tiling, r0: int, r1: int, D: Array) -> Array:
    """Fill ``D[:, :, :(r1 - r0)*TW]`` (D (K, 16, >= that)) with ``A e A^T`` of the 2x2 blocks e
    of dy under the tiles of tile rows [r0, r1) (dy[n, h, w] at column ``base + n*Sg + h*Wg + w``
    of ``Dg (K, L)``; zeros past Ho, Wo)."""
    if _numba(Dg) and cnhw._use_numba(D) and D.strides[2] == D.itemsize:
        _compile()["dy"](Dg, base, tl.Sg, tl.Wg, tl.Ho, tl.Wo, tl.TH, tl.TW, r0, r1, D)
    else:
        _np_dy(Dg, base, tl, r0, r1, D)
    return D


def weight_grad(Gr: Array, tl: Tiling, Dg: Array, dbase: int, ws: Workspace | None = None) -> Array:
    """``dW (K, C, 3, 3)`` of the convolution ``conv(Gr, tl, .)``: dW[k, c] = sum over tiles of
    G^T [(A e_k A^T) * (B^T d_c B)] G, F(3x3, 2x2), the transpose of the forward's algorithm
    (see the module docstring); ``Dg (K, L)`` holds dy (dy[n, h, w] at ``dbase + n*Sg + h*Wg + w``,
    zeros in the gaps); the chunks' scratch comes from ``ws`` when given."""
    xp = get_array_module(Gr)
    C, K = Gr.shape[0], Dg.shape[0]
    check_grid(Gr, tl)
    if dbase < 0 or dbase + (tl.N - 1) * tl.Sg + (tl.Ho - 1) * tl.Wg + tl.Wo > Dg.shape[1]:
        raise ValueError(f"winograd.weight_grad: dy grid of shape {tuple(Dg.shape)} does not hold dy at base {dbase} "
                         f"for {tl}")
    if not _numba(Gr, Dg):
        T = tl.rows * tl.TW
        V = xp.empty((C, 16, T), dtype=Gr.dtype)
        D = xp.empty((K, 16, T), dtype=Gr.dtype)
        _np_input(Gr, tl, 0, tl.rows, V)
        _np_dy(Dg, dbase, tl, 0, tl.rows, D)
        return _finish_wgrad(xp.matmul(D.transpose(1, 0, 2), V.transpose(1, 2, 0)).transpose(1, 0, 2))
    k = _compile()
    isz = Gr.itemsize
    use_blas = min(K, C) > NUMBA_GEMM_MAX and blas.supports(Gr, Dg)
    rc, ranges, nthreads, tcp, vm = _chunking(tl, C, K, Gr.dtype, ws)
    bufs = [(V, D, _scratch(ws, f"winograd.Mw{t}", (K, 16, C), Gr.dtype)) for t, (V, D) in enumerate(vm)]
    for _, _, Mw in bufs:
        Mw.fill(0)                               # each thread sums into its own Mw
    args = (tl.base, tl.Sg, tl.Wg, tl.Hp, tl.Wp)

    def chunk(i: int, thread: int) -> None:
        V, D, Mw = bufs[thread]                  # each thread sums into its own Mw
        a, b = ranges[i]
        if not use_blas:
            k["wgrad_chunks"](Gr, *args, Dg, dbase, tl.Ho, tl.Wo, tl.TH, tl.TW, V, D, Mw, a, b, rc)
            return
        k["input"](Gr, *args, tl.TH, tl.TW, a, b, V)
        k["dy"](Dg, dbase, tl.Sg, tl.Wg, tl.Ho, tl.Wo, tl.TH, tl.TW, a, b, D)
        v0, d0, m0, dt = V.ctypes.data, D.ctypes.data, Mw.ctypes.data, Gr.dtype.name
        nt = (b - a) * tl.TW
        for p in range(16):           # Mw[:, p, :] (K, C) += D[:, p, :nt] @ V[:, p, :nt]^T
            blas.gemm(False, True, K, C, nt, d0 + p * tcp * isz, 16 * tcp, v0 + p * tcp * isz, 16 * tcp, 1.0,
                      m0 + p * C * isz, 16 * C, dt)

    blas.parallel_chunks(chunk, len(ranges), nthreads)
    Mw = bufs[0][2]
    for _, _, m in bufs[1:]:
        Mw += m
    return _finish_wgrad(Mw)


__all__ = ["Tiling", "Epilogue", "weight_transform", "input_transform", "output_transform", "product", "conv",
           "check_grid",
           "dy_transform", "weight_grad",
           "B_T", "G", "A_T"]
