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
    assert len(rows) == 5 and all(r.forward_ms >= 0 for r in rows)
    after = net.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)   # BN running stats restored
    assert all(np.array_equal(p.grad, g) for p, g in zip(net.params(), grads))
    assert net["3"].rng_state() == rng_before
    assert not net.training and not net["1"].training and not net["1"].cache_enabled
