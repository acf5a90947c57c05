"""Property-based fuzzing of every parser and loader: random mutations of valid
files may only raise the documented error type, within Hypothesis' deadline (no hang), never another
exception. Settings (example count, seed, long runs): tests/fuzz/conftest.py."""
from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layerwise.config import ConfigError, default_config_text, load_config, parse_override
from layerwise.data import DataError, load_dataset, load_plain_pickle
from layerwise.data.cifar import read_cifar_batch
from layerwise.data.idx import read_idx
from layerwise.io import CheckpointError, load_checkpoint, save_checkpoint

from ..data.helpers import cifar_batch, idx_bytes, py2_pickle

# A mutation: (kind, position, bytes), applied at position % len(data).
MUTATIONS = st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "overwrite", "truncate"]),
                               st.integers(0, 2**31), st.binary(min_size=1, max_size=8)), min_size=1, max_size=4)


def mutate(data: bytes, muts) -> bytes:
    b = bytearray(data)
    for kind, pos, chunk in muts:
        i = pos % max(len(b), 1)
        if kind == "flip" and b:
            b[i] ^= chunk[0] or 1
        elif kind == "insert":
            b[i:i] = chunk
        elif kind == "delete":
            del b[i:i + len(chunk)]
        elif kind == "overwrite":
            b[i:i + len(chunk)] = chunk
        elif kind == "truncate":
            del b[i:]
    return bytes(b)


def _write(tmp_path_factory, name: str, data: bytes) -> Path:
    d = tmp_path_factory.mktemp("fuzz")
    f = d / name
    f.write_bytes(data)
    return f


# ---------------------------------------------------------------------------------------- config
VALID_CONFIG = (default_config_text() + "model: {name: mlp, kwargs: {hidden: [8]}}\n").encode()
SMALL_CONFIG = b"model: {name: mlp, kwargs: {hidden: [8]}}\nsolver: {lr: 0.1, momentum: 0.9}\nepochs: 3\n"


@given(muts=MUTATIONS, base=st.sampled_from([VALID_CONFIG, SMALL_CONFIG]))
def test_fuzz_yaml_config(tmp_path_factory, muts, base):
    f = _write(tmp_path_factory, "c.yaml", mutate(base, muts))
    try:
        load_config(f)
    except ConfigError:
        pass


@given(text=st.one_of(st.text(max_size=40),
                      st.builds(lambda k, v: f"{k}={v}", st.sampled_from(
                          ["solver.lr", "epochs", "model.kwargs", "data.val", "lr_policy.milestones", "a.b.c", "",
                           "solver", "dtype", "sync_batchnorm"]), st.text(max_size=20))))
def test_fuzz_set_overrides(text):
    try:
        parse_override(text)
        load_config(None, [text])
    except ConfigError:
        pass


# ------------------------------------------------------------------------------------------- IDX
_IMAGES = np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8)
IDX_PLAIN = idx_bytes(_IMAGES)
IDX_GZ = gzip.compress(IDX_PLAIN)


@given(muts=MUTATIONS, base=st.sampled_from([IDX_PLAIN, IDX_GZ]), ndim=st.sampled_from([None, 3]))
def test_fuzz_idx(tmp_path_factory, muts, base, ndim):
    f = _write(tmp_path_factory, "x-idx3-ubyte", mutate(base, muts))
    try:
        read_idx(f, ndim=ndim)
    except DataError:
        pass


# ------------------------------------------------------------------------ CIFAR batches, tarballs
CIFAR_BATCH = py2_pickle(cifar_batch(2)[0])
CIFAR_BATCH3 = pickle.dumps(cifar_batch(2)[0], protocol=2)


@given(muts=MUTATIONS, base=st.sampled_from([CIFAR_BATCH, CIFAR_BATCH3]))
def test_fuzz_cifar_batch(muts, base):
    try:
        x, y = read_cifar_batch(mutate(base, muts), "batch", "labels", 10)
    except DataError:
        return
    assert x.dtype == np.uint8 and x.shape[1:] == (3, 32, 32) and len(y) == len(x)


def _cifar_tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            raw = py2_pickle(cifar_batch(2, seed=len(name))[0])
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


CIFAR_TAR = _cifar_tarball()


@given(muts=MUTATIONS)
def test_fuzz_cifar_tarball(tmp_path_factory, muts):
    f = _write(tmp_path_factory, "cifar-10-python.tar.gz", mutate(CIFAR_TAR, muts))
    try:
        load_dataset("cifar10", root=f.parent, split="test")
    except DataError:
        pass


# ------------------------------------------------------------------------------ safe pickle reader
PLAIN = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
                     | st.binary(max_size=8),
                     lambda children: st.lists(children, max_size=4) | st.tuples(children, children)
                     | st.dictionaries(st.text(max_size=4), children, max_size=4), max_leaves=20)


@given(value=PLAIN, protocol=st.sampled_from([0, 2, 4, 5]))
def test_fuzz_safe_pickle_roundtrip(value, protocol):
    assert load_plain_pickle(pickle.dumps(value, protocol=protocol), "p") == value


@given(value=PLAIN, protocol=st.sampled_from([0, 2, 4, 5]), muts=MUTATIONS)
def test_fuzz_safe_pickle_mutations(value, protocol, muts):
    try:
        load_plain_pickle(mutate(pickle.dumps(value, protocol=protocol), muts), "p")
    except DataError:
        pass


# ----------------------------------------------------------------------------------- checkpoints
def _checkpoint_bytes(ext: str) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / f"c{ext}"
        save_checkpoint(f, {"model/w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array(3)},
                        {"epoch": 1, "config": {"a": [1, 2]}})
        return f.read_bytes()


CKPT = {ext: _checkpoint_bytes(ext) for ext in (".safetensors", ".npz")}


@given(muts=MUTATIONS, ext=st.sampled_from([".safetensors", ".npz"]))
def test_fuzz_checkpoints(tmp_path_factory, muts, ext):
    f = _write(tmp_path_factory, f"c{ext}", mutate(CKPT[ext], muts))
    try:
        tensors, meta = load_checkpoint(f)
    except CheckpointError:
        return
    assert all(isinstance(v, np.ndarray) for v in tensors.values())


# ------------------------------------------------------------------------- image folders and npz
def _png(v: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4), v, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


PNGS = [_png(10), _png(200)]


@given(muts=MUTATIONS, which=st.integers(0, 1))
def test_fuzz_image_folder(tmp_path_factory, muts, which):
    root = tmp_path_factory.mktemp("folder")
    for c, v in (("a", 0), ("b", 1)):
        (root / c).mkdir()
        for i in range(5):
            (root / c / f"{i}.png").write_bytes(mutate(PNGS[v], muts) if (v == which and i == 0) else PNGS[v])
    try:
        load_dataset("folder", root=root)
    except DataError:
        pass


def _npz_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.random.default_rng(0).random((10, 1, 2, 2)).astype(np.float32), y=np.arange(10) % 2)
    return buf.getvalue()


NPZ = _npz_bytes()


@given(muts=MUTATIONS)
def test_fuzz_npz_data_set(tmp_path_factory, muts):
    f = _write(tmp_path_factory, "d.npz", mutate(NPZ, muts))
    try:
        load_dataset("npz", root=f)
    except DataError:
        pass


def test_mutate_really_changes_the_bytes():
    assert mutate(b"abcdef", [("flip", 2, b"\x01")]) == b"abbdef"
    assert mutate(b"abcdef", [("truncate", 3, b"x")]) == b"abc"
    with pytest.raises(DataError):
        load_plain_pickle(mutate(pickle.dumps([1, 2], protocol=2), [("truncate", 5, b"x")]), "p")
