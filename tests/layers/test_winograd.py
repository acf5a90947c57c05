"""Winograd F(2x2, 3x3) (``functional.winograd`` and the conv method ``"winograd"``): the matrices,
each Numba kernel against its NumPy reference, the method against the direct derivation
(forward, dx and dW, the last by F(3x3, 2x2); float64 and float32), grids handed over by the
layers around it, a float64 gradcheck, the PyTorch oracle and ConvBatchNorm against the
unfused chain."""
import numpy as np
import pytest

import layerwise as lw
from layerwise.functional import blas, cnhw, conv2d_backward, conv2d_forward
from layerwise.functional import conv as fconv
from layerwise.functional import winograd as wg
from layerwise.testing import gradcheck
from layerwise.testing.oracle import assert_close, require_torch, to_torch

needs_numba = pytest.mark.skipif(cnhw._nb is None, reason="numba is not installed (or LAYERWISE_NO_NUMBA is set): "
                                                          "only the NumPy reference runs, nothing to compare it with")

# float32: Winograd adds and subtracts input values before multiplying (B^T d B) and sums 16
# products per output through A^T, so its rounding error is larger than a direct correlation's:
# measured max|y - y_float64| / max|y_float64| = 1.7e-7 (direct 1.1e-7) at 16 channels and 4.4e-7
# (direct 2.3e-7) at 128 channels. The bound is 16 float32 epsilons of the output's scale
# (1.9e-6, 4x above the worst measured), for these test shapes of at most 16 channels.
F32_REL = 16 * float(np.finfo(np.float32).eps)


def _grid(x, w_shape, padding):
    """The taps' zero-gapped grid of x and the Tiling of its padded inputs (forward)."""
    g = fconv.tap_grid(x.shape, w_shape, padding, (1, 1))
    N, _, H, W = x.shape
    Ho, Wo = H + 2 * padding[0] - 2, W + 2 * padding[1] - 2
    return fconv._tap_input(x, g), wg.Tiling(N, Ho, Wo, 0, g.Hg * g.Wg, g.Wg)


def test_the_matrices_compute_f23_in_one_and_two_dimensions(rng):
    d, g = rng.standard_normal(4), rng.standard_normal(3)
    y = wg.A_T @ ((wg.G @ g) * (wg.B_T @ d))
    np.testing.assert_allclose(y, [d[0:3] @ g, d[1:4] @ g], rtol=1e-14)
    D, Wt = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    Y = wg.A_T @ ((wg.G @ Wt @ wg.G.T) * (wg.B_T @ D @ wg.B_T.T)) @ wg.A_T.T
    ref = [[(D[i:i + 3, j:j + 3] * Wt).sum() for j in range(2)] for i in range(2)]
    np.testing.assert_allclose(Y, ref, rtol=1e-13)


# (x shape, K, padding): odd and even outputs, no padding, one-sided padding, one image
# (even Ho and Wo take the kernels' one-loop-over-all-tiles paths, the others the per-row ones)
SHAPES = [((2, 3, 6, 6), 4, (1, 1)), ((3, 5, 7, 5), 3, (1, 1)), ((2, 6, 8, 9), 5, (0, 0)),
          ((1, 7, 5, 6), 6, (1, 0)), ((2, 4, 3, 3), 2, (0, 1)), ((1, 9, 4, 7), 7, (1, 1)),
          ((3, 5, 8, 4), 6, (1, 1)), ((2, 3, 6, 10), 9, (0, 0))]


@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs,K,p", SHAPES)
def test_numba_kernels_match_the_numpy_reference(xs, K, p, dtype, rng):
    x = rng.standard_normal(xs).astype(dtype)
    W = rng.standard_normal((K, xs[1], 3, 3)).astype(dtype)
    Xg, tl = _grid(x, W.shape, p)
    tol = dict(rtol=1e-13, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-6)
    U = wg.weight_transform(W)                                         # Numba
    np.testing.assert_allclose(U, wg._np_weight(W), **tol)
    assert U.shape == (K, 16, xs[1]) and U.dtype == dtype
    # input: every tile row at once and a range in the middle; a wider V (its row stride as in a chunk)
    C, T = xs[1], tl.rows * tl.TW
    for r0, r1 in ((0, tl.rows), (1, max(2, tl.rows - 1))):
        nt = (r1 - r0) * tl.TW
        V0, V1 = (np.full((C, 16, nt + 5), np.nan, dtype) for _ in range(2))
        wg.input_transform(Xg, tl, r0, r1, V0)
        wg._np_input(Xg, tl, r0, r1, V1)
        np.testing.assert_allclose(V0[:, :, :nt], V1[:, :, :nt], **tol)
        assert np.isnan(V0[:, :, nt:]).all()                           # nothing past the tiles written
    # product: Numba GEMM (odd K, C not a multiple of 4 in these shapes) against matmul
    V = rng.standard_normal((C, 16, T + 3)).astype(dtype)
    M0, M1 = (np.zeros((K, 16, T + 3), dtype) for _ in range(2))
    wg.product(U, V, M0, T)
    M1[:, :, :T] = np.einsum("kac,cat->kat", U, V[:, :, :T])
    np.testing.assert_allclose(M0, M1, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
    # output: all tile rows, and a range; what lies past Ho, Wo is not written
    N = xs[0]
    for r0, r1 in ((0, tl.rows), (1, max(2, tl.rows - 1))):
        Y0, Y1 = (np.full((K, N, tl.Ho, tl.Wo), -7.0, dtype) for _ in range(2))
        wg.output_transform(M0, Y0, tl, r0, r1)
        wg._np_output(M0, Y1, tl, r0, r1)
        np.testing.assert_allclose(Y0, Y1, **tol)
    # dy's 2x2 blocks off a dy grid (base 3: dy[n, h, w] at column 3 + n*Sg + h*Wg + w, zeros elsewhere)
    Dg = np.zeros((K, 3 + N * tl.Sg + 2 * tl.Wg), dtype)
    Dg[:, 3:3 + N * tl.Sg].reshape(K, N, -1, tl.Wg)[:, :, :tl.Ho, :tl.Wo] = rng.standard_normal((K, N, tl.Ho, tl.Wo))
    for r0, r1 in ((0, tl.rows), (1, max(2, tl.rows - 1))):
        nt = (r1 - r0) * tl.TW
        D0, D1 = (np.full((K, 16, nt + 2), np.nan, dtype) for _ in range(2))
        wg.dy_transform(Dg, 3, tl, r0, r1, D0)
        wg._np_dy(Dg, 3, tl, r0, r1, D1)
        np.testing.assert_allclose(D0[:, :, :nt], D1[:, :, :nt], **tol)
        assert np.isnan(D0[:, :, nt:]).all()
    # the 4x4 -> 3x3 back-transform of the weight gradient: kernel against G^T M G in NumPy
    Mw = rng.standard_normal((K, 16, C)).astype(dtype)
    np.testing.assert_allclose(wg._finish_wgrad(Mw), wg._np_finish_wgrad(Mw), **tol)
    # the weight gradient: Numba pipeline (its GEMM: sums over tiles) against the NumPy one
    dW0 = wg.weight_grad(Xg, tl, Dg, 3)
    old = cnhw.set_backend("numpy")
    try:
        dW1 = wg.weight_grad(Xg, tl, Dg, 3)
    finally:
        cnhw.set_backend(old)
    np.testing.assert_allclose(dW0, dW1, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 * np.abs(dW1).max() if dtype == np.float32 else 1e-12)


def test_reference_transforms_compose_to_the_correlation(rng):
    """input_transform -> product -> output_transform through the NumPy reference alone."""
    for xs, K, p in SHAPES:
        x, W = rng.standard_normal(xs), rng.standard_normal((K, xs[1], 3, 3))
        Xg, tl = _grid(x, W.shape, p)
        V = np.empty((xs[1], 16, tl.rows * tl.TW))
        wg._np_input(Xg, tl, 0, tl.rows, V)
        M = np.einsum("kac,cat->kat", wg._np_weight(W), V)
        Y = np.empty((K, xs[0], tl.Ho, tl.Wo))
        wg._np_output(M, Y, tl, 0, tl.rows)
        y, _ = conv2d_forward(x, W, None, 1, p, impl="direct")
        np.testing.assert_allclose(Y.transpose(1, 0, 2, 3), y, rtol=1e-12, atol=1e-12)


def test_reference_weight_gradient_is_the_correlation_of_x_with_dy(rng):
    """weight_grad (F(3x3, 2x2): G^T [(A e A^T) * (B^T d B)] G summed over tiles), NumPy reference."""
    old = cnhw.set_backend("numpy")
    try:
        for xs, K, p in SHAPES:
            x = rng.standard_normal(xs)
            Xg, tl = _grid(x, (K, xs[1], 3, 3), p)
            dy = rng.standard_normal((xs[0], K, tl.Ho, tl.Wo))
            Dg = np.zeros((K, 5 + xs[0] * tl.Sg + 2 * tl.Wg))
            Dg[:, 5:5 + xs[0] * tl.Sg].reshape(K, xs[0], -1, tl.Wg)[:, :, :tl.Ho, :tl.Wo] = dy.transpose(1, 0, 2, 3)
            _, ctx = conv2d_forward(x, rng.standard_normal((K, xs[1], 3, 3)), None, 1, p, impl="direct")
            _, dW, _ = conv2d_backward(dy, ctx, need_dx=False)
            np.testing.assert_allclose(wg.weight_grad(Xg, tl, Dg, 5), dW, rtol=1e-12, atol=1e-12)
    finally:
        cnhw.set_backend(old)


def test_grid_too_short_and_bad_weights_are_refused(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    Xg, tl = _grid(x, (4, 3, 3, 3), (1, 1))
    with pytest.raises(ValueError, match="does not hold dy"):
        wg.weight_grad(Xg, tl, np.zeros((4, 20)), 0)
    with pytest.raises(ValueError, match="does not hold the padded inputs"):
        wg.conv(Xg[:, :-40], tl, wg.weight_transform(rng.standard_normal((4, 3, 3, 3))))
    with pytest.raises(ValueError, match=r"U must be \(K, 16, C\)"):
        wg.conv(Xg, tl, np.zeros((4, 16, 5)))
    U = wg.weight_transform(rng.standard_normal((4, 3, 3, 3)))
    with pytest.raises(ValueError, match="out must be a C-contiguous float64 array of shape"):
        wg.conv(Xg, tl, U, out=np.zeros((4, 2, 6, 5)))
    with pytest.raises(ValueError, match="out must be a C-contiguous"):
        wg.conv(Xg, tl, U, out=np.zeros((2, 4, 6, 6)).transpose(1, 0, 2, 3))
    with pytest.raises(ValueError, match=r"expected W \(K, C, 3, 3\)"):
        wg.weight_transform(np.zeros((4, 3, 5, 5)))
    with pytest.raises(ValueError, match="winograd .* needs a 3x3 kernel"):
        conv2d_forward(np.zeros((1, 3, 5, 5)), np.zeros((4, 3, 3, 3)), stride=2, impl="winograd")
    with pytest.raises(ValueError, match="dilation"):
        conv2d_forward(np.zeros((1, 3, 9, 9)), np.zeros((4, 3, 3, 3)), dilation=2, impl="winograd")


def _routes():
    """(use Numba kernels, BLAS on, threads, GEMM): every route ``winograd.conv`` can take."""
    out = [("numpy", True, 1, "matmul")]
    if cnhw._nb is not None:
        out += [("numba", False, 1, "numba"), ("numba", True, 3, "numba")]
        if blas.available():
            out += [("numba", True, 1, "blas"), ("numba", True, 3, "blas")]
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("route", _routes(), ids=lambda r: "-".join(map(str, r)))
@pytest.mark.parametrize("xs,K,p", SHAPES + [((2, 4, 6, 6), 3, (2, 2))])
def test_winograd_method_matches_direct(monkeypatch, xs, K, p, route, dtype, rng):
    """Forward, dx and dW against the direct derivation, on every route, with the tiles cut into
    chunks of one or two tile rows so that chunks and thread parts meet mid-image."""
    kernels, use_blas, threads, gemm = route
    x = rng.standard_normal(xs)
    W, b = rng.standard_normal((K, xs[1], 3, 3)) / np.sqrt(9 * xs[1]), rng.standard_normal(K)
    y0, c0 = conv2d_forward(x, W, b, 1, p, impl="direct")
    dy = rng.standard_normal(y0.shape)
    ref = (y0, *conv2d_backward(dy, c0))
    two_rows = 2 * ((xs[3] + 2 * p[1] - 1) // 2)
    monkeypatch.setattr(wg, "MIN_CHUNK_TILES", two_rows)
    monkeypatch.setattr(wg, "MAX_CHUNK_TILES", two_rows)
    monkeypatch.setattr(wg, "NUMBA_GEMM_MAX", 10**6 if gemm == "numba" else 0)
    old = cnhw.set_backend(kernels), blas.set_enabled(use_blas), blas.set_num_threads(threads)
    try:
        y, ctx = conv2d_forward(x.astype(dtype), W.astype(dtype), b.astype(dtype), 1, p, impl="winograd")
        got = (y, *conv2d_backward(dy.astype(dtype), ctx))
    finally:
        cnhw.set_backend(old[0])
        blas.set_enabled(old[1])
        blas.set_num_threads(old[2])
    assert ctx.method == "winograd"
    for name, r, a in zip(("y", "dx", "dW", "db"), ref, got):
        assert a.dtype == dtype and a.shape == r.shape, name
        if dtype == np.float64:
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12, err_msg=name)
        else:
            np.testing.assert_allclose(a, r, rtol=0, atol=F32_REL * np.abs(r).max() * 4 if name == "dW"
                                       else F32_REL * np.abs(r).max(), err_msg=name)


@pytest.mark.parametrize("p", [(1, 1), (0, 0), (1, 0)])
def test_grids_handed_over_are_read_in_place(backend, p, rng):
    """x written into ``input_grid``'s view and dy into ``conv2d_grad_buffer``'s: the method reads
    both without a copy and gives the numbers of x and dy passed as plain arrays."""
    xs, K = (2, 8, 7, 6), 5
    x, W = rng.standard_normal(xs), rng.standard_normal((K, 8, 3, 3))
    y0, c0 = conv2d_forward(x, W, None, 1, p, impl="winograd")
    dy = rng.standard_normal(y0.shape)
    dx0, dW0, _ = conv2d_backward(dy, c0)
    g = fconv.tap_grid(xs, W.shape, p, (1, 1))
    if g.lead == 0:                                 # padding 0: x's own channels-first memory is the grid
        view = np.empty((xs[1], xs[0], *xs[2:])).transpose(1, 0, 2, 3)
        grid = view.transpose(1, 0, 2, 3).reshape(xs[1], -1)
    else:                                           # what input_grid hands the layer before
        grid, view = fconv._new_grid(np, xs, g, np.float64)
    view[...] = x
    y1, c1 = conv2d_forward(view, W, None, 1, p, impl="winograd")
    assert np.shares_memory(c1.saved["Xg"], grid)
    buf, dview = fconv.conv2d_grad_buffer(c1)
    assert buf is not None
    dview[...] = dy
    dx1, dW1, _ = conv2d_backward(None, c1, dy_grid=buf)
    for a, r in ((y1, y0), (dx1, dx0), (dW1, dW0)):
        np.testing.assert_allclose(a, r, rtol=1e-13, atol=1e-13)


def test_input_grid_and_grad_buffer_serve_the_winograd_method(monkeypatch):
    """input_grid hands out a grid wherever the geometry runs cftaps or winograd."""
    monkeypatch.setattr(fconv, "conv2d_method", lambda *a, **k: "winograd")
    grid, view = fconv.input_grid((2, 8, 6, 6), (8, 8, 3, 3), 1, 1, np.float32)
    assert grid is not None and view.shape == (2, 8, 6, 6)


def test_conv2d_winograd_gradcheck(rng):
    for xs, o, p in [((2, 3, 5, 4), 4, 1), ((1, 2, 4, 5), 3, 0), ((2, 2, 3, 4), 2, (1, 0))]:
        gradcheck(lw.Conv2d(o, 3, 1, p, impl="winograd"), rng.standard_normal(xs))


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,o,p", [((2, 8, 8, 8), 6, 1), ((3, 5, 7, 9), 4, 1), ((2, 4, 6, 5), 3, 0)])
def test_conv2d_winograd_matches_torch(xs, o, p, dtype):
    torch = require_torch()
    rng = np.random.default_rng(1)
    x = rng.standard_normal(xs).astype(dtype)
    conv = lw.Conv2d(o, 3, 1, p, impl="winograd")
    conv.setup(x.shape, dtype=dtype)
    y = conv.forward(x)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = conv.backward(dy)
    tx = to_torch(x, True)
    tW, tb = to_torch(conv.weight.data, True), to_torch(conv.bias.data, True)
    ty = torch.nn.functional.conv2d(tx, tW, tb, 1, p)
    ty.backward(to_torch(dy))
    # float32: Winograd's own rounding (see F32_REL) on top of PyTorch's
    rtol = 2 * F32_REL if dtype == np.float32 else None
    assert_close(y, ty, rtol=rtol, what="forward")
    assert_close(dx, tx.grad, rtol=rtol, what="dx")
    assert_close(conv.weight.grad, tW.grad, rtol=rtol, what="dW")
    assert_close(conv.bias.grad, tb.grad, rtol=rtol, what="db")


@pytest.mark.parametrize("tail", ["relu", "add", None])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-11), (np.float32, 3e-5)])
def test_conv_batchnorm_with_winograd_equals_unfused(backend, tail, dtype, tol, rng):
    """ConvBatchNorm around a winograd Conv2d (the BN writes dz into the convolution's dy grid)
    against Conv2d -> BatchNorm2d [-> Eltwise] [-> ReLU] as separate layers; and the same net
    with the fusion pass computes the same numbers."""
    from layerwise.core import Net
    xs, c = (3, 8, 6, 5), 6

    def net(fuse):
        n = Net(inputs=["x", "r"] if tail == "add" else "x", fuse=fuse)
        n.add(lw.Conv2d(c, 3, padding=1, bias=False, impl="winograd"), "x", "z", name="conv")
        n.add(lw.BatchNorm2d(), "z", "b", name="bn")
        top = "b"
        if tail == "add":
            n.add(lw.Eltwise("sum"), ["b", "r"], "s", name="add")
            top = "s"
        if tail is not None:
            n.add(lw.ReLU(), top, "out", name="relu")
        return n
    x = rng.standard_normal(xs).astype(dtype)
    r = rng.standard_normal((3, c, 6, 5)).astype(dtype)
    inputs = (x, r) if tail == "add" else (x,)
    ref, fused = net(False), net(True)
    for n in (ref, fused):
        n.setup(*[a.shape for a in inputs], dtype=dtype)
    fused.load_state_dict(ref.state_dict())
    assert any(type(s.layer).__name__ == "ConvBatchNorm" for s in fused.steps)
    dy = rng.standard_normal((3, c, 6, 5)).astype(dtype)
    out = []
    for n in (ref, fused):
        n.train()
        y = n.forward(*inputs).copy()
        dxs = n.backward(dy)
        dxs = tuple(d.copy() for d in (dxs if isinstance(dxs, tuple) else (dxs,)))
        out.append((y, dxs, {k: p.grad.copy() for k, p in n.named_params().items()}))
    (y0, d0, g0), (y1, d1, g1) = out
    np.testing.assert_allclose(y1, y0, rtol=tol, atol=tol)
    for a, b in zip(d1, d0):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], rtol=tol * 10, atol=tol * 10, err_msg=k)


def test_conv_batchnorm_with_winograd_gradcheck(rng):
    conv, bn = lw.Conv2d(4, 3, padding=1, impl="winograd"), lw.BatchNorm2d()
    xs = (2, 3, 5, 4)
    bn.setup(conv.setup(xs, dtype=np.float64), dtype=np.float64)
    bn.weight.data[...] = [0.7, -1.3, 1.1, 0.4]
    f = lw.ConvBatchNorm(conv, bn, lw.ReLU())
    report = gradcheck(f, rng.standard_normal(xs))
    assert len(report.entries) == 5                     # x, conv weight and bias, bn weight and bias


@pytest.mark.parametrize("rows,rc,threads", [(256, 64, 2), (1024, 64, 2), (10, 3, 2), (7, 64, 2), (256, 64, 1), (9, 1, 4)])
def test_chunk_row_ranges_cover_the_rows_with_half_chunks_at_the_end(rows, rc, threads):
    r = wg._row_ranges(rows, rc, threads)
    assert r[0][0] == 0 and r[-1][1] == rows and all(a[1] == b[0] for a, b in zip(r, r[1:]))
    sizes = [b - a for a, b in r]
    assert max(sizes) <= rc and min(sizes) >= 1
    if threads == 1:
        assert sizes[:-1] == [rc] * (len(r) - 1)
    else:   # full chunks while more than threads * rc rows are left, then halves
        left = [rows - a for a, _ in r]
        assert all(s == rc for s, lf in zip(sizes, left) if lf > threads * rc)
        assert all(s <= max(1, rc // 2) for s, lf in zip(sizes, left) if lf <= threads * rc)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("residual", [None, "grid", "plain"])
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("dest", ["grid", "plain"])
def test_epilogue_in_the_output_transform_equals_the_reference(monkeypatch, dtype, residual, relu, dest, rng):
    """conv with an Epilogue (bias, residual, ReLU written as the outputs are, into the next
    convolution's grid with its gaps zeroed, or into plain maps) against conv then the NumPy
    epilogue; several chunks (small CHUNK_BYTES), even and odd output sizes (odd: the reference
    path), a grid whose gaps hold NaN before."""
    monkeypatch.setattr(wg, "CHUNK_BYTES", 1)
    monkeypatch.setattr(wg, "MIN_CHUNK_TILES", 4)
    kernels, chunks = wg._compile(), []
    kernel = kernels["output_epi"]
    monkeypatch.setitem(kernels, "output_epi", lambda *a: (chunks.append(a[5:7]), kernel(*a)))
    for xs, K in (((3, 5, 6, 8), 7), ((2, 4, 5, 6), 6)):
        N, C, H, W = xs
        x = rng.standard_normal(xs).astype(dtype)
        Wt = rng.standard_normal((K, C, 3, 3)).astype(dtype)
        Xg, tl = _grid(x, Wt.shape, (1, 1))
        U = wg.weight_transform(Wt)
        bias = rng.standard_normal(K).astype(dtype)
        R = None
        if residual == "grid":           # a strided view: the interior of another grid
            gr = fconv.tap_grid((N, K, tl.Ho, tl.Wo), (K, K, 3, 3), (1, 1), (1, 1))
            Rg = np.zeros((K, gr.Ng), dtype)
            R = Rg[:, gr.lead:gr.lead + N * gr.Hg * gr.Wg].reshape(K, N, gr.Hg, gr.Wg)[:, :, :tl.Ho, :tl.Wo]
            R[...] = rng.standard_normal(R.shape)
        elif residual == "plain":
            R = rng.standard_normal((K, N, tl.Ho, tl.Wo)).astype(dtype)
        if dest == "grid":               # the input grid of a 3x3 pad-1 convolution reading y
            g = fconv.tap_grid((N, K, tl.Ho, tl.Wo), (K, K, 3, 3), (1, 1), (1, 1))
            G0 = np.full((K, g.Ng), np.nan, dtype)
            ep = wg.Epilogue(bias, relu, G0, g.lead, g.Hg, g.Wg, True, R)
        else:
            G0 = np.full((K, N * tl.Ho * tl.Wo), np.nan, dtype)
            ep = wg.Epilogue(bias, relu, G0, 0, tl.Ho, tl.Wo, False, R)
        chunks.clear()
        y = wg.conv(Xg, tl, U, epilogue=ep)
        if tl.Ho % 2 == 0 and tl.Wo % 2 == 0:   # the kernel ran, chunk by chunk, over every tile row
            assert len(chunks) > 2 and sorted(chunks)[0][0] == 0 and max(b for _, b in chunks) == tl.rows
        else:
            assert not chunks
        G1 = np.full_like(G0, np.nan)
        ref = wg._np_epilogue(wg.conv(Xg, tl, U), wg.Epilogue(bias, relu, G1, ep.lead, ep.Hg, ep.Wg, ep.gaps, R))
        tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(y, ref, **tol)
        assert np.shares_memory(y, G0) and y.shape == (K, N, tl.Ho, tl.Wo)
        if dest == "grid":               # every column written: outputs, zeros in all the gaps
            assert not np.isnan(G0).any()
            np.testing.assert_allclose(G0, G1, **tol)
            assert np.count_nonzero(G0) <= y.size
        if relu:
            assert (y >= 0).all()


def test_epilogue_that_does_not_fit_is_refused(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    Xg, tl = _grid(x, (4, 3, 3, 3), (1, 1))
    U = wg.weight_transform(rng.standard_normal((4, 3, 3, 3)))
    with pytest.raises(ValueError, match="epilogue's grid"):
        wg.conv(Xg, tl, U, epilogue=wg.Epilogue(np.zeros(4), True, np.zeros((4, 10)), 0, 6, 6, False))
    with pytest.raises(ValueError, match="bias must have shape"):
        wg.conv(Xg, tl, U, epilogue=wg.Epilogue(np.zeros(3), True, np.zeros((4, 144)), 0, 6, 6, False))
    with pytest.raises(ValueError, match="residual must be"):
        wg.conv(Xg, tl, U, epilogue=wg.Epilogue(np.zeros(4), True, np.zeros((4, 144)), 0, 6, 6, False,
                                                np.zeros((4, 2, 5, 6))))


def test_conv2d_forward_refuses_an_epilogue_it_cannot_run(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    W = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    ep = wg.Epilogue(np.zeros(4, np.float32), True, np.zeros((4, 72), np.float32), 0, 6, 6, False)
    with pytest.raises(ValueError, match="epilogue runs with the winograd method"):
        conv2d_forward(x, W, None, 1, 1, impl="cfim2col", need_ctx=False, epilogue=ep)
    with pytest.raises(ValueError, match="need_ctx=True"):
        conv2d_forward(x, W, None, 1, 1, impl="winograd", need_ctx=True, epilogue=ep)
    y, _ = conv2d_forward(x, W, None, 1, 1, impl="winograd", need_ctx=False, epilogue=ep)
    ref = np.maximum(conv2d_forward(x, W, None, 1, 1, impl="direct")[0], 0)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
