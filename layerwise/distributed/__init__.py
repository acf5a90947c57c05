"""layerwise.distributed: data-parallel training over MPI (mpi4py).

Only this package imports mpi4py, and only when a communicator over MPI is asked for
(``init_distributed``); without mpi4py everything here still works for one process.

    mpiexec -n 2 layerwise train                  # the Trainer's data-parallel mode (docs/distributed.md)

    comm = init_distributed()                     # MPI under a launcher, else one process
    dp = DataParallel(net, comm); dp.broadcast()  # equal start
    ... net.backward(...); dp.sync_gradients(weight=len(yb)); solver.step()
"""
from .comm import (
                   INSTALL_HINT,
                   Communicator,
                   MPICommunicator,
                   MPIUnavailableError,
                   import_mpi,
                   init_distributed,
                   launcher_world_size,
)
from .data_parallel import DataParallel, GradientAllreduce, allreduce_gradients, broadcast_buffers, broadcast_state

__all__ = ["Communicator", "MPICommunicator", "MPIUnavailableError", "init_distributed", "import_mpi",
           "launcher_world_size", "INSTALL_HINT", "DataParallel", "GradientAllreduce", "allreduce_gradients",
           "broadcast_state", "broadcast_buffers"]
