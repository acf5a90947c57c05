"""Checkpoints: exact round trip in both formats, no pickle, clear errors, atomic saves."""
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from layerwise.io import (CheckpointError, find_latest_checkpoint, load_checkpoint, pack_state, read_checkpoint_meta,
                          rng_state, save_checkpoint, unpack_state)
from layerwise.io import checkpoint as ckpt_mod

EXTS = [".safetensors", ".npz"]


def _tensors(rng):
    return {
        "features.conv0.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "features.norm0.running_var": rng.random(4),                         # float64
        "features.norm0.num_batches_tracked": np.array(17, dtype=np.int64),  # 0-d
        "loader/permutation": rng.permutation(11),
        "mask": rng.random(5) < 0.5,
        "half": rng.standard_normal(3).astype(np.float16),
        "empty": np.zeros((0, 2), np.float32),
        "strided": rng.standard_normal((4, 6))[:, ::2],                       # non-contiguous input
    }


@pytest.mark.parametrize("ext", EXTS)
def test_roundtrip_is_exact(tmp_path, rng, ext):
    tensors = _tensors(rng)
    meta = {"epoch": 3, "iteration": 120, "lr": 0.1, "loss": float("nan"), "config": {"model": "densenet_bc"},
            "rng": rng_state(np.random.default_rng(7)), "seq": [1, 2, 3], "np_int": np.int64(5)}
    path = save_checkpoint(tmp_path / f"c{ext}", tensors, meta)
    out, meta2 = load_checkpoint(path)
    assert set(out) == set(tensors)
    for k, v in tensors.items():
        assert out[k].dtype == v.dtype and out[k].shape == v.shape, k
        np.testing.assert_array_equal(out[k], v)
        assert out[k].tobytes() == np.ascontiguousarray(v).tobytes()          # bit for bit
    assert meta2["rng"] == meta["rng"] and meta2["config"] == meta["config"] and meta2["np_int"] == 5
    assert np.isnan(meta2["loss"]) and meta2["iteration"] == 120
    assert read_checkpoint_meta(path)["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == [f"c{ext}"]


def test_safetensors_file_is_standard(tmp_path, rng):
    from safetensors.numpy import load_file

    t = {"w": rng.standard_normal((2, 3)).astype(np.float32)}
    save_checkpoint(tmp_path / "m.safetensors", t, {"epoch": 1})
    np.testing.assert_array_equal(load_file(tmp_path / "m.safetensors")["w"], t["w"])   # other tools can read it


def test_pack_unpack_nested_state(tmp_path, rng):
    state = {"model": {"fc.weight": rng.standard_normal((2, 2))},
             "solver": {"iter": 5, "slots": [{"m": np.ones(3)}, {"m": np.zeros(2)}]},
             "loader": {"epoch": 1, "permutation": None}}
    tensors, meta = pack_state(state)
    assert sorted(tensors) == ["model/fc.weight", "solver/slots/0/m", "solver/slots/1/m"]
    save_checkpoint(tmp_path / "s.npz", tensors, meta)
    back = unpack_state(*reversed(load_checkpoint(tmp_path / "s.npz")))
    np.testing.assert_array_equal(back["model"]["fc.weight"], state["model"]["fc.weight"])
    np.testing.assert_array_equal(back["solver"]["slots"][1]["m"], np.zeros(2))
    assert back["loader"] == {"epoch": 1, "permutation": None}
    with pytest.raises(CheckpointError, match="no tensor 'x'"):
        unpack_state({"a": {"__tensor__": "x"}}, {})


def test_bad_inputs_write_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"unknown extension '\.pt'"):
        save_checkpoint(tmp_path / "c.pt", {}, {})
    with pytest.raises(TypeError, match="tensor 'o' has dtype object"):
        save_checkpoint(tmp_path / "c.npz", {"o": np.array([None, 1], dtype=object)}, {})
    with pytest.raises(TypeError, match="meta is not JSON-able"):
        save_checkpoint(tmp_path / "c.npz", {}, {"w": np.zeros(2)})
    with pytest.raises(ValueError, match="bad tensor name"):
        save_checkpoint(tmp_path / "c.npz", {"__layerwise_meta__": np.zeros(1)}, {})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", EXTS)
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.97])
def test_truncated_file_is_a_clear_error(tmp_path, rng, ext, keep):
    path = save_checkpoint(tmp_path / f"t{ext}", _tensors(rng), {"epoch": 1})
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(CheckpointError, match=rf"checkpoint .*t{ext}: corrupt or truncated"):
        load_checkpoint(path)


@pytest.mark.parametrize("ext", EXTS)
def test_garbage_missing_and_foreign_files(tmp_path, ext):
    p = tmp_path / f"g{ext}"
    p.write_bytes(os.urandom(300))
    with pytest.raises(CheckpointError, match=f"g{ext}"):
        load_checkpoint(p)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / f"none{ext}")
    foreign = tmp_path / f"f{ext}"
    if ext == ".npz":
        np.savez(foreign, w=np.zeros(2))
    else:
        from safetensors.numpy import save_file
        save_file({"w": np.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not written by save_checkpoint"):
        load_checkpoint(foreign)


def test_npz_with_pickled_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.npz"
    save_checkpoint(path, {"w": np.zeros(2)}, {"epoch": 1})
    evil = np.array([_Evil(str(marker))], dtype=object)
    with zipfile.ZipFile(path, "a") as zf, zf.open("w2.npy", "w") as f:
        np.lib.format.write_array(f, evil, allow_pickle=True)
    with pytest.raises(CheckpointError, match="pickled objects, which are refused"):
        load_checkpoint(path)
    assert not marker.exists()


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("ext", EXTS)
@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_save_keeps_old_checkpoint_and_leaves_no_partial_file(tmp_path, rng, monkeypatch, ext, exc):
    path = tmp_path / f"ckpt{ext}"
    old = _tensors(rng)
    save_checkpoint(path, old, {"epoch": 1})
    before = path.read_bytes()
    real = ckpt_mod._WRITERS[ext]

    def crash_midway(f, tensors, meta):
        real(f, tensors, meta)
        f.truncate(f.tell() // 2)                          # half the bytes are on disk, then the crash
        raise exc

    monkeypatch.setitem(ckpt_mod._WRITERS, ext, crash_midway)
    with pytest.raises(type(exc)):
        save_checkpoint(path, {"w": np.ones(1000)}, {"epoch": 2})
    assert path.read_bytes() == before and load_checkpoint(path)[1]["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


KILL_SCRIPT = """
import os, sys, numpy as np
from layerwise.io import checkpoint as c
real = c._WRITERS[sys.argv[2]]
def die(f, t, m):
    real(f, t, m); f.flush(); os.fsync(f.fileno()); os._exit(9)   # killed mid-save: no cleanup runs
c._WRITERS[sys.argv[2]] = die
c.save_checkpoint(sys.argv[1], {"w": np.ones(100000)}, {"epoch": 2})
"""


@pytest.mark.parametrize("ext", EXTS)
def test_process_killed_during_save(tmp_path, rng, ext):
    path = tmp_path / f"ckpt{ext}"
    save_checkpoint(path, {"w": np.zeros(3)}, {"epoch": 1, "iteration": 10})
    before = path.read_bytes()
    r = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(path), ext], capture_output=True, text=True)
    assert r.returncode == 9, r.stderr
    assert path.read_bytes() == before                                  # the old checkpoint is intact
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != path.name]
    assert len(leftovers) == 1 and leftovers[0].startswith(".") and leftovers[0].endswith(".tmp")
    assert find_latest_checkpoint(tmp_path) == path                     # the hidden temp file is ignored
    save_checkpoint(path, {"w": np.ones(3)}, {"epoch": 3})              # the next save cleans it up
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_find_latest_checkpoint(tmp_path):
    assert find_latest_checkpoint(tmp_path) is None and find_latest_checkpoint(tmp_path / "missing") is None
    a = save_checkpoint(tmp_path / "checkpoints" / "epoch_001.npz", {"w": np.zeros(1)}, {"iteration": 10})
    b = save_checkpoint(tmp_path / "checkpoints" / "epoch_002.safetensors", {"w": np.zeros(1)}, {"iteration": 20})
    os.utime(a, ns=(10**18, 10**18))
    os.utime(b, ns=(2 * 10**18, 2 * 10**18))
    assert find_latest_checkpoint(tmp_path) == b
    os.utime(a, ns=(2 * 10**18, 2 * 10**18))                            # same time: higher iteration wins
    assert find_latest_checkpoint(tmp_path) == b
    broken = tmp_path / "last.npz"
    broken.write_bytes(b"PK\x03\x04broken")
    os.utime(broken, ns=(3 * 10**18, 3 * 10**18))
    with pytest.warns(UserWarning, match="skipping .*last.npz"):
        assert find_latest_checkpoint(tmp_path) == b
