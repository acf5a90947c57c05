"""Every registered layer and loss documents itself, and keeps nothing after backward.

CONTRIBUTING.md asks each layer's docstring for its forward and backward formulas, its shapes
and what ``_forward`` caches, under the labels ``Forward:``, ``Backward:``, ``Shapes:`` and
``Caches:`` (a label starts a line or follows a space, so "Shapes: ...  Caches: y." is one line).
The second half runs a forward and a backward through every registered class and checks that
the cache holds only what the "Caches:" line names, and that after backward no cache (the
layer's or a child's) holds anything and no array the forward cached is still alive.
"""
from __future__ import annotations

import gc
import inspect
import re
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import layerwise as lw
from layerwise.core import Layer, LossLayer
from layerwise.core.registry import lookup, registered

LABELS = ("Forward:", "Backward:", "Shapes:", "Caches:")


def _classes(kind: str) -> list[type]:
    out: dict[type, None] = {}
    for name in registered(kind):
        out.setdefault(lookup(kind, name), None)
    return sorted(out, key=lambda c: (c.__module__, c.__qualname__))


LAYER_CLASSES = _classes("layer")
LOSS_CLASSES = _classes("loss")
ALL_CLASSES = LAYER_CLASSES + LOSS_CLASSES


def _id(cls: type) -> str:
    return cls.__name__


def _caches_text(doc: str) -> str:
    """The text after "Caches:" up to the next blank line or label."""
    m = re.search(r"(?:^|\s)Caches:(.*?)(?:\n\s*\n|(?:^|\s)(?:Forward|Backward|Shapes|Args|Example):|\Z)",
                  doc, re.S)
    assert m is not None
    return m.group(1)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=_id)
def test_docstring_has_forward_backward_shapes_caches(cls):
    doc = inspect.getdoc(cls) or ""
    # "Forward (training):" counts as a Forward line
    missing = [label for label in LABELS if not re.search(rf"(?:^|\s){label[:-1]}(?: \([^()]*\))?:", doc)]
    assert not missing, (
        f"{cls.__module__}.{cls.__qualname__}: the docstring lacks {missing}; CONTRIBUTING.md asks every "
        f"registered layer for the lines {', '.join(LABELS)} (the formulas, the shapes, what _forward saves)")


def test_every_registered_class_is_exercised():
    assert len(LAYER_CLASSES) >= 40 and len(LOSS_CLASSES) >= 15
    missing = [c.__name__ for c in ALL_CLASSES if c.__name__ not in CASES]
    assert not missing, f"registered classes with no forward/backward case in CASES below: {missing}"


# --------------------------------------------------------------- forward + backward, per class
def _r(*shape: int, seed: int = 0, low: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    return np.abs(x) + low if low is not None else x


def _labels(n: int, k: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, k, n)


def _pm1(n: int) -> np.ndarray:
    return np.where(np.arange(n) % 2 == 0, 1, -1)


X4 = (2, 3, 5, 5)                      # a small NCHW batch
Case = Callable[[], tuple[Layer, tuple[Any, ...]]]

# Class name -> () -> (layer, inputs). Layers buildable with default arguments get (N, C, H, W) input;
# the others name their arguments here. Inputs are float64 (what the gradchecks use).
CASES: dict[str, Case] = {
    # activations and other element-wise layers
    **{n: (lambda n=n: (lookup("layer", n)(), (_r(*X4),))) for n in (
        "AbsVal", "ELU", "GELU", "HardSigmoid", "HardTanh", "PReLU", "ReLU", "RReLU", "SELU", "Sigmoid", "SiLU",
        "Softplus", "Softsign", "TanH", "Exp", "Power", "Threshold", "Dropout", "Scale", "Flatten", "Softmax",
        "LogSoftmax", "LRN", "BatchNorm2d", "SyncBatchNorm", "GlobalAvgPool2d")},
    "Log": lambda: (lw.Log(), (_r(*X4, low=0.5),)),
    "BatchNorm1d": lambda: (lw.BatchNorm1d(), (_r(4, 3),)),
    "Accuracy": lambda: (lw.Accuracy(), (_r(4, 3), _labels(4, 3))),
    "Concat": lambda: (lw.Concat(), (_r(2, 3, 4, 4), _r(2, 2, 4, 4, seed=1))),
    "Eltwise": lambda: (lw.Eltwise("prod"), (_r(*X4), _r(*X4, seed=1))),
    "ConstantPad2d": lambda: (lw.ConstantPad2d(1), (_r(*X4),)),
    "Conv2d": lambda: (lw.Conv2d(4, 3, padding=1), (_r(*X4),)),
    "ConvTranspose2d": lambda: (lw.ConvTranspose2d(4, 3, stride=2), (_r(*X4),)),
    "Linear": lambda: (lw.Linear(4), (_r(2, 6),)),
    "MaxPool2d": lambda: (lw.MaxPool2d(2), (_r(2, 3, 4, 4),)),
    "AvgPool2d": lambda: (lw.AvgPool2d(3, stride=2, padding=1), (_r(*X4),)),
    "Reshape": lambda: (lw.Reshape((-1, 75)), (_r(*X4),)),
    "Slice": lambda: (lw.Slice([1], axis=1), (_r(*X4),)),
    "DenseLayer": lambda: (lookup("layer", "DenseLayer")(2, bn_size=2), (_r(*X4),)),
    "DenseBlock": lambda: (lookup("layer", "DenseBlock")(2, 2, bn_size=2), (_r(*X4),)),
    "Transition": lambda: (lookup("layer", "DenseTransition")(2), (_r(2, 3, 4, 4),)),
    "ShortcutPad": lambda: (lookup("layer", "ShortcutPad")(5, stride=2), (_r(*X4),)),
    # losses
    "SoftmaxCrossEntropyLoss": lambda: (lw.SoftmaxCrossEntropyLoss(), (_r(4, 3), _labels(4, 3))),
    "CrossEntropyLoss": lambda: (lw.CrossEntropyLoss(), (np.full((4, 3), 1 / 3), _labels(4, 3))),
    "SigmoidCrossEntropyLoss": lambda: (lw.SigmoidCrossEntropyLoss(),
                                        (_r(4, 3), _labels(12, 2).reshape(4, 3).astype(float))),
    "BCEWithLogitsLoss": lambda: (lw.BCEWithLogitsLoss(),
                                  (_r(4, 3), _labels(12, 2).reshape(4, 3).astype(float))),
    "KLDivLoss": lambda: (lw.KLDivLoss(), (np.log(np.full((4, 3), 1 / 3)), np.full((4, 3), 1 / 3))),
    "EuclideanLoss": lambda: (lw.EuclideanLoss(), (_r(4, 3), _r(4, 3, seed=1))),
    "MSELoss": lambda: (lw.MSELoss(), (_r(4, 3), _r(4, 3, seed=1))),
    "L1Loss": lambda: (lw.L1Loss(), (_r(4, 3), _r(4, 3, seed=1))),
    "SmoothL1Loss": lambda: (lw.SmoothL1Loss(), (_r(4, 3), _r(4, 3, seed=1))),
    "HuberLoss": lambda: (lw.HuberLoss(), (_r(4, 3), _r(4, 3, seed=1))),
    "HingeLoss": lambda: (lw.HingeLoss(), (_r(4, 3), _labels(4, 3))),
    "PerceptronLoss": lambda: (lw.PerceptronLoss(), (_r(6), _pm1(6))),
    "ExponentialLoss": lambda: (lw.ExponentialLoss(), (_r(6), _pm1(6))),
    "LogisticLoss": lambda: (lw.LogisticLoss(), (_r(6), _pm1(6))),
    "HingeEmbeddingLoss": lambda: (lw.HingeEmbeddingLoss(), (_r(6, low=0.1), _pm1(6))),
    "ContrastiveLoss": lambda: (lw.ContrastiveLoss(), (_r(4, 3), _r(4, 3, seed=1), np.array([1, 0, 1, 0]))),
    "TripletLoss": lambda: (lw.TripletLoss(), (_r(4, 3), _r(4, 3, seed=1), _r(4, 3, seed=2))),
    "CenterLoss": lambda: (lw.CenterLoss(3), (_r(4, 2), _labels(4, 3))),
    "MultiTaskLoss": lambda: (lw.MultiTaskLoss([lw.SoftmaxCrossEntropyLoss(), lw.MSELoss(loss_weight=0.3)]),
                              (_r(4, 3), _labels(4, 3), _r(4, 2), _r(4, 2, seed=1))),
    "FastRCNNLoss": lambda: (lw.FastRCNNLoss(), (_r(4, 3), np.array([0, 1, 2, 2]), _r(4, 12), _r(4, 4, seed=1))),
}


def _arrays(obj: Any, depth: int = 0):
    """The NumPy arrays in obj, looking into dicts, lists and tuples (a cache's values)."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif depth < 3 and isinstance(obj, dict):
        for v in obj.values():
            yield from _arrays(v, depth + 1)
    elif depth < 3 and isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _arrays(v, depth + 1)


def _owned(layer: Layer) -> set[int]:
    """ids of the arrays a layer keeps on purpose: params, their grads, buffers (and their bases)."""
    keep: set[int] = set()
    for m in layer.modules():
        arrs = [a for p in m.named_params().values() for a in (p.data, p.grad)] + list(m.named_buffers().values())
        for a in arrs:
            keep.add(id(a))
            if a.base is not None:
                keep.add(id(a.base))
    return keep


def _attribute_arrays(layer: Layer) -> dict[int, tuple[str, str]]:
    """id -> (module, attribute) of the arrays held in attributes, outside params, buffers and caches."""
    out: dict[int, tuple[str, str]] = {}
    for m in layer.modules():
        for k, v in vars(m).items():
            if k not in ("cache", "_params", "_buffers", "_children"):
                out.update((id(a), (m.name, k)) for a in _arrays(v))
    return out


def _run_once(case: Case):
    """One forward and one backward. Returns the layer, the cache keys per module after forward,
    weak references to the arrays the forward cached (the test's own references are dropped
    before returning) and the arrays that appeared in attributes during forward + backward."""
    layer, inputs = case()
    layer.setup(*(np.shape(x) for x in inputs), dtype=np.float64)
    before = _attribute_arrays(layer)
    out = layer.forward(*inputs)
    keys = {m.name: sorted(m.cache) for m in layer.modules()}
    owned = _owned(layer)
    refs = [(m.name, k, weakref.ref(a)) for m in layer.modules() for k, v in m.cache.items()
            for a in _arrays(v) if id(a) not in owned and not any(a is x for x in inputs)]
    if isinstance(layer, LossLayer):
        layer.backward()
    else:
        outs = out if isinstance(out, (tuple, list)) else (out,)
        layer.backward(*(np.random.default_rng(7).standard_normal(np.shape(o)) for o in outs))
        del outs
    del out, inputs
    owned = _owned(layer)
    held = sorted(where for i, where in _attribute_arrays(layer).items() if i not in before and i not in owned)
    return layer, keys, refs, held


def _leaks(layer: Layer, refs, held) -> list[str]:
    problems = []
    left = {m.name: sorted(m.cache) for m in layer.modules() if m.cache}
    if left:
        problems.append(f"caches still hold {left} after backward")
    gc.collect()
    alive = [(name, key) for name, key, ref in refs if ref() is not None]
    if alive:
        problems.append(f"arrays the forward cached are still referenced after backward (module, cache key): {alive}")
    if held:
        problems.append(f"forward/backward left arrays in attributes (module, attribute): {held}")
    return problems


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=_id)
def test_cache_named_by_docstring_and_empty_after_backward(cls):
    if cls.__name__ not in CASES:
        pytest.fail(f"{cls.__name__} has no case in CASES (tests/core/test_layer_docs.py): add its constructor "
                    "arguments and inputs")
    layer, keys, refs, held = _run_once(CASES[cls.__name__])
    assert type(layer) is cls
    caches = _caches_text(inspect.getdoc(cls) or "")
    named = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", caches))
    unnamed = [k for k in keys[layer.name] if k not in named]
    assert not unnamed, (f"{cls.__name__} caches {unnamed}, which its docstring's 'Caches:' line ({caches.strip()!r}) "
                         "does not name")
    problems = _leaks(layer, refs, held)
    assert not problems, f"{cls.__name__}: " + "; ".join(problems) + "; backward must free everything forward kept"


class _KeepsInput(lw.Layer):
    """A leaky layer for the check above: it keeps x in an attribute as well as in its cache."""

    def _forward(self, x):
        self._last = x * 2
        self.save(x2=self._last)
        return self._last

    def _backward(self, dy):
        return 2 * dy


class _KeepsCacheAlive(lw.Layer):
    """A leaky layer for the check above: its backward hands a cached array to a list it owns."""

    def __init__(self):
        super().__init__()
        self.history: list = []

    def _forward(self, x):
        self.save(y=x + 1)
        return x + 1

    def _backward(self, dy):
        self.history.append(self.cache["y"])
        return dy


@pytest.mark.parametrize("leaky", [_KeepsInput, _KeepsCacheAlive])
def test_the_leak_check_finds_leaks(leaky):
    layer, _, refs, held = _run_once(lambda: (leaky(), (_r(*X4),)))
    assert _leaks(layer, refs, held)
