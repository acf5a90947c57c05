"""Activation layers: Caffe's NeuronLayer family, one element-wise function per layer.

Forward computes ``y = f(x)`` per element; backward multiplies the incoming gradient by
``f'(x)`` per element, ``dx = dy * f'(x)``. Where ``f'`` can be written in terms of the
forward output (sigmoid ``y(1-y)``, tanh ``1-y^2``, ELU ``y+alpha``), the layer caches
``y`` (or a 1-byte mask) instead of ``x``. docs/activations.md has every formula and the
numerics notes; in short, nothing here calls ``exp`` on a large positive argument, so
|x| = 1e4 gives no overflow in float32 or float64.

Shapes (all layers): x (N, *) -> y (N, *), same shape and dtype (float32 in, float32 out).
"""
from __future__ import annotations

import math

import numpy as np

from .. import init as _init
from ..backend import Array, Shape, erfc, get_array_module
from ..core import Layer, register
from .dropout import RandomLayer

__all__ = ["Sigmoid", "TanH", "ReLU", "ELU", "PReLU", "Softplus", "Softsign", "SELU", "SiLU", "Swish",
           "GELU", "HardSigmoid", "HardTanh", "AbsVal", "RReLU"]

_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_GELU_KAPPA = 0.044715
# Klambauer et al. (2017), the constants PyTorch uses.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid_parts(x: Array, xp) -> tuple[Array, Array]:
    """(sigmoid(x), e) with e = exp(-|x|) in (0, 1]: never overflows, for any finite x."""
    e = xp.exp(-xp.abs(x))
    d = 1 + e
    return xp.where(x >= 0, 1 / d, e / d), e


class _Elementwise(Layer):
    """Shared checks: a float input with a batch dimension; the output has its shape."""

    def _output_shape(self, shape: Shape) -> Shape:
        if len(shape) < 1:
            raise self.error("expected an input of shape (N, *) with at least one dimension, got a "
                             "0-D array; add a batch dimension, e.g. x.reshape(1)")
        return shape

    def _check_dtype(self, xs) -> None:
        for i, x in enumerate(xs):
            if x.dtype.kind != "f":
                raise self.error(f"input {i} has dtype {x.dtype}, expected a float array of shape (N, *); "
                                 "convert it with x.astype('float32')")
        super()._check_dtype(xs)


@register("layer", "Sigmoid")
class Sigmoid(_Elementwise):
    """Logistic sigmoid.

    Forward: y = 1 / (1 + exp(-x)), computed from e = exp(-|x|) as 1/(1+e) for x >= 0 and
    e/(1+e) for x < 0, so exp never overflows.
    Backward: dx = dy * y * (1 - y)  (reuses y).
    Shapes: x (N, *) -> y (N, *).  Caches: y.

    Example:
        >>> import numpy as np
        >>> Sigmoid().forward(np.array([0.0, 1e4, -1e4], np.float32)).tolist()
        [0.5, 1.0, 0.0]
    """

    def _forward(self, x: Array) -> Array:
        y = _sigmoid_parts(x, get_array_module(x))[0]
        self.save(y=y)
        return y

    def _backward(self, dy: Array) -> Array:
        y = self.cache["y"]
        return dy * y * (1 - y)


@register("layer", "TanH")
class TanH(_Elementwise):
    """Hyperbolic tangent.

    Forward: y = tanh(x).   Backward: dx = dy * (1 - y^2)  (reuses y).
    Shapes: x (N, *) -> y (N, *).  Caches: y.

    Example:
        >>> import numpy as np
        >>> TanH().forward(np.array([0.0, 1e4], np.float32)).tolist()
        [0.0, 1.0]
    """

    def _forward(self, x: Array) -> Array:
        y = get_array_module(x).tanh(x)
        self.save(y=y)
        return y

    def _backward(self, dy: Array) -> Array:
        y = self.cache["y"]
        return dy * (1 - y * y)


@register("layer", "ReLU")
class ReLU(_Elementwise):
    """Rectified linear unit, Caffe's leaky form.

    Forward: y = x if x > 0 else negative_slope * x.
    Backward: dx = dy if x > 0 else negative_slope * dy (the kink x = 0 takes the slope).
    Shapes: x (N, *) -> y (N, *).  Caches: mask = (x > 0), a bool array.

    Args:
        negative_slope: slope for x <= 0 (0: plain ReLU; 0.01: PyTorch's LeakyReLU default).

    Example:
        >>> import numpy as np
        >>> ReLU(0.1).forward(np.array([-2.0, 3.0])).tolist()
        [-0.2, 3.0]
    """

    def __init__(self, negative_slope: float = 0.0, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.negative_slope = float(negative_slope)

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        mask = x > 0
        y = xp.maximum(x, 0) if self.negative_slope == 0 else xp.where(mask, x, x * self.negative_slope)
        self.save(mask=mask)
        return y

    def _backward(self, dy: Array) -> Array:
        xp = get_array_module(dy)
        slope = self.negative_slope
        if slope == 0:
            # NOTE: dy * mask is ~8x faster than xp.where(mask, dy, 0) in NumPy (same values for
            # finite dy; an inf/NaN dy where x <= 0 gives NaN instead of 0, and the trainer stops on it).
            return dy * self.cache["mask"]
        return xp.where(self.cache["mask"], dy, dy * slope)


@register("layer", "ELU")
class ELU(_Elementwise):
    """Exponential linear unit (Clevert et al., 2015).

    Forward: y = x if x > 0 else alpha * (exp(x) - 1), via expm1(min(x, 0)) (no overflow).
    Backward: dx = dy if x > 0 else dy * (y + alpha)  (reuses y: alpha*exp(x) = y + alpha).
    Shapes: x (N, *) -> y (N, *).  Caches: y, mask = (x > 0).

    Example:
        >>> import numpy as np
        >>> ELU().forward(np.array([2.0, -1e4])).tolist()
        [2.0, -1.0]
    """

    def __init__(self, alpha: float = 1.0, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.alpha = float(alpha)

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        mask = x > 0
        y = xp.where(mask, x, self.alpha * xp.expm1(xp.minimum(x, 0)))
        self.save(y=y, mask=mask)
        return y

    def _backward(self, dy: Array) -> Array:
        xp = get_array_module(dy)
        return xp.where(self.cache["mask"], dy, dy * (self.cache["y"] + self.alpha))


@register("layer", "SELU")
class SELU(_Elementwise):
    """Scaled ELU (Klambauer et al., 2017), scale = 1.0507..., alpha = 1.6733... (PyTorch's).

    Forward: y = scale * x if x > 0 else scale * alpha * (exp(x) - 1).
    Backward: dx = scale * dy if x > 0 else dy * (y + scale * alpha)  (reuses y).
    Shapes: x (N, *) -> y (N, *).  Caches: y, mask = (x > 0).

    Example:
        >>> import numpy as np
        >>> round(float(SELU().forward(np.array([1.0]))[0]), 4)
        1.0507
    """

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        mask = x > 0
        y = xp.where(mask, x * _SELU_SCALE, (_SELU_SCALE * _SELU_ALPHA) * xp.expm1(xp.minimum(x, 0)))
        self.save(y=y, mask=mask)
        return y

    def _backward(self, dy: Array) -> Array:
        xp = get_array_module(dy)
        return xp.where(self.cache["mask"], dy * _SELU_SCALE, dy * (self.cache["y"] + _SELU_SCALE * _SELU_ALPHA))


@register("layer", "PReLU")
class PReLU(_Elementwise):
    """Parametric ReLU (He et al., 2015) with a learned slope, shared or one per channel.

    Forward: y = x if x > 0 else w_c * x, with c the channel (axis 1) of the element.
    Backward: dx = dy if x > 0 else w_c * dy;
              dw_c += sum over all elements of channel c with x <= 0 of x * dy
              (over every element when num_parameters = 1).
    Shapes: x (N, C, *) -> y (N, C, *); weight (num_parameters,), num_parameters 1 or C.
    Caches: x.

    Args:
        num_parameters: 1 (one shared slope) or C (one per channel).
        init: initial value of every slope.

    Example:
        >>> import numpy as np
        >>> PReLU().forward(np.array([[-4.0, 2.0]])).tolist()
        [[-1.0, 2.0]]
    """

    def __init__(self, num_parameters: int = 1, *, init: float = 0.25, name: str | None = None) -> None:
        super().__init__(name=name)
        if int(num_parameters) != num_parameters or num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be a positive integer, got {num_parameters!r}")
        self.num_parameters = int(num_parameters)
        self.init = float(init)

    def _build(self, shape: Shape) -> None:
        self.weight = self.add_param("weight", _init.constant((self.num_parameters,), value=self.init))

    def _output_shape(self, shape: Shape) -> Shape:
        super()._output_shape(shape)
        if self.num_parameters > 1 and (len(shape) < 2 or shape[1] != self.num_parameters):
            raise self.error(f"expected an input of shape (N, C={self.num_parameters}, *) for "
                             f"{self.num_parameters} per-channel slopes, got shape {tuple(shape)}; use "
                             "PReLU(num_parameters=C) with the input's channel count, or 1 for a shared slope")
        return shape

    def _slope(self, ndim: int) -> Array:
        w = self.weight.data
        return w.reshape((1, -1) + (1,) * (ndim - 2)) if self.num_parameters > 1 else w

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        self.save(x=x)
        return xp.where(x > 0, x, x * self._slope(x.ndim))

    def _backward(self, dy: Array) -> Array:
        xp = get_array_module(dy)
        x = self.cache["x"]
        pos = x > 0
        g = xp.where(pos, 0, x * dy)
        if self.num_parameters > 1:
            self.weight.grad += g.sum(axis=(0,) + tuple(range(2, x.ndim)))
        else:
            self.weight.grad += g.sum().reshape(1)
        return xp.where(pos, dy, dy * self._slope(x.ndim))


@register("layer", "Softplus")
class Softplus(_Elementwise):
    """Softplus, a smooth ReLU, with PyTorch's beta and linear threshold.

    Forward: y = log(1 + exp(beta * x)) / beta, or y = x where beta * x > threshold;
    exp is taken of min(beta * x, threshold), so it never overflows.
    Backward: dx = dy * sigmoid(beta * x) = dy * z / (z + 1), z = exp(beta * x); dx = dy
    where beta * x > threshold.
    Shapes: x (N, *) -> y (N, *).  Caches: x (reusing y as -expm1(-beta*y) would be exact
    math too, but x gives the same threshold cut as the forward pass).

    Example:
        >>> import numpy as np
        >>> Softplus().forward(np.array([0.0, 1e4])).round(6).tolist()
        [0.693147, 10000.0]
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if not beta > 0:
            raise ValueError(f"Softplus: beta must be > 0, got {beta!r}")
        self.beta, self.threshold = float(beta), float(threshold)

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        bx = x * self.beta
        soft = xp.log1p(xp.exp(xp.minimum(bx, self.threshold)))
        y = xp.where(bx > self.threshold, x, soft / self.beta if self.beta != 1 else soft)
        self.save(x=x)
        return y

    def _backward(self, dy: Array) -> Array:
        xp = get_array_module(dy)
        bx = self.cache["x"] * self.beta
        z = xp.exp(xp.minimum(bx, self.threshold))
        return xp.where(bx > self.threshold, dy, dy * z / (z + 1))


@register("layer", "Softsign")
class Softsign(_Elementwise):
    """Softsign.

    Forward: y = x / (1 + |x|).   Backward: dx = dy / (1 + |x|)^2.
    Shapes: x (N, *) -> y (N, *).  Caches: d = 1 + |x| (not y: (1 - |y|)^2 cancels for
    large |x|).

    Example:
        >>> import numpy as np
        >>> Softsign().forward(np.array([1.0, -3.0])).tolist()
        [0.5, -0.75]
    """

    def _forward(self, x: Array) -> Array:
        d = 1 + get_array_module(x).abs(x)
        self.save(d=d)
        return x / d

    def _backward(self, dy: Array) -> Array:
        d = self.cache["d"]
        return dy / d / d  # not dy / (d * d): d * d overflows for |x| > 1.8e19 in float32


@register("layer", "SiLU", "Swish")
class SiLU(_Elementwise):
    """SiLU / Swish (Ramachandran et al., 2017): x times a sigmoid gate.

    Forward: s = sigmoid(beta * x), y = x * s (beta = 1 is PyTorch's SiLU; Caffe's Swish has beta).
    Backward: dx = dy * (s + beta * y * (1 - s))  (reuses y and s).
    Shapes: x (N, *) -> y (N, *).  Caches: y, s.

    Example:
        >>> import numpy as np
        >>> SiLU().forward(np.array([0.0, 1e4, -1e4])).tolist()
        [0.0, 10000.0, -0.0]
    """

    def __init__(self, beta: float = 1.0, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.beta = float(beta)

    def _forward(self, x: Array) -> Array:
        s = _sigmoid_parts(x * self.beta if self.beta != 1 else x, get_array_module(x))[0]
        y = x * s
        self.save(y=y, s=s)
        return y

    def _backward(self, dy: Array) -> Array:
        y, s = self.cache["y"], self.cache["s"]
        return dy * (s + self.beta * y * (1 - s) if self.beta != 1 else s + y * (1 - s))


Swish = SiLU


@register("layer", "GELU")
class GELU(_Elementwise):
    """Gaussian error linear unit (Hendrycks & Gimpel, 2016).

    approximate='none':
    Forward: y = x * Phi(x), Phi(x) = erfc(-x / sqrt(2)) / 2 (the normal CDF;
    erfc keeps the left tail accurate where 1 + erf(x/sqrt(2)) would cancel).
    Backward: dx = dy * (Phi(x) + x * phi(x)), phi(x) = exp(-x^2/2) / sqrt(2 pi)  (reuses Phi).

    approximate='tanh':
    Forward: y = x * (1 + tanh(u)) / 2 = x * s, u = sqrt(2/pi) * (x + 0.044715 x^3),
    s = sigmoid(2u) (the same function, written without the cancellation of 1 + tanh(u)).
    Backward: dx = dy * (s + x * 2 s (1 - s) * u'), u' = sqrt(2/pi) * (1 + 3 * 0.044715 x^2),
    with s(1 - s) = e / (1 + e)^2, e = exp(-|2u|)  (reuses e).
    Shapes: x (N, *) -> y (N, *).  Caches: x and cdf = Phi(x) ('none'), or x and e ('tanh').

    Example:
        >>> import numpy as np
        >>> GELU().forward(np.array([0.0, 1e4, -1e4])).tolist()
        [0.0, 10000.0, -0.0]
    """

    def __init__(self, approximate: str = "none", *, name: str | None = None) -> None:
        super().__init__(name=name)
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    @staticmethod
    def _tanh_parts(x: Array, xp) -> tuple[Array, Array]:
        xc = xp.clip(x, -50, 50)  # NOTE: tanh(u) is exactly +-1 beyond |x| = 10; clip keeps x^3 finite
        two_u = (2 * _SQRT_2_PI) * (xc + _GELU_KAPPA * xc * xc * xc)
        return _sigmoid_parts(two_u, xp)

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        if self.approximate == "none":
            phi_cdf = 0.5 * erfc(-x * _SQRT1_2)
            self.save(x=x, cdf=phi_cdf)
            return x * phi_cdf
        s, e = self._tanh_parts(x, xp)
        self.save(x=x, e=e)
        return x * s

    def _backward(self, dy: Array) -> Array:
        xp = get_array_module(dy)
        x = self.cache["x"]
        xc = xp.clip(x, -50, 50)  # the density is exactly 0 beyond; keeps x^2 finite
        if self.approximate == "none":
            pdf = xp.exp(-0.5 * xc * xc) * _INV_SQRT_2PI
            return dy * (self.cache["cdf"] + x * pdf)
        e = self.cache["e"]
        d = 1 + e
        s = xp.where(x >= 0, 1 / d, e / d)
        du = _SQRT_2_PI * (1 + 3 * _GELU_KAPPA * xc * xc)
        return dy * (s + x * (2 * e / (d * d)) * du)


@register("layer", "HardSigmoid")
class HardSigmoid(_Elementwise):
    """Piecewise-linear sigmoid.

    Forward: y = clip(slope * x + offset, 0, 1), computed as clip((x - x0) * slope, 0, 1)
    with x0 = -offset/slope (exact near y = 0). Default slope 1/6, offset 1/2 (PyTorch's
    relu6(x + 3) / 6); slope=0.2, offset=0.5 is Keras 2's hard_sigmoid.
    Backward: dx = slope * dy where 0 < y < 1, else 0  (reuses y).
    Shapes: x (N, *) -> y (N, *).  Caches: mask = (0 < y < 1).

    Example:
        >>> import numpy as np
        >>> HardSigmoid().forward(np.array([-4.0, 0.0, 1.5, 4.0])).tolist()
        [0.0, 0.5, 0.75, 1.0]
    """

    def __init__(self, slope: float = 1.0 / 6.0, offset: float = 0.5, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if not slope > 0:
            raise ValueError(f"HardSigmoid: slope must be > 0, got {slope!r}")
        self.slope, self.offset = float(slope), float(offset)
        self._x0 = -self.offset / self.slope

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        z = (x - self._x0) * self.slope if self._x0 != 0 else x * self.slope
        y = xp.clip(z, 0, 1)
        self.save(mask=(y > 0) & (y < 1))
        return y

    def _backward(self, dy: Array) -> Array:
        return get_array_module(dy).where(self.cache["mask"], dy * self.slope, 0)


@register("layer", "HardTanh")
class HardTanh(_Elementwise):
    """Clipped identity.

    Forward: y = clip(x, min_val, max_val).
    Backward: dx = dy where min_val < x < max_val, else 0  (mask read off y).
    Shapes: x (N, *) -> y (N, *).  Caches: mask = (min_val < y < max_val).

    Example:
        >>> import numpy as np
        >>> HardTanh().forward(np.array([-3.0, 0.5, 2.0])).tolist()
        [-1.0, 0.5, 1.0]
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if not min_val < max_val:
            raise ValueError(f"HardTanh: min_val must be < max_val, got {min_val!r} >= {max_val!r}")
        self.min_val, self.max_val = float(min_val), float(max_val)

    def _forward(self, x: Array) -> Array:
        y = get_array_module(x).clip(x, self.min_val, self.max_val)
        self.save(mask=(y > self.min_val) & (y < self.max_val))
        return y

    def _backward(self, dy: Array) -> Array:
        return get_array_module(dy).where(self.cache["mask"], dy, 0)


@register("layer", "AbsVal", "Abs")
class AbsVal(_Elementwise):
    """Absolute value (Caffe's AbsVal).

    Forward: y = |x|.   Backward: dx = sign(x) * dy (0 at x = 0).
    Shapes: x (N, *) -> y (N, *).  Caches: x.

    Example:
        >>> import numpy as np
        >>> AbsVal().forward(np.array([-2.0, 3.0])).tolist()
        [2.0, 3.0]
    """

    def _forward(self, x: Array) -> Array:
        self.save(x=x)
        return get_array_module(x).abs(x)

    def _backward(self, dy: Array) -> Array:
        return get_array_module(dy).sign(self.cache["x"]) * dy


@register("layer", "RReLU")
class RReLU(RandomLayer, _Elementwise):
    """Randomized leaky ReLU (Xu et al., 2015, "Empirical Evaluation of Rectified Activations";
    PyTorch's ``nn.RReLU``).

    Forward: y = x if x > 0 else a * x, where in training a = a_i ~ U(lower, upper) is drawn per
        element and per forward, and in eval a = (lower + upper) / 2, the mean slope (a leaky ReLU).
    Backward: dx = dy if x > 0 else a * dy, with the same a.
    The kink x = 0 takes the negative side's slope, as in PyTorch. The slopes come from the
    layer's own generator (``seed``, ``rng_state()`` / ``set_rng_state()``, as Dropout).
    Shapes: x (N, *) -> y (N, *).  Caches: slope (the per-element dy -> dx factor; training or
        eval(grad=True)).

    Args:
        lower, upper: the range of the random slope, 0 <= lower <= upper (PyTorch's 1/8, 1/3).
        seed: seed of the slope generator (None: derived from the layer's rng).

    Example:
        >>> import numpy as np
        >>> layer = RReLU(0.1, 0.3, seed=0)
        >>> y = layer.forward(np.array([-10.0, -10.0, 2.0]))
        >>> bool(np.all((y[:2] <= -1.0) & (y[:2] >= -3.0))), float(y[2])
        (True, 2.0)
        >>> layer.eval().forward(np.array([-10.0, 2.0])).tolist()
        [-2.0, 2.0]
    """

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, *, seed: int | None = None,
                 name: str | None = None) -> None:
        super().__init__(seed=seed, name=name)
        if not (math.isfinite(lower) and math.isfinite(upper) and 0.0 <= lower <= upper):
            raise ValueError(f"RReLU: need finite 0 <= lower <= upper, got lower={lower!r}, upper={upper!r}")
        self.lower, self.upper = float(lower), float(upper)

    def _forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        pos = x > 0
        if self.training:
            u = self.generator.random(x.shape, dtype=np.float64 if x.dtype == np.float64 else np.float32)
            a = xp.asarray(self.lower + (self.upper - self.lower) * u, dtype=x.dtype)    # (N, *) slopes
        else:
            a = x.dtype.type(0.5 * (self.lower + self.upper))
        slope = xp.where(pos, x.dtype.type(1), a)
        self.save(slope=slope)
        return x * slope

    def _backward(self, dy: Array) -> Array:
        return dy * self.cache["slope"]
