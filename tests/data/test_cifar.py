"""CIFAR python batches: read without executing code; malicious and corrupt pickles refused."""
import os
import pickle
import tarfile

import numpy as np
import pytest

from layerwise.data import DataError, UnsafePickleError, load_dataset, load_plain_pickle

from .helpers import cifar_batch, py2_pickle, py3_pickle


def _write_cifar10(d, writer, n=4):
    d.mkdir(parents=True)
    expected = {}
    for i, f in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batch, data, labels = cifar_batch(n, seed=i)
        (d / f).write_bytes(writer(batch))
        expected[f] = (data, labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (d / "batches.meta").write_bytes(writer({b"label_names": names, b"num_cases_per_batch": 10000}))
    return expected


@pytest.mark.parametrize("writer", [py2_pickle, py3_pickle], ids=["python2-cPickle", "python3-protocol2"])
def test_cifar10_from_extracted_folder(tmp_path, writer):
    expected = _write_cifar10(tmp_path / "cifar-10-batches-py", writer)
    train = load_dataset("cifar10", root=tmp_path, split="train")
    test = load_dataset("CIFAR-10", root=tmp_path, split="test")
    assert train.x.shape == (20, 3, 32, 32) and train.x.dtype == np.float32 and test.x.shape == (4, 3, 32, 32)
    data, labels = expected["data_batch_2"]
    np.testing.assert_allclose(train.x[4:8].reshape(4, -1) * 255, data, atol=1e-3)   # row = R plane, G, B
    np.testing.assert_array_equal(train.y[4:8], labels)
    np.testing.assert_array_equal(test.y, expected["test_batch"][1])
    assert train.classes[0] == "airplane" and train.classes[9] == "truck"


def test_cifar10_reads_the_tarball_directly(tmp_path):
    src = tmp_path / "src"
    expected = _write_cifar10(src / "cifar-10-batches-py", py3_pickle)
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    test = load_dataset("cifar10", root=root, split="test")
    np.testing.assert_array_equal(test.y, expected["test_batch"][1])


@pytest.mark.parametrize("mode,key,k", [("fine", b"fine_labels", 100), ("coarse", b"coarse_labels", 20)])
def test_cifar100_fine_and_coarse(tmp_path, mode, key, k):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(1)
    for f in ("train", "test"):
        batch, data, _ = cifar_batch(5, 100, seed=3)
        batch[b"fine_labels"] = rng.integers(0, 100, 5).tolist()
        batch[b"coarse_labels"] = rng.integers(0, 20, 5).tolist()
        (d / f).write_bytes(py2_pickle(batch))
        if f == "test":
            want = batch[key]
    ds = load_dataset("cifar100", root=tmp_path, split="test", label_mode=mode)
    np.testing.assert_array_equal(ds.y, want)
    assert ds.num_classes == k                              # no meta file: numbered class names


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_malicious_batch_is_refused_and_nothing_runs(tmp_path, protocol):
    marker = str(tmp_path / "pwned")
    batch, _, _ = cifar_batch(2)
    batch[b"data"] = _Evil(marker)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for f in [f"data_batch_{k}" for k in range(1, 6)]:
        (d / f).write_bytes(pickle.dumps(batch, protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"data_batch_1: refusing to load: .*global '(posix|os|nt)\.mkdir'"):
        load_dataset("cifar10", root=tmp_path)
    assert not os.path.exists(marker)
    pickle.loads(pickle.dumps(batch, protocol=protocol))    # the same bytes through pickle DO run code
    assert os.path.exists(marker)


class Plain:
    pass


def test_object_building_opcodes_and_object_arrays_refused():
    with pytest.raises(UnsafePickleError):
        load_plain_pickle(pickle.dumps(Plain(), protocol=2), "obj")          # NEWOBJ / GLOBAL of a class
    with pytest.raises(UnsafePickleError, match="dtype"):
        load_plain_pickle(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2), "objarr")
    with pytest.raises(UnsafePickleError, match="opcode INST"):
        load_plain_pickle(b"(i__main__\nX\n.", "inst")


def test_protocol5_numpy_array_and_plain_types():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::2]     # non-contiguous source
    value = {"a": a, "t": (1, 2.5, None, True), "s": {"x": [b"y", "z"]}, "big": 2**100}
    for proto in range(6):
        out = load_plain_pickle(pickle.dumps(value, protocol=proto))
        np.testing.assert_array_equal(out["a"], a)
        assert out["t"] == (1, 2.5, None, True) and out["s"] == {"x": [b"y", "z"]} and out["big"] == 2**100


def test_truncated_and_corrupt_batches(tmp_path):
    batch, _, _ = cifar_batch(4)
    raw = py2_pickle(batch)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for f in [f"data_batch_{k}" for k in range(1, 6)]:
        (d / f).write_bytes(raw)
    (d / "data_batch_3").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"data_batch_3: corrupt or truncated pickle"):
        load_dataset("cifar10", root=tmp_path)
    (d / "data_batch_3").write_bytes(raw[:-1])                  # everything but STOP
    with pytest.raises(DataError, match=r"data_batch_3: .*(truncated|STOP)"):
        load_dataset("cifar10", root=tmp_path)
    bad = dict(batch)
    bad[b"data"] = batch[b"data"][:, :100]
    (d / "data_batch_3").write_bytes(py2_pickle(bad))
    with pytest.raises(DataError, match=r"data_batch_3: 'data' must be a uint8 \(N, 3072\) array, got uint8 \(4, 100\)"):
        load_dataset("cifar10", root=tmp_path)
    bad = dict(batch)
    bad[b"labels"] = [0, 1, 2, 12]
    (d / "data_batch_3").write_bytes(py2_pickle(bad))
    with pytest.raises(DataError, match=r"labels must be in 0..9"):
        load_dataset("cifar10", root=tmp_path)


def test_array_size_mismatch_in_pickle_is_refused():
    raw = bytearray(py2_pickle(cifar_batch(2)[0]))
    i = raw.index(b"K\x02M\x00\x0c\x86")                            # the (2, 3072) shape tuple
    raw[i + 1] = 3                                                  # claim 3 rows, keep 2 rows of bytes
    with pytest.raises(DataError, match=r"needs 9216 bytes, has 6144"):
        load_plain_pickle(bytes(raw), "batch")


def test_missing_cifar_message(tmp_path):
    with pytest.raises(DataError, match=r"layerwise download cifar10 --root"):
        load_dataset("cifar10", root=tmp_path)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match=r"cifar-10-python.tar.gz is corrupt or truncated"):
        load_dataset("cifar10", root=tmp_path)
