"""layerwise.tools.time_layers: per-layer timing that leaves the model as it found it."""
import numpy as np


def test_time_layers_leaves_the_model_as_it_was():
    import layerwise as lw
    from layerwise.tools import time_layers

    net = lw.Sequential(lw.Linear(6), lw.BatchNorm1d(), lw.ReLU(), lw.Dropout(0.5, seed=1), lw.Linear(3))
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    net.setup(x.shape)
    net.eval()
    before = net.state_dict()
    grads = [p.grad.copy() + 1.0 for p in net.params()]
    for p, g in zip(net.params(), grads):
        p.grad[...] = g
    rng_before = net["3"].rng_state()
    rows = time_layers(net, x, iters=2, warmup=1)
    assert [r.type for r in rows] == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert all(r.forward_ms > 0 and r.backward_ms > 0 for r in rows)
    after = net.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)   # BN running stats restored
    assert all(np.array_equal(p.grad, g) for p, g in zip(net.params(), grads))
    assert net["3"].rng_state() == rng_before
    assert not net.training and not net["1"].training and not net["1"].cache_enabled


def test_time_layers_measures_each_layer_and_attributes_time_to_the_right_one():
    """A layer that sleeps a known time in forward and backward is measured at that time, by itself."""
    import time

    import layerwise as lw
    from layerwise.core import Layer
    from layerwise.tools import format_timing, time_layers

    class Slow(Layer):
        def _output_shape(self, shape):
            return shape

        def _forward(self, x):
            time.sleep(0.02)
            return x * 1.0

        def _backward(self, dy):
            time.sleep(0.04)
            return dy

    net = lw.Sequential(lw.Linear(4), Slow(), lw.ReLU())
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    rows = time_layers(net, x, iters=2, warmup=1)
    slow = rows[1]
    assert slow.type == "Slow" and 20 <= slow.forward_ms < 60 and 40 <= slow.backward_ms < 100
    assert all(r.forward_ms < 10 and r.backward_ms < 10 for r in (rows[0], rows[2]))  # not charged the sleep
    fwd_only = time_layers(net, x, iters=1, warmup=0, backward=False)
    assert all(r.backward_ms == 0 for r in fwd_only) and fwd_only[1].forward_ms >= 20
    table = format_timing(rows, batch=4)
    total = sum(r.forward_ms + r.backward_ms for r in rows)
    assert f"forward-backward: {total:.3f} ms per pass" in table
