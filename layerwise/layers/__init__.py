"""Layers: one file per family. Each module lists its public names in ``__all__``."""
from .activations import *  # noqa: F401,F403
from .batchnorm import *  # noqa: F401,F403
from .concat import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .eltwise import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .softmax import *  # noqa: F401,F403
from .sync_batchnorm import *  # noqa: F401,F403
from . import activations, batchnorm, concat, conv, dropout, eltwise, linear, pooling, shape, softmax, sync_batchnorm

__all__ = [n for m in (activations, batchnorm, concat, conv, dropout, eltwise, linear, pooling, shape, softmax, sync_batchnorm)
           for n in m.__all__]
