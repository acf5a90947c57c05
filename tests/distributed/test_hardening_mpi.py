"""Data-parallel correctness under ``mpiexec -n 2``: independent Dropout masks per rank,
per-rank thread defaults, and SyncBatchNorm equal to one process with the whole batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .helpers import TIMEOUT_S, launch, mpiexec

SCRIPT = str(Path(__file__).with_name("mpi_hardening_scripts.py"))
PY = sys.executable


@pytest.fixture(autouse=True)
def _needs_mpi():
    mpiexec()


def test_ranks_draw_independent_dropout_masks(tmp_path):
    """Fails before the fix: Dropout drew its generator at setup, so overwriting ``_rng`` per rank changed
    nothing and both ranks dropped the same units."""
    launch([PY, SCRIPT, "dropout_masks", str(tmp_path)], n=2)
    m0, m1 = np.load(tmp_path / "mask-rank0.npz")["mask"], np.load(tmp_path / "mask-rank1.npz")["mask"]
    assert m0.shape == m1.shape == (64, 32)
    assert 0.4 < m0.mean() < 0.6 and 0.4 < m1.mean() < 0.6  # both really drop about half
    assert not np.array_equal(m0, m1)
    assert 0.4 < (m0 == m1).mean() < 0.6  # independent masks agree on about half the units


def test_sync_batchnorm_two_ranks_equal_one_process_with_both_batches(tmp_path):
    launch([PY, SCRIPT, "sync_bn_dp", str(tmp_path)], n=2)
    launch([PY, SCRIPT, "sync_bn_single", str(tmp_path)], n=None)
    for case in ("equal", "unequal"):
        one = np.load(tmp_path / f"bn-{case}-1-rank0.npz")
        for r in range(2):
            dp = np.load(tmp_path / f"bn-{case}-2-rank{r}.npz")
            rows = dp["rows"]
            for step in range(2):
                for k in ("y", "dx"):
                    np.testing.assert_allclose(dp[f"{k}{step}"], one[f"{k}{step}"][rows], rtol=0, atol=1e-10,
                                               err_msg=f"{case} rank {r} {k}{step}")
                for k in ("dw", "db"):
                    np.testing.assert_allclose(dp[f"{k}{step}"], one[f"{k}{step}"], rtol=0, atol=1e-10,
                                               err_msg=f"{case} rank {r} {k}{step}")
            for k in ("running_mean", "running_var"):
                np.testing.assert_allclose(dp[k], one[k], rtol=0, atol=1e-10, err_msg=f"{case} rank {r} {k}")


def _launch_threads(tmp_path, extra_env):
    env = {k: v for k, v in os.environ.items() if k not in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "LAYERWISE_NO_THREAD_DEFAULTS")}
    env.update(extra_env)
    r = subprocess.run([mpiexec(), "-n", "2", PY, SCRIPT, "threads", str(tmp_path)], capture_output=True, text=True,
                       timeout=TIMEOUT_S, env=env)
    assert r.returncode == 0, r.stderr
    return [json.loads((tmp_path / f"threads-rank{i}.json").read_text()) for i in range(2)]


def test_each_rank_defaults_to_its_share_of_the_cores_before_blas_starts(tmp_path):
    for info in _launch_threads(tmp_path, {}):
        want = max(1, info["cores"] // 2) if info["cores"] >= os.cpu_count() else info["cores"]
        assert info["env"]["OMP_NUM_THREADS"] == str(want) and info["env"]["OPENBLAS_NUM_THREADS"] == str(want)
        assert all(n == want for n in info["blas"]), info  # the BLAS pool really started with it
        assert f"{want} thread" in info["choice"] and "override" in info["choice"]


def test_the_users_own_thread_variables_win(tmp_path):
    for info in _launch_threads(tmp_path, {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}):
        assert info["env"]["OPENBLAS_NUM_THREADS"] == "1" and "kept OMP_NUM_THREADS=1" in info["choice"]


def test_cli_sync_batchnorm_on_two_ranks_announces_threads_in_the_first_line(tmp_path):
    r = launch([str(Path(PY).parent / "layerwise"), "train", "--set", "model.name=mlp",
                "--set", "model.kwargs={hidden: [16], batchnorm: true, dropout: 0.2}", "--set", "sync_batchnorm=true",
                "--set", "batch_size=64", "--no-progress", "--epochs", "1", "--out", str(tmp_path / "run")], n=2)
    first = r.stdout.splitlines()[0]
    assert first.startswith("layerwise train:") and "data-parallel over 2 processes" in first
    assert "OMP_NUM_THREADS" in first  # launch() sets them to 1: the line says they were kept
    from layerwise.io import load_checkpoint

    tensors, meta = load_checkpoint(tmp_path / "run" / "checkpoint-epoch0001.safetensors")
    assert meta["config"]["sync_batchnorm"] is True and np.isfinite(tensors["model/bn1.running_mean"]).all()


def test_bad_config_on_two_ranks_is_one_line_from_rank_0_and_exit_2(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    r = subprocess.run([mpiexec(), "-n", "2", str(Path(PY).parent / "layerwise"), "train", "--set", "solver.lr=.nan",
                        "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr
    assert lines == [lines[0]] and lines[0].startswith("layerwise train: error: config key 'solver.lr'"), r.stderr
    assert not (tmp_path / "run").exists()
