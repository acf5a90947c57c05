"""download(): never touches the network here; file:// URLs and a refused local port stand in for it."""
import importlib
import tarfile

import numpy as np
import pytest

from layerwise.data import DownloadError, Resource, download, load_dataset
from layerwise.data.download import file_md5

from .helpers import cifar_batch, py2_pickle, write_mnist

download_mod = importlib.import_module("layerwise.data.download")   # the package's `download` is the function


def _serve(monkeypatch, name, files, md5s=None):
    """Point SOURCES[name] at local files through file:// URLs."""
    res = [Resource(f.name, (f.resolve().as_uri(),), md5s[i] if md5s else file_md5(f), extract=f.name.endswith(".tar.gz"))
           for i, f in enumerate(files)]
    monkeypatch.setitem(download_mod.SOURCES, name, res)


def _leftovers(d):
    return [p.name for p in d.rglob(".*")]


def test_offline_error_says_which_files_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setattr(download_mod, "TIMEOUT_S", 2.0)
    monkeypatch.setitem(download_mod.SOURCES, "mnist", [
        Resource("train-images-idx3-ubyte.gz", ("http://127.0.0.1:9/train-images-idx3-ubyte.gz",), "0" * 32)])
    with pytest.raises(DownloadError) as e:
        download("mnist", tmp_path, progress=False)
    msg = str(e.value)
    assert "could not fetch train-images-idx3-ubyte.gz" in msg and "http://127.0.0.1:9/" in msg
    assert f"put them in {tmp_path / 'mnist'}" in msg and str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in msg
    assert not (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").exists() and not _leftovers(tmp_path)


def test_checksum_failure_keeps_nothing(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_mnist(src)
    files = sorted(src.iterdir())
    _serve(monkeypatch, "mnist", files, md5s=["f" * 32] * len(files))
    out = tmp_path / "out"
    with pytest.raises(DownloadError, match=r"failed its checksum: md5 [0-9a-f]{32}, expected f{32}"):
        download("mnist", out, progress=False)
    assert list((out / "mnist").iterdir()) == []


def test_download_mnist_then_load(tmp_path, monkeypatch):
    src = tmp_path / "src"
    data = write_mnist(src)
    _serve(monkeypatch, "mnist", sorted(src.iterdir()))
    target = download("mnist", tmp_path / "data", progress=False)
    assert target == tmp_path / "data" / "mnist" and len(list(target.iterdir())) == 4
    ds = load_dataset("mnist", root=tmp_path / "data", split="test")
    np.testing.assert_array_equal(ds.y, data["test"][1])

    def no_fetch(*a, **k):
        raise AssertionError("a file with the right checksum was fetched again")

    monkeypatch.setattr(download_mod, "_fetch", no_fetch)
    download("mnist", tmp_path / "data", progress=False)


def test_download_cifar10_extracts_safely_and_loads(tmp_path, monkeypatch):
    src = tmp_path / "src" / "cifar-10-batches-py"
    src.mkdir(parents=True)
    for i, f in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        (src / f).write_bytes(py2_pickle(cifar_batch(3, seed=i)[0]))
    archive = tmp_path / "src" / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    _serve(monkeypatch, "cifar10", [archive])
    target = download("cifar-10", tmp_path / "data", progress=False)
    assert (target / "cifar-10-batches-py" / "test_batch").is_file()
    assert len(load_dataset("cifar10", root=tmp_path / "data")) == 15


def test_download_refuses_unknown_and_digits(tmp_path):
    with pytest.raises(ValueError, match="ships with scikit-learn"):
        download("digits", tmp_path)
    with pytest.raises(ValueError, match="no official files for 'folder'"):
        download("folder", tmp_path)
