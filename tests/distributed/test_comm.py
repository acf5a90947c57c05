"""The single-process Communicator fallback and the helpers built on it (no MPI needed)."""
import sys

import numpy as np
import pytest

import layerwise as lw
from layerwise.distributed import (Communicator, DataParallel, MPIUnavailableError, allreduce_gradients,
                                   broadcast_state, init_distributed, launcher_world_size)


def test_fallback_collectives_return_their_input():
    c = Communicator()
    assert (c.rank, c.size, c.is_root, c.distributed) == (0, 1, True, False)
    a = np.arange(6.0).reshape(2, 3)
    assert c.allreduce(a) is a and np.array_equal(a, np.arange(6.0).reshape(2, 3))
    assert c.allreduce(a, op="max") is a
    assert c.bcast(a) is a
    assert c.bcast_object({"k": 1}) == {"k": 1}
    assert c.gather_object(5) == [5]
    assert c.on_root(lambda: 42) == 42
    c.barrier()


def test_fallback_rejects_bad_buffers_and_ops():
    c = Communicator()
    with pytest.raises(ValueError, match="C-contiguous"):
        c.allreduce(np.zeros((4, 4))[:, ::2])
    with pytest.raises(ValueError, match="op must be"):
        c.allreduce(np.zeros(3), op="prod")
    with pytest.raises(TypeError, match="NumPy array"):
        c.bcast([1.0, 2.0])


def test_init_distributed_without_launcher_is_one_process(monkeypatch):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(var, raising=False)
    assert launcher_world_size() == 1
    assert type(init_distributed()) is Communicator
    assert type(init_distributed(False)) is Communicator
    monkeypatch.setenv("PMI_SIZE", "3")
    assert launcher_world_size() == 3
    assert type(init_distributed(False)) is Communicator  # explicitly off wins


def test_missing_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(MPIUnavailableError, match=r"layerwise\[mpi\]") as e:
        init_distributed()
    assert "one of 2 processes" in str(e.value)
    with pytest.raises(MPIUnavailableError, match=r"layerwise\[mpi\]"):
        init_distributed(True)


def test_single_process_helpers_leave_state_and_grads_alone(rng):
    net = lw.Sequential(lw.Linear(4), lw.ReLU(), lw.Linear(2))
    x = rng.standard_normal((5, 3))
    net.forward(x)
    net.backward(np.ones((5, 2)))
    before = {k: (p.data.copy(), p.grad.copy()) for k, p in net.named_params().items()}
    c = Communicator()
    broadcast_state(net, c)
    allreduce_gradients(net, c, weight=7)
    dp = DataParallel(net, c)
    dp.broadcast()
    dp.sync_gradients(weight=3)
    dp.seed_layer_generators(0)
    for k, p in net.named_params().items():
        assert np.array_equal(p.data, before[k][0]) and np.array_equal(p.grad, before[k][1])


def test_data_parallel_needs_a_built_net():
    with pytest.raises(ValueError, match="set the net up first"):
        DataParallel(lw.Sequential(lw.Linear(2)), Communicator())
