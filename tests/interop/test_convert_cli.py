"""`layerwise convert` in every direction, and test/predict/summary/time on Caffe and ONNX models."""
import numpy as np
import pytest

pytest.importorskip("onnx", reason="ONNX interop needs onnx: pip install 'layerwise[interop]'")
ort = pytest.importorskip("onnxruntime", reason="the ONNX oracle: pip install onnxruntime")

from layerwise.cli import main  # noqa: E402
from layerwise.interop import load_caffe, load_onnx  # noqa: E402
from layerwise.interop.convert import load_model  # noqa: E402
from layerwise.testing.oracle import assert_close  # noqa: E402
from tests.interop.test_caffe import LENET, write_caffemodel  # noqa: E402


@pytest.fixture
def caffe_files(tmp_path):
    proto = tmp_path / "lenet.prototxt"
    proto.write_text(LENET)
    write_caffemodel(load_caffe(LENET), tmp_path / "lenet.caffemodel", np.random.default_rng(0))
    return proto, tmp_path / "lenet.caffemodel"


def test_convert_caffe_onnx_checkpoint_round_trips(caffe_files, tmp_path, capsys):
    proto, weights = caffe_files
    x = np.random.default_rng(1).standard_normal((3, 1, 20, 20)).astype(np.float32)
    ref = load_caffe(proto, weights).forward(x)
    onnx_path, ckpt, ckpt2, back = (tmp_path / n for n in ("m.onnx", "m.safetensors", "o.npz", "back.onnx"))
    assert main(["convert", str(proto), str(onnx_path), "--weights", str(weights)]) == 0
    assert "lenet.prototxt -> " in capsys.readouterr().out
    s = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert_close(s.run(None, {s.get_inputs()[0].name: x})[0], ref, rtol=1e-5, what="caffe -> onnx")
    assert main(["convert", str(proto), str(ckpt)]) == 0               # <stem>.caffemodel found beside it
    assert main(["convert", str(onnx_path), str(ckpt2)]) == 0
    assert main(["convert", str(ckpt), str(back)]) == 0
    for path in (ckpt, ckpt2, back):
        net, meta = load_model(path)
        assert meta["input_shape"] == [1, 20, 20]
        assert_close(net.forward(x), ref, rtol=1e-5, what=str(path.name))
    assert ckpt2.stat().st_size < 2 * onnx_path.stat().st_size          # weights stored once, not twice


def test_convert_training_checkpoint_to_onnx(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("model: {name: mlp, kwargs: {hidden: [16]}}\naugment: {crop_padding: 0}\nepochs: 1\n"
                   "batch_size: 256\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    ckpt = sorted((tmp_path / "run").glob("checkpoint-*.safetensors"))[-1]
    out = tmp_path / "digits.onnx"
    assert main(["convert", str(ckpt), str(out)]) == 0
    net, meta = load_model(ckpt)
    x = np.random.default_rng(0).standard_normal((4, *meta["data"]["sample_shape"])).astype(np.float32)
    s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert_close(s.run(None, {s.get_inputs()[0].name: x})[0], net.forward(x), rtol=1e-5)
    assert main(["convert", str(ckpt), str(tmp_path / "again.safetensors")]) == 2   # already a checkpoint


def test_model_commands_take_caffe_and_onnx_models(caffe_files, tmp_path, capsys):
    proto, weights = caffe_files
    onnx_path = tmp_path / "m.onnx"
    assert main(["convert", str(proto), str(onnx_path)]) == 0
    sample = tmp_path / "x.npy"
    np.save(sample, np.random.default_rng(2).standard_normal((1, 20, 20)).astype(np.float32))
    capsys.readouterr()
    assert main(["predict", str(weights), str(sample)]) == 0               # a .caffemodel: prototxt beside it
    by_caffe = capsys.readouterr().out
    assert main(["predict", str(onnx_path), str(sample)]) == 0
    assert capsys.readouterr().out == by_caffe and by_caffe.startswith(f"{sample}: ")
    assert main(["summary", str(onnx_path)]) == 0                          # the model's own input shape
    assert "input (1, 20, 20)" in capsys.readouterr().out
    assert main(["time", str(proto), "--batch", "2", "--iters", "1", "--forward-only"]) == 0
    assert "conv1" in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "nope.prototxt"), str(onnx_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.prototxt"
    bad.write_text(LENET.replace('type: "ReLU"', 'type: "Crop"'))
    assert main(["convert", str(bad), str(tmp_path / "bad.onnx")]) == 2
    assert "layer 'relu1' (Crop)" in capsys.readouterr().err
    assert load_onnx(onnx_path).forward(np.zeros((1, 1, 20, 20), np.float32)).shape == (1, 10)
