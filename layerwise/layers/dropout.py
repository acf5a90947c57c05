"""Dropout in Caffe's inverted form, with its own checkpointable random generator."""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..backend import Array, Shape, get_array_module
from ..core import Layer, register
from ._dtype import FloatInputs

__all__ = ["Dropout"]


class RandomLayer(Layer):
    """Base of the layers that draw random numbers in training (Dropout's mask, RReLU's slopes)
    from their own ``numpy.random.Generator``: seeded with ``seed``, or (``seed=None``) from a
    seed drawn once from the layer's ``rng`` at setup, so a Net's seed fixes every draw.
    ``rng_state()`` / ``set_rng_state(state)`` save and restore it (a JSON-able dict), so a
    resumed run draws the same numbers.
    """

    def __init__(self, *, seed: int | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        self.seed = seed
        self._gen: np.random.Generator | None = None

    @property
    def generator(self) -> np.random.Generator:
        """The generator (created on first use)."""
        if self._gen is None:
            seed = self.seed if self.seed is not None else int(self.rng.integers(0, 2**63 - 1))
            self._gen = np.random.default_rng(seed)
        return self._gen

    def reseed(self, seed: Any) -> None:
        """Replace the generator by ``numpy.random.default_rng(seed)`` (an int or a sequence of ints),
        e.g. to give each data-parallel rank its own draws after the net was set up."""
        self._gen = np.random.default_rng(seed)

    def rng_state(self) -> dict[str, Any]:
        """The generator's state (a deep copy; plain ints and strs, JSON-serialisable)."""
        return copy.deepcopy(dict(self.generator.bit_generator.state))

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Restore a state returned by ``rng_state()``."""
        gen = self.generator
        want = type(gen.bit_generator).__name__
        if not isinstance(state, dict) or state.get("bit_generator") != want:
            got = state.get("bit_generator") if isinstance(state, dict) else type(state).__name__
            raise self.error(f"set_rng_state: expected a {want} state from rng_state(), got {got!r}")
        gen.bit_generator.state = copy.deepcopy(state)

    def _build(self, *shapes: Shape) -> None:
        _ = self.generator  # the property draws the derived seed now, in the Net's setup order


@register("layer", "Dropout")
class Dropout(FloatInputs, RandomLayer):
    """Inverted dropout (Srivastava et al., 2014; Caffe's DropoutLayer).

    Forward (training): y = x * m * scale, m_i ~ Bernoulli(1 - p) (keep with probability 1 - p),
        scale = 1 / (1 - p).  Forward (eval): y = x (identity).
    Backward: dx = dy * m * scale (training); dx = dy (eval). p = 1 drops everything (y = 0, dx = 0).

    The mask comes from the layer's own ``numpy.random.Generator``: seeded with ``seed``,
    or (``seed=None``) from a seed drawn once from the layer's ``rng`` at setup, so a Net's
    seed fixes every mask. ``rng_state()`` / ``set_rng_state(state)`` save and restore the
    generator (a JSON-serialisable dict) so a resumed run draws the same masks. To hold the
    mask fixed (e.g. for a finite-difference gradcheck), restore the same state before each
    forward; the gradcheck test in tests/layers/test_dropout.py shows how.

    Shapes: x (N, *) -> y (N, *).  Caches: mask (bool; None in eval or with p = 0).

    Args:
        ratio: the drop probability p, in [0, 1] (Caffe's dropout_ratio; PyTorch's p).
        seed: seed of the mask generator (None: derived from the layer's rng).

    Example:
        >>> import numpy as np
        >>> d = Dropout(0.5, seed=0)
        >>> sorted(set(d.forward(np.ones((2, 4))).ravel().tolist()))
        [0.0, 2.0]
        >>> d.eval().forward(np.ones(3)).tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(self, ratio: float = 0.5, *, seed: int | None = None, name: str | None = None) -> None:
        super().__init__(seed=seed, name=name)
        if not 0.0 <= float(ratio) <= 1.0:
            raise ValueError(f"Dropout: ratio must be in [0, 1], got {ratio!r}")
        self.ratio = float(ratio)

    @property
    def p(self) -> float:
        """PyTorch's name for the drop probability."""
        return self.ratio

    def _output_shape(self, shape: Shape) -> Shape:
        if len(shape) < 1:
            raise self.error("expected an input of shape (N, *), got a 0-D array; add a batch dimension")
        return shape

    def _forward(self, x: Array) -> Array:
        if not self.training or self.ratio == 0.0:
            self.save(mask=None)
            return x
        xp = get_array_module(x)
        mask = xp.asarray(self.generator.random(x.shape, dtype=np.float32) >= self.ratio)
        self.save(mask=mask)
        if self.ratio == 1.0:
            return xp.zeros_like(x)
        return xp.where(mask, x * (1.0 / (1.0 - self.ratio)), 0)

    def _backward(self, dy: Array) -> Array:
        mask = self.cache["mask"]
        if mask is None:
            return dy
        xp = get_array_module(dy)
        if self.ratio == 1.0:
            return xp.zeros_like(dy)
        return xp.where(mask, dy * (1.0 / (1.0 - self.ratio)), 0)
