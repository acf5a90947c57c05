"""Numerics (a diverging run stops non-zero keeping its last good checkpoint; evaluation is checked) and
API misuse (the dtype rule, misuse of layers and loaders): clear errors naming the layer or file."""
from __future__ import annotations

import math

import numpy as np
import pytest

import layerwise as lw
from layerwise.core import LayerError
from layerwise.data import DataLoader
from layerwise.train import read_log
from layerwise.train.trainer import NonFiniteError, evaluate

from ..train.helpers import tiny_dataset, tiny_trainer
from .conftest import expect_error, tiny_npz, train_args


def test_a_run_whose_validation_diverges_stops_and_keeps_its_last_good_checkpoint(tmp_path):
    """Fails before the fix: only training steps were checked, so an infinite validation loss exited 0."""
    def blow_up(tr):
        if tr.epoch == 1 and tr.batch_in_epoch == len(tr.train_loader):  # after epoch 2's last step
            for p in tr.net.params():
                p.data[...] = 1e38  # float32: the logits overflow to inf in evaluation
    trainer = tiny_trainer(tmp_path / "run", epochs=3, on_iteration=blow_up)
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(NonFiniteError) as info:
        trainer.fit()
    msg = str(info.value)
    assert "diverged in epoch 2" in msg and "checkpoint-epoch0001.safetensors" in msg and "solver.lr" in msg
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert "checkpoint-epoch0001.safetensors" in names and "checkpoint-epoch0002.safetensors" not in names
    assert [r["epoch"] for r in read_log(tmp_path / "run")] == [1]  # the files end at the last good epoch
    assert [r["epoch"] for r in trainer.history] == [1, 2] and math.isnan(trainer.history[-1]["val_loss"])


def test_cli_diverging_run_exits_3_with_one_line_and_keeps_the_checkpoint(tmp_path, capsys):
    npz = tiny_npz(tmp_path / "d.npz")
    out = tmp_path / "run"
    line = expect_error(capsys, train_args(npz, out, "--set", "solver.lr=10000", epochs=3), "NaN/Inf",
                        "lower solver.lr", code=3)
    assert "RuntimeWarning" not in line
    kept = out / "checkpoint-epoch0001.safetensors"  # epoch 1 ended finite, epoch 2 diverged
    assert f"the last good checkpoint is {kept}" in line
    from layerwise.io import load_checkpoint

    tensors, meta = load_checkpoint(kept)
    assert meta["epoch"] == 1 and all(np.isfinite(v).all() for k, v in tensors.items() if k.startswith("model/"))
    assert not (out / "checkpoint-epoch0002.safetensors").exists()


def test_evaluate_refuses_non_finite_outputs():
    net = lw.models.build_model("mlp", hidden=[4], num_classes=3)
    net.setup((2, 1, 4, 4))
    next(iter(net.params())).data[...] = np.nan
    loader = DataLoader(tiny_dataset(12), 4, shuffle=False, prefetch=False)
    with pytest.raises(NonFiniteError, match="NaN/Inf for batches of 12 of 12 samples"):
        evaluate(net, loader, lw.SoftmaxCrossEntropyLoss())


@pytest.mark.parametrize("layer,shape", [(lambda: lw.Linear(3), (2, 5)), (lambda: lw.BatchNorm2d(), (2, 3, 4, 4)),
                                         (lambda: lw.BatchNorm1d(), (4, 3)), (lambda: lw.SyncBatchNorm(), (4, 3))])
@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_])
def test_integer_input_to_a_layer_with_params_is_a_clear_error(layer, shape, dtype):
    """Fails before the fix: Linear and BatchNorm silently returned float64."""
    m = layer()
    with pytest.raises(LayerError, match=r"input 0 has dtype .*params' dtype float32.*x\.astype\('float32'\)") as info:
        m.forward(np.ones(shape, dtype=dtype))
    assert type(m).__name__ in str(info.value)


def test_float64_input_to_a_float32_layer_is_a_clear_error():
    m = lw.Linear(3)
    m.forward(np.ones((2, 4), np.float32))
    with pytest.raises(LayerError, match="float64 but the layer's params are float32"):
        m.forward(np.ones((2, 4)))


@pytest.mark.parametrize("make", [lambda: lw.ReLU(), lambda: lw.MaxPool2d(2), lambda: lw.AvgPool2d(2),
                                  lambda: lw.GlobalAvgPool2d(), lambda: lw.Flatten(), lambda: lw.Dropout(0.5),
                                  lambda: lw.Softmax()], ids=["ReLU", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d",
                                                              "Flatten", "Dropout", "Softmax"])
def test_parameter_free_layers_follow_the_same_rule(make):
    """Before: AvgPool2d averaged integers with truncation, Dropout and GlobalAvgPool2d returned float64."""
    m = make()
    with pytest.raises(LayerError, match=r"dtype int64.*astype\('float32'\)"):
        m.forward(np.ones((2, 3, 4, 4), np.int64))
    assert m.forward(np.ones((2, 3, 4, 4), np.float32)).dtype == np.float32


def test_concat_refuses_integer_inputs():
    with pytest.raises(LayerError, match="Concat.*input 1 has dtype int32"):
        lw.Concat().forward(np.ones((2, 1, 2, 2), np.float32), np.ones((2, 1, 2, 2), np.int32))


def test_backward_without_forward_names_the_layer():
    with pytest.raises(LayerError, match="Linear.*without a preceding forward"):
        lw.Linear(3).backward(np.ones((2, 3), np.float32))


def test_sync_batchnorm_needs_more_than_one_value_per_channel():
    with pytest.raises(LayerError, match="more than one value per channel"):
        lw.SyncBatchNorm().forward(np.ones((1, 3), np.float32))


def test_trainer_resume_from_a_checkpoint_of_another_model(tmp_path):
    a = tiny_trainer(tmp_path / "a", epochs=1)
    a.fit()
    b = tiny_trainer(tmp_path / "b", epochs=1)
    b.net = lw.models.build_model("mlp", hidden=(5,), num_classes=3)
    b.net.setup((8, 1, 4, 4))
    with pytest.raises(ValueError, match="does not fit this model"):
        b.load_checkpoint(a.last_checkpoint)


def test_load_plain_pickle_of_a_string_is_a_data_error():
    from layerwise.data import DataError, load_plain_pickle

    with pytest.raises(DataError, match="bytes of a pickle"):
        load_plain_pickle("not bytes", "x")  # type: ignore[arg-type]
