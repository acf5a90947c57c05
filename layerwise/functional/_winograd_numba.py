"""The Numba kernels of ``functional.winograd`` (imported only when Numba is used; the math,
the layouts and the NumPy references are there).

They are module-level functions, not closures built on first use like the other kernel
modules': a jitted closure that calls other jitted closures is never found in Numba's cache
(its key pickles the callees differently in each process), so each process compiled them
again (1-2 s and 25-45 MiB more per process). They run on the calling thread and release the
GIL (``nogil``), so our threads (``blas.parallel_chunks``) run them side by side. Rows are
taken as 1-D slices once per channel and indexed from loop counters: slicing per tile row cost
more than the arithmetic on 8x8 maps. Indices are unsigned (``u``): Numba then skips its
negative-index wraparound, 30% faster here.
"""
import numba as nb
import numpy as np

u = np.uint64


@nb.njit(nogil=True, cache=True)
def weight(W, U):                       # W (K, C, 3, 3) C-contiguous -> U (K, 16, C)
    K, C = W.shape[0], W.shape[1]
    h = W.dtype.type(0.5)
    for k in range(K):
        w = W[k].reshape(C * 9)
        Uk = U[k]
        u0, u1, u2, u3, u4, u5, u6, u7 = Uk[0], Uk[1], Uk[2], Uk[3], Uk[4], Uk[5], Uk[6], Uk[7]
        u8, u9, u10, u11, u12, u13, u14, u15 = Uk[8], Uk[9], Uk[10], Uk[11], Uk[12], Uk[13], Uk[14], Uk[15]
        for c in range(C):
            o = 9 * c
            w00, w01, w02 = w[o], w[o + 1], w[o + 2]
            w10, w11, w12 = w[o + 3], w[o + 4], w[o + 5]
            w20, w21, w22 = w[o + 6], w[o + 7], w[o + 8]
            s0, s1, s2 = h * (w00 + w10 + w20), h * (w01 + w11 + w21), h * (w02 + w12 + w22)   # row 1 of G g
            d0, d1, d2 = h * (w00 - w10 + w20), h * (w01 - w11 + w21), h * (w02 - w12 + w22)   # row 2
            u0[c], u1[c], u2[c], u3[c] = w00, h * (w00 + w01 + w02), h * (w00 - w01 + w02), w02
            u4[c], u5[c], u6[c], u7[c] = s0, h * (s0 + s1 + s2), h * (s0 - s1 + s2), s2
            u8[c], u9[c], u10[c], u11[c] = d0, h * (d0 + d1 + d2), h * (d0 - d1 + d2), d2
            u12[c], u13[c], u14[c], u15[c] = w20, h * (w20 + w21 + w22), h * (w20 - w21 + w22), w22


@nb.njit(nogil=True, cache=True)
def finish_wgrad(Mw, dW):               # Mw (K, 16, C) -> dW (K, C, 3, 3) C-contiguous: G^T M G per (k, c)
    K, C = Mw.shape[0], Mw.shape[2]
    h = Mw.dtype.type(0.5)
    for k in range(K):
        Mk = Mw[k]
        w = dW[k].reshape(C * 9)
        for c in range(C):
            t00, t01, t02 = Mk[0, c] + h * (Mk[1, c] + Mk[2, c]), h * (Mk[1, c] - Mk[2, c]), \
                h * (Mk[1, c] + Mk[2, c]) + Mk[3, c]                                   # rows of T = M G
            t10, t11, t12 = Mk[4, c] + h * (Mk[5, c] + Mk[6, c]), h * (Mk[5, c] - Mk[6, c]), \
                h * (Mk[5, c] + Mk[6, c]) + Mk[7, c]
            t20, t21, t22 = Mk[8, c] + h * (Mk[9, c] + Mk[10, c]), h * (Mk[9, c] - Mk[10, c]), \
                h * (Mk[9, c] + Mk[10, c]) + Mk[11, c]
            t30, t31, t32 = Mk[12, c] + h * (Mk[13, c] + Mk[14, c]), h * (Mk[13, c] - Mk[14, c]), \
                h * (Mk[13, c] + Mk[14, c]) + Mk[15, c]
            o = 9 * c                                                                     # G^T T
            w[o], w[o + 1], w[o + 2] = t00 + h * (t10 + t20), t01 + h * (t11 + t21), t02 + h * (t12 + t22)
            w[o + 3], w[o + 4], w[o + 5] = h * (t10 - t20), h * (t11 - t21), h * (t12 - t22)
            w[o + 6], w[o + 7], w[o + 8] = h * (t10 + t20) + t30, h * (t11 + t21) + t31, h * (t12 + t22) + t32


@nb.njit(nogil=True, cache=True)
def ld(g, s, Wg, i, j, nr, nc):
    return g[s + i * Wg + j] if i < nr and j < nc else g.dtype.type(0)


@nb.njit(nogil=True, cache=True)
def edge_in(g, s, Wg, nr, nc, Vc, t):
    """One tile whose window reaches past the padded input: rows >= nr, columns >= nc read 0."""
    for j in range(4):                                      # B^T d, column j: rows combined
        d0, d1, d2, d3 = ld(g, s, Wg, 0, j, nr, nc), ld(g, s, Wg, 1, j, nr, nc), \
            ld(g, s, Wg, 2, j, nr, nc), ld(g, s, Wg, 3, j, nr, nc)
        Vc[j, t], Vc[4 + j, t], Vc[8 + j, t], Vc[12 + j, t] = d0 - d2, d1 + d2, d2 - d1, d1 - d3
    for i in range(4):                                      # (B^T d) B: columns combined, in place
        e0, e1, e2, e3 = Vc[4 * i, t], Vc[4 * i + 1, t], Vc[4 * i + 2, t], Vc[4 * i + 3, t]
        Vc[4 * i, t], Vc[4 * i + 1, t], Vc[4 * i + 2, t], Vc[4 * i + 3, t] = e0 - e2, e1 + e2, e2 - e1, e1 - e3


@nb.njit(nogil=True, cache=True)
def tile_starts(base, Sg, Wg, TH, TW, r0, r1):
    """The flat index ``base + n*Sg + 2*th*Wg + 2*tw`` of each tile of tile rows [r0, r1) (tile
    t = (r - r0)*TW + tw, r = n*TH + th): where its window (input, dy) or its 2x2 block of
    outputs (with base 0, Sg = Ho*Wo, Wg = Wo) starts."""
    idx = np.empty((r1 - r0) * TW, dtype=np.uint64)
    for r in range(r0, r1):
        n = r // TH
        s = base + n * Sg + 2 * (r - n * TH) * Wg
        t0 = (r - r0) * TW
        for tw in range(TW):
            idx[t0 + tw] = u(s + 2 * tw)
    return idx


@nb.njit(nogil=True, cache=True)
def input_flat(Gr, base, Sg, Wg, TH, TW, r0, r1, V):
    """``input_tf`` where every window lies inside the padded input (Ho, Wo even): one loop over
    all tiles of the chunk, each window read at its start (``tile_starts``), 16 loads per tile.
    Rereading the two columns a tile shares with the next (the row kernel's sliding window)
    costs loads but frees the loop of its carried values and of the per-row structure: 1.1-1.4x
    faster on 8x8-32x32 maps, 16-64 channels."""
    C = Gr.shape[0]
    nt = (r1 - r0) * TW
    idx = tile_starts(base, Sg, Wg, TH, TW, r0, r1)
    one, two, three = u(1), u(2), u(3)
    w1, w2, w3 = u(Wg), u(2 * Wg), u(3 * Wg)
    for c in range(C):
        g = Gr[c]
        Vc = V[c]
        v0, v1, v2, v3, v4, v5, v6, v7 = Vc[0], Vc[1], Vc[2], Vc[3], Vc[4], Vc[5], Vc[6], Vc[7]
        v8, v9, v10, v11, v12, v13, v14, v15 = Vc[8], Vc[9], Vc[10], Vc[11], Vc[12], Vc[13], Vc[14], Vc[15]
        for t in range(nt):
            s = idx[t]
            s1, s2, s3 = s + w1, s + w2, s + w3
            # B^T d: the window's rows combined, for each of its 4 columns
            a0, a1, a2, a3 = g[s] - g[s2], g[s + one] - g[s2 + one], g[s + two] - g[s2 + two], \
                g[s + three] - g[s2 + three]
            b0, b1, b2, b3 = g[s1] + g[s2], g[s1 + one] + g[s2 + one], g[s1 + two] + g[s2 + two], \
                g[s1 + three] + g[s2 + three]
            e0, e1, e2, e3 = g[s2] - g[s1], g[s2 + one] - g[s1 + one], g[s2 + two] - g[s1 + two], \
                g[s2 + three] - g[s1 + three]
            f0, f1, f2, f3 = g[s1] - g[s3], g[s1 + one] - g[s3 + one], g[s1 + two] - g[s3 + two], \
                g[s1 + three] - g[s3 + three]
            # (B^T d) B: the columns combined
            v0[t], v1[t], v2[t], v3[t] = a0 - a2, a1 + a2, a2 - a1, a1 - a3
            v4[t], v5[t], v6[t], v7[t] = b0 - b2, b1 + b2, b2 - b1, b1 - b3
            v8[t], v9[t], v10[t], v11[t] = e0 - e2, e1 + e2, e2 - e1, e1 - e3
            v12[t], v13[t], v14[t], v15[t] = f0 - f2, f1 + f2, f2 - f1, f1 - f3


@nb.njit(nogil=True, cache=True)
def input_tf(Gr, base, Sg, Wg, Hp, Wp, TH, TW, r0, r1, V):
    if Hp == 2 * TH + 2 and Wp == 2 * TW + 2:               # Ho, Wo even: no window reaches past
        input_flat(Gr, base, Sg, Wg, TH, TW, r0, r1, V)
        return
    C = Gr.shape[0]
    TWf = TW if 2 * TW + 1 < Wp else TW - 1                 # tiles whose 4 columns all lie inside
    one, two, wg = u(1), u(2), u(Wg)
    for c in range(C):
        g = Gr[c]
        Vc = V[c]
        v0, v1, v2, v3, v4, v5, v6, v7 = Vc[0], Vc[1], Vc[2], Vc[3], Vc[4], Vc[5], Vc[6], Vc[7]
        v8, v9, v10, v11, v12, v13, v14, v15 = Vc[8], Vc[9], Vc[10], Vc[11], Vc[12], Vc[13], Vc[14], Vc[15]
        for r in range(r0, r1):
            n = r // TH
            h = 2 * (r - n * TH)
            t0 = (r - r0) * TW
            if h + 3 >= Hp:                                 # the window's last row lies past the input
                for tw in range(TW):
                    edge_in(g, base + n * Sg + h * Wg + 2 * tw, Wg, Hp - h, Wp - 2 * tw, Vc, t0 + tw)
                continue
            s = u(base + n * Sg + h * Wg)
            s1, s2, s3 = s + wg, s + two * wg, s + (two + one) * wg
            # B^T d on the window's first two columns; each tile then adds two columns
            a0, a1 = g[s] - g[s2], g[s + one] - g[s2 + one]
            b0, b1 = g[s1] + g[s2], g[s1 + one] + g[s2 + one]
            e0, e1 = g[s2] - g[s1], g[s2 + one] - g[s1 + one]
            f0, f1 = g[s1] - g[s3], g[s1 + one] - g[s3 + one]
            for tw in range(TWf):
                q = u(2 * tw + 2)
                q1 = q + one
                a2, a3 = g[s + q] - g[s2 + q], g[s + q1] - g[s2 + q1]
                b2, b3 = g[s1 + q] + g[s2 + q], g[s1 + q1] + g[s2 + q1]
                e2, e3 = g[s2 + q] - g[s1 + q], g[s2 + q1] - g[s1 + q1]
                f2, f3 = g[s1 + q] - g[s3 + q], g[s1 + q1] - g[s3 + q1]
                t = u(t0 + tw)
                v0[t], v1[t], v2[t], v3[t] = a0 - a2, a1 + a2, a2 - a1, a1 - a3
                v4[t], v5[t], v6[t], v7[t] = b0 - b2, b1 + b2, b2 - b1, b1 - b3
                v8[t], v9[t], v10[t], v11[t] = e0 - e2, e1 + e2, e2 - e1, e1 - e3
                v12[t], v13[t], v14[t], v15[t] = f0 - f2, f1 + f2, f2 - f1, f1 - f3
                a0, a1, b0, b1, e0, e1, f0, f1 = a2, a3, b2, b3, e2, e3, f2, f3
            if TWf < TW:
                edge_in(g, base + n * Sg + h * Wg + 2 * TWf, Wg, 4, Wp - 2 * TWf, Vc, t0 + TWf)


@nb.njit(nogil=True, inline="always")
def at_m_rows(Mk, P, nt):
    """The two rows of A^T m (p: i = 0 into P[0:4], q: i = 1 into P[4:8]) for the chunk's nt
    tiles of one output channel, as unit-stride (vectorised) loops."""
    for j in range(4):
        m0, m1, m2, m3 = Mk[j, :nt], Mk[4 + j, :nt], Mk[8 + j, :nt], Mk[12 + j, :nt]
        pj, qj = P[j, :nt], P[4 + j, :nt]
        for t in range(nt):
            pj[t] = m0[t] + m1[t] + m2[t]
            qj[t] = m1[t] - m2[t] - m3[t]


@nb.njit(nogil=True, cache=True)
def output_flat(M, Y, TH, TW, r0, r1, P):
    """``output_tf`` for even Ho, Wo: ``output_epi`` with nothing to apply, into Y itself (the
    grid with lead 0, Hg = Ho, Wg = Wo). A^T m A for all tiles of the chunk in unit-stride
    loops, then one loop over the tiles storing each 2x2 block at its start in y
    (``tile_starts``): 2-4x faster than the per-row kernel on 8x8-32x32 maps."""
    K, N, Ho, Wo = Y.shape
    output_epi(M, Ho, Wo, TH, TW, r0, r1, P, np.zeros(K, dtype=Y.dtype), Y.reshape(K * N * Ho * Wo)[:1],
               np.zeros(3, dtype=np.int64), False, False, Y.reshape(K, N * Ho * Wo), 0, Ho, Wo, False)


@nb.njit(nogil=True, cache=True)
def output_epi(M, Ho, Wo, TH, TW, r0, r1, P, bias, Rf, sr, has_r, relu, G, lead, Hg, Wg, gaps):
    """The output transform for even Ho, Wo with an inference epilogue: y = act(A^T m A + bias[k]
    [+ r]) written straight into the grid ``G (K, L)`` (y[k, n, h, w] at column lead + n*Hg*Wg
    + h*Wg + w; a plain (K, N*Ho*Wo) output is the grid with lead 0, Hg = Ho, Wg = Wo), r read
    from ``Rf`` at k*sr[0] + n*sr[1] + h*sr[2] + w. With ``gaps`` the chunk's rows also get the
    zeros of the grid's gap columns (w >= Wo) and, under an image's last tile row, of its rows
    h >= Ho (the columns before lead and after the last block are the caller's)."""
    K = M.shape[0]
    nt = (r1 - r0) * TW
    Sg = Hg * Wg
    gidx = tile_starts(lead, Sg, Wg, TH, TW, r0, r1)
    ridx = tile_starts(0, sr[1], sr[2], TH, TW, r0, r1) if has_r else gidx
    one, wg, wr = u(1), u(Wg), u(sr[2])
    zero = G.dtype.type(0)
    p0, p1, p2, p3, q0, q1, q2, q3 = P[0, :nt], P[1, :nt], P[2, :nt], P[3, :nt], \
        P[4, :nt], P[5, :nt], P[6, :nt], P[7, :nt]
    for k in range(K):
        at_m_rows(M[k], P, nt)
        b = bias[k]
        for t in range(nt):
            y00, y01 = p0[t] + p1[t] + p2[t] + b, p1[t] - p2[t] - p3[t] + b
            y10, y11 = q0[t] + q1[t] + q2[t] + b, q1[t] - q2[t] - q3[t] + b
            p0[t], p1[t], q0[t], q1[t] = y00, y01, y10, y11
        g = G[k]
        if has_r:
            rk = u(k * sr[0])
            for t in range(nt):
                o = rk + ridx[t]
                p0[t] += Rf[o]
                p1[t] += Rf[o + one]
                q0[t] += Rf[o + wr]
                q1[t] += Rf[o + wr + one]
        if relu:
            for t in range(nt):
                p0[t] = max(p0[t], zero)
                p1[t] = max(p1[t], zero)
                q0[t] = max(q0[t], zero)
                q1[t] = max(q1[t], zero)
        for t in range(nt):
            w = gidx[t]
            g[w], g[w + one], g[w + wg], g[w + wg + one] = p0[t], p1[t], q0[t], q1[t]
        if gaps:
            for r in range(r0, r1):
                n = r // TH
                th = r - n * TH
                o = lead + n * Sg + 2 * th * Wg
                for j in range(Wo, Wg):
                    g[o + j] = zero
                    g[o + Wg + j] = zero
                if th == TH - 1:
                    for j in range(lead + n * Sg + Ho * Wg, lead + (n + 1) * Sg):
                        g[j] = zero


@nb.njit(nogil=True, cache=True)
def output_tf(M, Y, TH, TW, r0, r1, P):                    # Y (K, N, Ho, Wo) C-contiguous
    """Two passes: the rows of A^T m (p: i = 0, q: i = 1) for all tiles of the chunk as unit-
    stride loops (vectorised), then the columns into y's 2x2 blocks (18% faster than one
    scalar pass). P (8, >= nt) is scratch."""
    if Y.shape[2] % 2 == 0 and Y.shape[3] % 2 == 0:
        output_flat(M, Y, TH, TW, r0, r1, P)
        return
    K = M.shape[0]
    Ho, Wo = Y.shape[2], Y.shape[3]
    nt = (r1 - r0) * TW
    TWf = Wo // 2                                           # tiles whose two columns are outputs
    one, wo = u(1), u(Wo)
    p0, p1, p2, p3, q0, q1, q2, q3 = P[0], P[1], P[2], P[3], P[4], P[5], P[6], P[7]
    for k in range(K):
        at_m_rows(M[k], P, nt)
        y = Y[k].reshape(Y.shape[1] * Ho * Wo)
        for r in range(r0, r1):
            n = r // TH
            h = 2 * (r - n * TH)
            o = u((n * Ho + h) * Wo)                        # y[n, h, 0]
            t0 = (r - r0) * TW
            if h + 1 < Ho:                                  # both output rows of the tiles
                for tw in range(TWf):
                    t, w = u(t0 + tw), o + u(2 * tw)
                    y[w], y[w + one] = p0[t] + p1[t] + p2[t], p1[t] - p2[t] - p3[t]
                    y[w + wo], y[w + wo + one] = q0[t] + q1[t] + q2[t], q1[t] - q2[t] - q3[t]
            else:                                           # Ho odd, last tile row: its first row only
                for tw in range(TWf):
                    t, w = u(t0 + tw), o + u(2 * tw)
                    y[w], y[w + one] = p0[t] + p1[t] + p2[t], p1[t] - p2[t] - p3[t]
            if TWf < TW:                                    # Wo odd: the last tile's first column only
                t, w = u(t0 + TWf), o + u(2 * TWf)
                y[w] = p0[t] + p1[t] + p2[t]
                if h + 1 < Ho:
                    y[w + wo] = q0[t] + q1[t] + q2[t]


@nb.njit(nogil=True, fastmath={"contract"}, cache=True)
def gemm(U, V, M, nt):
    """M[k, a, :nt] = sum_c U[k, a, c] V[c, a, :nt]: four rows of M against eight of V at a
    time (32 multiply-adds per 8 loads of V and 4 loads and stores of M), the loop over columns
    vectorised; rows past a multiple of 4 and channels past a multiple of 8 one at a time. On one
    core of the Zen 5 EPYC, float32, K = C = 16-64: 107-131 GFLOP/s, against 85-114 for the
    earlier 2 x 4 blocking (16 positions of 256-1024 tiles)."""
    K, C = U.shape[0], U.shape[2]
    C8 = C - C % 8
    K4 = K - K % 4
    z = M.dtype.type(0)
    for a in range(16):
        for k in range(0, K4, 4):
            mA, mB, mC, mD = M[k, a], M[k + 1, a], M[k + 2, a], M[k + 3, a]
            uA, uB, uC, uD = U[k, a], U[k + 1, a], U[k + 2, a], U[k + 3, a]
            if C8 == 0:
                for t in range(nt):
                    mA[t] = z
                    mB[t] = z
                    mC[t] = z
                    mD[t] = z
            for c in range(0, C8, 8):
                x0, x1, x2, x3, x4, x5, x6, x7 = V[c, a], V[c + 1, a], V[c + 2, a], V[c + 3, a], \
                    V[c + 4, a], V[c + 5, a], V[c + 6, a], V[c + 7, a]
                a0, a1, a2, a3, a4, a5, a6, a7 = uA[c], uA[c + 1], uA[c + 2], uA[c + 3], \
                    uA[c + 4], uA[c + 5], uA[c + 6], uA[c + 7]
                b0, b1, b2, b3, b4, b5, b6, b7 = uB[c], uB[c + 1], uB[c + 2], uB[c + 3], \
                    uB[c + 4], uB[c + 5], uB[c + 6], uB[c + 7]
                c0, c1, c2, c3, c4, c5, c6, c7 = uC[c], uC[c + 1], uC[c + 2], uC[c + 3], \
                    uC[c + 4], uC[c + 5], uC[c + 6], uC[c + 7]
                d0, d1, d2, d3, d4, d5, d6, d7 = uD[c], uD[c + 1], uD[c + 2], uD[c + 3], \
                    uD[c + 4], uD[c + 5], uD[c + 6], uD[c + 7]
                if c == 0:                                  # the first eight channels set the rows
                    for t in range(nt):
                        z0, z1, z2, z3, z4, z5, z6, z7 = x0[t], x1[t], x2[t], x3[t], x4[t], x5[t], x6[t], x7[t]
                        mA[t] = (a0 * z0 + a1 * z1 + a2 * z2 + a3 * z3) + (a4 * z4 + a5 * z5 + a6 * z6 + a7 * z7)
                        mB[t] = (b0 * z0 + b1 * z1 + b2 * z2 + b3 * z3) + (b4 * z4 + b5 * z5 + b6 * z6 + b7 * z7)
                        mC[t] = (c0 * z0 + c1 * z1 + c2 * z2 + c3 * z3) + (c4 * z4 + c5 * z5 + c6 * z6 + c7 * z7)
                        mD[t] = (d0 * z0 + d1 * z1 + d2 * z2 + d3 * z3) + (d4 * z4 + d5 * z5 + d6 * z6 + d7 * z7)
                    continue
                for t in range(nt):
                    z0, z1, z2, z3, z4, z5, z6, z7 = x0[t], x1[t], x2[t], x3[t], x4[t], x5[t], x6[t], x7[t]
                    mA[t] += (a0 * z0 + a1 * z1 + a2 * z2 + a3 * z3) + (a4 * z4 + a5 * z5 + a6 * z6 + a7 * z7)
                    mB[t] += (b0 * z0 + b1 * z1 + b2 * z2 + b3 * z3) + (b4 * z4 + b5 * z5 + b6 * z6 + b7 * z7)
                    mC[t] += (c0 * z0 + c1 * z1 + c2 * z2 + c3 * z3) + (c4 * z4 + c5 * z5 + c6 * z6 + c7 * z7)
                    mD[t] += (d0 * z0 + d1 * z1 + d2 * z2 + d3 * z3) + (d4 * z4 + d5 * z5 + d6 * z6 + d7 * z7)
            for c in range(C8, C):
                x0 = V[c, a]
                a0, b0, c0, d0 = uA[c], uB[c], uC[c], uD[c]
                for t in range(nt):
                    z0 = x0[t]
                    mA[t] += a0 * z0
                    mB[t] += b0 * z0
                    mC[t] += c0 * z0
                    mD[t] += d0 * z0
        for k in range(K4, K):                              # the rows past a multiple of 4, alone
            mA = M[k, a]
            uA = U[k, a]
            for t in range(nt):
                mA[t] = z
            for c in range(0, C8, 8):
                x0, x1, x2, x3, x4, x5, x6, x7 = V[c, a], V[c + 1, a], V[c + 2, a], V[c + 3, a], \
                    V[c + 4, a], V[c + 5, a], V[c + 6, a], V[c + 7, a]
                a0, a1, a2, a3, a4, a5, a6, a7 = uA[c], uA[c + 1], uA[c + 2], uA[c + 3], \
                    uA[c + 4], uA[c + 5], uA[c + 6], uA[c + 7]
                for t in range(nt):
                    mA[t] += (a0 * x0[t] + a1 * x1[t] + a2 * x2[t] + a3 * x3[t]) + \
                        (a4 * x4[t] + a5 * x5[t] + a6 * x6[t] + a7 * x7[t])
            for c in range(C8, C):
                x0 = V[c, a]
                a0 = uA[c]
                for t in range(nt):
                    mA[t] += a0 * x0[t]


@nb.njit(nogil=True, cache=True)
def chunks(Gr, base, Sg, Wg, Hp, Wp, TH, TW, U, V, M, Y, r0, r1, rc, P):
    """The whole pipeline over tile rows [r0, r1), rc rows at a time, Numba GEMM."""
    for a in range(r0, r1, rc):
        b = min(r1, a + rc)
        input_tf(Gr, base, Sg, Wg, Hp, Wp, TH, TW, a, b, V)
        gemm(U, V, M, (b - a) * TW)
        output_tf(M, Y, TH, TW, a, b, P)


@nb.njit(nogil=True, cache=True)
def edge_dy(g, s, Wg, nr, nc, Dk, t):
    """One tile whose 2x2 block of dy reaches past Ho or Wo: rows >= nr, columns >= nc are 0."""
    z = g.dtype.type(0)
    e00 = g[s] if nr > 0 and nc > 0 else z
    e01 = g[s + 1] if nr > 0 and nc > 1 else z
    e10 = g[s + Wg] if nr > 1 and nc > 0 else z
    e11 = g[s + Wg + 1] if nr > 1 and nc > 1 else z
    x0, x1, y0, y1 = e00 + e10, e01 + e11, e00 - e10, e01 - e11
    Dk[0, t], Dk[1, t], Dk[2, t], Dk[3, t] = e00, e00 + e01, e00 - e01, -e01
    Dk[4, t], Dk[5, t], Dk[6, t], Dk[7, t] = x0, x0 + x1, x0 - x1, -x1
    Dk[8, t], Dk[9, t], Dk[10, t], Dk[11, t] = y0, y0 + y1, y0 - y1, -y1
    Dk[12, t], Dk[13, t], Dk[14, t], Dk[15, t] = -e10, -e10 - e11, e11 - e10, e11


@nb.njit(nogil=True, cache=True)
def dy_flat(Dg, base, Sg, Wg, TH, TW, r0, r1, D):
    """``dy_tf`` for even Ho, Wo, in two passes over the chunk's tiles: the four values of each
    tile's block, read at its start (``tile_starts``), stored as rows 0, 3, 12, 15 of D (A e A^T
    holds them there, up to sign); then the other twelve rows as unit-stride (vectorised) sums
    of those four. 2.5x faster than storing all 16 per tile (16 scalar stores)."""
    K = Dg.shape[0]
    nt = (r1 - r0) * TW
    idx = tile_starts(base, Sg, Wg, TH, TW, r0, r1)
    one, wg = u(1), u(Wg)
    for k in range(K):
        g = Dg[k]
        Dk = D[k]
        d0, d1, d2, d3, d4, d5, d6, d7 = Dk[0], Dk[1], Dk[2], Dk[3], Dk[4], Dk[5], Dk[6], Dk[7]
        d8, d9, d10, d11, d12, d13, d14, d15 = Dk[8], Dk[9], Dk[10], Dk[11], Dk[12], Dk[13], Dk[14], Dk[15]
        for t in range(nt):                                 # e00, e01, e10, e11
            s = idx[t]
            d0[t], d3[t], d12[t], d15[t] = g[s], g[s + one], g[s + wg], g[s + wg + one]
        # a few rows per loop: LLVM checks at run time that the rows a loop writes do not
        # overlap those it reads, and vectorises no loop that would need too many such checks
        for t in range(nt):
            x0, x1 = d0[t] + d12[t], d3[t] + d15[t]
            d4[t], d5[t], d6[t], d7[t] = x0, x0 + x1, x0 - x1, -x1
        for t in range(nt):
            y0, y1 = d0[t] - d12[t], d3[t] - d15[t]
            d8[t], d9[t], d10[t], d11[t] = y0, y0 + y1, y0 - y1, -y1
        for t in range(nt):
            e00, e01, e10, e11 = d0[t], d3[t], d12[t], d15[t]
            d1[t], d2[t], d13[t], d14[t] = e00 + e01, e00 - e01, -e10 - e11, e11 - e10
        for t in range(nt):
            d3[t], d12[t] = -d3[t], -d12[t]


@nb.njit(nogil=True, cache=True)
def dy_tf(Dg, base, Sg, Wg, Ho, Wo, TH, TW, r0, r1, D):
    """D[k, :, t] = A e A^T of dy's 2x2 block e under tile t, A = (A^T)^T: rows of A e are
    (e0, e0 + e1, e0 - e1, -e1), and the same along the columns."""
    if Ho % 2 == 0 and Wo % 2 == 0:
        dy_flat(Dg, base, Sg, Wg, TH, TW, r0, r1, D)
        return
    K = Dg.shape[0]
    TWf = Wo // 2
    one, wg = u(1), u(Wg)
    for k in range(K):
        g = Dg[k]
        Dk = D[k]
        d0, d1, d2, d3, d4, d5, d6, d7 = Dk[0], Dk[1], Dk[2], Dk[3], Dk[4], Dk[5], Dk[6], Dk[7]
        d8, d9, d10, d11, d12, d13, d14, d15 = Dk[8], Dk[9], Dk[10], Dk[11], Dk[12], Dk[13], Dk[14], Dk[15]
        for r in range(r0, r1):
            n = r // TH
            h = 2 * (r - n * TH)
            t0 = (r - r0) * TW
            if h + 1 >= Ho:                                 # Ho odd: the block's second row is past it
                for tw in range(TW):
                    edge_dy(g, base + n * Sg + h * Wg + 2 * tw, Wg, Ho - h, Wo - 2 * tw, Dk, t0 + tw)
                continue
            s = u(base + n * Sg + h * Wg)
            s1 = s + wg
            for tw in range(TWf):
                q = u(2 * tw)
                e00, e01, e10, e11 = g[s + q], g[s + q + one], g[s1 + q], g[s1 + q + one]
                x0, x1, y0, y1 = e00 + e10, e01 + e11, e00 - e10, e01 - e11
                t = u(t0 + tw)
                d0[t], d1[t], d2[t], d3[t] = e00, e00 + e01, e00 - e01, -e01
                d4[t], d5[t], d6[t], d7[t] = x0, x0 + x1, x0 - x1, -x1
                d8[t], d9[t], d10[t], d11[t] = y0, y0 + y1, y0 - y1, -y1
                d12[t], d13[t], d14[t], d15[t] = -e10, -e10 - e11, e11 - e10, e11
            if TWf < TW:
                edge_dy(g, base + n * Sg + h * Wg + 2 * TWf, Wg, 2, Wo - 2 * TWf, Dk, t0 + TWf)


@nb.njit(nogil=True, fastmath={"reassoc", "nsz", "contract"}, cache=True)
def dot(x, y, nt):
    s = x.dtype.type(0)
    for t in range(nt):
        s += x[t] * y[t]
    return s


@nb.njit(nogil=True, fastmath={"reassoc", "nsz", "contract"}, cache=True)
def gemm_nt(D, V, Mw, nt):
    """Mw[k, a, c] += sum_t D[k, a, t] V[c, a, t]: four rows of D against four of V at a time
    (16 sums per 8 loads), the sums over t vectorised; the rest one dot product at a time. On one
    core of the Zen 5 EPYC, float32, K = C = 16-64: 143-176 GFLOP/s, against 95-123 for the
    earlier 2 x 4 blocking."""
    K, C = D.shape[0], V.shape[0]
    C4 = C - C % 4
    K4 = K - K % 4
    for a in range(16):
        for k in range(0, K4, 4):
            xA, xB, xC, xD = D[k, a], D[k + 1, a], D[k + 2, a], D[k + 3, a]
            for c in range(0, C4, 4):
                y0, y1, y2, y3 = V[c, a], V[c + 1, a], V[c + 2, a], V[c + 3, a]
                z = D.dtype.type(0)
                sA0 = sA1 = sA2 = sA3 = sB0 = sB1 = sB2 = sB3 = z
                sC0 = sC1 = sC2 = sC3 = sD0 = sD1 = sD2 = sD3 = z
                for t in range(nt):
                    pA, pB, pC, pD = xA[t], xB[t], xC[t], xD[t]
                    q0, q1, q2, q3 = y0[t], y1[t], y2[t], y3[t]
                    sA0 += pA * q0
                    sA1 += pA * q1
                    sA2 += pA * q2
                    sA3 += pA * q3
                    sB0 += pB * q0
                    sB1 += pB * q1
                    sB2 += pB * q2
                    sB3 += pB * q3
                    sC0 += pC * q0
                    sC1 += pC * q1
                    sC2 += pC * q2
                    sC3 += pC * q3
                    sD0 += pD * q0
                    sD1 += pD * q1
                    sD2 += pD * q2
                    sD3 += pD * q3
                Mw[k, a, c] += sA0
                Mw[k, a, c + 1] += sA1
                Mw[k, a, c + 2] += sA2
                Mw[k, a, c + 3] += sA3
                Mw[k + 1, a, c] += sB0
                Mw[k + 1, a, c + 1] += sB1
                Mw[k + 1, a, c + 2] += sB2
                Mw[k + 1, a, c + 3] += sB3
                Mw[k + 2, a, c] += sC0
                Mw[k + 2, a, c + 1] += sC1
                Mw[k + 2, a, c + 2] += sC2
                Mw[k + 2, a, c + 3] += sC3
                Mw[k + 3, a, c] += sD0
                Mw[k + 3, a, c + 1] += sD1
                Mw[k + 3, a, c + 2] += sD2
                Mw[k + 3, a, c + 3] += sD3
            for c in range(C4, C):
                y0 = V[c, a]
                Mw[k, a, c] += dot(xA, y0, nt)
                Mw[k + 1, a, c] += dot(xB, y0, nt)
                Mw[k + 2, a, c] += dot(xC, y0, nt)
                Mw[k + 3, a, c] += dot(xD, y0, nt)
        for k in range(K4, K):
            for c in range(C):
                Mw[k, a, c] += dot(D[k, a], V[c, a], nt)


@nb.njit(nogil=True, cache=True)
def wgrad_chunks(Gr, base, Sg, Wg, Hp, Wp, Dg, dbase, Ho, Wo, TH, TW, V, D, Mw, r0, r1, rc):
    """The weight gradient's pipeline over tile rows [r0, r1), rc rows at a time: the input
    tiles (as the forward's), dy's blocks, their products summed into Mw."""
    for a in range(r0, r1, rc):
        b = min(r1, a + rc)
        input_tf(Gr, base, Sg, Wg, Hp, Wp, TH, TW, a, b, V)
        dy_tf(Dg, dbase, Sg, Wg, Ho, Wo, TH, TW, a, b, D)
        gemm_nt(D, V, Mw, (b - a) * TW)
