"""Batch transforms against naive per-sample references."""
import numpy as np
import pytest

from layerwise.data import Compose, Normalize, RandomCrop, RandomHorizontalFlip


def test_normalize_per_channel(rng):
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    mean, std = [0.1, -0.2, 0.3], [0.5, 2.0, 1.5]
    y = Normalize(mean, std)(x, None)
    assert y.dtype == np.float32 and y.shape == x.shape
    for c in range(3):
        np.testing.assert_allclose(y[:, c], (x[:, c] - mean[c]) / std[c], rtol=1e-6)
    assert not np.shares_memory(x, y)


def test_normalize_fit_gives_zero_mean_unit_std(rng):
    x = (rng.standard_normal((50, 2, 3, 3)) * [[[[2.0]], [[0.5]]]] + 3).astype(np.float32)
    y = Normalize.fit(x)(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-5)


def test_normalize_errors():
    with pytest.raises(ValueError, match="std must be > 0"):
        Normalize([0.0], [0.0])
    with pytest.raises(ValueError, match="2 channel statistics for a batch of shape"):
        Normalize([0, 0], [1, 1])(np.zeros((1, 3, 2, 2), np.float32))


def _crop_reference(x, size, pad, oy, ox):
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    return np.stack([xp[i, :, oy[i]:oy[i] + size[0], ox[i]:ox[i] + size[1]] for i in range(len(x))])


@pytest.mark.parametrize("size,pad", [(4, 1), ((3, 5), 2), (6, 0)])
def test_random_crop_matches_per_sample_loop(rng, size, pad):
    x = rng.standard_normal((5, 2, 6, 6)).astype(np.float32)
    t = RandomCrop(size, padding=pad)
    y = t(x, np.random.default_rng(7))
    h, w = t.size
    g = np.random.default_rng(7)                           # the same draws, in the documented order
    oy = g.integers(0, 6 + 2 * pad - h + 1, size=5)
    ox = g.integers(0, 6 + 2 * pad - w + 1, size=5)
    np.testing.assert_array_equal(y, _crop_reference(x, (h, w), pad, oy, ox))
    assert y.shape == (5, 2, h, w)


def test_random_crop_covers_all_offsets_and_errors():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4).repeat(400, 0)
    y = RandomCrop(4, padding=1)(x, np.random.default_rng(0))
    # each of the 3x3 offsets gives a different crop of this image, and all of them appear
    assert len({r.tobytes() for r in y}) == 9
    with pytest.raises(ValueError, match="larger than the padded image"):
        RandomCrop(7, padding=1)(np.zeros((1, 1, 4, 4), np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        RandomCrop(2)(np.zeros((2, 4), np.float32), np.random.default_rng(0))


def test_flip_probability_and_reference(rng):
    x = rng.standard_normal((200, 2, 3, 4)).astype(np.float32)
    assert np.array_equal(RandomHorizontalFlip(0.0)(x, rng), x)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x, rng), x[..., ::-1])
    y = RandomHorizontalFlip(0.5)(x, np.random.default_rng(3))
    flip = np.random.default_rng(3).random(200) < 0.5
    np.testing.assert_array_equal(y[flip], x[flip][..., ::-1])
    np.testing.assert_array_equal(y[~flip], x[~flip])
    assert 60 < flip.sum() < 140
    with pytest.raises(ValueError, match="p must be in"):
        RandomHorizontalFlip(1.5)


def test_compose_is_reproducible_and_does_not_modify_input(rng):
    x = rng.standard_normal((8, 3, 8, 8)).astype(np.float32)
    x0 = x.copy()
    t = Compose([RandomCrop(8, padding=2), RandomHorizontalFlip(), Normalize([0, 0, 0], [2, 2, 2])])
    a, b = t(x, np.random.default_rng(1)), t(x, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and not np.array_equal(a, t(x, np.random.default_rng(2)))
    np.testing.assert_array_equal(x, x0)
    assert "RandomCrop" in repr(t)
