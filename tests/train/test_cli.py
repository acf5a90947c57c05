"""The `layerwise` command end to end on a tiny model (an MLP on the built-in digits)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from layerwise.cli import main
from layerwise.io import load_checkpoint

TINY = """\
model: {name: mlp, kwargs: {hidden: [64], dropout: 0.1}}
augment: {crop_padding: 0}
solver: {lr: 0.2}
lr_policy: {warmup_epochs: 0.5}
epochs: 2
batch_size: 64
checkpoint_every: 1
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny training run through the CLI; the other tests read what it left behind."""
    d = tmp_path_factory.mktemp("cli")
    cfg = d / "tiny.yaml"
    cfg.write_text(TINY)
    out = d / "run"
    assert main(["train", str(cfg), "--out", str(out), "--no-progress"]) == 0
    return cfg, out


def test_train_leaves_checkpoints_log_curves_and_config(run):
    _, out = run
    for name in ("checkpoint-epoch0001.safetensors", "checkpoint-epoch0002.safetensors", "log.csv", "log.jsonl",
                 "curves.png", "config.yaml"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"train_loss", "train_acc", "val_loss", "val_top1", "val_top5", "lr", "img_per_s"} <= set(rows[0])
    assert rows[-1]["val_top1"] > 0.85  # an MLP learns digits in two epochs
    assert (out / "log.csv").read_text().splitlines()[0].startswith("epoch,iteration,train_loss")
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _, meta = load_checkpoint(out / "checkpoint-epoch0002.safetensors")
    assert meta["complete"] and meta["model"]["name"] == "mlp" and meta["config"]["epochs"] == 2


def test_test_command_prints_accuracy_and_confusion(run, capsys):
    _, out = run
    assert main(["test", str(out / "checkpoint-epoch0002.safetensors")]) == 0
    text = capsys.readouterr().out
    assert "top-1" in text and "confusion matrix" in text
    acc = float(text.split("top-1 ")[1].split("%")[0])
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert acc == pytest.approx(100 * rows[-1]["val_top1"], abs=0.01)  # same split, same number


def test_predict_on_npy_samples(run, tmp_path, capsys):
    from layerwise.data import load_dataset

    _, out = run
    ds = load_dataset("digits", split="test")
    np.save(tmp_path / "batch.npy", ds.x[:20])
    assert main(["predict", str(out / "checkpoint-epoch0002.safetensors"), str(tmp_path / "batch.npy"),
                 "--top", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 20
    pred = np.array([int(line.split(": ")[1].split()[0]) for line in lines])
    assert (pred == ds.y[:20]).mean() >= 0.7


def test_predict_on_png_images_prints_softmax_probabilities(run, tmp_path, capsys):
    from PIL import Image

    from layerwise.data import Normalize, load_dataset
    from layerwise.layers import Softmax
    from layerwise.train.build import model_from_checkpoint

    _, out = run
    ckpt = out / "checkpoint-epoch0002.safetensors"
    ds = load_dataset("digits", split="test")
    files = []
    for i in range(10):  # digits are 8x8 in [0, 1]: as 8-bit PNGs, then read back by layerwise.data.read_image
        files.append(tmp_path / f"d{i}.png")
        Image.fromarray(np.round(ds.x[i, 0] * 255).astype(np.uint8)).save(files[-1])
    assert main(["predict", str(ckpt), *map(str, files), "--top", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(f) for f in files]
    pred = np.array([int(line.split(": ")[1].split()[0]) for line in lines])
    assert (pred == ds.y[:10]).mean() >= 0.7
    net, meta = model_from_checkpoint(ckpt)  # the printed numbers are the Softmax layer's probabilities
    x = Normalize.from_meta(meta)((np.round(ds.x[:1] * 255) / 255).astype(np.float32))
    prob = Softmax().eval().forward(np.asarray(net.forward(x.astype(np.float32)), np.float64))[0]
    top = np.argsort(-prob)[:3]
    assert lines[0].split("(")[1].rstrip(")") == ", ".join(f"{k} {prob[k]:.3f}" for k in top)


def test_resume_auto_continues_the_run(run, capsys):
    cfg, out = run
    assert main(["train", "--resume", "auto", "--out", str(out), "--epochs", "3", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "Resumed from" in text and "checkpoint-epoch0002" in text
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert (out / "checkpoint-epoch0003.safetensors").is_file()


def test_config_errors_exit_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("solver: {lrr: 0.1}\n")
    assert main(["train", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("layerwise train: error: unknown config key 'solver.lrr'") and "Traceback" not in err
    assert main(["train", "--set", "epochs=zero", "--out", str(tmp_path / "r")]) == 2
    assert main(["test", str(tmp_path / "nope.safetensors")]) == 2
    assert main(["train", "--resume", "auto", "--out", str(tmp_path / "empty")]) == 2


def test_model_tools(capsys):
    assert main(["time", "mlp", "--input", "1,8,8", "--batch", "4", "--iters", "1"]) == 0
    text = capsys.readouterr().out
    assert "fc1" in text and "forward-backward" in text
    assert main(["summary", "mlp", "--input", "1,8,8", "--num-classes", "10"]) == 0
    assert "fc1" in capsys.readouterr().out
    assert main(["gradcheck", "ReLU", "--input", "3,4,4"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["gradcheck", "NoSuchLayer"]) == 2


def test_plot_curves_from_log(run, tmp_path):
    _, out = run
    png = tmp_path / "c.png"
    assert main(["plot", "curves", str(out / "log.csv"), "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_every_command_has_help_with_an_example(capsys):
    for cmd in ("train", "test", "predict", "time", "summary", "gradcheck", "download", "plot"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "example:" in capsys.readouterr().out, cmd


def test_ctrl_c_in_a_real_process_saves_and_exits_cleanly(tmp_path):
    cfg = tmp_path / "long.yaml"
    cfg.write_text(TINY.replace("epochs: 2", "epochs: 500").replace("checkpoint_every: 1", "checkpoint_every: 0"))
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "layerwise.cli", "train", str(cfg), "--out", str(out),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 120
        while not (out / "log.jsonl").exists():  # wait until training is under way
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "training did not start"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Resume with: layerwise train --resume" in stdout
    ckpts = sorted(out.glob("checkpoint-*.safetensors"))
    assert len(ckpts) == 1
    tensors, meta = load_checkpoint(ckpts[0])
    assert meta["iteration"] > 0 and not meta["complete"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files
