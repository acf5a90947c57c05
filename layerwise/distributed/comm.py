"""Communicators: the few collective operations data-parallel training needs.

``Communicator`` is the single-process fallback (rank 0 of 1): every collective returns its
input, so the training code is the same with and without MPI. ``MPICommunicator`` wraps an
mpi4py communicator; it is the only class that touches mpi4py, which is imported lazily
(``import layerwise`` never needs it).

Arrays travel through mpi4py's buffer interface (no pickling, no copies); plain Python objects
(a config, a checkpoint read on rank 0) through its pickle-based object calls, which stay inside
the running job and never touch a file.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

INSTALL_HINT = "pip install 'layerwise[mpi]'  (mpi4py, plus an MPI library such as the 'mpich' wheel)"

# Environment variables the common launchers set in every process they start.
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


class MPIUnavailableError(ImportError):
    """mpi4py (or the MPI library under it) is not installed."""


def import_mpi() -> Any:
    """``mpi4py.MPI``, or an :class:`MPIUnavailableError` that says what to install."""
    try:
        from mpi4py import MPI
    except ImportError as e:  # mpi4py absent, or present without an MPI library to load
        raise MPIUnavailableError(f"layerwise.distributed needs mpi4py and an MPI library ({e}); "
                                  f"install them with: {INSTALL_HINT}") from None
    return MPI


def launcher_world_size() -> int:
    """The number of processes an MPI launcher (mpiexec/mpirun/srun) says it started; 1 if none.

    Read from the launcher's environment (``PMI_SIZE`` for MPICH/Hydra and Slurm's PMI,
    ``OMPI_COMM_WORLD_SIZE`` for Open MPI, ...), so that a plain ``layerwise train`` never
    loads MPI.
    """
    for var in _LAUNCHER_SIZE_VARS:
        v = os.environ.get(var)
        if v and v.strip().isdigit():
            return int(v)
    return 1


class Communicator:
    """A group of ``size`` processes; this one is ``rank``. The base class is one process alone.

    Every method is collective: each rank of the group must call it, in the same order.

    Attributes:
        rank: this process's index, 0 .. size-1 (0 is the root: it prints, logs and saves).
        size: the number of processes.
    """

    rank: int = 0
    size: int = 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def allreduce(self, array: np.ndarray, op: str = "sum") -> np.ndarray:
        """Combine ``array`` element-wise over all ranks (``op``: sum, max, min), in place; returns it."""
        _check_buffer(array, "allreduce")
        _check_op(op)
        return array

    def bcast(self, array: np.ndarray, root: int = 0) -> np.ndarray:
        """Overwrite ``array`` on every rank with root's values (same shape/dtype everywhere); returns it."""
        _check_buffer(array, "bcast")
        return array

    def bcast_object(self, obj: Any, root: int = 0) -> Any:
        """Root's ``obj`` on every rank (others pass anything, e.g. None)."""
        return obj

    def gather_object(self, obj: Any, root: int = 0) -> list | None:
        """``[obj of rank 0, obj of rank 1, ...]`` on root, None elsewhere."""
        return [obj]

    def barrier(self) -> None:
        """Wait until every rank has arrived."""

    def abort(self, code: int = 1) -> None:
        """End every process of the job (MPI_Abort) with exit status ``code``."""
        raise SystemExit(code)

    def on_root(self, fn: Callable[[], Any], root: int = 0) -> Any:
        """Run ``fn()`` on root only and hand its result to every rank.

        An exception on root is raised on every rank (so no rank waits forever for a
        broadcast that never comes).
        """
        if not self.distributed:
            return fn()
        if self.rank == root:
            try:
                result: Any = ("ok", fn())
            except Exception as e:
                _mark_all_ranks(e)
                self.bcast_object(("error", _portable(e)), root)
                raise
            return self.bcast_object(result, root)[1]
        status, value = self.bcast_object(None, root)
        if status == "error":
            _mark_all_ranks(value)
            raise value
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class MPICommunicator(Communicator):
    """A :class:`Communicator` over an mpi4py communicator (default ``MPI.COMM_WORLD``)."""

    def __init__(self, comm: Any = None) -> None:
        self._MPI = MPI = import_mpi()
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = int(self.comm.Get_rank())
        self.size = int(self.comm.Get_size())
        self._ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    def allreduce(self, array: np.ndarray, op: str = "sum") -> np.ndarray:
        _check_buffer(array, "allreduce")
        _check_op(op)
        if self.size > 1 and array.size:
            self.comm.Allreduce(self._MPI.IN_PLACE, array, op=self._ops[op])
        return array

    def bcast(self, array: np.ndarray, root: int = 0) -> np.ndarray:
        _check_buffer(array, "bcast")
        if self.size > 1 and array.size:
            self.comm.Bcast(array, root=root)
        return array

    def bcast_object(self, obj: Any, root: int = 0) -> Any:
        return self.comm.bcast(obj, root=root) if self.size > 1 else obj

    def gather_object(self, obj: Any, root: int = 0) -> list | None:
        return self.comm.gather(obj, root=root) if self.size > 1 else [obj]

    def barrier(self) -> None:
        if self.size > 1:
            self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        if self.size > 1:
            self.comm.Abort(int(code))
        raise SystemExit(code)


def _mark_all_ranks(e: BaseException) -> None:
    """Tag an error that every rank raises alike (so callers need not abort the job for it)."""
    try:
        e._layerwise_all_ranks = True  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - exceptions with __slots__
        pass


def _portable(e: BaseException) -> BaseException:
    """``e`` if it survives pickling (mpi4py's object transport), else a RuntimeError with its text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001 - any unpicklable exception
        r = RuntimeError(f"{type(e).__name__}: {e}")
        _mark_all_ranks(r)
        return r


def _check_buffer(array: Any, what: str) -> None:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"Communicator.{what}: expected a NumPy array, got {type(array).__name__}; "
                        "copy device arrays to the host first (layerwise.backend.to_numpy)")
    if not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError(f"Communicator.{what}: the array must be C-contiguous and writeable (got "
                         f"shape {array.shape}, strides {array.strides}); pass np.ascontiguousarray(a)")


def _check_op(op: str) -> None:
    if op not in ("sum", "max", "min"):
        raise ValueError(f"Communicator.allreduce: op must be 'sum', 'max' or 'min', got {op!r}")


def init_distributed(mode: bool | None = None) -> Communicator:
    """The communicator for this process.

    Args:
        mode: ``None`` (auto): MPI when an MPI launcher started more than one process
            (``mpiexec -n 2 ...``), else the single-process :class:`Communicator`;
            ``True``: MPI's world communicator (size 1 is allowed: ``python train.py`` under
            no launcher); ``False``: the single-process fallback, launcher or not.

    Raises:
        MPIUnavailableError: MPI is wanted (``mode=True``, or a launcher started several
            processes) but mpi4py is missing. Without this error every process of an
            ``mpiexec -n 2`` launch would train alone and write the same files.
    """
    if mode is False:
        return Communicator()
    n = launcher_world_size()
    if mode is None and n <= 1:
        return Communicator()
    try:
        return MPICommunicator()
    except MPIUnavailableError as e:
        why = f"started by an MPI launcher as one of {n} processes" if mode is None else "asked to run distributed"
        raise MPIUnavailableError(f"layerwise was {why}, but {e}") from None


__all__ = ["Communicator", "MPICommunicator", "MPIUnavailableError", "init_distributed", "import_mpi",
           "launcher_world_size", "INSTALL_HINT"]
