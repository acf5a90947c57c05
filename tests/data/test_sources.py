"""digits (embedded), npz and folder-of-images sources; the deterministic stratified split."""
import numpy as np
import pytest

from layerwise.data import ArrayDataset, DataError, available_datasets, load_dataset, stratified_split


def test_available_names():
    assert {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "npz", "folder"} <= set(available_datasets())


def test_digits_split_is_stratified_disjoint_and_fixed():
    from sklearn.datasets import load_digits

    train, test = load_dataset("digits"), load_dataset("digits", split="test")
    assert train.x.shape[1:] == (1, 8, 8) and train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert len(train) + len(test) == 1797
    counts = np.bincount(load_digits().target)
    np.testing.assert_array_equal(np.bincount(test.y), np.round(0.2 * counts).astype(int))
    assert 0.0 == train.x.min() and train.x.max() == 1.0
    # disjoint and complete: every original image appears exactly once across the two splits
    flat = lambda d: {r.tobytes() + bytes([k]) for r, k in zip(d.x.reshape(len(d), -1), d.y)}  # noqa: E731
    orig = load_digits()
    all_rows = {(r / 16).astype(np.float32).tobytes() + bytes([k]) for r, k in zip(orig.data, orig.target)}
    assert flat(train) | flat(test) == all_rows and not flat(train) & flat(test)
    again = load_dataset("digits", split="test")
    np.testing.assert_array_equal(again.x, test.x)


def test_digits_fast_path_equals_load_digits(monkeypatch):
    from sklearn.datasets import load_digits

    from layerwise.data import datasets

    images, target = datasets._digits_arrays()
    ref = load_digits()
    np.testing.assert_array_equal(images, ref.images)
    np.testing.assert_array_equal(target, ref.target)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)     # fallback path
    images2, target2 = datasets._digits_arrays()
    np.testing.assert_array_equal(images2, ref.images)


def test_stratified_split_table():
    y = np.array([0] * 10 + [1] * 5 + [2] * 3)
    tr, te = stratified_split(y, 0.2, seed=0)
    assert np.bincount(y[te]).tolist() == [2, 1, 1] and len(tr) + len(te) == len(y)
    assert not set(tr) & set(te)
    np.testing.assert_array_equal(stratified_split(y, 0.2, seed=0)[1], te)          # deterministic
    big = np.repeat(np.arange(3), 50)
    assert not np.array_equal(stratified_split(big, 0.2, 0)[1], stratified_split(big, 0.2, 1)[1])
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(y, 1.0)


def test_array_dataset_validation():
    with pytest.raises(DataError, match="one per row"):
        ArrayDataset(np.zeros((3, 2)), [0, 1])
    with pytest.raises(DataError, match="integer class labels"):
        ArrayDataset(np.zeros((2, 2)), [0.5, 1])
    with pytest.raises(DataError, match=">= 0"):
        ArrayDataset(np.zeros((2, 2)), [0, -1])
    ds = ArrayDataset(np.zeros((4, 1, 2, 2), np.float64), np.array([0, 1, 2, 1]), name="t")
    xb, yb = ds[np.array([3, 0])]
    assert xb.dtype == np.float32 and yb.tolist() == [1, 0] and ds.classes == ["0", "1", "2"]


def test_npz_with_x_y_is_split_and_uint8_scaled(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (20, 5, 5), dtype=np.uint8)
    y = np.arange(20) % 2
    np.savez(tmp_path / "d.npz", x=x, y=y, classes=np.array(["cat", "dog"]))
    train = load_dataset("npz", root=tmp_path / "d.npz")
    test = load_dataset("npz", root=tmp_path / "d.npz", split="test")
    assert train.x.shape == (16, 1, 5, 5) and len(test) == 4 and train.classes == ["cat", "dog"]
    tr_idx, te_idx = stratified_split(y)
    np.testing.assert_allclose(test.x[:, 0] * 255, x[te_idx], atol=1e-4)


def test_npz_explicit_splits_and_directory(tmp_path):
    x = np.ones((3, 2, 4, 4), np.float32)
    np.savez(tmp_path / "s.npz", x_train=x, y_train=[0, 1, 0], x_test=x[:1] * 2, y_test=[1])
    test = load_dataset("npz", root=tmp_path / "s.npz", split="test")
    assert test.x.shape == (1, 2, 4, 4) and test.x[0, 0, 0, 0] == 2 and test.y.tolist() == [1]
    d = tmp_path / "dir"
    d.mkdir()
    np.savez(d / "train.npz", x=x, y=[0, 1, 1])
    assert load_dataset("npz", root=d).y.tolist() == [0, 1, 1]


def test_npz_refuses_object_arrays_and_reports_corruption(tmp_path):
    np.savez(tmp_path / "o.npz", x=np.array([np.zeros(2), np.zeros(3)], dtype=object), y=np.arange(2))
    with pytest.raises(DataError, match=r"o.npz.*object arrays are refused"):
        load_dataset("npz", root=tmp_path / "o.npz")
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"c.npz is not a readable .npz"):
        load_dataset("npz", root=tmp_path / "c.npz")
    np.savez(tmp_path / "k.npz", a=np.zeros(2))
    with pytest.raises(DataError, match=r"must hold arrays 'x' and 'y'"):
        load_dataset("npz", root=tmp_path / "k.npz")


def _write_pngs(root, classes, n, size=(6, 5), mode="RGB", seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = {}
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            shape = (size[0], size[1], 3) if mode == "RGB" else size
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(a, mode).save(root / c / f"{i:02d}.png")
            pixels[(c, i)] = a
    return pixels


def test_folder_of_images_with_train_test(tmp_path):
    pix = _write_pngs(tmp_path / "train", ["cat", "dog"], 3)
    _write_pngs(tmp_path / "test", ["cat", "dog"], 1, seed=1)
    train = load_dataset("folder", root=tmp_path)
    assert train.x.shape == (6, 3, 6, 5) and train.classes == ["cat", "dog"] and train.y.tolist() == [0] * 3 + [1] * 3
    np.testing.assert_allclose(train.x[4].transpose(1, 2, 0) * 255, pix[("dog", 1)], atol=1e-4)
    assert len(load_dataset("folder", root=tmp_path, split="test")) == 2


def test_folder_without_splits_grayscale_and_resize(tmp_path):
    _write_pngs(tmp_path, ["a", "b"], 5, mode="L")
    train = load_dataset("folder", root=tmp_path)
    test = load_dataset("folder", root=tmp_path, split="test")
    assert train.x.shape == (8, 1, 6, 5) and len(test) == 2 and sorted(test.y.tolist()) == [0, 1]
    assert load_dataset("folder", root=tmp_path, size=(3, 4)).x.shape == (8, 1, 3, 4)


def test_folder_errors(tmp_path):
    _write_pngs(tmp_path, ["a"], 2)
    from PIL import Image

    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / "a" / "big.png")
    with pytest.raises(DataError, match=r"big.png is 9x9 .* pass size=\(H, W\)"):
        load_dataset("folder", root=tmp_path, split="train", test_fraction=0.01)
    (tmp_path / "a" / "big.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image .*big.png"):
        load_dataset("folder", root=tmp_path, split="train", test_fraction=0.01)
    with pytest.raises(DataError, match="not a directory"):
        load_dataset("folder", root=tmp_path / "nope")


def test_unknown_name_and_split():
    with pytest.raises(KeyError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="split must be"):
        load_dataset("digits", split="val")
