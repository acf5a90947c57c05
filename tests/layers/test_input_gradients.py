"""One rule for what backward returns (docs/design.md, "The contract"): called with one input, the
gradient array itself; called with K > 1 inputs, a tuple of K. Checked for every registered layer
that takes a variable number of inputs, at one, two and three inputs."""
import numpy as np
import pytest

import layerwise as lw
from layerwise.core.registry import _REGISTRIES
from layerwise.layers import Concat, Eltwise
from layerwise.losses import ContrastiveLoss, MultiTaskLoss, SoftmaxCrossEntropyLoss

VARIABLE_INPUT_LAYERS = {
    "Concat": [Concat(), Concat(axis=0)],
    "Eltwise": [Eltwise("sum"), Eltwise("prod"), Eltwise("max")],
}


def _variable_input(kind: str) -> set[str]:
    return {c.__name__ for c in _REGISTRIES[kind].values()
            if isinstance(c, type) and getattr(c, "num_inputs", 1) is None}


def test_every_registered_variable_input_layer_is_checked_here():
    # a new layer with num_inputs = None must be added to VARIABLE_INPUT_LAYERS
    assert _variable_input("layer") == set(VARIABLE_INPUT_LAYERS)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("layer", [m for ms in VARIABLE_INPUT_LAYERS.values() for m in ms], ids=repr)
def test_backward_returns_an_array_for_one_input_and_a_tuple_for_several(layer, k, rng):
    xs = [rng.standard_normal((2, 3, 4)) for _ in range(k)]
    y = layer.forward(*xs)
    dxs = layer.backward(np.ones_like(y))
    if k == 1:
        assert isinstance(dxs, np.ndarray) and dxs.shape == xs[0].shape
    else:
        assert isinstance(dxs, tuple) and len(dxs) == k
        assert all(isinstance(d, np.ndarray) and d.shape == x.shape for d, x in zip(dxs, xs))


def test_one_input_concat_is_the_identity_in_both_directions(rng):
    x = rng.standard_normal((2, 3, 4, 4))
    layer = Concat()
    np.testing.assert_array_equal(layer.forward(x), x)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(layer.backward(dy), dy)


def test_a_net_reads_both_forms_alike(rng):
    # a Concat of one blob inside a Net: the Net's input gradient is the same as without the Concat
    x = rng.standard_normal((2, 3))
    for body in ([lw.Linear(4)], [lw.Linear(4), Concat()]):
        net = lw.Sequential(*body, seed=0)
        y = net.forward(x)
        dx = net.backward(np.ones_like(y))
        assert isinstance(dx, np.ndarray)
        if len(body) == 1:
            ref = dx
    np.testing.assert_array_equal(dx, ref)


def test_multi_input_losses_return_one_entry_per_input(rng):
    # the losses with a variable number of inputs: a tuple with one entry per input, None for labels
    assert _variable_input("loss") == {"MultiTaskLoss", "FastRCNNLoss"}
    loss = MultiTaskLoss({"ce": SoftmaxCrossEntropyLoss(), "pair": ContrastiveLoss(margin=1.0)})
    z, y = rng.standard_normal((4, 3)), np.array([0, 1, 2, 0])
    a, b, same = rng.standard_normal((4, 2)), rng.standard_normal((4, 2)), np.array([1, 0, 1, 0])
    loss.forward(z, y, a, b, same)
    grads = loss.backward()
    assert isinstance(grads, tuple) and len(grads) == 5
    assert [g is None for g in grads] == [False, True, False, False, True]
