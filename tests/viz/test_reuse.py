"""DenseNet feature reuse (Fig. 5): the matrices from hand-set weights, the plot and the CLI."""
import numpy as np
import pytest

from layerwise.io import save_checkpoint
from layerwise.models import build_densenet
from layerwise.models.dense_block import DenseBlock
from layerwise.viz import feature_reuse
from layerwise.viz.reuse import main

C0, K = 3, 2       # stem width (the first block's input), growth rate


def _net(bottleneck=False):
    net = build_densenet(block_config=(2, 3), growth_rate=K, init_features=C0, bottleneck=bottleneck,
                         impl="reference", num_classes=4)
    net.setup((1, 1, 8, 8))
    return net


def _value(b, s, t):
    """The hand-set |weight| from source s to target t in block b (all distinct)."""
    return 0.1 * (1 + s) + 0.01 * (1 + t) + b


def _set_weights(net):
    """Fill each target's weights over source s's channels with +-_value(b, s, t) (random signs)."""
    rng = np.random.default_rng(0)
    feats = net.children()["features"].children()
    targets = {1: feats["transition1"].children()["conv"], 2: net.children()["classifier"]}
    for b in (1, 2):
        block = feats[f"denseblock{b}"]
        c0 = block._in_shapes[0][1]
        bounds = [0, c0] + [c0 + s * K for s in range(1, block.num_layers + 1)]
        convs = [layer.children()["conv1"] for layer in block.dense_layers] + [targets[b]]
        for t, conv in enumerate(convs):
            w = conv.weight.data
            for s in range(t + 1):
                sign = rng.choice([-1.0, 1.0], size=w[:, bounds[s]:bounds[s + 1]].shape)
                w[:, bounds[s]:bounds[s + 1]] = sign * _value(b, s, t)


@pytest.mark.parametrize("bottleneck", [False, True])
def test_matrices_from_hand_set_weights(bottleneck):
    net = _net(bottleneck)
    _set_weights(net)
    raw = feature_reuse(net, normalize=False)
    assert [a.shape for a in raw] == [(3, 3), (4, 4)]
    for b, A in enumerate(raw, start=1):
        L = A.shape[0] - 1
        for t in range(L + 1):
            for s in range(L + 1):
                if s > t:
                    assert np.isnan(A[s, t]), (b, s, t)          # layer t+1 cannot read later layers
                else:
                    assert A[s, t] == pytest.approx(_value(b, s, t), rel=1e-6), (b, s, t)
    norm = feature_reuse(net)
    for A, R in zip(norm, raw):
        np.testing.assert_allclose(A, R / np.nanmax(R, axis=0), rtol=1e-12)   # per target column
        assert np.allclose(np.nanmax(A, axis=0), 1.0)


def test_a_block_reading_only_its_input_shows_one_bright_row():
    net = _net()
    block = net.children()["features"].children()["denseblock1"]
    for layer in block.dense_layers:
        w = layer.children()["conv1"].weight.data
        w[...] = 0
        w[:, :C0] = 0.5                                  # only x_0 is read
    A = feature_reuse(net)[0]
    np.testing.assert_array_equal(A[0, :2], [1.0, 1.0])
    assert A[1, 1] == 0.0


def test_a_lone_block_has_no_last_target_and_errors_are_clear():
    block = DenseBlock(2, 2, bottleneck=False)
    with pytest.raises(ValueError, match="not set up"):
        feature_reuse(block)
    block.setup((1, 4, 5, 5))
    A = feature_reuse(block)[0]
    assert A.shape == (3, 3) and np.isnan(A[:, 2]).all() and not np.isnan(A[0, 0])
    from layerwise.models import build_model
    with pytest.raises(ValueError, match="no DenseBlock"):
        feature_reuse(build_model("mlp", hidden=(4,), num_classes=2))


def test_cli_reads_a_checkpoint_prints_the_matrix_and_writes_a_png(tmp_path, capsys):
    net = _net()
    _set_weights(net)
    ckpt = tmp_path / "c.safetensors"
    meta = {"model": {"name": "densenet", "num_classes": 4,
                      "kwargs": {"block_config": [2, 3], "growth_rate": K, "init_features": C0,
                                 "impl": "reference"}},
            "input_shape": [1, 8, 8]}
    save_checkpoint(ckpt, {f"model/{k}": v for k, v in net.state_dict().items()}, meta)
    out = tmp_path / "reuse.png"
    from layerwise.cli import main as cli_main
    assert cli_main(["plot", "reuse", str(ckpt), "--out", str(out), "--dpi", "40"]) == 0   # via the command
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "dense block 2 (3 layers)" in text
    want = _value(1, 0, 2) / _value(1, 2, 2)               # transition1 reads x_0 relative to its max
    assert f"{want:5.2f}" in text.splitlines()[1]
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.safetensors")])
