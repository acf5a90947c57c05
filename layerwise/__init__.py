"""layerwise: a deep-learning framework where every layer owns its forward and backward pass.

Public names only; see docs/ and docs/design.md for the contract.
"""
from . import _threads

_threads.apply()  # under mpiexec: each rank's BLAS/OpenMP/numba threads, set before NumPy loads (docs/distributed.md)

from . import backend, init
from .core import Layer, LayerError, LossLayer, Net, Param, Sequential, register
from .interop import export_onnx, load_caffe, load_onnx
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layers_all
from .losses import *  # noqa: F401,F403
from .losses import __all__ as _losses_all
from .models import *  # noqa: F401,F403
from .models import __all__ as _models_all
from .solvers import *  # noqa: F401,F403
from .solvers import __all__ as _solvers_all
from .tools import gradcheck

__version__ = "0.1.0"


def __getattr__(name: str):
    """``layerwise.estimators`` and ``layerwise.objectives`` load on first use: they pull in
    scikit-learn and SciPy, which ``import layerwise`` itself does not need."""
    if name in ("estimators", "objectives"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'layerwise' has no attribute {name!r}")



__all__ = (["Layer", "LossLayer", "LayerError", "Net", "Param", "Sequential", "register", "gradcheck",
            "backend", "init", "load_caffe", "load_onnx", "export_onnx"]
           + list(_layers_all) + list(_losses_all) + list(_solvers_all) + list(_models_all))
