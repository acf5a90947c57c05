import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _kernel_backends():
    from layerwise.functional import cnhw
    return ["numpy"] + (["numba"] if cnhw._nb is not None else [])


@pytest.fixture(params=_kernel_backends())
def backend(request):
    """Runs a test with the NumPy reference kernels and, where numba imports, the numba ones."""
    from layerwise.functional import cnhw
    old = cnhw.set_backend(request.param)
    yield request.param
    cnhw.set_backend(old)
