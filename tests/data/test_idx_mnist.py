"""IDX reading and the MNIST / Fashion-MNIST sources, on small files written in the real format."""
import gzip

import numpy as np
import pytest

from layerwise.data import DataError, load_dataset, read_idx, write_idx

from .helpers import idx_bytes, write_mnist


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_matches_written_arrays(tmp_path, gz):
    arr = np.random.default_rng(0).integers(0, 256, (3, 4, 5), dtype=np.uint8)
    raw = idx_bytes(arr)
    p = tmp_path / ("a.gz" if gz else "a")
    p.write_bytes(gzip.compress(raw) if gz else raw)
    out = read_idx(p, ndim=3)
    assert out.dtype == np.uint8 and out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("dtype", ["i1", "i4", "f4"])
def test_read_idx_big_endian_types_roundtrip_write_idx(tmp_path, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    p = tmp_path / "b.idx"
    p.write_bytes(idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(p), arr)
    write_idx(tmp_path / "c.gz", arr)                       # our writer agrees with the spec writer
    assert gzip.decompress((tmp_path / "c.gz").read_bytes()) == idx_bytes(arr)


def test_truncated_idx_names_file_and_sizes(tmp_path):
    raw = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(raw[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*truncated.*4x28x28 uint8 = 3136 bytes.*found 3036"):
        read_idx(p, ndim=3)


def test_truncated_header_and_tiny_file(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(p)
    p.write_bytes(b"\x00")
    with pytest.raises(DataError, match="shorter than the 4-byte magic"):
        read_idx(p)


def test_bad_magic_and_wrong_ndim(tmp_path):
    p = tmp_path / "page.gz"
    p.write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match=r"page.gz: not an IDX file: magic number 3c68746d"):
        read_idx(p)
    p.write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(DataError, match="expected an IDX file with 3 dimension.*header says 1"):
        read_idx(p, ndim=3)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    p = tmp_path / "t.gz"
    good = gzip.compress(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    p.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"t.gz: corrupt or truncated gzip"):
        read_idx(p)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_source_loads_both_splits(tmp_path, name, gz):
    data = write_mnist(tmp_path / name, gz=gz)
    for split in ("train", "test"):
        ds = load_dataset(name.replace("_", "-"), root=tmp_path, split=split)
        images, labels = data[split]
        assert ds.x.dtype == np.float32 and ds.x.shape == (len(labels), 1, 28, 28)
        np.testing.assert_allclose(ds.x[:, 0] * 255, images, atol=1e-4)
        np.testing.assert_array_equal(ds.y, labels)
        assert ds.num_classes == 10
    if name == "fashion_mnist":
        assert ds.classes[9] == "Ankle boot"


def test_mnist_torchvision_layout(tmp_path):
    data = write_mnist(tmp_path / "MNIST" / "raw")
    ds = load_dataset("mnist", root=tmp_path, split="test")
    np.testing.assert_array_equal(ds.y, data["test"][1])


def test_mnist_missing_files_says_how_to_get_them(tmp_path):
    with pytest.raises(DataError, match=r"no train-images-idx3-ubyte.*layerwise download mnist --root"):
        load_dataset("mnist", root=tmp_path)


def test_mnist_mismatched_counts_and_bad_labels(tmp_path):
    d = tmp_path / "mnist"
    write_mnist(d, gz=False)
    (d / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DataError, match="12 images but .* 3 labels"):
        load_dataset("mnist", root=tmp_path)
    (d / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(12, 10, np.uint8)))
    with pytest.raises(DataError, match="label 10; expected 0..9"):
        load_dataset("mnist", root=tmp_path)


def test_mnist_truncated_file_in_loader(tmp_path):
    d = tmp_path / "mnist"
    write_mnist(d, gz=True)
    p = d / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(raw[:-1]))               # valid gzip, truncated IDX inside
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: IDX file truncated"):
        load_dataset("mnist", root=tmp_path, split="test")
