"""Models: DenseNet (the whole family), ResNet (its baseline), LeNet, MLP, and a registry.

    net = build_model("densenet_bc", depth=100, growth_rate=12)
    registered_models()          # every name a config can use
"""
from __future__ import annotations

from ..core import Net
from ..core.registry import lookup, registered
from . import dense_fast as _dense_fast_mod  # noqa: F401  (registers the fusion rules of DenseNet's parts)
from . import densenet as _densenet_mod
from . import lenet as _lenet_mod
from . import mlp as _mlp_mod
from . import resnet as _resnet_mod
from .common import Model, ShortcutPad, chain
from .dense_block import DenseBlock, DenseLayer
from .densenet import *  # noqa: F401,F403
from .lenet import *  # noqa: F401,F403
from .mlp import *  # noqa: F401,F403
from .resnet import *  # noqa: F401,F403


def build_model(name: str, **kwargs) -> Net:
    """Build a registered model by name (case-insensitive), e.g. ``build_model("resnet110")``.

    Raises:
        KeyError: unknown name; the message lists the known models.
    """
    try:
        factory = lookup("model", name)
    except KeyError as e:
        raise KeyError(f"build_model: {e.args[0]}") from None
    return factory(**kwargs)


def registered_models() -> list[str]:
    """The names ``build_model`` accepts."""
    return registered("model")


__all__ = (["build_model", "registered_models", "Model", "DenseBlock", "DenseLayer", "ShortcutPad", "chain"]
           + _densenet_mod.__all__ + _resnet_mod.__all__ + _lenet_mod.__all__ + _mlp_mod.__all__)
