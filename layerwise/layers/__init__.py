"""Layers: one file per family. Each module lists its public names in ``__all__``."""
from . import (  # noqa: E401
                     accuracy,
                     activations,
                     batchnorm,
                     concat,
                     conv,
                     deconv,
                     dropout,
                     eltwise,
                     fused,
                     linear,
                     lrn,
                     pad,
                     pooling,
                     power,
                     scale,
                     shape,
                     slicing,
                     softmax,
                     sync_batchnorm,
)
from .accuracy import *  # noqa: F401,F403
from .activations import *  # noqa: F401,F403
from .batchnorm import *  # noqa: F401,F403
from .concat import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .deconv import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .eltwise import *  # noqa: F401,F403
from .fused import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .lrn import *  # noqa: F401,F403
from .pad import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .power import *  # noqa: F401,F403
from .scale import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .slicing import *  # noqa: F401,F403
from .softmax import *  # noqa: F401,F403
from .sync_batchnorm import *  # noqa: F401,F403

__all__ = [n for m in (activations, batchnorm, concat, conv, dropout, eltwise, fused, linear, pooling, shape, softmax,
                     accuracy, deconv, lrn, pad, power, scale, slicing, sync_batchnorm)
           for n in m.__all__]
