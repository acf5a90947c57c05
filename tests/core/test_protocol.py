"""The layer protocol, Net wiring and gradcheck, on small layers defined here."""
import numpy as np
import pytest

from layerwise.core import Layer, LayerError, LossLayer, Net, Sequential
from layerwise.testing import GradcheckError, gradcheck
from layerwise import init


class Scale(Layer):
    """y = w * x + b with per-feature w, b (feature axis 1). Caches: x."""

    def _build(self, shape):
        self.w = self.add_param("weight", init.uniform((shape[1],), self.rng, 0.5, 1.5))
        self.b = self.add_param("bias", init.constant((shape[1],)))

    def _output_shape(self, shape):
        self.expect_ndim(shape, 2, "(N, F)")
        return shape

    def _forward(self, x):
        self.save(x=x)
        return x * self.w.data + self.b.data

    def _backward(self, dy):
        x = self.cache["x"]
        self.w.grad += (dy * x).sum(0)
        self.b.grad += dy.sum(0)
        return dy * self.w.data


class Square(Layer):
    def _forward(self, x):
        self.save(x=x)
        return x * x

    def _backward(self, dy):
        return 2 * self.cache["x"] * dy


class BadSquare(Square):
    def _backward(self, dy):
        return 3 * self.cache["x"] * dy


class Add(Layer):
    num_inputs = 2

    def _forward(self, a, b):
        self._forwarded_once = True
        return a + b

    def _backward(self, dy):
        return dy, dy


class SumSquares(LossLayer):
    def _forward(self, pred, target):
        d = pred - target
        self.save(d=d)
        return (d * d).sum()

    def _backward(self, dy):
        return 2 * self.cache["d"] * dy


def test_lazy_setup_creates_params_from_input_shape(rng):
    layer = Scale()
    y = layer.forward(rng.standard_normal((4, 3)).astype(np.float32))
    assert layer.built and y.dtype == np.float32
    assert layer.w.shape == (3,) and layer.num_params() == 6


def test_setup_on_shapes_alone_and_wrong_rank_names_layer():
    layer = Scale(name="s1")
    assert layer.setup((8, 5)) == (8, 5)
    with pytest.raises(LayerError, match=r"Scale 's1'.*\(N, F\)"):
        layer.forward(np.zeros((2, 5, 1), np.float32))


def test_dtype_mismatch_is_a_clear_error():
    layer = Scale(name="s")
    layer.setup((2, 3))
    with pytest.raises(LayerError, match="float64.*float32"):
        layer.forward(np.zeros((2, 3)))


def test_backward_before_forward_is_a_clear_error():
    layer = Scale(name="scale")
    layer.setup((2, 3))
    with pytest.raises(LayerError, match="scale.*before|without a preceding forward"):
        layer.backward(np.zeros((2, 3), np.float32))


def test_backward_frees_cache_and_second_backward_fails(rng):
    layer = Scale()
    x = rng.standard_normal((2, 3)).astype(np.float32)
    layer.forward(x)
    assert layer.cache
    layer.backward(np.ones((2, 3), np.float32))
    assert not layer.cache
    with pytest.raises(LayerError):
        layer.backward(np.ones((2, 3), np.float32))


def test_wrong_gradient_shape_is_named(rng):
    layer = Square(name="sq")
    layer.forward(rng.standard_normal((2, 3)))
    with pytest.raises(LayerError, match=r"sq.*\(2, 3\)"):
        layer.backward(np.ones((3, 2)))


def test_eval_caches_nothing_and_param_grads_accumulate(rng):
    layer = Scale()
    x = rng.standard_normal((2, 3))
    layer.eval()
    layer.forward(x)
    assert layer.cache == {}
    layer.train()
    for _ in range(2):
        layer.forward(x)
        layer.backward(np.ones((2, 3)))
    np.testing.assert_allclose(layer.b.grad, 2 * 2 * np.ones(3))
    layer.zero_grad()
    assert not layer.b.grad.any()


def test_gradcheck_passes_on_correct_and_fails_on_wrong_backward(rng):
    x = rng.standard_normal((3, 4))
    report = gradcheck(Scale(), x)
    assert report.ok and {e.name for e in report.entries} == {"input[0]", "param weight", "param bias"}
    with pytest.raises(GradcheckError, match="FAIL"):
        gradcheck(BadSquare(), x)


def test_net_fan_out_sums_gradients(rng):
    # y = s(x)^2 + s(x): the blob "s" feeds two layers, its gradient is the sum.
    net = Net(inputs="x")
    net.add(Scale(), inputs="x", outputs="s", name="scale")
    net.add(Square(), inputs="s", outputs="sq", name="square")
    net.add(Add(), inputs=["sq", "s"], outputs="y", name="add")
    x = rng.standard_normal((3, 2))
    y = net.forward(x)
    s = x * net["scale"].w.data + net["scale"].b.data
    np.testing.assert_allclose(y, s * s + s)
    dx = net.backward(np.ones_like(y))
    np.testing.assert_allclose(dx, (2 * s + 1) * net["scale"].w.data)
    gradcheck(net, x)


def test_net_with_loss_starts_backprop_with_loss_weight(rng):
    net = Net(inputs=["x", "t"])
    net.add(Scale(), inputs="x", outputs="s", name="scale")
    net.add(SumSquares(loss_weight=0.5), inputs=["s", "t"], outputs="loss", name="loss")
    x, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss = net.forward(x, t)
    assert loss.shape == ()
    dx, dt = net.backward()
    assert dt is None
    s = x * net["scale"].w.data
    np.testing.assert_allclose(dx, 0.5 * 2 * (s - t) * net["scale"].w.data)


def test_net_rejects_unknown_and_duplicate_blobs():
    net = Net(inputs="x")
    with pytest.raises(LayerError, match="'nope'"):
        net.add(Square(), inputs="nope")
    net.add(Square(), inputs="x", outputs="y")
    with pytest.raises(LayerError, match="already exists"):
        net.add(Square(), inputs="x", outputs="y")


def test_sequential_names_like_torch_and_state_dict_roundtrip(rng):
    seq = Sequential(Scale(), Square(), Scale())
    x = rng.standard_normal((2, 3))
    y = seq.forward(x)
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    other = Sequential(Scale(), Square(), Scale(), seed=1)
    other.setup((2, 3), dtype=np.float64)
    assert not np.allclose(other.forward(x), y)
    other.load_state_dict(seq.state_dict())
    np.testing.assert_array_equal(other.forward(x), y)
    with pytest.raises(LayerError, match="missing keys"):
        other.load_state_dict({"0.weight": np.ones(3)})
    bad = seq.state_dict()
    bad["0.bias"] = np.ones(4)
    with pytest.raises(LayerError, match="0.bias.*shape"):
        other.load_state_dict(bad)


def test_same_seed_builds_same_params():
    a, b = Sequential(Scale(), seed=3), Sequential(Scale(), seed=3)
    a.setup((1, 4)), b.setup((1, 4))
    np.testing.assert_array_equal(a["0"].w.data, b["0"].w.data)


def test_fillers_statistics():
    r = np.random.default_rng(0)
    w = init.msra((256, 128, 3, 3), r)
    assert w.dtype == np.float32
    assert abs(w.std() - np.sqrt(2 / (128 * 9))) < 0.01 * np.sqrt(2 / (128 * 9)) * 5
    w = init.xavier((300, 200), r)
    a = np.sqrt(6 / 500)
    assert w.min() >= -a and w.max() <= a and abs(w.std() - a / np.sqrt(3)) < 0.02 * a
    w = init.msra((64, 32, 3, 3), r, mode="fan_out")
    assert abs(w.std() - np.sqrt(2 / (64 * 9))) < 0.05 * np.sqrt(2 / (64 * 9))
    np.testing.assert_allclose(init.fill({"type": "constant", "value": 0.25}, (2,), r), [0.25, 0.25])
    with pytest.raises(ValueError, match="mode"):
        init.msra((3, 3), r, mode="fan_wrong")
    with pytest.raises(KeyError, match="unknown filler"):
        init.fill("nosuch", (2,), r)


def test_loss_backward_rejects_non_scalar_gradient(rng):
    loss = SumSquares(name="ss")
    loss.forward(rng.standard_normal((2, 3)), rng.standard_normal((2, 3)))
    with pytest.raises(LayerError, match="ss.*scalar"):
        loss.backward(np.ones((2, 3)))


def test_net_backward_without_gradient_or_loss_is_an_error(rng):
    net = Sequential(Scale(), Square(), name="chain")
    net.forward(rng.standard_normal((2, 3)))
    with pytest.raises(LayerError, match="chain.*loss layer"):
        net.backward()
    two = Net(inputs="x", outputs=["a", "b"], name="two")
    two.add(Square(), inputs="x", outputs="a")
    two.add(Square(), inputs="x", outputs="b")
    two.forward(rng.standard_normal((2, 3)))
    with pytest.raises(LayerError, match="two.*1 gradient.*2 output"):
        two.backward(np.ones((2, 3)))
