"""layerwise.data.images: the one image decoder (folder data set and `layerwise predict`), and sample files."""
from __future__ import annotations

import numpy as np
import pytest

from layerwise.data import DataError, load_dataset, read_image, read_samples

Image = pytest.importorskip("PIL.Image", reason="image files need Pillow (a dependency of matplotlib)")


def _png(path, a, mode=None):
    Image.fromarray(a, mode).save(path)
    return path


def test_read_image_rgb_and_gray_exact(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = read_image(_png(tmp_path / "c.png", rgb))
    assert x.shape == (3, 5, 7) and x.dtype == np.float32
    np.testing.assert_array_equal(x, rgb.transpose(2, 0, 1) / np.float32(255))
    gray = rgb[..., 0]
    g = read_image(_png(tmp_path / "g.png", gray))                 # a grayscale file stays one channel
    np.testing.assert_array_equal(g, gray[None] / np.float32(255))
    np.testing.assert_array_equal(read_image(tmp_path / "g.png", mode="RGB"), np.repeat(g, 3, axis=0))
    luma = read_image(tmp_path / "c.png", mode="L")[0] * 255      # Pillow's ITU-R 601-2 luma, rounded
    want = rgb @ np.array([0.299, 0.587, 0.114])
    assert np.abs(luma - want).max() <= 0.51


def test_read_image_alpha_palette_and_16_bit(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10                            # alpha is dropped, not blended
    np.testing.assert_allclose(read_image(_png(tmp_path / "a.png", rgba, "RGBA"))[0], 200 / 255)
    deep = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000)
    x = read_image(_png(tmp_path / "d.png", deep))
    np.testing.assert_allclose(x[0], deep / 65535, rtol=1e-6)       # not clipped at 255 as convert("L") does
    assert x.max() > 0.9


def test_read_image_resizes_with_averaging(tmp_path):
    const = np.full((8, 6, 3), 51, np.uint8)
    x = read_image(_png(tmp_path / "k.png", const), size=(3, 4))
    assert x.shape == (3, 3, 4)
    np.testing.assert_allclose(x, 0.2, atol=1e-6)                   # a constant image stays constant
    stripes = np.zeros((16, 16), np.uint8)
    stripes[:, ::2] = 255                                           # 1-pixel stripes: averaged when shrinking
    s = read_image(_png(tmp_path / "s.png", stripes), size=(4, 4))
    assert 0.3 < s.min() and s.max() < 0.7
    big = read_image(tmp_path / "s.png", size=(32, 32))
    assert big.shape == (1, 32, 32)


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no such image file .*nope.png"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="cannot read image .*bad.png"):
        read_image(tmp_path / "bad.png")
    _png(tmp_path / "ok.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="mode must be"):
        read_image(tmp_path / "ok.png", mode="CMYK")
    with pytest.raises(ValueError, match="size must be"):
        read_image(tmp_path / "ok.png", size=(0, 3))


def test_read_samples_arrays(tmp_path):
    x = np.random.default_rng(1).standard_normal((3, 1, 4, 4)).astype(np.float32)
    np.save(tmp_path / "batch.npy", x)
    np.save(tmp_path / "one.npy", x[0].astype(np.float64))
    np.savez(tmp_path / "named.npz", y=np.zeros(3), x=x)
    np.savez(tmp_path / "first.npz", x[:2])
    np.testing.assert_array_equal(read_samples(tmp_path / "batch.npy", (1, 4, 4)), x)
    one = read_samples(tmp_path / "one.npy", (1, 4, 4))
    assert one.shape == (1, 1, 4, 4) and one.dtype == np.float32
    np.testing.assert_array_equal(read_samples(tmp_path / "named.npz", (1, 4, 4)), x)
    assert read_samples(tmp_path / "first.npz", (1, 4, 4)).shape == (2, 1, 4, 4)
    np.save(tmp_path / "hw.npy", x[0, 0])                            # (H, W) for a one-channel model
    assert read_samples(tmp_path / "hw.npy", (1, 4, 4)).shape == (1, 1, 4, 4)


def test_read_samples_errors(tmp_path):
    with pytest.raises(DataError, match="no such file .*none.npy"):
        read_samples(tmp_path / "none.npy", (1, 4, 4))
    np.save(tmp_path / "x.npy", np.zeros((3, 5, 5)))
    with pytest.raises(DataError, match=r"x.npy: expected samples of shape \(1, 4, 4\)"):
        read_samples(tmp_path / "x.npy", (1, 4, 4))
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="o.npy: .*pickle"):
        read_samples(tmp_path / "o.npy", (1, 4, 4))
    (tmp_path / "z.npz").write_bytes(b"PK not a zip")
    with pytest.raises(DataError, match="z.npz: cannot read the samples"):
        read_samples(tmp_path / "z.npz", (1, 4, 4))
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(DataError, match="holds no arrays"):
        read_samples(tmp_path / "empty.npz", (1, 4, 4))
    _png(tmp_path / "i.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="not images"):
        read_samples(tmp_path / "i.png", (16,))                     # an MLP on flat features


def test_read_samples_image_converts_channels_resizes_and_inverts(tmp_path):
    a = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    path = _png(tmp_path / "p.png", a)
    x = read_samples(path, (1, 8, 8))
    assert x.shape == (1, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(x[0], read_image(path, mode="L", size=(8, 8)))
    np.testing.assert_allclose(read_samples(path, (1, 8, 8), invert=True), 1 - x, atol=1e-7)
    assert read_samples(path, (3, 4, 4)).shape == (1, 3, 4, 4)


def test_predict_sees_an_image_as_the_folder_data_set_does(tmp_path):
    rng = np.random.default_rng(3)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            _png(tmp_path / c / f"{i}.png", rng.integers(0, 256, (9, 7, 3), dtype=np.uint8))
    ds = load_dataset("folder", root=tmp_path, split="train", test_fraction=0.34, size=(5, 4), mode="L")
    files = sorted(tmp_path.glob("*/*.png"))
    batch = np.concatenate([read_samples(f, (1, 5, 4)) for f in files])
    # every training image is, exactly, one of the images predict reads from the same files
    for x in ds.x:
        assert any(np.array_equal(x, b) for b in batch)
