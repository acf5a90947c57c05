"""Metrics, logs and the per-layer timer."""
from __future__ import annotations

import numpy as np
import pytest

from layerwise.models import build_model
from layerwise.tools.timing import format_timing, time_layers
from layerwise.train import EpochLog, confusion_matrix, read_log, topk_correct


def test_topk_against_a_sort(rng):
    logits = rng.standard_normal((50, 7))
    y = rng.integers(0, 7, 50)
    order = np.argsort(-logits, axis=1)
    for k in (1, 3, 5, 7):
        assert topk_correct(logits, y, k) == int((order[:, :k] == y[:, None]).any(axis=1).sum())
    with pytest.raises(ValueError, match="labels of shape"):
        topk_correct(logits, y[:3], 1)


def test_confusion_matrix_against_sklearn(rng):
    from sklearn.metrics import confusion_matrix as sk

    y, p = rng.integers(0, 4, 100), rng.integers(0, 4, 100)
    np.testing.assert_array_equal(confusion_matrix(p, y, 4), sk(y, p, labels=range(4)))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        confusion_matrix(p, y, 3)


def test_epoch_log_rewrites_both_files(tmp_path):
    log = EpochLog(tmp_path)
    log.append({"epoch": 1, "train_loss": 0.5})
    log.append({"epoch": 2, "train_loss": 0.25, "val_top1": 0.9})
    rows = read_log(tmp_path / "log.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    csv_rows = read_log(tmp_path / "log.csv")
    assert csv_rows[1] == {"epoch": 2, "train_loss": 0.25, "val_top1": 0.9}
    EpochLog(tmp_path, rows[:1]).write()  # a resume from epoch 1 drops epoch 2
    assert [r["epoch"] for r in read_log(tmp_path)] == [1]


def test_time_layers_times_every_layer_forward_and_backward():
    net = build_model("mlp", hidden=(8,), num_classes=3)
    x = np.random.default_rng(0).standard_normal((4, 1, 3, 3)).astype(np.float32)
    rows = time_layers(net, x, iters=2)
    assert [r.name for r in rows] == [n.name for n in net.nodes]
    assert all(r.forward_ms > 0 and r.backward_ms >= 0 for r in rows)
    assert any(r.backward_ms > 0 for r in rows)
    assert all(not m.cache for m in net.modules())  # backward freed every cache
    assert all(float(np.abs(p.grad).sum()) == 0 for p in net.params())  # grads zeroed after timing
    text = format_timing(rows, batch=4)
    assert "total" in text and "img/s" in text
