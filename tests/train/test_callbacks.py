"""The Trainer's callback protocol: events and their order, what each built-in callback does,
callback state across a resume, and the learning rate flowing one way (the solver's schedule)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import layerwise as lw
from layerwise.data import DataLoader
from layerwise.io import load_checkpoint
from layerwise.solvers.lr_policy import build_policy
from layerwise.train import (
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    NonFiniteError,
    StopOnNonFinite,
    Trainer,
    default_callbacks,
    read_log,
)

from .helpers import tiny_dataset


class Recorder(Callback):
    def __init__(self, order=0):
        self.order, self.events = order, []

    def on_train_begin(self, trainer):
        self.events.append("train_begin")

    def on_epoch_begin(self, trainer):
        self.events.append(f"epoch_begin {trainer.epoch + 1}")

    def on_step_end(self, trainer, logs):
        self.events.append(f"step {trainer.iteration} {logs['batch']}")

    def on_epoch_end(self, trainer, row):
        self.events.append(f"epoch_end {row['epoch']}")

    def on_train_end(self, trainer):
        self.events.append("train_end")


def _plain(epochs=2, callbacks=None, lr=0.1):
    loader = DataLoader(tiny_dataset(24), batch_size=8, shuffle=True, seed=0, prefetch=False)
    val = DataLoader(tiny_dataset(12, seed=3), batch_size=12, shuffle=False, prefetch=False)
    net = lw.Sequential(lw.Flatten(), lw.Linear(8), lw.ReLU(), lw.Linear(3), seed=0)
    solver = lw.SGD(net.named_params(), lr=lr)  # before the net exists: bound on first use
    return Trainer(net, lw.SoftmaxCrossEntropyLoss(), solver, loader, val_loader=val, epochs=epochs,
                   callbacks=callbacks)


def test_events_come_in_order_with_the_trainer_state_they_describe():
    rec = Recorder()
    t = _plain(epochs=2, callbacks=[rec])
    t.fit()
    assert rec.events == ["train_begin", "epoch_begin 1", "step 1 8", "step 2 8", "step 3 8", "epoch_end 1",
                          "epoch_begin 2", "step 4 8", "step 5 8", "step 6 8", "epoch_end 2", "train_end"]


def test_callbacks_run_by_order_then_as_given_and_the_nan_check_is_always_there():
    calls = []
    a = LambdaCallback(on_epoch_end=lambda t, r: calls.append("a"), order=5)
    b = LambdaCallback(on_epoch_end=lambda t, r: calls.append("b"))
    c = LambdaCallback(on_epoch_end=lambda t, r: calls.append("c"), order=-1)
    t = _plain(epochs=1, callbacks=[a, b, c])
    t.fit()
    assert calls == ["c", "b", "a"]
    assert isinstance(t.callbacks.all[0], StopOnNonFinite)  # added, and first
    with pytest.raises(TypeError, match="LambdaCallback"):
        _plain(callbacks=[lambda t: None])


def test_default_callbacks_print_epoch_lines_and_write_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    t = _plain(epochs=1)
    assert [type(c).__name__ for c in t.callbacks] == ["StopOnNonFinite", "ProgressBar", "ConsoleLogger"]
    t.fit()
    assert capsys.readouterr().out.startswith("epoch   1/1  train loss")
    assert list(tmp_path.iterdir()) == []


def test_the_learning_rate_is_the_solvers_schedule_counted_once():
    policy = build_policy("step", 0.1, gamma=0.5, step_size=2)
    seen = []
    t = _plain(epochs=2, callbacks=[LambdaCallback(on_step_end=lambda tr, logs: seen.append(
        (logs["lr"], tr.iteration, tr.solver.iteration)))])
    t.solver.lr = policy  # a user's schedule: the trainer reads it, never sets it
    t.fit()
    assert [s[0] for s in seen] == [policy(i) for i in range(6)]
    assert all(it == sit for _, it, sit in seen)  # the trainer's iteration is the solver's
    assert [r["lr"] for r in t.history] == [policy(2), policy(5)]  # the lr of each epoch's last update
    assert not hasattr(Trainer, "lr_at") and "policy" not in Trainer.__init__.__code__.co_varnames


def test_early_stopping_stops_checkpoints_the_last_epoch_and_resumes_its_count(tmp_path):
    es = EarlyStopping("train_acc", patience=1, min_delta=2.0)  # accuracy never rises by 2: stop after epoch 2
    t = _plain(epochs=5, callbacks=[es, Checkpoint(tmp_path, every=0), CSVLogger(tmp_path)])
    msgs = []
    t.callbacks.active.append(LambdaCallback(on_message=lambda tr, m: msgs.append(m)))
    t.fit()
    assert t.epoch == 2 and t.stop_training and not t.interrupted
    assert es.mode == "max" and es.best_epoch == 1 and es.wait == 1
    assert t.last_checkpoint.name == "checkpoint-epoch0002.safetensors"
    assert [r["epoch"] for r in read_log(tmp_path)] == [1, 2]
    assert any(m.startswith("Early stopping at epoch 2: train_acc") for m in msgs)
    _, meta = load_checkpoint(t.last_checkpoint)
    assert meta["callbacks"]["EarlyStopping"] == {"best": es.best, "best_epoch": 1, "wait": 1}
    es2 = EarlyStopping("train_acc", patience=3)
    t2 = _plain(epochs=5, callbacks=[es2])
    t2._ensure_built()
    t2.load_checkpoint(t.last_checkpoint)
    assert (es2.best, es2.best_epoch, es2.wait) == (es.best, 1, 1)


def test_early_stopping_names_a_missing_metric():
    t = _plain(epochs=2, callbacks=[EarlyStopping("val_acc")])
    with pytest.raises(ValueError, match="no 'val_acc'.*val_top1"):
        t.fit()
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)


def test_a_nan_step_is_never_applied_and_stops_the_run():
    t = _plain(epochs=1, callbacks=[])
    t._ensure_built()
    before = {k: np.array(v) for k, v in t.net.state_dict().items()}
    x = np.full((8, 1, 4, 4), np.nan, np.float32)
    logs = t.train_step(x, np.zeros(8, np.int64))
    assert not logs["finite"] and math.isnan(logs["loss"]) and "NaN/Inf" in logs["nonfinite"]
    assert t.iteration == 0
    for k, v in t.net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(NonFiniteError, match="input batch itself holds NaN"):
        StopOnNonFinite().on_step_end(t, logs)


def test_build_trainer_wires_the_schedule_into_the_solver_and_the_files_into_callbacks(tmp_path):
    from layerwise.config import load_config
    from layerwise.train.build import build_trainer

    cfg = load_config(None, ["epochs=1", "model.name=mlp", "augment.crop_padding=0", "augment.flip=false"])
    t = build_trainer(cfg, tmp_path / "run", progress=False, print_fn=lambda s: None)
    names = [type(c).__name__ for c in t.callbacks]
    assert names == ["StopOnNonFinite", "ProgressBar", "ConsoleLogger", "CSVLogger", "Checkpoint", "PlotCurves"]
    assert callable(t.solver.policy) and t.solver.lr_at(0) != t.solver.lr_at(len(t.train_loader) - 1)
    assert default_callbacks()[0].order < 0
