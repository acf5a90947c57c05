"""Per-process thread defaults under an MPI launcher, chosen before NumPy's BLAS starts.

``mpiexec -n R`` on a node with C cores starts R processes, and each BLAS (OpenBLAS, MKL), OpenMP
runtime and numba pool would start C threads: R x C threads on C cores, which made a 2-rank run
on 2 cores 12x slower than one process. So, when a launcher started several processes on this
node, each process defaults to its share of the node's cores::

    threads = max(1, C // local_ranks)      # C: the cores this process may run on (its affinity)

(if the launcher already bound the process to fewer cores than the machine has, that set is the
share). The variables below are set only where the user has not set them: the user's own
``OMP_NUM_THREADS=...`` always wins. The local rank count comes from the launcher's environment
(MPICH/Hydra ``MPI_LOCALNRANKS``, Open MPI ``OMPI_COMM_WORLD_LOCAL_SIZE``, ``LOCAL_WORLD_SIZE``),
else from MPI's shared-memory split of the world, else all ranks are assumed local (the safe side).

This module imports nothing but the standard library, and ``layerwise/__init__.py`` runs it
first, so the variables are in place before ``import numpy`` loads BLAS. If NumPy was imported
before layerwise, the BLAS pools are limited at run time through threadpoolctl instead.
``LAYERWISE_NO_THREAD_DEFAULTS=1`` turns all of this off. :data:`CHOICE` holds the sentence that
``layerwise train`` prints in its first line (like torchrun's OMP_NUM_THREADS notice).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
_WORLD_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "WORLD_SIZE")
_LOCAL_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "LOCAL_WORLD_SIZE")

CHOICE: str | None = None  # what was chosen, in words (None: not under a launcher, nothing done)


def _int_env(names: tuple[str, ...], env: Mapping[str, str]) -> int | None:
    for n in names:
        v = str(env.get(n, "")).strip()
        if v.isdigit() and int(v) > 0:
            return int(v)
    return None


def _shared_memory_size() -> int | None:
    """Ranks on this node from MPI's shared-memory split (only if mpi4py is importable)."""
    try:
        from mpi4py import MPI

        return int(MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED).Get_size())
    except Exception:  # noqa: BLE001 - no MPI here: fall back to the caller's default
        return None


def cores_available() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def choose(env: Mapping[str, str] | None = None, cores: int | None = None, total_cores: int | None = None,
           query_mpi: bool = True) -> tuple[dict[str, str], str | None]:
    """(variables to set, sentence) for this process; ({}, None) when no launcher started several.

    Args:
        env: the environment to read (default ``os.environ``).
        cores: cores this process may run on (default: its CPU affinity).
        total_cores: cores of the machine (default ``os.cpu_count()``).
        query_mpi: ask MPI for the node's rank count when the launcher's environment does not say.
    """
    if env is None:
        env = os.environ
    if str(env.get("LAYERWISE_NO_THREAD_DEFAULTS", "")).strip() not in ("", "0"):
        return {}, None
    world = _int_env(_WORLD_VARS, env)
    local = _int_env(_LOCAL_VARS, env)
    if local is None and world is not None and world > 1:
        local = (_shared_memory_size() if query_mpi else None) or world
    if local is None or local <= 1:
        return {}, None
    cores = cores_available() if cores is None else int(cores)
    total = (os.cpu_count() or cores) if total_cores is None else int(total_cores)
    bound = cores < total  # the launcher pinned this process: its affinity is its share
    n = max(1, cores if bound else cores // local)
    todo = {v: str(n) for v in THREAD_VARS if not str(env.get(v, "")).strip()}
    kept = [f"{v}={env[v]}" for v in THREAD_VARS if str(env.get(v, "")).strip()]
    how = (f"{cores} cores bound to this process" if bound else f"{cores} cores / {local} processes on this node")
    if todo:
        text = f"{n} thread{'s' if n > 1 else ''} per process ({how}; set OMP_NUM_THREADS etc. to override)"
        if kept:
            text += f", kept {', '.join(kept)}"
    else:
        text = f"threads per process from the environment: {', '.join(kept)}"
    return todo, text


def apply() -> str | None:
    """Set the defaults in ``os.environ`` (before NumPy is imported); returns the sentence."""
    global CHOICE
    if "numpy" not in sys.modules and not os.environ.get("LAYERWISE_NO_THREAD_DEFAULTS"):
        # OpenBLAS's workers busy-wait after each GEMM; on 2 vCPUs that share a core the spinning
        # thread slows the memory-bound work between GEMMs by up to 1.6x (docs/performance.md).
        # The shortest wait (read once, when OpenBLAS loads) keeps its speed on large GEMMs.
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "1")
    todo, CHOICE = choose()
    if not todo:
        return CHOICE
    os.environ.update(todo)
    if "numpy" in sys.modules:  # too late for the variables: limit the running BLAS pools instead
        try:
            from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # ships no type hints

            threadpool_limits(int(next(iter(todo.values()))))
        except Exception:  # noqa: BLE001 - threadpoolctl missing: the variables still reach new pools
            pass
    return CHOICE


__all__ = ["apply", "choose", "CHOICE", "THREAD_VARS", "cores_available"]
