"""Bad data sets: each source checks at load (not empty, finite, labels in range, shapes consistent)
and names the file; the CLI turns it into one line. Malicious pickles: refused in linear time."""
from __future__ import annotations

import gzip
import pickle
import time

import numpy as np
import pytest

from layerwise.data import DataError, load_dataset, load_plain_pickle
from layerwise.data.dataset import ArrayDataset

from ..data.helpers import cifar_batch, idx_bytes, py2_pickle, write_mnist
from .conftest import expect_error, tiny_arrays, train_args

X, Y = tiny_arrays()


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


NPZ_CASES = [
    ("empty", dict(x=np.zeros((0, 1, 4, 4), np.float32), y=np.zeros(0, np.int64)), ["empty"]),
    ("nan in train", dict(x=np.where(np.arange(90)[:, None, None, None] == 7, np.nan, X), y=Y), ["NaN", "sample"]),
    ("inf", dict(x=np.where(np.arange(90)[:, None, None, None] == 3, np.inf, X), y=Y), ["NaN or Inf"]),
    ("too big for float32", dict(x=X.astype(np.float64) * 1e300, y=Y), ["Inf"]),
    ("negative label", dict(x=X, y=np.where(np.arange(90) == 5, -1, Y)), ["labels must be >= 0"]),
    ("labels past the class names", dict(x=X, y=Y + 1, classes=np.array(["a", "b", "c"])), ["class names"]),
    ("length mismatch", dict(x=X, y=Y[:50]), ["x has 90 rows but y has 50"]),
    ("fractional labels", dict(x=X, y=Y + 0.5), ["integer class labels"]),
    ("nan labels", dict(x=X, y=np.where(np.arange(90) == 2, np.nan, Y.astype(float))), ["integer class labels"]),
    ("string x", dict(x=np.array([["a"] * 16] * 90), y=Y), ["numeric"]),
    ("no y", dict(x=X), ["must hold arrays 'x' and 'y'"]),
    ("zero-sized samples", dict(x=np.zeros((90, 0), np.float32), y=Y), ["zero-sized"]),
    ("1-D x", dict(x=np.zeros(90, np.float32), y=Y), ["shape"]),
]


@pytest.mark.parametrize("name,arrays,fragments", NPZ_CASES, ids=[c[0] for c in NPZ_CASES])
def test_bad_npz_data_set(tmp_path, capsys, name, arrays, fragments):
    f = _npz(tmp_path / "bad.npz", **arrays)
    out = tmp_path / "run"
    expect_error(capsys, train_args(f, out), "bad.npz", *fragments)
    assert not out.exists()


def test_nan_only_in_the_validation_split(tmp_path, capsys):
    """Fails before the fix with a traceback from evaluation."""
    x_test = X[:30].copy()
    x_test[4, 0, 1, 1] = np.nan
    d = tmp_path / "split"
    d.mkdir()
    _npz(d / "train.npz", x=X, y=Y)
    _npz(d / "test.npz", x=x_test, y=Y[:30])
    expect_error(capsys, train_args(d, tmp_path / "run"), "test", "NaN", "sample 4")


def test_object_array_npz(tmp_path, capsys):
    f = tmp_path / "obj.npz"
    np.savez(f, x=np.array([object()] * 90, dtype=object), y=Y)
    expect_error(capsys, train_args(f, tmp_path / "run"), "obj.npz", "object arrays are refused")


def test_truncated_npz(tmp_path, capsys):
    f = _npz(tmp_path / "cut.npz", x=X, y=Y)
    f.write_bytes(f.read_bytes()[:200])
    expect_error(capsys, train_args(f, tmp_path / "run"), "cut.npz", "not a readable .npz")


# ---------------------------------------------------------------------------------------- MNIST (IDX)
def _mnist_args(root, out):
    return ["train", "--set", "data.name=mnist", "--set", f"data.root={root}", "--set", "model.name=mlp",
            "--set", "model.kwargs={hidden: [8]}", "--set", "augment.crop_padding=0", "--set", "epochs=1",
            "--no-progress", "--out", str(out)]


def test_empty_mnist(tmp_path, capsys):
    write_mnist(tmp_path / "mnist", n_train=0, n_test=0)
    expect_error(capsys, _mnist_args(tmp_path, tmp_path / "run"), "mnist", "empty")


def test_mnist_labels_out_of_range(tmp_path, capsys):
    write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(12, 10, np.uint8))))
    expect_error(capsys, _mnist_args(tmp_path, tmp_path / "run"), "train-labels", "label 10")


def test_mnist_truncated_images(tmp_path, capsys):
    write_mnist(tmp_path / "mnist", gz=False)
    f = tmp_path / "mnist" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    expect_error(capsys, _mnist_args(tmp_path, tmp_path / "run"), "train-images", "truncated")


def test_mnist_header_whose_sizes_overflow_int64(tmp_path, capsys):
    write_mnist(tmp_path / "mnist", gz=False)
    f = tmp_path / "mnist" / "train-images-idx3-ubyte"
    raw = bytes([0, 0, 8, 3]) + (np.array([2**32 - 1] * 3, ">u4")).tobytes() + b"\0" * 16
    f.write_bytes(raw)
    expect_error(capsys, _mnist_args(tmp_path, tmp_path / "run"), "train-images", "truncated")


def test_mnist_gzip_bomb_is_capped(tmp_path, monkeypatch):
    from layerwise.data import idx

    monkeypatch.setattr(idx, "MAX_DECOMPRESSED", 1000)
    f = tmp_path / "bomb-idx1-ubyte.gz"
    f.write_bytes(gzip.compress(b"\0" * 100_000))
    with pytest.raises(DataError, match="decompresses to more than"):
        idx.read_idx(f)


# ------------------------------------------------------------------------------- folder of images
def test_folder_with_a_corrupt_image(tmp_path, capsys):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "img" / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((4, 4), 40 * i, np.uint8)).save(tmp_path / "img" / c / f"{i}.png")
    (tmp_path / "img" / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    args = ["train", "--set", "data.name=folder", "--set", f"data.root={tmp_path / 'img'}", "--set",
            "model.name=mlp", "--set", "augment.crop_padding=0", "--out", str(tmp_path / "run")]
    expect_error(capsys, args, "bad.png", "cannot read image")


def test_folder_without_images(tmp_path, capsys):
    (tmp_path / "img" / "a").mkdir(parents=True)
    args = ["train", "--set", "data.name=folder", "--set", f"data.root={tmp_path / 'img'}", "--set",
            "model.name=mlp", "--out", str(tmp_path / "run")]
    expect_error(capsys, args, "no images")


# ------------------------------------------------------------------------- CIFAR and the safe pickle
def _cifar_dir(tmp_path, raw_train3: bytes):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (d / f).write_bytes(py2_pickle(cifar_batch(3, seed=len(f))[0]))
    (d / "data_batch_3").write_bytes(raw_train3)
    return tmp_path


def _bomb(levels: int) -> bytes:
    """[x, x] nested ``levels`` times: pickle writes each x once and then a memo reference, so a few
    bytes per level describe 2**levels values."""
    x: list = []
    for _ in range(levels):
        x = [x, x]
    return pickle.dumps(x, protocol=2)


def test_pickle_bomb_is_refused_in_linear_time():
    """Fails before the fix: expanding shared references took time and memory 2**levels."""
    data = _bomb(22)
    assert len(data) < 300
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="pickle bomb"):
        load_plain_pickle(data, "bomb")
    assert time.perf_counter() - t0 < 0.5


def test_self_referencing_list_is_refused():
    """Fails before the fix with a RecursionError."""
    with pytest.raises(DataError, match="contains itself"):
        load_plain_pickle(b"\x80\x02]q\x00h\x00a.", "selfref")


def test_deep_nesting_is_refused_without_recursion_error():
    with pytest.raises(DataError, match="nested more than"):
        load_plain_pickle(b"\x80\x02" + b"(" * 5000 + b"l" * 5000 + b".", "deep")


def test_shared_objects_stay_shared():
    inner = [1, 2, 3]
    out = load_plain_pickle(pickle.dumps({"a": inner, "b": inner}, protocol=2), "shared")
    assert out == {"a": [1, 2, 3], "b": [1, 2, 3]} and out["a"] is out["b"]


def test_cifar_batch_holding_a_bomb_is_one_line(tmp_path, capsys):
    root = _cifar_dir(tmp_path, _bomb(30))
    args = ["train", "--set", "data.name=cifar10", "--set", f"data.root={root}", "--set", "model.name=mlp",
            "--out", str(tmp_path / "run")]
    expect_error(capsys, args, "data_batch_3", "pickle bomb")


def test_cifar_batch_labels_out_of_range(tmp_path, capsys):
    batch = cifar_batch(3)[0]
    batch[b"labels"] = [0, 11, 2]
    root = _cifar_dir(tmp_path, py2_pickle(batch))
    args = ["train", "--set", "data.name=cifar10", "--set", f"data.root={root}", "--set", "model.name=mlp",
            "--out", str(tmp_path / "run")]
    expect_error(capsys, args, "data_batch_3", "labels must be in 0..9")


def test_array_dataset_refuses_non_numeric_and_bad_labels():
    with pytest.raises(DataError, match="numeric"):
        ArrayDataset(np.array([["a", "b"]]), [0])
    with pytest.raises(DataError, match="integer class labels"):
        ArrayDataset(np.zeros((2, 2)), [0.0, np.inf])


def test_load_dataset_names_the_file_for_an_empty_set(tmp_path):
    _npz(tmp_path / "e.npz", x=np.zeros((0, 3), np.float32), y=np.zeros(0, np.int64))
    with pytest.raises(DataError, match=r"e\.npz.*empty"):
        load_dataset("npz", root=tmp_path / "e.npz")
