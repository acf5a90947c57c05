"""LeNet-5 (LeCun et al. 1998), with ReLU and max pooling as most modern re-implementations.

    net = lenet()                         # 1x28x28 (MNIST): 61,706 params
    net = lenet(padding=(2, 2))           # fits 8x8 digits as well
"""
from __future__ import annotations

from .. import layers as L
from ..core import register
from .common import Model

_ACTS = ("relu", "tanh", "sigmoid")


class LeNet(Model):
    """conv1-act-pool1-conv2-act-pool2-flatten-fc1-act-fc2-act-fc3.

    Args:
        num_classes: outputs of the last Linear.
        channels: maps of conv1 and conv2 (6, 16 in LeNet-5).
        hidden: widths of fc1 and fc2 (120, 84).
        kernel_size: both convs (5).
        padding: of conv1 and conv2; (2, 0) is LeNet-5 on 28x28 (its 32x32 inputs padded).
        activation: "relu", "tanh" or "sigmoid".
    """

    def __init__(self, num_classes: int = 10, *, channels: tuple[int, int] = (6, 16),
                 hidden: tuple[int, ...] = (120, 84), kernel_size: int = 5, padding: tuple[int, int] = (2, 0),
                 activation: str = "relu", init: str = "default", seed: int = 0, name: str | None = None) -> None:
        if activation not in _ACTS:
            raise ValueError(f"LeNet: activation must be one of {_ACTS}, got {activation!r}")
        if len(channels) != 2 or len(padding) != 2:
            raise ValueError(f"LeNet: channels and padding need two entries (conv1, conv2), got {channels}, {padding}")
        super().__init__(inputs="data", init=init, seed=seed, name=name or "lenet")
        act = {"relu": "ReLU", "tanh": "TanH", "sigmoid": "Sigmoid"}[activation]
        for i, (c, p) in enumerate(zip(channels, padding), start=1):
            self.add(L.Conv2d(c, kernel_size, padding=p), name=f"conv{i}")
            self.add(getattr(L, act)(), name=f"act{i}")
            self.add(L.MaxPool2d(2, stride=2), name=f"pool{i}")
        self.add(L.Flatten(), name="flatten")
        for i, h in enumerate(hidden, start=1):
            self.add(L.Linear(h), name=f"fc{i}")
            self.add(getattr(L, act)(), name=f"act_fc{i}")
        self.add(L.Linear(num_classes), name=f"fc{len(hidden) + 1}")


@register("model", "lenet", "lenet5")
def lenet(num_classes: int = 10, **kw) -> LeNet:
    """LeNet-5 (see LeNet for the options)."""
    return LeNet(num_classes, **kw)


__all__ = ["LeNet", "lenet"]
