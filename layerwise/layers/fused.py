"""Fused layers and the fusion rules that put them in a Net's plan (``core/fusion.py``).

* ``BatchNormReLU``     BatchNorm2d -> ReLU                    y = max(BN(x), 0)
* ``BatchNormAddReLU``  BatchNorm2d -> Eltwise(sum) -> ReLU     y = max(BN(x) + r, 0)   (ResNet)
* ``ConvBatchNorm``     Conv2d -> BatchNorm2d [-> ReLU | -> Eltwise(sum) -> ReLU]
                        y = act(BN(conv(x)) [+ r])              (ResNet, VGG: every conv)

Each reads and updates the params and running statistics of the BatchNorm2d it replaces
(``BatchNorm2d.forward_cf`` / ``backward_cf``: the same code the layer runs alone), so a
fused Net and an unfused one compute the same numbers and save the same state. One pass
over memory replaces two or three in each direction, and no intermediate array is made:
the backward recomputes the ReLU's mask from the kept input (``functional.bn_act``).
"""
from __future__ import annotations

from ..backend import Shape, get_array_module
from ..core.fusion import FusedLayer, Match, chain, register_rule
from ..functional import bn_act, cnhw
from ..functional.conv import conv2d_method, conv2d_output_shape, input_grid, tap_grid
from ..functional.layout import from_cnhw
from ..functional.winograd import Epilogue
from .activations import ReLU
from .batchnorm import BatchNorm2d
from .conv import Conv2d
from .eltwise import Eltwise

__all__ = ["BatchNormReLU", "BatchNormAddReLU", "ConvBatchNorm"]


def _consumer_grid(layer, y_shape, dtype, xp):
    """The (N, C, H, W) view to write a fused layer's output into: the interior of the input
    grid of the convolution that reads it (``layer.out_conv``, told by the Net: see
    ``Layer.set_output_conv``), so that convolution needs no copy of its input
    (``functional.conv.input_grid``); None otherwise. While training, the grid is a buffer
    of the layer's workspace, kept across steps (its zero gaps are written once); otherwise a
    ``bn_act.Grid`` (gaps unset, for the writer to zero) recycled from the workspace."""
    conv = layer.out_conv
    if conv is None or getattr(conv, "weight", None) is None or conv.weight.data.dtype != dtype:
        return None
    ws = layer.workspace if layer.cache_enabled else None
    G, view = input_grid(tuple(y_shape), conv.weight.shape, conv.padding, conv.dilation, dtype, xp, ws=ws,
                         name=f"conv.input_grid:{id(conv)}", zero_gaps=False,
                         recycle=None if ws is not None else layer.workspace)
    if view is None or ws is not None:
        return view
    g = tap_grid(tuple(y_shape), conv.weight.shape, conv.padding, conv.dilation)
    return bn_act.Grid(G, g.lead, g.Hg, g.Wg)       # new, gaps unset: the writer zeroes them as it goes


class _GridWriter(FusedLayer):
    """A fused layer that can write its output into the input grid of the convolution that
    reads it (``out_conv``)."""

    out_conv: Conv2d | None = None

    def set_output_conv(self, conv) -> None:
        self.out_conv = conv if isinstance(conv, Conv2d) else None


class BatchNormReLU(_GridWriter):
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
        y, ctx = self.bn.forward_cf(x, relu=True, out=_consumer_grid(self, x.shape, x.dtype, get_array_module(x)))
        self.save(ctx=ctx)
        return y

    def _backward(self, dy):
        return self.bn.backward_cf(dy, self.cache["ctx"], need_dx=self.needs_input_grad(0))[0]


class BatchNormAddReLU(_GridWriter):
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
        y, ctx = self.bn.forward_cf(x, r=r, relu=True,
                                    out=_consumer_grid(self, x.shape, x.dtype, get_array_module(x)))
        self.save(ctx=ctx)
        return y

    def _backward(self, dy):
        return self.bn.backward_cf(dy, self.cache["ctx"], need_dx=self.needs_input_grad(0),
                                   need_dr=self.needs_input_grad(1))


class ConvBatchNorm(_GridWriter):
    """Conv2d, then BatchNorm2d, then optionally ReLU, or the sum with a residual ``r`` and ReLU.

    Forward (training, or eval with gradients): z = conv(x); y = act(BN(z) [+ r]), BN reading
        z where the convolution computed it (no copy).
    Forward (inference): y = act(conv(x; s*W, s*b + t) [+ r]), BN folded into the weights.
    Backward: dz = BN's backward of dy (written into the convolution's gradient grid);
        dx, dW, db = the convolution's backward of dz; dr = dy through the ReLU.

    Shapes: x (N, C, H, W) [, r (N, O, Ho, Wo)] -> y (N, O, Ho, Wo) (channels-first in memory).
    Caches: the convolution's ctx and BatchNorm2d's channels-first ctx.

    Example:
        >>> import numpy as np
        >>> from layerwise import BatchNorm2d, Conv2d, ReLU
        >>> f = ConvBatchNorm(Conv2d(4, 3, padding=1), BatchNorm2d(), ReLU())
        >>> f.forward(np.ones((2, 3, 5, 5), np.float32)).shape
        (2, 4, 5, 5)
    """

    def __init__(self, conv: Conv2d, bn: BatchNorm2d, relu: ReLU | None = None, add: Eltwise | None = None, *,
                 name: str | None = None) -> None:
        if add is not None and relu is None:
            raise ValueError("ConvBatchNorm: a residual sum is fused only together with the ReLU after it")
        parts = (conv, bn) + ((add,) if add is not None else ()) + ((relu,) if relu is not None else ())
        super().__init__(*parts, name=name)
        self.conv, self.bn = conv, bn
        self.relu = relu is not None
        self.residual = add is not None
        self.num_inputs = 2 if self.residual else 1

    def input_conv(self, i: int = 0) -> Conv2d | None:
        return self.conv.input_conv(i) if i == 0 else None

    def _output_shape(self, shape: Shape, r_shape: Shape | None = None) -> Shape:
        out = self.bn.setup(self.conv.setup(shape))
        if self.residual and tuple(r_shape or ()) != tuple(out):
            raise self.error(f"the residual has shape {tuple(r_shape or ())}, the BatchNorm output {tuple(out)}; "
                             "they must be equal to be summed")
        return out

    def _forward(self, x, r=None):
        if not self.cache_enabled and not self.training:
            return self._folded(x, r)
        z, cctx = self.conv.forward_cf(x, crop=False, workspace=self.workspace if self.cache_enabled else None)
        y, bctx = self.bn.forward_cf(z, r=r, relu=self.relu,
                                     out=_consumer_grid(self, z.shape, z.dtype, get_array_module(z)))
        self.save(conv=cctx, bn=bctx)
        return y

    def _folded(self, x, r):
        """Inference: BN folded into the convolution's weight and bias (float64, then x's dtype).
        Where the convolution runs Winograd, the shift, the residual and the ReLU are applied
        by its output transform as it writes y into the next convolution's grid (or into y's
        own array): one pass over memory instead of two (``winograd.Epilogue``)."""
        xp = get_array_module(x)
        s, t = self.bn.folded_scale_shift()
        W = self.conv.weight.data
        Wf = (W.astype(xp.float64) * s.reshape(-1, 1, 1, 1)).astype(W.dtype)
        if self.conv.bias is not None:
            t = t + s * self.conv.bias.data.astype(xp.float64)
        c = self.conv
        if (conv2d_method(tuple(x.shape), W.shape, c.stride, c.padding, c.dilation, c.groups, c.impl) == "winograd"
                and (c.impl == "winograd" or cnhw._use_numba(x))):
            return self._folded_winograd(x, r, Wf, t.astype(x.dtype), xp)
        z, _ = self.conv.forward_cf(x, crop=False, weight=Wf, workspace=self.workspace)
        Z = z.transpose(1, 0, 2, 3)                                             # (O, N, Ho, Wo), maybe strided
        out = _consumer_grid(self, z.shape, z.dtype, xp)
        ones = xp.ones(Z.shape[0], dtype=z.dtype)
        R = None if r is None else r.transpose(1, 0, 2, 3)
        if isinstance(out, bn_act.Grid):
            return from_cnhw(bn_act.forward_into_grid(Z, ones, t.astype(z.dtype), R, self.relu, out))
        Y = xp.empty(Z.shape, dtype=z.dtype) if out is None else out.transpose(1, 0, 2, 3)
        bn_act.forward(Z, ones, t.astype(z.dtype), R, self.relu, Y)
        return from_cnhw(Y)

    def _folded_winograd(self, x, r, Wf, t, xp):
        c = self.conv
        N, O, Ho, Wo = conv2d_output_shape(tuple(x.shape), Wf.shape, c.stride, c.padding, c.dilation, c.groups)
        out = _consumer_grid(self, (N, O, Ho, Wo), x.dtype, xp)
        R = None if r is None else r.transpose(1, 0, 2, 3)
        if isinstance(out, bn_act.Grid):         # the next convolution's grid, gaps unset
            ep = Epilogue(t, self.relu, out.G, out.lead, out.Hg, out.Wg, True, R)
        else:                                    # no convolution reads y: y's own (O, N*Ho*Wo) array
            ep = Epilogue(t, self.relu, self.workspace.recycled((O, N * Ho * Wo), x.dtype, xp), 0, Ho, Wo, False, R)
        y, _ = c.forward_cf(x, crop=False, weight=Wf, workspace=self.workspace, epilogue=ep)
        return y

    def _backward(self, dy):
        cctx, bctx = self.cache["conv"], self.cache["bn"]
        need_dx = self.needs_input_grad(0)
        need_dr = self.residual and self.needs_input_grad(1)
        dx = dr = None
        if need_dx or self.conv.needs_param_grads():
            buf, view = self.conv.grad_buffer(cctx, self.workspace)
            dz, dr = self.bn.backward_cf(dy, bctx, need_dx=True, need_dr=need_dr, out=view)
            dx = self.conv.backward_cf(None if buf is not None else dz, cctx, need_dx=need_dx, dy_grid=buf,
                                       crop=False)
        else:
            _, dr = self.bn.backward_cf(dy, bctx, need_dx=False, need_dr=need_dr)
        return (dx, dr) if self.residual else dx


def _plain_relu(layer) -> bool:
    return type(layer) is ReLU and layer.negative_slope == 0


def _bn2d(layer) -> bool:
    return type(layer) is BatchNorm2d


def _bn_add_relu(nodes, i, consumers, outs):
    if not chain(nodes, i, (BatchNorm2d, Eltwise, ReLU), consumers, outs):
        return None
    bn, add, relu = (n.layer for n in nodes[i:i + 3])
    if not (_bn2d(bn) and _plain_relu(relu) and _plain_sum(nodes[i + 1])):
        return None
    return Match(BatchNormAddReLU(bn, add, relu), 3)


def _bn_relu(nodes, i, consumers, outs):
    if not chain(nodes, i, (BatchNorm2d, ReLU), consumers, outs):
        return None
    bn, relu = nodes[i].layer, nodes[i + 1].layer
    if not (_bn2d(bn) and _plain_relu(relu)):
        return None
    return Match(BatchNormReLU(bn, relu), 2)


def _conv_bn(nodes, i, consumers, outs):
    """conv + bn + add + relu, conv + bn + relu, or conv + bn (the longest that matches)."""
    if not chain(nodes, i, (Conv2d, BatchNorm2d), consumers, outs):
        return None
    conv, bn = nodes[i].layer, nodes[i + 1].layer
    if type(conv) is not Conv2d or not _bn2d(bn):
        return None
    tail = nodes[i + 2:i + 4]
    if (chain(nodes, i, (Conv2d, BatchNorm2d, Eltwise, ReLU), consumers, outs) and _plain_relu(tail[1].layer)
            and _plain_sum(nodes[i + 2])):
        return Match(ConvBatchNorm(conv, bn, tail[1].layer, tail[0].layer), 4)
    if chain(nodes, i, (Conv2d, BatchNorm2d, ReLU), consumers, outs) and _plain_relu(tail[0].layer):
        return Match(ConvBatchNorm(conv, bn, tail[0].layer), 3)
    return Match(ConvBatchNorm(conv, bn), 2)


def _plain_sum(node) -> bool:
    add = node.layer
    return add.op == "sum" and len(node.inputs) == 2 and (add.coeffs is None or all(c == 1.0 for c in add.coeffs))


register_rule("conv+batchnorm", _conv_bn)
register_rule("batchnorm+add+relu", _bn_add_relu)
register_rule("batchnorm+relu", _bn_relu)
