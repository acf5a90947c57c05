"""The layer protocol: Layer and LossLayer.

A layer is Caffe's template method in Python:

* ``setup(*in_shapes)`` works on shapes alone: checks arity and shapes, creates the
  params (once) and returns the output shape(s). ``forward`` calls it by itself the
  first time a new input shape is seen, so no ``in_channels`` is ever needed.
* ``forward(*xs)`` checks the inputs, then runs the subclass's ``_forward``, which
  computes the output and caches (``self.save(...)``) only what ``_backward`` reads.
* ``backward(*dys)`` runs the subclass's ``_backward``, which returns one gradient per
  input (``None`` where there is none) and ADDS param gradients into ``Param.grad``;
  the cache is freed afterwards.

A subclass writes ``_build`` (create params from the input shapes), ``_output_shape``
(validate and infer), ``_forward`` and ``_backward``; nothing else.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..backend import Array, Shape, get_array_module, is_array, to_device
from .param import Param


class NamedParams(dict[str, Param]):
    """``name -> Param``, as ``Layer.named_params()`` returns it, plus ``owner``: the layer the params
    belong to. A plain dict in every other respect. A solver built from the params of a layer that has
    none yet (not built) keeps ``owner`` and binds its params on first use (Keras's optimizers build
    their slots the same way), so ``SGD(net.named_params(), ...)`` may come before the first forward.
    """

    def __init__(self, *args: Any, owner: Layer | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.owner = owner

class LayerError(ValueError):
    """Bad input to a layer: the message names the layer, what was expected and the fix."""


def _as_shape(s: Any) -> Shape:
    return tuple(int(d) for d in s)


class Layer:
    """Base class of every layer.

    Class attributes:
        num_inputs: how many inputs ``forward`` takes (``None``: one or more).

    Attributes:
        name: the layer's name (a Net sets it to the node name); used in every error.
        training: train-mode behaviour (Dropout drops, BatchNorm uses batch statistics).
        cache_enabled: whether ``forward`` keeps what ``backward`` needs. ``eval()``
            turns it off (nothing is cached at inference) unless ``eval(grad=True)``.
        cache: the arrays kept for backward, by name (see each layer's "Caches:" line).
    """

    num_inputs: int | None = 1

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or type(self).__name__.lower()
        self.training = True
        self.cache_enabled = True
        self.cache: dict[str, Any] = {}
        self._params: dict[str, Param] = {}
        self._buffers: dict[str, Array] = {}
        self._children: dict[str, Layer] = {}
        self._built = False
        self._in_shapes: tuple[Shape, ...] | None = None
        self._out_shape: Any = None
        self._rng: np.random.Generator | None = None
        self._forwarded = False
        self.propagate_down: tuple[bool, ...] | None = None

    # ------------------------------------------------------------------ naming
    def __repr__(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def error(self, msg: str) -> LayerError:
        """A LayerError whose message starts with this layer's type and name."""
        return LayerError(f"{self!r}: {msg}")

    # ------------------------------------------------------------- shape phase
    def setup(self, *in_shapes: Shape, rng: np.random.Generator | None = None, dtype: Any = None):
        """Check input shapes, create params on first call, return the output shape(s).

        Args:
            *in_shapes: one shape per input, batch dimension included.
            rng: generator for the fillers (default: seeded 0, so builds are repeatable).
            dtype: dtype of the params when they are first created (default float32).
        """
        in_shapes = tuple(_as_shape(s) for s in in_shapes)
        self._check_arity(len(in_shapes))
        if rng is not None:
            self._rng = rng
        if not self._built:
            if self._rng is None:
                self._rng = np.random.default_rng(0)
            self._build(*in_shapes)
            if dtype is not None:
                self.astype(dtype)
            self._built = True
        out = self._output_shape(*in_shapes)
        self._in_shapes, self._out_shape = in_shapes, out
        return out

    # Subclasses name their inputs (``_build(self, shape)``, ``_output_shape(self, pred, target)``);
    # the ``*Any, **Any`` signature here is the one mypy accepts any such override of.
    def _build(self, *in_shapes: Any, **_: Any) -> None:
        """Create params from the input shapes (once). Default: no params."""

    def _output_shape(self, *in_shapes: Any, **_: Any) -> Any:
        """Validate the input shapes and return the output shape. Default: same as input 0."""
        return in_shapes[0]

    def _check_arity(self, n: int) -> None:
        if self.num_inputs is None:
            if n < 1:
                raise self.error("expected at least one input, got none")
        elif n != self.num_inputs:
            raise self.error(f"expected {self.num_inputs} input(s), got {n}")

    def expect_ndim(self, shape: Shape, ndim: int | tuple[int, ...], layout: str) -> None:
        """Raise a LayerError unless ``len(shape)`` is ``ndim`` (or one of them)."""
        ok = (ndim,) if isinstance(ndim, int) else ndim
        if len(shape) not in ok:
            raise self.error(
                f"expected a {'/'.join(map(str, ok))}-D input of shape {layout}, got shape {tuple(shape)}"
            )

    @property
    def built(self) -> bool:
        return self._built

    @property
    def in_shapes(self) -> tuple[Shape, ...] | None:
        """The input shapes of the last ``setup`` (None before it)."""
        return self._in_shapes

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = np.random.default_rng(0)
        return self._rng

    # --------------------------------------------------------- compute phase
    def forward(self, *xs: Array):
        """Compute the output(s); cache what backward needs when ``cache_enabled``."""
        self._check_arity(len(xs))
        for i, x in enumerate(xs):
            if not is_array(x):
                raise self.error(f"input {i} must be a NumPy/CuPy array, got {type(x).__name__}")
        shapes = tuple(tuple(x.shape) for x in xs)
        if shapes != self._in_shapes:
            dtype = next((x.dtype for x in xs if x.dtype.kind == "f"), None)
            was_built = self._built
            self.setup(*shapes, dtype=dtype)
            if not was_built and get_array_module(*xs) is not np:
                self.to("gpu")  # fillers draw on the host; a lazily built layer follows its input's device
        self._check_dtype(xs)
        self.cache.clear()
        self._forwarded = False
        out = self._forward(*xs)
        self._forwarded = self.cache_enabled
        return out

    def backward(self, *dys: Array):
        """Return the gradient w.r.t. each input (a tuple for several inputs).

        Adds the gradients of this layer's params into ``Param.grad``; frees the cache.
        """
        if not self._forwarded:
            raise self.error(
                "backward() called without a preceding forward() that cached its inputs "
                f"(expected input shapes {self._in_shapes}); call forward() first, in training "
                "mode or after eval(grad=True)"
            )
        if len(dys) == 1 and is_array(dys[0]) and isinstance(self._out_shape, tuple) \
                and all(isinstance(d, int) for d in self._out_shape) \
                and tuple(dys[0].shape) != self._out_shape:
            raise self.error(
                f"backward() got a gradient of shape {tuple(dys[0].shape)}, expected the output "
                f"shape {self._out_shape}"
            )
        try:
            return self._backward(*dys)
        finally:
            self.cache.clear()
            self._forwarded = False

    def needs_input_grad(self, i: int = 0) -> bool:
        """Whether ``backward`` must return the gradient of input ``i`` (Caffe's ``propagate_down``).

        A Net sets ``propagate_down`` on each of its layers before back-propagating: an input
        needs no gradient when nothing upstream of it is trained (the images, a frozen stem).
        ``None`` (a layer used on its own) means every input needs one.
        """
        pd = self.propagate_down
        return True if pd is None else bool(pd[i])

    def needs_param_grads(self) -> bool:
        """Whether any param of this layer (or its children) needs a gradient."""
        return any(p.needs_grad for p in self.params())

    # Layout hand-over: after planning, a Net asks each reader of a blob which convolution
    # reads it (``input_conv``) and tells the blob's producer (``set_output_conv``), so a
    # producer that can write its output straight into that convolution's input grid
    # (``functional.conv.input_grid``) does, and the convolution copies nothing.
    def input_conv(self, i: int = 0) -> Layer | None:
        """The convolution that reads input ``i`` of this layer off a zero-gapped input grid
        (``functional.conv.input_grid``), or None (the default: no such convolution)."""
        return None

    def set_output_conv(self, conv: Layer | None) -> None:
        """Told by the Net which convolution reads this layer's (single) output, or None.
        Layers that can write their output into that convolution's input grid remember it;
        the default ignores it."""
        return None

    def _forward(self, *xs: Array):
        raise NotImplementedError(f"{type(self).__name__} must implement _forward")

    def _backward(self, *dys: Array):
        raise NotImplementedError(f"{type(self).__name__} must implement _backward")

    def __call__(self, *xs: Array):
        return self.forward(*xs)

    def save(self, **arrays: Any) -> None:
        """Keep arrays for backward (only when caching is on)."""
        if self.cache_enabled:
            self.cache.update(arrays)

    def _check_dtype(self, xs) -> None:
        if not self._params:
            return
        dtype = next(iter(self._params.values())).dtype
        for i, x in enumerate(xs):
            if x.dtype.kind != "f":   # integer/bool input to a layer with params: one rule for every layer
                raise self.error(f"input {i} has dtype {x.dtype}, but the layer computes in floating point "
                                 f"(params {dtype}); convert the input with x.astype('{dtype}')")
            if x.dtype != dtype:
                raise self.error(
                    f"input {i} has dtype {x.dtype} but the layer's params are {dtype}; "
                    f"convert the input with x.astype('{dtype}') or the layer with layer.astype('{x.dtype}')"
                )

    # ------------------------------------------------------ params and state
    def add_param(self, name: str, data: Array, lr_mult: float = 1.0, decay_mult: float = 1.0) -> Param:
        p = Param(data, name=name, lr_mult=lr_mult, decay_mult=decay_mult)
        self._params[name] = p
        return p

    def add_buffer(self, name: str, data: Array) -> None:
        self._buffers[name] = data

    def buffer(self, name: str) -> Array:
        return self._buffers[name]

    def set_buffer(self, name: str, data: Array) -> None:
        if name not in self._buffers:
            raise KeyError(f"{self!r} has no buffer {name!r}")
        self._buffers[name] = data

    def add_child(self, name: str, layer: Layer) -> Layer:
        if not isinstance(layer, Layer):
            raise TypeError(f"{self!r}: child {name!r} must be a Layer, got {type(layer).__name__}")
        if name in self._children:
            raise self.error(f"a child named {name!r} already exists")
        layer.name = name  # errors from inside a composite layer then name the child
        self._children[name] = layer
        return layer

    def children(self) -> dict[str, Layer]:
        return dict(self._children)

    def named_params(self, prefix: str = "") -> NamedParams:
        """All params, recursively, by dotted name (PyTorch's ``named_parameters``).

        The dict also remembers this layer (``.owner``): a solver given the params of a layer that
        is not built yet (no forward or ``setup`` so far, so no params) binds them when they exist.
        """
        out = NamedParams(owner=self)
        out.update((prefix + k, p) for k, p in self._params.items())
        for cname, child in self._children.items():
            out.update(child.named_params(f"{prefix}{cname}."))
        return out

    def params(self) -> list[Param]:
        return list(self.named_params().values())

    def named_buffers(self, prefix: str = "") -> dict[str, Array]:
        out = {prefix + k: b for k, b in self._buffers.items()}
        for cname, child in self._children.items():
            out.update(child.named_buffers(f"{prefix}{cname}."))
        return out

    def modules(self) -> Iterator[Layer]:
        """This layer and all its descendants, depth first."""
        yield self
        for child in self._children.values():
            yield from child.modules()

    def num_params(self) -> int:
        return sum(p.size for p in self.params())

    def zero_grad(self) -> None:
        for p in self.params():
            p.zero_grad()

    def train(self, mode: bool = True) -> Layer:
        for m in self.modules():
            m.training = mode
            m.cache_enabled = mode
        return self

    def eval(self, grad: bool = False) -> Layer:
        """Inference mode. ``grad=True`` keeps caching so backward still works (e.g. frozen BN)."""
        for m in self.modules():
            m.training = False
            m.cache_enabled = grad
        return self

    def astype(self, dtype: Any) -> Layer:
        """Convert params and float buffers of this layer and its children (in place)."""
        for m in self.modules():
            for p in m._params.values():
                p.astype(dtype)
            for k, b in m._buffers.items():
                if b.dtype.kind == "f":
                    m._buffers[k] = b.astype(dtype, copy=False)
            m._in_shapes = None  # re-run setup checks on the next forward
        return self

    def to(self, device: str) -> Layer:
        """Move params and buffers to ``'cpu'`` or ``'gpu'``."""
        for m in self.modules():
            for p in m._params.values():
                p.data = to_device(p.data, device)
                p.grad = to_device(p.grad, device)
            for k, b in m._buffers.items():
                m._buffers[k] = to_device(b, device)
        return self

    def state_dict(self) -> dict[str, Array]:
        """Params and buffers by dotted name (copies), PyTorch's names and shapes."""
        sd = {k: p.data.copy() for k, p in self.named_params().items()}
        sd.update({k: b.copy() for k, b in self.named_buffers().items()})
        return sd

    def load_state_dict(self, state: dict[str, Array], strict: bool = True) -> None:
        """Copy arrays into params and buffers by name, checking names and shapes."""
        params, buffers = self.named_params(), self.named_buffers()
        expected = set(params) | set(buffers)
        if strict:
            missing = sorted(expected - set(state))
            unexpected = sorted(set(state) - expected)
            if missing or unexpected:
                raise self.error(
                    f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}; "
                    "build the same architecture (and run setup) before loading, or pass strict=False"
                )
        for key, value in state.items():
            if key in params:
                p = params[key]
                if tuple(value.shape) != p.shape:
                    raise self.error(f"load_state_dict: {key!r} has shape {tuple(value.shape)}, expected {p.shape}")
                xp = get_array_module(p.data)
                p.data[...] = xp.asarray(value, dtype=p.data.dtype)
            elif key in buffers:
                b = buffers[key]
                if tuple(value.shape) != tuple(b.shape):
                    raise self.error(f"load_state_dict: buffer {key!r} has shape {tuple(value.shape)}, "
                                     f"expected {tuple(b.shape)}")
                xp = get_array_module(b)
                b[...] = xp.asarray(value, dtype=b.dtype)


class LossLayer(Layer):
    """A layer whose output is a scalar loss and whose backward starts back-propagation.

    ``forward(pred, target)`` returns the loss (a 0-d array). ``backward()`` with no
    argument returns the gradient of ``loss_weight * loss`` w.r.t. ``pred``; with an
    argument ``dy`` (d objective / d loss, as a Net passes it) it returns ``dy * loss_weight``
    times that. The target gets no gradient.
    """

    num_inputs: int | None = 2

    def __init__(self, *, loss_weight: float = 1.0, name: str | None = None) -> None:
        super().__init__(name=name)
        self.loss_weight = float(loss_weight)

    def _output_shape(self, *in_shapes: Any, **_: Any) -> Any:
        return ()

    def _check_dtype(self, xs) -> None:  # the target may be integer labels; only the prediction is checked
        super()._check_dtype(xs[:1])

    def backward(self, dy: Any = None):
        if dy is not None and getattr(dy, "size", 1) != 1:
            raise self.error(f"backward() takes the gradient of the scalar loss (or nothing), got an array "
                             f"of shape {tuple(dy.shape)}")
        scale = self.loss_weight * (1.0 if dy is None else float(dy))
        return super().backward(scale)
