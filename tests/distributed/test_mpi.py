"""Data-parallel training under ``mpiexec -n 2`` (skipped with the reason when mpi4py/mpiexec are absent).

Every launch has a timeout (helpers.TIMEOUT_S), so a hung collective fails instead of hanging CI.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from .helpers import launch, mpiexec

SCRIPT = str(Path(__file__).with_name("mpi_scripts.py"))
PY = sys.executable


@pytest.fixture(autouse=True)
def _needs_mpi():
    mpiexec()  # skips with the reason when mpi4py or mpiexec is missing


def test_two_ranks_with_batch_b_equal_one_process_with_batch_2b(tmp_path):
    """Sharding + gradient averaging are right: only the summation order differs (float64)."""
    launch([PY, SCRIPT, "train_dp", str(tmp_path)], n=2)
    launch([PY, SCRIPT, "train_single", str(tmp_path)], n=None)
    dp0, dp1 = np.load(tmp_path / "params-2-rank0.npz"), np.load(tmp_path / "params-2-rank1.npz")
    single = np.load(tmp_path / "params-1-rank0.npz")
    assert len(single["losses"]) == 4 and len(dp0["losses"]) == 4  # 32 samples / global batch 8
    start = np.load(tmp_path / "params-1-rank0.npz")
    for k in single.files:
        np.testing.assert_allclose(dp0[k], single[k], rtol=0, atol=1e-12, err_msg=k)
        assert np.array_equal(dp0[k], dp1[k]), f"{k}: the ranks drifted apart"
    assert any(not np.allclose(start[k], 0) for k in start.files if k != "losses")


def test_broadcast_state_and_weighted_allreduce(tmp_path):
    launch([PY, SCRIPT, "collectives", str(tmp_path)], n=2)
    b0, b1 = np.load(tmp_path / "before-rank0.npz"), np.load(tmp_path / "before-rank1.npz")
    a0, a1 = np.load(tmp_path / "after-rank0.npz"), np.load(tmp_path / "after-rank1.npz")
    assert any(not np.array_equal(b0[k], b1[k]) for k in b0.files)  # seeds 100 and 101 differ
    for k in b0.files:
        assert np.array_equal(a0[k], b0[k]) and np.array_equal(a1[k], b0[k]), k  # rank 0's, everywhere
    for r in range(2):
        g = np.load(tmp_path / f"grads-rank{r}.npz")
        np.testing.assert_array_equal(g["plain"], np.full(3, 3.0))  # 1 + 2
        for k in g.files:
            if k != "plain":  # (1*1 + 2*2) / (1 + 2)
                np.testing.assert_allclose(g[k], 5.0 / 3.0, rtol=1e-15, err_msg=k)


def _train(out, *extra):
    return launch([str(Path(PY).parent / "layerwise"), "train", "--set", "model.name=mlp",
                   "--set", "model.kwargs={hidden: [16]}", "--set", "batch_size=32", "--no-progress",
                   "--out", str(out), *extra], n=2)


def test_cli_trains_on_two_ranks_and_rank0_alone_writes(tmp_path):
    r = _train(tmp_path / "run", "--epochs", "1")
    assert r.stdout.count("layerwise train:") == 1 and "data-parallel over 2 processes" in r.stdout
    assert r.stdout.count("epoch   1/1") == 1 and r.stdout.count("done in") == 1
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["checkpoint-epoch0001.safetensors", "config.yaml", "curves.png", "log.csv", "log.jsonl"], files
    assert len((tmp_path / "run" / "log.csv").read_text().splitlines()) == 2  # header + one epoch

    from layerwise.io import load_checkpoint

    tensors, meta = load_checkpoint(tmp_path / "run" / "checkpoint-epoch0001.safetensors")
    assert meta["world_size"] == 2 and len(meta["rng"]["ranks"]) == 2
    # 1438 digits / global batch 64 = 22 steps; the loss of each step is over both ranks' samples
    assert meta["iteration"] == 22 and len(tensors["train/losses"]) == 22


def test_cli_resume_on_two_ranks_matches_an_uninterrupted_run(tmp_path):
    _train(tmp_path / "a", "--epochs", "2", "--set", "checkpoint_every=1")
    assert (tmp_path / "a" / "checkpoint-epoch0001.safetensors").is_file()
    r = _train(tmp_path / "b", "--resume", str(tmp_path / "a" / "checkpoint-epoch0001.safetensors"), "--epochs", "2")
    assert r.stdout.count("Resumed from") == 1
    from layerwise.io import load_checkpoint

    ta, ma = load_checkpoint(tmp_path / "a" / "checkpoint-epoch0002.safetensors")
    tb, mb = load_checkpoint(tmp_path / "b" / "checkpoint-epoch0002.safetensors")
    assert len(ta["train/losses"]) == 44
    assert np.array_equal(ta["train/losses"], tb["train/losses"])
    for k in ta:
        if k.startswith("model/"):
            assert np.array_equal(ta[k], tb[k]), k
    assert [row["val_top1"] for row in ma["history"]] == [row["val_top1"] for row in mb["history"]]
