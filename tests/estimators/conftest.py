import pytest


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """The estimators' arrays are small: one BLAS thread is faster than several fighting over
    shared cores (KMeans on digits: 5x), and it keeps the timings of this folder stable."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1):
        yield
