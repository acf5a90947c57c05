"""Pieces shared by the model builders: the Model base (He init after setup), a chain
builder with named nodes, and ShortcutPad (ResNet's parameter-free shortcut, option A).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..backend import Array, Shape
from ..core import Layer, Net, register


def chain(layers: Sequence[tuple[str, Layer]], *, name: str | None = None, seed: int = 0) -> Net:
    """A Net that runs ``layers`` one after the other, each node named as given.

    Unlike ``Sequential`` (children "0", "1", ...) the names are chosen, so parameter names
    match torchvision's (``features.conv0.weight``, ``transition1.norm.running_mean``).
    """
    net = Net(inputs="x", seed=seed, name=name)
    for lname, layer in layers:
        net.add(layer, outputs=lname, name=lname)
    return net


class Model(Net):
    """A Net that initialises its weights once, right after its params are first created.

    Args:
        init: "msra_fan_out" (the DenseNet authors' code and the ResNet paper: conv weights
            ~ N(0, 2 / (kh*kw*out))), "msra_fan_in" (torchvision's kaiming_normal_) or
            "default" (keep each layer's own filler).
        (the rest as Net)

    Whatever the choice, BatchNorm weights are set to 1 and biases to 0, and Linear biases
    to 0, as both the authors' code and torchvision do.
    """

    def __init__(self, inputs="data", outputs=None, *, init: str = "msra_fan_out", seed: int = 0,
                 name: str | None = None) -> None:
        super().__init__(inputs=inputs, outputs=outputs, seed=seed, name=name)
        if init not in ("msra_fan_out", "msra_fan_in", "default"):
            raise ValueError(f"{type(self).__name__}: init must be 'msra_fan_out', 'msra_fan_in' or "
                             f"'default', got {init!r}")
        self.init = init
        self._initialised = False

    def setup(self, *in_shapes: Shape, rng: np.random.Generator | None = None, dtype=None):
        out = super().setup(*in_shapes, rng=rng, dtype=dtype)
        if not self._initialised:
            self.init_weights()
            self._initialised = True
        return out

    def load_state_dict(self, state, strict: bool = True) -> None:
        """Load weights by name: a dict of arrays or torch tensors (torchvision's names work for the
        models that mirror torchvision), or a ``.safetensors`` / ``.npz`` file. Sets the net up
        first if needed; ``num_batches_tracked`` is optional; a misfit lists every bad key
        (``layerwise.interop.torch_weights``)."""
        from ..interop.torch_weights import load_torch_state_dict
        load_torch_state_dict(self, state, strict=strict)

    def default_input_shape(self, state=None) -> tuple[int, ...] | None:
        """The (1, C, H, W) used to set the net up before loading weights into it: C from the first
        conv weight in ``state`` (default 3), H = W = 224 for ImageNet stems, else 32."""
        stem = getattr(getattr(self, "config", None), "stem", None) or getattr(self, "stem", None)
        first = next((n for n in self.modules() if type(n).__name__ == "Conv2d"), None)
        if first is None:
            return None
        c = 3
        for k, v in (state or {}).items():
            if k.endswith("conv1.weight") or k.endswith("conv0.weight"):
                c = int(np.shape(v)[1])
                break
        hw = 224 if stem == "imagenet" else 32
        return (1, c, hw, hw)

    def init_weights(self) -> None:
        """(Re)initialise every conv, BatchNorm and Linear below this net from ``self.rng``."""
        if self.init == "default":
            return
        mode = "fan_out" if self.init == "msra_fan_out" else "fan_in"
        for m in self.modules():
            kind = type(m).__name__
            params = m._params
            w = params.get("weight")
            if kind.startswith("Conv") and w is not None:
                k = int(np.prod(w.shape[2:]))
                fan = (w.shape[0] if mode == "fan_out" else w.shape[1]) * k
                std = math.sqrt(2.0 / fan)
                w.data[...] = (std * self.rng.standard_normal(w.shape)).astype(w.dtype)
                if "bias" in params:
                    params["bias"].data[...] = 0
            elif kind.startswith("BatchNorm"):
                if w is not None:
                    w.data[...] = 1
                if "bias" in params:
                    params["bias"].data[...] = 0
            elif kind == "Linear" and "bias" in params:
                params["bias"].data[...] = 0


@register("layer", "ShortcutPad", "ShortcutA")
class ShortcutPad(Layer):
    """ResNet's parameter-free shortcut "option A": subsample by ``stride``, zero-pad channels.

    Forward: y[:, p:p+C] = x[:, :, ::s, ::s], zero elsewhere, p = (C_out - C) // 2.
    Backward: dx = 0; dx[:, :, ::s, ::s] = dy[:, p:p+C].
    Shapes: x (N, C, H, W) -> y (N, C_out, ceil(H/s), ceil(W/s)).  Caches: nothing.

    Args:
        out_channels: C_out >= C.
        stride: the subsampling step s.
    """

    def __init__(self, out_channels: int, stride: int = 1, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if int(out_channels) < 1 or int(stride) < 1:
            raise ValueError(f"ShortcutPad: out_channels and stride must be >= 1, got {out_channels}, {stride}")
        self.out_channels, self.stride = int(out_channels), int(stride)

    def _output_shape(self, shape: Shape) -> Shape:
        self.expect_ndim(shape, 4, "(N, C, H, W)")
        n, c, h, w = shape
        if c > self.out_channels:
            raise self.error(f"input has {c} channels, more than out_channels={self.out_channels}; "
                             "use a projection shortcut (1x1 conv) to reduce channels")
        s = self.stride
        return (n, self.out_channels, -(-h // s), -(-w // s))

    def _forward(self, x: Array) -> Array:
        from ..backend import get_array_module
        xp = get_array_module(x)
        s, c = self.stride, x.shape[1]
        p = (self.out_channels - c) // 2
        y = xp.zeros(self._out_shape, dtype=x.dtype)
        y[:, p:p + c] = x[:, :, ::s, ::s]
        return y

    def _backward(self, dy: Array) -> Array:
        from ..backend import get_array_module
        xp = get_array_module(dy)
        s = self.stride
        assert self._in_shapes is not None   # set by the forward that backward follows
        shape = self._in_shapes[0]
        c = shape[1]
        p = (self.out_channels - c) // 2
        dx = xp.zeros(shape, dtype=dy.dtype)
        dx[:, :, ::s, ::s] = dy[:, p:p + c]
        return dx
