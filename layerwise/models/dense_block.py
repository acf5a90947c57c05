"""DenseNet's dense layer and a dense block whose concatenation never copies.

A dense block of L layers with growth rate k computes, for l = 1..L,

    x_l = H_l([x_0, x_1, ..., x_{l-1}])        (k new maps each)

and outputs [x_0, x_1, ..., x_L] (C_0 + L*k channels). Written with a Concat per layer,
layer l copies all C_0 + (l-1)k channels again: O(L^2) copies and O(L^2) memory.

DenseBlock instead allocates ONE feature buffer F of shape (N, C_0 + L*k, H, W) per
forward. x_0 is copied into F[:, :C_0] once; H_l reads the view F[:, :C_0+(l-1)k] (no copy)
and its k maps are written into F[:, C_0+(l-1)k : C_0+lk]. F itself is the block's output.

Backward shares ONE gradient buffer G of the same shape, G = dy (the gradient of F). Going
l = L..1, the slice G[:, C_0+(l-1)k : C_0+lk] is already complete (the output's gradient
plus every later layer's contribution), so H_l's backward reads it as a view, and the
gradient H_l returns for its input is added in place into G[:, :C_0+(l-1)k]: the fan-out
sums of the concatenation happen in G, in the same order a Net of Concat layers sums
them, so the results are bit-identical to that Net. dx_0 = G[:, :C_0].

Memory-efficient mode (Pleiss et al. 2017, "Memory-Efficient Implementation of DenseNets",
https://arxiv.org/abs/1707.06990): BN-ReLU-Conv1 of layer l reads C_0+(l-1)k channels, so
the caches of its first BN, ReLU and conv (normalised input, mask, conv input) add up to
O(L^2) over the block. With ``memory_efficient=True`` (the default) a dense layer drops
those caches right after its forward and keeps only a view of its input; its backward
recomputes BN-ReLU-Conv1 from that view (BN's running statistics are saved and restored so
they are updated once), then back-propagates through it and frees it again. Only one
layer's segment is alive at a time, so the block's activation memory grows linearly with L.
The price is one more forward of BN-ReLU-Conv1 per layer in backward (torchvision's
``memory_efficient`` checkpointing recomputes the same segment).
"""
from __future__ import annotations

from .. import layers as L
from ..backend import Array, Shape, get_array_module
from ..core import Layer, register


@register("layer", "DenseLayer")
class DenseLayer(Layer):
    """One dense layer H_l: BN-ReLU-Conv3x3(k), or with a bottleneck (DenseNet-B)
    BN-ReLU-Conv1x1(bn_size*k)-BN-ReLU-Conv3x3(k); Dropout after each conv when dropout > 0.

    Forward (bottleneck): h = Conv1(ReLU(BN1(x))); y = Conv2(ReLU(BN2(h))).
    Backward: the chain rule back through the same children, in reverse.
    Shapes: x (N, C, H, W) -> y (N, k, H, W).
    Caches: x (a view, only with memory_efficient) and the children's own caches; with
        memory_efficient the caches of norm1, relu1 and conv1 are dropped after forward and
        rebuilt by recomputation in backward.

    Children (torchvision's names): norm1, relu1, conv1, [drop1], [norm2, relu2, conv2, drop2].

    Args:
        growth_rate: k, the number of maps the layer adds.
        bottleneck: use the 1x1 bottleneck (DenseNet-B).
        bn_size: bottleneck width in units of k (4 in the paper).
        dropout: dropout ratio after each conv (0: no Dropout layers).
        memory_efficient: recompute BN-ReLU-Conv1 in backward instead of caching it.
    """

    def __init__(self, growth_rate: int, *, bottleneck: bool = True, bn_size: int = 4, dropout: float = 0.0,
                 memory_efficient: bool = True, name: str | None = None) -> None:
        super().__init__(name=name)
        if int(growth_rate) < 1:
            raise ValueError(f"DenseLayer: growth_rate must be >= 1, got {growth_rate}")
        if int(bn_size) < 1:
            raise ValueError(f"DenseLayer: bn_size must be >= 1, got {bn_size}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"DenseLayer: dropout must be in [0, 1), got {dropout}")
        self.growth_rate, self.bottleneck = int(growth_rate), bool(bottleneck)
        self.bn_size, self.dropout = int(bn_size), float(dropout)
        self.memory_efficient = bool(memory_efficient)
        k = self.growth_rate
        width = self.bn_size * k if self.bottleneck else k
        seg: list[tuple[str, Layer]] = [("norm1", L.BatchNorm2d()), ("relu1", L.ReLU()),
               ("conv1", L.Conv2d(width, 1, bias=False) if self.bottleneck
                else L.Conv2d(k, 3, padding=1, bias=False))]
        rest: list[tuple[str, Layer]] = []
        if self.dropout > 0:
            rest.append(("drop1", L.Dropout(self.dropout)))
        if self.bottleneck:
            rest += [("norm2", L.BatchNorm2d()), ("relu2", L.ReLU()),
                     ("conv2", L.Conv2d(k, 3, padding=1, bias=False))]
            if self.dropout > 0:
                rest.append(("drop2", L.Dropout(self.dropout)))
        self._segment = [self._child(n, m) for n, m in seg]   # recomputed when memory_efficient
        self._rest = [self._child(n, m) for n, m in rest]
        self._released = False

    def _child(self, name: str, layer: Layer) -> Layer:
        layer.name = name                    # errors then name the child: "BatchNorm2d 'norm1'"
        return self.add_child(name, layer)

    def _chain_setup(self, shape: Shape) -> Shape:
        for m in self._segment + self._rest:
            shape = m.setup(shape, rng=self.rng)
        return shape

    def _build(self, shape: Shape) -> None:
        self.expect_ndim(shape, 4, "(N, C, H, W)")
        self._chain_setup(shape)

    def _output_shape(self, shape: Shape) -> Shape:
        self.expect_ndim(shape, 4, "(N, C, H, W)")
        return self._chain_setup(shape)

    def _run_segment(self, x: Array) -> Array:
        for m in self._segment:
            x = m.forward(x)
        return x

    def _forward(self, x: Array) -> Array:
        h = self._run_segment(x)
        self._released = False
        if self.memory_efficient and self.cache_enabled:
            for m in self._segment:          # drop the O(C) caches: rebuilt in backward
                m.cache.clear()
                m._forwarded = False
            self._released = True
            self.save(x=x)                   # a view of the block's buffer: no memory
        for m in self._rest:
            h = m.forward(h)
        return h

    def _recompute_segment(self) -> None:
        """Re-run BN1-ReLU1-Conv1 on the cached input so their caches exist again; BN's
        buffers (running mean/var, batch count) are restored so they are updated once."""
        norm = self._segment[0]
        saved = {k: b.copy() for k, b in norm.named_buffers().items()}
        self._run_segment(self.cache["x"])
        for k, b in saved.items():
            cur = norm.named_buffers().get(k)
            if cur is not None and tuple(cur.shape) == tuple(b.shape):
                cur[...] = b
            else:
                norm.set_buffer(k, b)

    def _backward(self, dy: Array) -> Array:
        for m in reversed(self._rest):
            dy = m.backward(dy)
        if self._released:
            self._recompute_segment()
            self._released = False
        for m in reversed(self._segment):
            dy = m.backward(dy)
        return dy


@register("layer", "DenseBlock")
class DenseBlock(Layer):
    """A dense block of ``num_layers`` DenseLayers on one shared feature buffer.

    Forward: F[:, :C0] = x; for l = 1..L: F[:, c_l:c_l+k] = H_l(F[:, :c_l]), c_l = C0+(l-1)k;
        y = F (the concatenation [x, x_1, ..., x_L], never copied).
    Backward: G = dy; for l = L..1: G[:, :c_l] += dH_l(G[:, c_l:c_l+k]); dx = G[:, :C0]
        (the fan-out sums happen in place in the shared gradient buffer G).
    Shapes: x (N, C0, H, W) -> y (N, C0 + L*k, H, W).
    Caches: nothing of its own, the dense layers cache views of F (see DenseLayer).

    Children: denselayer1 .. denselayerL (torchvision's names).

    Args:
        num_layers: L.
        growth_rate: k.
        bottleneck, bn_size, dropout: as DenseLayer.
        memory_efficient: recompute BN-ReLU-Conv1 in backward (default True): the block's
            activation memory grows linearly with L instead of quadratically.

    Inside a Net, the fusion pass runs a block of bottleneck layers without dropout as one
    ``FusedDenseBlock`` (``layerwise.models.dense_fast``: the whole block in the channels-first
    layout with plain GEMMs and fused BN-ReLU kernels; same params, buffers and results up to
    rounding); this class is the readable reference it is tested against.

    Example:
        >>> import numpy as np
        >>> block = DenseBlock(2, growth_rate=4, bottleneck=True)
        >>> block(np.ones((1, 8, 5, 5), np.float32)).shape
        (1, 16, 5, 5)
    """

    def __init__(self, num_layers: int, growth_rate: int, *, bottleneck: bool = True, bn_size: int = 4,
                 dropout: float = 0.0, memory_efficient: bool = True, name: str | None = None) -> None:
        super().__init__(name=name)
        if int(num_layers) < 1:
            raise ValueError(f"DenseBlock: num_layers must be >= 1, got {num_layers}")
        self.num_layers, self.growth_rate = int(num_layers), int(growth_rate)
        self.dense_layers: list[DenseLayer] = []
        for i in range(self.num_layers):
            layer = DenseLayer(growth_rate, bottleneck=bottleneck, bn_size=bn_size, dropout=dropout,
                               memory_efficient=memory_efficient, name=f"denselayer{i + 1}")
            self.add_child(f"denselayer{i + 1}", layer)
            self.dense_layers.append(layer)

    @property
    def memory_efficient(self) -> bool:
        return all(m.memory_efficient for m in self.dense_layers)

    @memory_efficient.setter
    def memory_efficient(self, on: bool) -> None:
        for m in self.dense_layers:
            m.memory_efficient = bool(on)

    def _setup_layers(self, shape: Shape) -> Shape:
        self.expect_ndim(shape, 4, "(N, C, H, W)")
        n, c, h, w = shape
        k = self.growth_rate
        for i, layer in enumerate(self.dense_layers):
            out = layer.setup((n, c + i * k, h, w), rng=self.rng)
            if tuple(out) != (n, k, h, w):
                raise self.error(f"{layer!r} maps {(n, c + i * k, h, w)} to {tuple(out)}, expected {(n, k, h, w)}")
        return (n, c + self.num_layers * k, h, w)

    def _build(self, shape: Shape) -> None:
        self._setup_layers(shape)

    def _output_shape(self, shape: Shape) -> Shape:
        return self._setup_layers(shape)

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        n, c0, h, w = x.shape
        k = self.growth_rate
        feats = xp.empty((n, c0 + self.num_layers * k, h, w), dtype=x.dtype)  # F: all channels of the block
        feats[:, :c0] = x                                                    # the one copy of x_0
        for i, layer in enumerate(self.dense_layers):
            c = c0 + i * k
            feats[:, c:c + k] = layer.forward(feats[:, :c])                  # reads a view, writes its slice
        return feats

    def _backward(self, dy: Array) -> Array:
        xp = get_array_module(dy)
        k = self.growth_rate
        c0 = dy.shape[1] - self.num_layers * k                               # the block's input channels
        grad = xp.empty(dy.shape, dtype=dy.dtype)                            # G: one gradient buffer
        grad[...] = dy
        for i in reversed(range(self.num_layers)):
            c = c0 + i * k
            grad[:, :c] += self.dense_layers[i].backward(grad[:, c:c + k])   # fan-out sum in place
        return grad[:, :c0]


@register("layer", "DenseTransition")
class Transition(Layer):
    """DenseNet's transition: BN-ReLU-Conv1x1(out_channels)-[Dropout]-AvgPool2x2.

    Forward: y = AvgPool2x2(Conv1x1(ReLU(BN(x)))).
    Backward: the chain rule back through the same children, in reverse.
    Shapes: x (N, C, H, W) -> y (N, out_channels, floor(H/2), floor(W/2)).
    Caches: the children's caches.

    Children (torchvision's names): norm, relu, conv, [drop], pool.

    Inside a Net, the fusion pass runs it (without dropout, even H and W) as one
    ``FusedTransition`` (``layerwise.models.dense_fast``), which pools before the 1x1 conv.

    Args:
        out_channels: maps after the 1x1 conv (floor(theta * C) in DenseNet-C).
        dropout: dropout ratio after the conv (0: no Dropout layer).
        relu: keep the ReLU after BN (default True, the authors' code and torchvision); False
            gives the paper's text, BN-Conv1x1-AvgPool (no ``relu`` child; the fusion pass then
            leaves the transition unfused and says so).
    """

    def __init__(self, out_channels: int, *, dropout: float = 0.0, relu: bool = True,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.out_channels, self.dropout, self.relu = int(out_channels), float(dropout), bool(relu)
        seq: list[tuple[str, Layer]] = [("norm", L.BatchNorm2d()), ("relu", L.ReLU()),
                                        ("conv", L.Conv2d(self.out_channels, 1, bias=False))]
        if not self.relu:
            del seq[1]
        if self.dropout > 0:
            seq.append(("drop", L.Dropout(self.dropout)))
        seq.append(("pool", L.AvgPool2d(2, stride=2)))
        self._seq = [self.add_child(n, m) for n, m in seq]

    def _chain(self, shape: Shape) -> Shape:
        self.expect_ndim(shape, 4, "(N, C, H, W)")
        for m in self._seq:
            shape = m.setup(shape, rng=self.rng)
        return shape

    def _build(self, shape: Shape) -> None:
        self._chain(shape)

    def _output_shape(self, shape: Shape) -> Shape:
        return self._chain(shape)

    def _forward(self, x: Array) -> Array:
        for m in self._seq:
            x = m.forward(x)
        return x

    def _backward(self, dy: Array) -> Array:
        for m in reversed(self._seq):
            dy = m.backward(dy)
        return dy
