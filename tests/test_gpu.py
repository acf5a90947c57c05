"""CuPy smoke test: the same layers, loss and solver step on the GPU give the CPU's numbers.

Skipped where CuPy or a GPU is absent (CI has neither); run it on a machine with a device:
    pip install 'layerwise[gpu]' && python -m pytest tests/test_gpu.py
"""
import numpy as np
import pytest

import layerwise as lw
from layerwise import backend

pytestmark = pytest.mark.skipif(not backend.cupy_available(), reason="CuPy with a GPU is not available here")


def small_net(seed=0):
    return lw.Sequential(lw.Conv2d(4, 3, padding=1), lw.BatchNorm2d(), lw.ReLU(), lw.MaxPool2d(2),
                         lw.Conv2d(6, 3, stride=2, padding=1), lw.Sigmoid(), lw.GlobalAvgPool2d(),
                         lw.Flatten(), lw.Dropout(0.0), lw.Linear(5), seed=seed)


def test_training_step_on_gpu_matches_cpu():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 8, 8))
    y = rng.integers(0, 5, 4)
    results = []
    for device in ("cpu", "gpu"):
        net = small_net()
        net.setup(x.shape, dtype=np.float64)
        net.to(device)
        loss = lw.SoftmaxCrossEntropyLoss()
        solver = lw.SGD(net.named_params(), lr=0.1, momentum=0.9)
        xd, yd = backend.to_device(x, device), backend.to_device(y, device)
        value = float(loss.forward(net.forward(xd), yd))
        net.backward(loss.backward())
        solver.step()
        results.append((value, {k: backend.to_numpy(p.data) for k, p in net.named_params().items()}))
    (v_cpu, p_cpu), (v_gpu, p_gpu) = results
    assert abs(v_cpu - v_gpu) < 1e-10
    for k in p_cpu:
        np.testing.assert_allclose(p_gpu[k], p_cpu[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_lazy_build_from_a_gpu_input_puts_params_on_the_gpu():
    import cupy

    layer = lw.Linear(3)
    out = layer.forward(cupy.ones((2, 4), dtype=cupy.float32))
    assert isinstance(out, cupy.ndarray) and isinstance(layer.weight.data, cupy.ndarray)
