"""Model builders: the papers' parameter counts (from shapes alone), small inputs, gradcheck, registry."""
import numpy as np
import pytest

from layerwise.models import (PAPER_CIFAR_ROWS, DenseBlock, DenseNetConfig, ShortcutPad, build_densenet,
                              build_model, densenet_bc, lenet, mlp, registered_models, resnet20)
from layerwise.core import Net
from layerwise.testing import gradcheck
from layerwise.tools.summary import summary, summary_rows


def count(name, shape=(3, 32, 32), **kw):
    net = build_model(name, **kw)
    net.setup((1,) + shape)          # shapes only: params are created, nothing is computed
    return net.num_params()


# exact counts (torchvision's layout; the DenseNet paper's Table 2 rounds them): 16-channel stem for plain
# DenseNet, 2k stem for DenseNet-BC
EXACT = {"densenet_40_12": 1_019_722, "densenet_100_12": 6_979_642, "densenet_100_24": 27_249_082,
         "densenet_bc_100_12": 769_162, "densenet_bc_250_24": 15_324_406, "densenet_bc_190_40": 25_624_430}


@pytest.mark.parametrize("name", list(PAPER_CIFAR_ROWS))
def test_densenet_paper_table_param_counts(name):
    n = count(name)
    assert round(n / 1e6, 1) == PAPER_CIFAR_ROWS[name][3] / 1e6
    assert n == EXACT[name]


@pytest.mark.parametrize("name, expected", [("densenet121", 7_978_856), ("densenet169", 14_149_480),
                                            ("densenet201", 20_013_928)])
def test_densenet_imagenet_counts_match_torchvision(name, expected):
    assert count(name, (3, 224, 224)) == expected


def test_densenet264_builds_with_imagenet_shapes():
    net = build_model("densenet264")
    assert net.setup((1, 3, 224, 224)) == (1, 1000)
    assert net.blob_shapes["features"] == (1, 2688, 7, 7)
    assert round(net.num_params() / 1e6, 1) == 33.3


@pytest.mark.parametrize("name, expected", [("resnet20", 0.27e6), ("resnet56", 0.85e6), ("resnet110", 1.7e6)])
def test_cifar_resnet_param_counts(name, expected):
    assert round(count(name) / 1e6, 2 if expected < 1e6 else 1) == expected / 1e6


@pytest.mark.parametrize("name, expected", [("resnet18", 11_689_512), ("resnet50", 25_557_032)])
def test_imagenet_resnet_counts_match_torchvision(name, expected):
    assert count(name, (3, 224, 224)) == expected


def test_densenet_defaults_and_shapes():
    net = densenet_bc()
    cfg = net.config
    assert (cfg.depth, cfg.growth_rate, cfg.bottleneck, cfg.compression) == (100, 12, True, 0.5)
    assert cfg.layers_per_block() == (16, 16, 16) and cfg.stem_width() == 24
    assert net.setup((2, 3, 32, 32)) == (2, 10)
    assert net.blob_shapes["features"] == (2, 342, 8, 8)
    assert build_model("densenet").config.layers_per_block() == (12, 12, 12)


def test_densenet_he_init_as_the_authors_code():
    net = build_model("densenet", depth=40)
    net.setup((1, 3, 32, 32))
    w = net.named_params()["features.denseblock3.denselayer12.conv1.weight"].data   # (12, 288, 3, 3)
    std = np.sqrt(2.0 / (3 * 3 * 12))                                              # fan_out
    assert abs(w.std() / std - 1) < 0.05
    bn = net.named_params()
    assert np.all(bn["features.norm5.weight"].data == 1) and np.all(bn["features.norm5.bias"].data == 0)
    assert np.all(bn["classifier.bias"].data == 0)


def test_densenet_config_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"depth=41 .* need depth = 4 \+ 3\*n"):
        build_model("densenet", depth=41)
    with pytest.raises(ValueError, match="compression"):
        build_densenet(compression=0.0)
    with pytest.raises(ValueError, match="stem"):
        build_densenet(stem="mnist")
    with pytest.raises(KeyError, match="build_model: unknown model 'densnet'.*densenet_bc"):
        build_model("densnet")


def tiny_bc(**kw):
    """A DenseNet-BC that fits 1x8x8 digits: two blocks (8x8, then 4x4)."""
    cfg = DenseNetConfig(block_config=(2, 2), growth_rate=3, bottleneck=True, bn_size=2, compression=0.5,
                         num_classes=4, **kw)
    return build_densenet(cfg)


def test_tiny_densenet_bc_on_8x8_digits_trains_a_step(rng):
    net = tiny_bc()
    x = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    y = net.forward(x)
    assert y.shape == (4, 4) and y.dtype == np.float32
    assert net.blob_shapes["features"] == (4, 12, 4, 4)  # stem 2k=6, +2*3, /2, +2*3
    dx = net.backward(np.ones_like(y))
    assert dx.shape == x.shape
    assert all(np.isfinite(p.grad).all() for p in net.params())
    assert all(not m.cache for m in net.modules())
    # the fused layers of the plan keep their state in their cache: released after backward too
    fused = [s.layer for m in net.modules() if isinstance(m, Net) for s in m.steps if s.fused]
    assert {type(f).__name__ for f in fused} >= {"FusedDenseBlock", "FusedTransition"}, \
        "the default DenseNet-BC should run the fused dense blocks"
    assert all(not f.cache and not f._forwarded for f in fused)


def test_tiny_densenet_bc_gradcheck_end_to_end(rng):
    net = tiny_bc(init_features=4)
    gradcheck(net, rng.standard_normal((2, 1, 8, 8)), max_elements=40)


def test_tiny_densenet_with_dropout_and_plain_variant(rng):
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    plain = build_densenet(block_config=(2, 2), growth_rate=3, dropout=0.2, num_classes=3)
    assert plain.forward(x).shape == (2, 3)
    layer = plain["features"]["denseblock1"].dense_layers[0]
    assert list(layer.children()) == ["norm1", "relu1", "conv1", "drop1"]   # no bottleneck: one conv
    assert layer.children()["conv1"].kernel_size == (3, 3)
    assert list(plain["features"]["transition1"].children()) == ["norm", "relu", "conv", "drop", "pool"]


def test_memory_efficient_switch_gives_identical_results(rng):
    x = rng.standard_normal((2, 1, 8, 8))
    outs = []
    for on in (True, False):
        net = tiny_bc(memory_efficient=on).astype(np.float64)
        y = net.forward(x)
        net.backward(np.ones_like(y))
        outs.append((y, {k: p.grad.copy() for k, p in net.named_params().items()}))
        blocks = [m for m in net.modules() if isinstance(m, DenseBlock)]
        assert blocks and all(b.memory_efficient == on for b in blocks)
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    for k in outs[0][1]:
        np.testing.assert_array_equal(outs[0][1][k], outs[1][1][k])


@pytest.mark.parametrize("preact", [False, True])
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_small_resnet_gradcheck(rng, preact, shortcut):
    from layerwise.models import ResNet
    net = ResNet((1, 1), width=2, num_classes=3, shortcut=shortcut, preact=preact)
    gradcheck(net, rng.standard_normal((2, 1, 6, 6)), max_elements=30)


def test_shortcut_pad_gradcheck_and_shape(rng):
    layer = ShortcutPad(6, stride=2)
    assert layer.setup((2, 3, 5, 5)) == (2, 6, 3, 3)
    gradcheck(layer, rng.standard_normal((2, 3, 5, 5)))
    y = layer.forward(np.arange(2 * 3 * 5 * 5, dtype=np.float32).reshape(2, 3, 5, 5))
    assert np.all(y[:, 0] == 0) and np.all(y[:, 4:] == 0) and y[0, 1, 1, 1] == 12.0
    with pytest.raises(ValueError, match="ShortcutPad.*more than out_channels"):
        ShortcutPad(2).setup((1, 3, 4, 4))


def test_resnet_shapes_and_errors():
    net = resnet20()
    assert net.setup((2, 3, 32, 32)) == (2, 10)
    assert net.blob_shapes["layer3.2"] == (2, 64, 8, 8)
    with pytest.raises(ValueError, match="6n\\+2"):
        build_model("resnet", depth=21)
    with pytest.raises(ValueError, match="shortcut"):
        build_model("resnet20", shortcut="C")


def test_lenet_and_mlp(rng):
    net = lenet()
    assert net.setup((2, 1, 28, 28)) == (2, 10) and net.num_params() == 61_706
    small = lenet(padding=(2, 2), num_classes=3)
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    assert small.forward(x).shape == (2, 3)
    m = mlp(hidden=(16, 8), num_classes=3, dropout=0.1, batchnorm=True)
    assert m.forward(x).shape == (2, 3)
    assert m.num_params() == 64 * 16 + 16 + 32 + 16 * 8 + 8 + 16 + 8 * 3 + 3
    gradcheck(mlp(hidden=(5,), num_classes=2, activation="tanh"), rng.standard_normal((3, 4)))


def test_registry_lists_every_family():
    names = set(registered_models())
    assert {"densenet", "densenet_bc", "densenet121", "densenet264", "resnet110", "preact_resnet20", "resnet18",
            "resnet50", "lenet", "mlp"} <= names


def test_summary_densenet_bc_from_shapes():
    net = densenet_bc()
    rows = summary_rows(net, (3, 32, 32))
    assert sum(r.params for r in rows) == 769_162
    macs = sum(r.macs for r in rows)
    conv3 = sum(r.macs for r in rows if r.name.endswith("conv2") or r.name.endswith("conv0"))
    assert round(macs / 1e6, 1) == 287.9 and round(conv3 / 1e6) == 112
    first = rows[0]
    assert (first.name, first.type, first.output_shape, first.params, first.macs) == \
        ("features.conv0", "Conv2d", (24, 32, 32), 648, 32 * 32 * 24 * 27)
    text = summary(net, (3, 32, 32))
    assert "features.denseblock3.denselayer16.conv2" in text and "769,162" in text
    folded = summary_rows(net, (3, 32, 32), depth=2)
    assert [r.name for r in folded][:3] == ["features.conv0", "features.denseblock1", "features.transition1"]
    assert sum(r.params for r in folded) == 769_162 and sum(r.macs for r in folded) == macs

