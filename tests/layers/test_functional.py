"""The pure kernels in layerwise.functional against naive loops written from the definitions."""
import numpy as np
import pytest

from layerwise.functional import (
    avg_pool2d_forward,
    col2im,
    conv2d_backward,
    conv2d_forward,
    conv_output_size,
    im2col,
    max_pool2d_forward,
)


def naive_im2col(x, k, s, p, d, out=None, pad_value=0.0):
    N, C, H, W = x.shape
    Ho = out[0] if out else (H + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    Wo = out[1] if out else (W + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    cols = np.full((N, C, k[0], k[1], Ho, Wo), pad_value, dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(k[0]):
                for j in range(k[1]):
                    for h in range(Ho):
                        for w in range(Wo):
                            r, q = h * s[0] + i * d[0] - p[0], w * s[1] + j * d[1] - p[1]
                            if 0 <= r < H and 0 <= q < W:
                                cols[n, c, i, j, h, w] = x[n, c, r, q]
    return cols


def naive_col2im(cols, x_shape, s, p, d):
    N, C, kh, kw, Ho, Wo = cols.shape
    dx = np.zeros(x_shape, dtype=cols.dtype)
    for n, c, i, j, h, w in np.ndindex(cols.shape):
        r, q = h * s[0] + i * d[0] - p[0], w * s[1] + j * d[1] - p[1]
        if 0 <= r < x_shape[2] and 0 <= q < x_shape[3]:
            dx[n, c, r, q] += cols[n, c, i, j, h, w]
    return dx


GRID = [  # (x shape, kernel, stride, padding, dilation)
    ((2, 3, 5, 6), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 2, 7, 5), (3, 2), (2, 1), (1, 0), (1, 2)),
    ((2, 1, 9, 9), (2, 2), (3, 2), (0, 1), (2, 3)),
    ((1, 2, 4, 4), (1, 1), (1, 1), (0, 0), (1, 1)),
    ((1, 1, 3, 3), (3, 3), (1, 1), (0, 0), (1, 1)),
]


@pytest.mark.parametrize("shape,k,s,p,d", GRID)
def test_im2col_matches_naive_loop(shape, k, s, p, d, rng):
    x = rng.standard_normal(shape)
    np.testing.assert_array_equal(im2col(x, k, s, p, d), naive_im2col(x, k, s, p, d))


@pytest.mark.parametrize("shape,k,s,p,d", GRID)
def test_col2im_matches_naive_loop_and_is_the_adjoint(shape, k, s, p, d, rng):
    x = rng.standard_normal(shape)
    cols = rng.standard_normal(im2col(x, k, s, p, d).shape)
    dx = col2im(cols, shape, s, p, d)
    np.testing.assert_allclose(dx, naive_col2im(cols, shape, s, p, d), rtol=1e-12, atol=1e-12)
    # <im2col(x), cols> == <x, col2im(cols)>
    assert np.isclose((im2col(x, k, s, p, d) * cols).sum(), (x * dx).sum(), rtol=1e-12)


def test_im2col_ceil_out_size_pads_the_far_side_with_pad_value(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    out = (conv_output_size(5, 2, 2, 0, 1, ceil_mode=True),) * 2
    assert out == (3, 3)
    cols = im2col(x, 2, 2, 0, out_size=out, pad_value=-np.inf)
    np.testing.assert_array_equal(cols, naive_im2col(x, (2, 2), (2, 2), (0, 0), (1, 1), out, -np.inf))


def test_conv_output_size_rules():
    assert conv_output_size(32, 3, 1, 1) == 32
    assert conv_output_size(7, 3, 2, 0) == 3            # floor((7-3)/2)+1
    assert conv_output_size(6, 3, 2, 0) == 2            # floor
    assert conv_output_size(6, 3, 2, 0, ceil_mode=True) == 3   # Caffe pooling rounds up
    assert conv_output_size(5, 2, 2, 1, ceil_mode=True) == 3   # last window would start in the padding
    assert conv_output_size(2, 5, 1, 0) == 0


def naive_conv(x, W, b, s, p, d, g):
    N, C, H, Wd = x.shape
    O, Cg, kh, kw = W.shape
    cols = naive_im2col(x, (kh, kw), s, p, d)
    Ho, Wo = cols.shape[-2:]
    y = np.zeros((N, O, Ho, Wo))
    for n, o in np.ndindex(N, O):
        grp = o // (O // g)
        y[n, o] = np.einsum("cij,cijhw->hw", W[o], cols[n, grp * Cg:(grp + 1) * Cg]) + b[o]
    return y


CONV_CASES = [
    ((2, 4, 6, 5), (6, 4, 3, 3), (1, 1), (1, 1), (1, 1), 1),   # flat shifted path, cols GEMM
    ((2, 9, 6, 5), (3, 9, 3, 3), (1, 1), (1, 1), (1, 1), 1),   # flat shifted path, few outputs: shifted sums
    ((2, 3, 11, 6), (4, 3, 5, 3), (1, 1), (0, 2), (2, 1), 1),  # flat shifted, dilated, asymmetric
    ((2, 4, 6, 5), (6, 4, 1, 1), (1, 1), (0, 0), (1, 1), 1),   # plain GEMM path
    ((2, 2, 9, 9), (5, 2, 3, 3), (1, 1), (0, 0), (1, 1), 1),   # flat shifted, O > C: backward tap by tap
    ((2, 3, 8, 8), (4, 3, 5, 5), (1, 1), (0, 0), (1, 1), 1),   # large border share: channels-first im2col
    ((2, 4, 7, 6), (6, 4, 1, 1), (2, 2), (0, 0), (1, 1), 1),   # 1x1 stride 2: subsample + GEMM
    ((2, 4, 6, 1), (5, 4, 1, 1), (1, 1), (1, 1), (1, 1), 1),   # 1x1 with padding: flat shifted
    ((2, 4, 7, 8), (6, 4, 3, 3), (2, 2), (1, 1), (1, 1), 1),   # channels-first im2col, stride 2
    ((2, 3, 9, 9), (4, 3, 7, 7), (2, 3), (3, 2), (1, 1), 1),   # 7x7 stem-like, uneven strides
    ((2, 4, 7, 6), (6, 2, 3, 2), (2, 1), (1, 0), (1, 2), 2),   # im2col path, groups
    ((1, 3, 7, 7), (3, 1, 3, 3), (1, 1), (2, 2), (2, 2), 3),   # depthwise, dilated
    ((3, 9, 7, 6), (5, 9, 3, 3), (1, 1), (1, 1), (1, 1), 1),   # 9 channels: one GEMM per tap (cftaps)
    ((2, 8, 12, 12), (5, 8, 5, 5), (1, 1), (0, 0), (1, 1), 1),  # valid 5x5: the input itself is the grid
]


def _fitting(cases):
    """(impl, case) for every impl that can run the case: "gemm", "im2col", "direct" always, and
    each channels-first method by name where its geometry allows (it raises otherwise)."""
    from layerwise.functional.conv import METHODS, conv2d_method
    out = []
    for case in cases:
        xs, ws, s, p, d, g = case
        for impl in ("gemm", "im2col", "direct") + METHODS:
            try:
                conv2d_method(xs, ws, s, p, d, g, impl)
            except ValueError:
                continue
            out.append((impl, *case))
    return out


@pytest.mark.parametrize("impl,xs,ws,s,p,d,g", _fitting(CONV_CASES))
def test_conv2d_forward_matches_naive_and_backward_is_its_adjoint(impl, xs, ws, s, p, d, g, rng):
    x, W, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    y, ctx = conv2d_forward(x, W, b, s, p, d, g, impl=impl)
    np.testing.assert_allclose(y, naive_conv(x, W, b, s, p, d, g), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx, dW, db = conv2d_backward(dy, ctx)
    # linearity in x and W: <dy, y(x + t*u) - y(x)> = t * <dx, u>
    u, V = rng.standard_normal(xs), rng.standard_normal(ws)
    y_u, _ = conv2d_forward(u, W, None, s, p, d, g, impl=impl)
    y_v, _ = conv2d_forward(x, V, None, s, p, d, g, impl=impl)
    assert np.isclose((dy * y_u).sum(), (dx * u).sum(), rtol=1e-10)
    assert np.isclose((dy * y_v).sum(), (dW * V).sum(), rtol=1e-10)
    np.testing.assert_allclose(db, dy.sum((0, 2, 3)), rtol=1e-12)
    # the same numbers from a channels-first input, and each gradient alone when the other is not needed
    xc = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    y2, ctx2 = conv2d_forward(xc, W, b, s, p, d, g, impl=impl)
    np.testing.assert_allclose(y2, y, rtol=1e-12, atol=1e-12)
    dx2, dW2, db2 = conv2d_backward(dy, ctx2, need_dW=False)
    np.testing.assert_allclose(dx2, dx, rtol=1e-12, atol=1e-12)
    assert dW2 is None and db2 is None
    dx3, dW3, _ = conv2d_backward(dy, ctx2, need_dx=False)
    assert dx3 is None
    np.testing.assert_allclose(dW3, dW, rtol=1e-12, atol=1e-12)


def test_conv2d_method_choice():
    from layerwise.functional import cnhw
    from layerwise.functional.conv import conv2d_method
    # ResNet / VGG 3x3: Winograd where its Numba kernels run, else the taps on the same grids
    wino = "winograd" if cnhw.get_backend() == "numba" else "cftaps"
    assert conv2d_method((64, 16, 32, 32), (16, 16, 3, 3), 1, 1) == wino            # ResNet
    assert conv2d_method((64, 64, 8, 8), (64, 64, 3, 3), 1, 1) == wino
    assert conv2d_method((64, 48, 32, 32), (12, 48, 3, 3), 1, 1) == "cftaps"       # DenseNet-BC: 12 outputs
    assert conv2d_method((64, 8, 32, 32), (16, 8, 3, 3), 1, 1) == "cftaps"         # 8 inputs
    assert conv2d_method((64, 16, 16, 16), (16, 16, 3, 3), 1, 1, 2) == "cftaps"    # dilated
    assert conv2d_method((64, 64, 4, 4), (64, 64, 3, 3), 1, 1) == "cfim2col"       # 5x5 grid for 4x4 outputs
    # 7x7 outputs of a 9x9 map: 16 tiles of 2x2 (1.3x the outputs); the taps' grid would be 1.65x
    assert conv2d_method((64, 64, 9, 9), (64, 64, 3, 3), 1, 0) == ("winograd" if wino == "winograd" else "cfim2col")
    assert conv2d_method((64, 3, 32, 32), (16, 3, 3, 3), 1, 1) == "cfim2col"       # 3 input channels: stacked taps
    assert conv2d_method((256, 1, 28, 28), (20, 1, 5, 5)) == "cfim2col"            # LeNet conv1
    assert conv2d_method((256, 20, 12, 12), (50, 20, 5, 5)) == "cfim2col"          # LeNet conv2: 2.25x border
    assert conv2d_method((64, 16, 32, 32), (32, 16, 3, 3), 2, 1) == "cfim2col"    # stride 2
    assert conv2d_method((64, 16, 32, 32), (32, 16, 1, 1)) == "cf1x1"
    assert conv2d_method((64, 16, 32, 32), (32, 4, 3, 3), 1, 1, 1, 4) == "im2col"  # groups


def test_conv2d_named_method_must_fit_the_geometry():
    with pytest.raises(ValueError, match="cftaps needs stride 1"):
        conv2d_forward(np.zeros((1, 3, 5, 5)), np.zeros((4, 3, 3, 3)), stride=2, impl="cftaps")
    with pytest.raises(ValueError, match="cf1x1 needs a 1x1 kernel"):
        conv2d_forward(np.zeros((1, 3, 5, 5)), np.zeros((4, 3, 3, 3)), impl="cf1x1")
    with pytest.raises(ValueError, match="groups=3"):
        conv2d_forward(np.zeros((1, 3, 5, 5)), np.zeros((3, 1, 3, 3)), groups=3, impl="cfim2col")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs,ws,p,d", [((3, 9, 7, 6), (5, 9, 3, 3), (1, 1), (1, 1)),
                                       ((2, 8, 11, 9), (4, 8, 5, 3), (0, 2), (2, 1)),
                                       ((2, 8, 6, 6), (3, 8, 1, 1), (1, 1), (1, 1))])
def test_conv2d_taps_blas_route_threads_and_xp_route_agree(monkeypatch, dtype, xs, ws, p, d, rng):
    """cftaps through BLAS (one thread, and columns split over three threads) and through
    xp.matmul (the CuPy / no-BLAS route) give the reference's numbers."""
    from layerwise.functional import blas
    x, W, b = (rng.standard_normal(s).astype(dtype) for s in (xs, ws, ws[:1]))
    y0, c0 = conv2d_forward(x, W, b, 1, p, d, impl="direct")
    dy = rng.standard_normal(y0.shape).astype(dtype)
    ref = (y0, *conv2d_backward(dy, c0))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
    monkeypatch.setattr(blas, "MIN_PART", 16)
    routes = [(True, 1), (True, 3), (False, 1)] if blas.available() else [(False, 1)]
    for use_blas, threads in routes:
        old_en, old_n = blas.set_enabled(use_blas), blas.set_num_threads(threads)
        try:
            y, ctx = conv2d_forward(x, W, b, 1, p, d, impl="cftaps")
            got = (y, *conv2d_backward(dy, ctx))
        finally:
            blas.set_enabled(old_en)
            blas.set_num_threads(old_n)
        for r, a in zip(ref, got):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, r, **tol)


def test_conv2d_gemm_returns_a_channels_first_view_and_needs_no_transposes_between_layers(rng):
    from layerwise.functional.layout import is_cnhw
    x = rng.standard_normal((2, 4, 6, 5))
    y, _ = conv2d_forward(x, rng.standard_normal((6, 4, 3, 3)), None, 1, 1)
    assert y.shape == (2, 6, 6, 5) and is_cnhw(y)
    z, ctx = conv2d_forward(y, rng.standard_normal((3, 6, 1, 1)), None)
    assert is_cnhw(z) and np.shares_memory(ctx.saved["X"], y)   # the 1x1 conv read y in place


def test_conv2d_forward_rejects_bad_shapes(rng):
    with pytest.raises(ValueError, match="groups"):
        conv2d_forward(np.zeros((1, 3, 5, 5)), np.zeros((4, 2, 3, 3)), groups=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv2d_forward(np.zeros((1, 3, 2, 2)), np.zeros((4, 3, 3, 3)))
    with pytest.raises(ValueError, match="impl"):
        conv2d_forward(np.zeros((1, 3, 5, 5)), np.zeros((4, 3, 3, 3)), impl="fft")


def test_pool_kernels_match_naive_windows(rng):
    x = rng.standard_normal((2, 3, 7, 6))
    cols = naive_im2col(x, (3, 3), (2, 2), (1, 1), (1, 1), pad_value=-np.inf)
    y, arg = max_pool2d_forward(x, 3, 2, 1)
    np.testing.assert_array_equal(y, cols.max(axis=(2, 3)))
    np.testing.assert_array_equal(arg, cols.reshape(2, 3, 9, *y.shape[2:]).argmax(axis=2))
    zcols = naive_im2col(x, (3, 3), (2, 2), (1, 1), (1, 1))
    np.testing.assert_allclose(avg_pool2d_forward(x, 3, 2, 1), zcols.mean(axis=(2, 3)), rtol=1e-12)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_max_pool_on_channels_first_input_equals_nchw(rng, k, s, p):
    from layerwise.functional import max_pool2d_backward, max_pool2d_forward
    from layerwise.functional.layout import is_cnhw
    x = rng.standard_normal((2, 3, 7, 6))
    xc = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    y, arg = max_pool2d_forward(x, k, s, p)
    yc, argc = max_pool2d_forward(xc, k, s, p)
    assert is_cnhw(yc) and is_cnhw(argc)
    np.testing.assert_array_equal(yc, y)
    np.testing.assert_array_equal(argc, arg)
    dy = rng.standard_normal(y.shape)
    dyc = np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(max_pool2d_backward(dyc, argc, x.shape, k, s, p),
                                  max_pool2d_backward(dy, arg, x.shape, k, s, p))
    # an NCHW dy (as after a Flatten) against a channels-first arg: dx in the forward's layout
    dx = max_pool2d_backward(dy, argc, x.shape, k, s, p)
    assert is_cnhw(dx)
    np.testing.assert_array_equal(dx, max_pool2d_backward(dy, arg, x.shape, k, s, p))


@pytest.mark.parametrize("k,s,d", [((3, 3), (1, 1), (1, 1)), ((5, 5), (1, 1), (1, 1)), ((3, 2), (2, 3), (2, 1))])
def test_cf_im2col_and_col2im_kernels_match_strided_copies(backend, rng, k, s, d):
    """The one-pass kernels (NumPy reference and Numba) against a loop of strided copies/adds."""
    from layerwise.functional import cf_kernels
    C, N, Hp, Wp = 3, 2, 11, 10
    Ho, Wo = (Hp - d[0] * (k[0] - 1) - 1) // s[0] + 1, (Wp - d[1] * (k[1] - 1) - 1) // s[1] + 1
    for dt in (np.float64, np.float32):
        Xp = rng.standard_normal((C, N, Hp, Wp)).astype(dt)
        cols = cf_kernels.im2col(Xp, np.empty((C, *k, N, Ho, Wo), dt), k, s, d)
        dXp = cf_kernels.col2im(cols, np.ones((C, N, Hp, Wp), dt), k, s, d)
        want = np.ones((C, N, Hp, Wp), dt)
        for i in range(k[0]):
            for j in range(k[1]):
                rs = slice(i * d[0], i * d[0] + s[0] * (Ho - 1) + 1, s[0])
                cs = slice(j * d[1], j * d[1] + s[1] * (Wo - 1) + 1, s[1])
                np.testing.assert_array_equal(cols[:, i, j], Xp[:, :, rs, cs])
                want[:, :, rs, cs] += Xp[:, :, rs, cs]
        np.testing.assert_allclose(dXp, want, rtol=1e-6 if dt == np.float32 else 1e-14)


@pytest.mark.parametrize("k,s,p,ceil", [(2, 2, 0, False), (3, 2, 1, False), (3, 1, 1, False), (2, 2, 0, True),
                                        (3, 2, 1, True), ((2, 3), (1, 2), (1, 1), False)])
def test_max_pool_kernels_ties_nan_and_windows_past_the_input(backend, rng, k, s, p, ceil):
    """Both kernel backends against the window maxima of naive im2col: ties keep the first
    offset, a NaN wins, -inf inputs; the backward adds dy at the arg-max of each window."""
    from layerwise.functional import max_pool2d_backward, max_pool2d_forward
    from layerwise.functional.im2col import conv_output_size, pair
    x = rng.integers(-2, 3, size=(2, 3, 7, 8)).astype(np.float32)     # many ties
    x[0, 0, 1, 1] = np.nan
    x[1, 2, :3, :3] = -np.inf
    kk, ss, pp = pair(k), pair(s), pair(p)
    out = tuple(conv_output_size(n, kk[a], ss[a], pp[a], 1, ceil) for a, n in enumerate((7, 8)))
    cols = naive_im2col(x.astype(np.float64), kk, ss, pp, (1, 1), out, -np.inf)     # (N, C, kh, kw, Ho, Wo)
    flat = cols.reshape(2, 3, kk[0] * kk[1], *out)
    y, arg = max_pool2d_forward(x, k, s, p, ceil)
    isnan = np.isnan(flat)
    want_arg = np.where(isnan.any(axis=2), (kk[0] * kk[1] - 1) - np.argmax(isnan[:, :, ::-1], axis=2),
                        np.argmax(np.nan_to_num(flat, nan=0.0) == np.nanmax(flat, axis=2, keepdims=True), axis=2))
    np.testing.assert_array_equal(arg, want_arg)
    np.testing.assert_array_equal(y, np.take_along_axis(flat, want_arg[:, :, None], axis=2)[:, :, 0])
    y2, arg2 = max_pool2d_forward(x, k, s, p, ceil, need_arg=False)       # inference: maxima alone
    assert arg2 is None
    np.testing.assert_array_equal(y2, y)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = max_pool2d_backward(dy, arg, x.shape, k, s, p)
    want = np.zeros((2, 3, 7 + 2 * pp[0] + kk[0], 8 + 2 * pp[1] + kk[1]))
    for n, c, h, w in np.ndindex(*y.shape):
        i, j = divmod(int(arg[n, c, h, w]), kk[1])
        want[n, c, h * ss[0] + i, w * ss[1] + j] += dy[n, c, h, w]
    np.testing.assert_allclose(dx, want[:, :, pp[0]:pp[0] + 7, pp[1]:pp[1] + 8], rtol=1e-5, atol=1e-6)   # float32 sums


@pytest.mark.parametrize("k,s,d,p", [((5, 5), (1, 1), (1, 1), (0, 0)), ((3, 3), (1, 1), (1, 1), (1, 1)),
                                     ((3, 2), (2, 3), (2, 1), (2, 1)), ((3, 3), (2, 2), (1, 1), (1, 1))])
def test_cf_block_kernels_match_the_full_kernels_on_the_padded_input(backend, rng, k, s, d, p):
    """im2col/col2im over a block of images of the unpadded input (NumPy reference and Numba)
    against the full-batch kernels on the zero-padded input: the same columns, the same fold
    (cropped), other images untouched; for CNHW and NCHW memory orders."""
    from layerwise.functional import cf_kernels
    C, N, H, W = 2, 5, 9, 8
    Hp, Wp = H + 2 * p[0], W + 2 * p[1]
    Ho, Wo = conv_output_size(H, k[0], s[0], p[0], d[0]), conv_output_size(W, k[1], s[1], p[1], d[1])
    for dt in (np.float64, np.float32):
        X = rng.standard_normal((C, N, H, W)).astype(dt)
        Xp = np.zeros((C, N, Hp, Wp), dt)
        Xp[:, :, p[0]:p[0] + H, p[1]:p[1] + W] = X
        full = cf_kernels.im2col(Xp, np.empty((C, *k, N, Ho, Wo), dt), k, s, d)
        nchw = np.ascontiguousarray(X.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
        for n0, B in ((0, N), (1, 3), (4, 1)):
            for src in (X, nchw):
                cols = cf_kernels.im2col_block(src, np.full((C, *k, B, Ho, Wo), 7, dt), n0, k, s, d, p)
                np.testing.assert_array_equal(cols, full[:, :, :, n0:n0 + B])
            dcols = rng.standard_normal((C, *k, B, Ho, Wo)).astype(dt)
            padded = np.zeros((C, *k, N, Ho, Wo), dt)
            padded[:, :, :, n0:n0 + B] = dcols
            want = cf_kernels.col2im(padded, np.zeros((C, N, Hp, Wp), dt), k, s, d)[:, :, p[0]:p[0] + H,
                                                                                   p[1]:p[1] + W]
            dX = cf_kernels.col2im_block(dcols, np.full((C, N, H, W), 5, dt), n0, k, s, d, p)
            np.testing.assert_allclose(dX[:, n0:n0 + B], want[:, n0:n0 + B], rtol=1e-6 if dt == np.float32 else 1e-14)
            assert (np.delete(dX, range(n0, n0 + B), axis=1) == 5).all()


CFIM2COL_CASES = [  # (x shape, W shape, stride, padding, dilation)
    ((5, 3, 12, 12), (4, 3, 5, 5), (1, 1), (0, 0), (1, 1)),    # LeNet-like: 5x5 on small maps
    ((4, 1, 9, 9), (3, 1, 5, 5), (1, 1), (0, 0), (1, 1)),      # one input channel
    ((3, 3, 8, 7), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1)),      # a stem: 3 channels, padded
    ((3, 4, 9, 8), (5, 4, 3, 3), (2, 2), (1, 1), (1, 1)),      # stride 2, padded
    ((2, 2, 11, 10), (3, 2, 3, 2), (2, 3), (2, 1), (2, 1)),    # uneven stride, dilation, padding
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs,ws,s,p,d", CFIM2COL_CASES)
def test_conv2d_cfim2col_blocks_threads_and_full_route_agree(monkeypatch, dtype, xs, ws, s, p, d, rng):
    """cfim2col by blocks of images (one image a block over one and three threads, and the
    default block size) and the full-columns route (no BLAS, or no Numba) give the direct
    convolution's forward, dx, dW and db, also when only dx or only dW is asked for."""
    from layerwise.functional import blas, cf_kernels, conv
    x, W, b = (rng.standard_normal(sh).astype(dtype) for sh in (xs, ws, ws[:1]))
    y0, c0 = conv2d_forward(x, W, b, s, p, d, impl="direct")
    dy = rng.standard_normal(y0.shape).astype(dtype)
    ref = (y0, *conv2d_backward(dy, c0))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
    blocks = blas.available() and cf_kernels.block_kernels_available(x)
    routes = [(True, 1, 1), (True, 1, 3), (True, conv.COLS_BLOCK_BYTES, 2), (False, 1, 1)]
    for use_blas, block_bytes, threads in routes:
        monkeypatch.setattr(conv, "COLS_BLOCK_BYTES", block_bytes)
        old_en, old_n = blas.set_enabled(use_blas), blas.set_num_threads(threads)
        try:
            for xin in (x, np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)):
                y, ctx = conv2d_forward(xin, W, b, s, p, d, impl="cfim2col")
                assert ("X" in ctx.saved) == (use_blas and blocks)       # blocks keep only the input
                got = (y, *conv2d_backward(dy, ctx))
                for r, a in zip(ref, got):
                    assert a.dtype == dtype
                    np.testing.assert_allclose(a, r, **tol)
            dx, dW, db = conv2d_backward(dy, ctx, need_dW=False)
            assert dW is None and db is None
            np.testing.assert_allclose(dx, ref[1], **tol)
            dx, dW, _ = conv2d_backward(dy, ctx, need_dx=False)
            assert dx is None
            np.testing.assert_allclose(dW, ref[2], **tol)
        finally:
            blas.set_enabled(old_en)
            blas.set_num_threads(old_n)


def test_cfim2col_backward_after_blas_is_switched_off_uses_the_full_route(rng):
    """A forward run by blocks, then a backward with BLAS switched off: the same gradients."""
    from layerwise.functional import blas
    x, W = rng.standard_normal((3, 2, 9, 9)), rng.standard_normal((4, 2, 5, 5))
    y, ctx = conv2d_forward(x, W, None, impl="cfim2col")
    dy = rng.standard_normal(y.shape)
    want = conv2d_backward(dy, conv2d_forward(x, W, None, impl="direct")[1])
    old = blas.set_enabled(False)
    try:
        got = conv2d_backward(dy, ctx)
    finally:
        blas.set_enabled(old)
    for r, a in zip(want[:2], got[:2]):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)


def test_blas_parallel_chunks_runs_every_chunk_once_and_propagates_errors():
    import threading

    from layerwise.functional import blas
    seen, lock = [], threading.Lock()

    def fn(chunk, thread):
        with lock:
            seen.append((chunk, thread))
    old = blas.set_num_threads(3)
    try:
        blas.parallel_chunks(fn, 10)
        assert sorted(c for c, _ in seen) == list(range(10)) and {t for _, t in seen} <= {0, 1, 2}
        seen.clear()
        blas.parallel_chunks(fn, 2)                   # fewer chunks than threads: two threads
        assert sorted(seen)[0][0] == 0 and {t for _, t in seen} <= {0, 1}

        def boom(chunk, thread):
            if chunk == 4:
                raise RuntimeError("chunk 4 failed")
        with pytest.raises(RuntimeError, match="chunk 4"):
            blas.parallel_chunks(boom, 8)
    finally:
        blas.set_num_threads(old)


@pytest.mark.parametrize("W", [8, 16, 24, 6])
def test_max_pool_2x2_kernels_match_the_reference_for_every_row_length(backend, rng, W):
    """2x2 / stride 2 pooling runs one of two kernels by Wo % 8 (which one LLVM vectorises):
    both against the NumPy reference, with ties, NaNs (last NaN of a window wins) and -inf."""
    from layerwise.functional import cf_kernels
    for dt in (np.float32, np.float64):
        x = rng.integers(-2, 3, size=(6, 6, W)).astype(dt)
        x[0, 0, 0] = np.nan
        x[1, :2, :2] = [[np.nan, 1], [np.nan, 0]]
        x[2, 2:4, 2:4] = -np.inf
        x[3, 0, 1] = np.nan
        y, arg = np.empty((6, 3, W // 2), dt), np.empty((6, 3, W // 2), np.int8)
        cf_kernels.maxpool_forward(x, y, arg, (2, 2), (2, 2), (0, 0))
        y_ref, arg_ref = np.empty_like(y), np.empty((6, 3, W // 2), np.int32)
        cf_kernels._np_maxpool_forward(x, y_ref, arg_ref, (2, 2), (2, 2), (0, 0))
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(arg, arg_ref)
        assert arg[1, 0, 0] == 2 and arg[0, 0, 0] == 0 and arg[3, 0, 0] == 1
        y2 = np.empty_like(y)
        cf_kernels.maxpool_forward(x, y2, None, (2, 2), (2, 2), (0, 0))     # inference: maxima alone
        np.testing.assert_array_equal(y2, y_ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_matmul_reads_transposed_operands_in_place_and_accumulates(monkeypatch, dtype, rng):
    """blas.matmul: row- and column-major operands, chunks by rows (tall out) or by columns
    (wide out) over three threads, one GEMM below the cut-off, numpy.matmul for small products,
    accumulate, and the NumPy fallback for operands CBLAS cannot read (a strided view); shapes
    that do not chain raise."""
    from layerwise.functional import blas
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-4)
    old = blas.set_num_threads(3)
    try:
        for serial, small in ((0, 0), (1 << 40, 0), (0, 1 << 40)):     # chunks, one GEMM, numpy.matmul
            monkeypatch.setattr(blas, "MATMUL_SERIAL_FLOPS", serial)
            monkeypatch.setattr(blas, "SMALL_MNK", small)
            for m, k, n in ((70, 9, 20), (6, 11, 90), (1, 5, 1)):
                A, B = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
                for a in (A, np.asfortranarray(A), np.repeat(A, 2, axis=1)[:, ::2]):
                    for b in (B, np.ascontiguousarray(B.T).T):
                        np.testing.assert_allclose(blas.matmul(a, b), A @ B, **tol)
                        acc = np.ones((m, n), dtype)
                        assert blas.matmul(a, b, acc, accumulate=True) is acc
                        np.testing.assert_allclose(acc, A @ B + 1, **tol)
    finally:
        blas.set_num_threads(old)
    with pytest.raises(ValueError, match="do not chain"):
        blas.matmul(np.ones((2, 3), dtype), np.ones((4, 2), dtype))
    with pytest.raises(ValueError, match="accumulate=True needs out"):
        blas.matmul(np.ones((2, 3), dtype), np.ones((3, 2), dtype), accumulate=True)
