"""Launching small scripts under ``mpiexec`` for the distributed tests (always with a timeout)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TIMEOUT_S = 120  # per launch: a hung collective fails the test instead of hanging CI


def mpiexec() -> str:
    """Path of ``mpiexec`` (next to this Python first: the ``mpich`` wheel puts it there); skips the test
    with the reason when mpi4py or mpiexec is missing."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed (pip install 'layerwise[mpi]')")
    here = Path(sys.executable).parent / "mpiexec"
    exe = str(here) if here.is_file() else shutil.which("mpiexec")
    if exe is None:
        pytest.skip("no mpiexec on PATH or next to the Python interpreter (pip install mpich)")
    return exe


def run_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = "1"  # two ranks on a small machine: one thread each
    env["PYTHONUNBUFFERED"] = "1"
    return env


def launch(args: list[str], n: int | None = 2, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run ``mpiexec -n n args`` (or ``args`` alone when n is None); fail with its output on error."""
    cmd = ([mpiexec(), "-n", str(n)] if n is not None else []) + args
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=run_env(), cwd=cwd)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} did not finish in {TIMEOUT_S}s (a hung collective?)\n"
                    f"stdout: {e.stdout}\nstderr: {e.stderr}")
    if r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r
