"""A multi-layer perceptron: Flatten, then (Linear [BatchNorm1d] act [Dropout]) per hidden layer, Linear.

    net = mlp(hidden=(256, 128), num_classes=10)
"""
from __future__ import annotations

from .. import layers as L
from ..core import register
from .common import Model

_ACTS = {"relu": "ReLU", "tanh": "TanH", "sigmoid": "Sigmoid", "gelu": "GELU", "elu": "ELU", "silu": "SiLU"}


class MLP(Model):
    """Fully connected classifier/regressor on any input (it is flattened first).

    Args:
        hidden: widths of the hidden layers (fc1, fc2, ...).
        num_classes: outputs of the last Linear.
        activation: one of relu, tanh, sigmoid, gelu, elu, silu.
        dropout: dropout ratio after each hidden activation (0: none).
        batchnorm: BatchNorm1d after each hidden Linear.
    """

    def __init__(self, hidden: tuple[int, ...] = (256, 128), num_classes: int = 10, *, activation: str = "relu",
                 dropout: float = 0.0, batchnorm: bool = False, init: str = "default", seed: int = 0,
                 name: str | None = None) -> None:
        if activation not in _ACTS:
            raise ValueError(f"MLP: activation must be one of {sorted(_ACTS)}, got {activation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP: dropout must be in [0, 1), got {dropout}")
        if any(int(h) < 1 for h in hidden):
            raise ValueError(f"MLP: hidden widths must be >= 1, got {hidden}")
        super().__init__(inputs="data", init=init, seed=seed, name=name or "mlp")
        self.add(L.Flatten(), name="flatten")
        for i, h in enumerate(hidden, start=1):
            self.add(L.Linear(int(h)), name=f"fc{i}")
            if batchnorm:
                self.add(L.BatchNorm1d(), name=f"bn{i}")
            self.add(getattr(L, _ACTS[activation])(), name=f"act{i}")
            if dropout > 0:
                self.add(L.Dropout(dropout), name=f"drop{i}")
        self.add(L.Linear(int(num_classes)), name=f"fc{len(hidden) + 1}")


@register("model", "mlp")
def mlp(hidden: tuple[int, ...] = (256, 128), num_classes: int = 10, **kw) -> MLP:
    """An MLP (see MLP for the options)."""
    return MLP(tuple(hidden), num_classes, **kw)


__all__ = ["MLP", "mlp"]
