"""Fused layers and the fusion rules that put them in a Net's plan (``core/fusion.py``).

* ``BatchNormReLU``     BatchNorm2d -> ReLU                    y = max(BN(x), 0)
* ``BatchNormAddReLU``  BatchNorm2d -> Eltwise(sum) -> ReLU     y = max(BN(x) + r, 0)   (ResNet)

Each reads and updates the params and running statistics of the BatchNorm2d it replaces
(``BatchNorm2d.forward_cf`` / ``backward_cf``: the same code the layer runs alone), so a
fused Net and an unfused one compute the same numbers and save the same state. One pass
over memory replaces two or three in each direction, and no intermediate array is made:
the backward recomputes the ReLU's mask from the kept input (``functional.bn_act``).
"""
from __future__ import annotations

from ..backend import Shape
from ..core.fusion import FusedLayer, Match, chain, register_rule
from .activations import ReLU
from .batchnorm import BatchNorm2d
from .eltwise import Eltwise

__all__ = ["BatchNormReLU", "BatchNormAddReLU"]


class BatchNormReLU(FusedLayer):
    """BatchNorm2d followed by ReLU in one pass.

    Forward:  y = max(weight * (x - mean) * invstd + bias, 0).
    Backward: dz = dy * (y > 0) (the mask recomputed from x); then BatchNorm2d's backward of dz.

    Shapes: x (N, C, H, W) -> y (N, C, H, W) (channels-first in memory).
    Caches: BatchNorm2d's channels-first ctx (the input rows by reference, (C,) statistics).

    Example:
        >>> import numpy as np
        >>> from layerwise import BatchNorm2d, ReLU
        >>> f = BatchNormReLU(BatchNorm2d(), ReLU())
        >>> float(f.forward(np.random.default_rng(0).standard_normal((4, 3, 5, 5), np.float32)).min())
        0.0
    """

    num_inputs = 1

    def __init__(self, bn: BatchNorm2d, relu: ReLU, *, name: str | None = None) -> None:
        super().__init__(bn, relu, name=name)
        self.bn = bn

    def _output_shape(self, shape: Shape) -> Shape:
        return self.bn.setup(shape)

    def _forward(self, x):
        y, ctx = self.bn.forward_cf(x, relu=True)
        self.save(ctx=ctx)
        return y

    def _backward(self, dy):
        return self.bn.backward_cf(dy, self.cache["ctx"], need_dx=self.needs_input_grad(0))[0]


class BatchNormAddReLU(FusedLayer):
    """BatchNorm2d, then the sum with a residual ``r``, then ReLU, in one pass (ResNet's block end).

    Forward:  y = max(BN(x) + r, 0).
    Backward: dz = dy * (y > 0) (recomputed); dr = dz; dx = BatchNorm2d's backward of dz.

    Shapes: x, r (N, C, H, W) -> y (N, C, H, W).
    Caches: BatchNorm2d's channels-first ctx and the residual's rows (references).
    """

    num_inputs = 2

    def __init__(self, bn: BatchNorm2d, add: Eltwise, relu: ReLU, *, name: str | None = None) -> None:
        super().__init__(bn, add, relu, name=name)
        self.bn = bn

    def _output_shape(self, shape: Shape, r_shape: Shape) -> Shape:
        out = self.bn.setup(shape)
        if tuple(r_shape) != tuple(out):
            raise self.error(f"the residual has shape {tuple(r_shape)}, the BatchNorm output {tuple(out)}; "
                             "they must be equal to be summed")
        return out

    def _forward(self, x, r):
        y, ctx = self.bn.forward_cf(x, r=r, relu=True)
        self.save(ctx=ctx)
        return y

    def _backward(self, dy):
        return self.bn.backward_cf(dy, self.cache["ctx"], need_dx=self.needs_input_grad(0),
                                   need_dr=self.needs_input_grad(1))


def _plain_relu(layer) -> bool:
    return type(layer) is ReLU and layer.negative_slope == 0


def _bn2d(layer) -> bool:
    return type(layer) is BatchNorm2d


def _bn_add_relu(nodes, i, consumers, outs):
    if not chain(nodes, i, (BatchNorm2d, Eltwise, ReLU), consumers, outs):
        return None
    bn, add, relu = (n.layer for n in nodes[i:i + 3])
    if not (_bn2d(bn) and _plain_relu(relu) and add.op == "sum" and len(nodes[i + 1].inputs) == 2
            and (add.coeffs is None or all(c == 1.0 for c in add.coeffs))):
        return None
    return Match(BatchNormAddReLU(bn, add, relu), 3)


def _bn_relu(nodes, i, consumers, outs):
    if not chain(nodes, i, (BatchNorm2d, ReLU), consumers, outs):
        return None
    bn, relu = nodes[i].layer, nodes[i + 1].layer
    if not (_bn2d(bn) and _plain_relu(relu)):
        return None
    return Match(BatchNormReLU(bn, relu), 2)


register_rule("batchnorm+add+relu", _bn_add_relu)
register_rule("batchnorm+relu", _bn_relu)
