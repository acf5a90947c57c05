"""ONNX export (every registry model and every exportable layer, checked by onnx.checker and run by
onnxruntime) and ONNX import (torch.onnx.export of ResNet-18 and DenseNet-121 written with
torchvision's module names), fine-tuning an imported net, and the error paths."""
import io

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX interop needs onnx: pip install 'layerwise[interop]'")
ort = pytest.importorskip("onnxruntime", reason="the ONNX oracle: pip install onnxruntime")

import layerwise as lw  # noqa: E402
from layerwise.interop import ExportError, OnnxImportError, export_onnx, load_onnx  # noqa: E402
from layerwise.models import build_model, registered_models  # noqa: E402
from layerwise.testing.oracle import assert_close  # noqa: E402

# registry models above ~5M params take 3-15 s each to export and run (100-130 MB files): marked slow
BIG = {"densenet161", "densenet169", "densenet201", "densenet264", "densenet_100_24", "densenet_100_12",
       "densenet_bc_190_40", "densenet_bc_250_24", "resnet18", "resnet34", "resnet50"}


def _run_ort(path_or_bytes, xs):
    s = ort.InferenceSession(path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes),
                             providers=["CPUExecutionProvider"])
    return s.run(None, {i.name: x for i, x in zip(s.get_inputs(), xs)})


def _input_shape(name):
    return (2, 1, 28, 28) if name.startswith("lenet") else (2, 64) if name == "mlp" else (2, 3, 32, 32)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n
                                  for n in registered_models()])
def test_registry_model_exports_and_matches_onnxruntime(name, tmp_path, rng):
    net = build_model(name)
    shape = _input_shape(name)
    path = export_onnx(net, tmp_path / f"{name}.onnx", shape)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    x = rng.standard_normal((3,) + shape[1:]).astype(np.float32)      # another batch size: N is symbolic
    (theirs,) = _run_ort(path, [x])
    assert_close(net.forward(x), theirs, rtol=1e-5, what=name)


def _every_layer_net():
    L = lw
    net = lw.Net(inputs="x")
    add = net.add
    add(L.Conv2d(6, 3, padding=1, groups=2), "x", "conv", name="conv")
    add(L.BatchNorm2d(), "conv", "bn", name="bn")
    add(L.PReLU(6), "bn", "prelu", name="prelu")
    add(L.ConvTranspose2d(4, 3, stride=2, padding=1, output_padding=1), "prelu", "deconv", name="deconv")
    add(L.LRN(3, alpha=0.2, beta=0.75, k=1.5), "deconv", "lrn", name="lrn")
    add(L.Scale(bias=True), "lrn", "scale", name="scale")
    add(L.ConstantPad2d((1, 0, 0, 1), 0.25), "scale", "pad", name="pad")
    add(L.MaxPool2d(3, 2, 1, ceil_mode=True), "pad", "mpool", name="mpool")
    add(L.Slice([1, 3]), "mpool", ["s1", "s2", "s3"], name="slice")
    add(L.Sigmoid(), "s1", "a1", name="sigmoid")
    add(L.TanH(), "s2", "a2", name="tanh")
    add(L.ELU(0.5), "s3", "a3", name="elu")
    add(L.Concat(), ["a1", "a2", "a3"], "cat", name="cat")
    acts = [("relu", L.ReLU()), ("leaky", L.ReLU(0.1)), ("selu", L.SELU()), ("softplus", L.Softplus(2.0)),
            ("softsign", L.Softsign()), ("silu", L.SiLU(1.5)), ("gelu", L.GELU()), ("gelu_tanh", L.GELU("tanh")),
            ("hsig", L.HardSigmoid(0.2, 0.5)), ("htanh", L.HardTanh(-0.5, 0.5)), ("abs", L.AbsVal())]
    for n, layer in acts:
        add(layer, "cat", n, name=n)
    add(L.Eltwise("sum", coeffs=[0.5] * len(acts)), [n for n, _ in acts], "sum", name="sum")
    add(L.Eltwise("prod"), ["relu", "htanh"], "prod", name="prod")
    add(L.Eltwise("max"), ["sum", "prod", "abs"], "max", name="max")
    add(L.Power(2.0, 0.5, 1.0), "max", "pow", name="pow")
    add(L.Exp(base=2.0, scale=0.1), "pow", "exp", name="exp")
    add(L.Log(base=10.0, shift=1.0), "exp", "log", name="log")
    add(L.AvgPool2d(2, 2, 1, ceil_mode=True), "log", "apool", name="apool")
    add(L.GlobalAvgPool2d(), "apool", "gap", name="gap")
    add(L.Flatten(), "gap", "flat", name="flat")
    add(L.Reshape((2, -1)), "flat", "resh", name="resh")
    add(L.Linear(5, axis=-1), "resh", "lin", name="lin")
    add(L.Flatten(), "lin", "flat2", name="flat2")
    add(L.Dropout(0.3), "flat2", "drop", name="drop")
    add(L.BatchNorm1d(), "drop", "bn1d", name="bn1d")
    add(L.Linear(7), "bn1d", "fc", name="fc")
    add(L.LogSoftmax(), "fc", "logp", name="logp")
    return net


def test_every_exportable_layer_matches_onnxruntime_and_round_trips(tmp_path, rng):
    net = _every_layer_net()
    net.setup((2, 4, 7, 7))
    for m in net.modules():          # non-trivial BN statistics and Scale params
        if "running_var" in m._buffers:
            m.buffer("running_mean")[...] = rng.standard_normal(m.buffer("running_mean").shape) * 0.1
            m.buffer("running_var")[...] = 0.5 + rng.random(m.buffer("running_var").shape)
        if type(m).__name__ == "Scale":
            m.weight.data[...] = 0.5 + rng.random(m.weight.shape)
            m.bias.data[...] = rng.standard_normal(m.bias.shape) * 0.1
    x = rng.standard_normal((2, 4, 7, 7)).astype(np.float32)
    path = export_onnx(net, tmp_path / "all.onnx", (2, 4, 7, 7))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    (theirs,) = _run_ort(path, [x])
    ours = net.forward(x)
    assert_close(ours, theirs, rtol=1e-5, what="every layer")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    path20 = export_onnx(net, tmp_path / "all20.onnx", (2, 4, 7, 7), opset=20)    # GELU as one Gelu op
    back = load_onnx(path20)                                          # ONNX -> layerwise -> same outputs
    assert_close(back.forward(x), _run_ort(path20, [x])[0], rtol=1e-5, what="round trip")
    assert_close(back.forward(x), theirs, rtol=1e-5, what="round trip vs opset 17")
    assert {"Conv", "ConvTranspose", "LRN", "PRelu", "Split", "Pad", "Gemm", "MatMul", "Selu", "Erf",
            "HardSigmoid", "Clip", "Max", "Pow", "LogSoftmax", "BatchNormalization"} <= ops


def test_export_with_opset_20_uses_gelu_and_loss_layers_are_left_out(tmp_path, rng):
    net = lw.Net(inputs=["x", "y"])
    net.add(lw.Linear(4), "x", "fc", name="fc")
    net.add(lw.GELU(), "fc", "gelu", name="gelu")
    net.add(lw.SoftmaxCrossEntropyLoss(), ["gelu", "y"], "loss", name="loss")
    net._output_names = ("gelu", "loss")
    path = export_onnx(net, tmp_path / "g.onnx", [(2, 3), (2,)], opset=20)
    model = onnx.load(str(path))
    assert "Gelu" in {n.op_type for n in model.graph.node} and [o.name for o in model.graph.output] == ["gelu"]
    x = rng.standard_normal((2, 3)).astype(np.float32)
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: (x if i.name == "x" else np.zeros(2, np.float32)) for i in s.get_inputs()}
    assert_close(net.forward(x, np.array([0, 1]))[0], s.run(None, feeds)[0], rtol=1e-5)


def test_export_errors(tmp_path):
    net = lw.Sequential(lw.LRN(3, region="within_channel"))
    with pytest.raises(ExportError, match="LRN.*across channels"):
        export_onnx(net, tmp_path / "x.onnx", (1, 2, 4, 4))
    assert not (tmp_path / "x.onnx").exists()                        # nothing half written


# ------------------------------------------------------------------------------------- import
def _torch_export(model, x, training):
    torch = pytest.importorskip("torch")
    f = io.BytesIO()
    with pytest.warns((DeprecationWarning, UserWarning)):
        torch.onnx.export(model, (x,), f, dynamo=False, input_names=["input"], output_names=["logits"],
                          training=training, dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    return f.getvalue()


def _torch_nets():
    from tests.interop.torch_models import BasicBlock, DenseNet, ResNet, randomize_bn
    import torch
    torch.manual_seed(0)
    return {"resnet18": randomize_bn(ResNet(BasicBlock, [2, 2, 2, 2], num_classes=10, width=8)).eval(),
            "densenet121": randomize_bn(DenseNet(8, (6, 12, 24, 16), 16, 2, num_classes=10)).eval(),
            "densenet_small": randomize_bn(DenseNet(8, (2, 3, 2), 16, 2, num_classes=10)).eval()}


# torch's TorchScript exporter needs ~10 s for DenseNet-121's 58 concatenations: that one runs once,
# with BN kept (PRESERVE); BN folded into the convs (EVAL) is checked on a shorter DenseNet.
@pytest.mark.torch
@pytest.mark.parametrize("arch,mode", [("resnet18", "EVAL"), ("resnet18", "PRESERVE"),
                                       ("densenet121", "PRESERVE"), ("densenet_small", "EVAL")])
def test_torch_exported_net_imports_and_matches_onnxruntime(arch, mode, rng):
    torch = pytest.importorskip("torch")
    model = _torch_nets()[arch]
    x = torch.from_numpy(rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
    data = _torch_export(model, x, getattr(torch.onnx.TrainingMode, mode))
    net = load_onnx(data)
    xs = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)
    (theirs,) = _run_ort(data, [xs])
    ours = net.forward(xs)
    assert_close(ours, theirs, rtol=1e-4, what=f"{arch} ({mode})")
    with torch.no_grad():
        assert_close(ours, model(torch.from_numpy(xs)), rtol=1e-4, what=f"{arch} vs torch")
    if mode == "PRESERVE":           # BN kept: the layer names and the state_dict keys are torch's
        assert set(net.state_dict()) == set(model.state_dict())


@pytest.mark.torch
def test_imported_net_fine_tunes(rng):
    torch = pytest.importorskip("torch")
    model = _torch_nets()["resnet18"]
    data = _torch_export(model, torch.zeros(2, 3, 32, 32), torch.onnx.TrainingMode.PRESERVE)
    net = load_onnx(data).train()
    loss = lw.SoftmaxCrossEntropyLoss()
    opt = lw.SGD(net.named_params(), lr=0.05, momentum=0.9)
    x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    first = None
    for _ in range(8):
        value = float(loss.forward(net.forward(x), y))
        first = value if first is None else first
        net.backward(loss.backward())
        opt.step()
        net.zero_grad()
    assert value < 0.5 * first


def test_import_errors(tmp_path):
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 4])
    graph = helper.make_graph([helper.make_node("Transpose", ["x"], ["y"], name="perm", perm=[0, 2, 1, 3])],
                              "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "t.onnx"
    onnx.save_model(model, str(path))
    with pytest.raises(OnnxImportError, match=r"node 'perm' \(op Transpose\).*'Transpose' is not supported"):
        load_onnx(path)
    good = export_onnx(lw.Sequential(lw.Conv2d(2, 3), lw.ReLU()), tmp_path / "ok.onnx", (1, 3, 5, 5))
    data = good.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxImportError, match="cut.onnx: corrupt or truncated"):
        load_onnx(cut)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_onnx(tmp_path / "missing.onnx")


def test_import_arithmetic_with_constants_matches_onnxruntime(rng):
    from onnx import TensorProto, helper, numpy_helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4, 4])
    inits = [numpy_helper.from_array(rng.standard_normal((3, 1, 1)).astype(np.float32), "a"),
             numpy_helper.from_array(rng.standard_normal((1, 3, 1, 1)).astype(np.float32) + 3, "b"),
             numpy_helper.from_array(np.array(2.0, np.float32), "s")]
    nodes = [helper.make_node("Add", ["x", "a"], ["t1"]), helper.make_node("Div", ["t1", "b"], ["t2"]),
             helper.make_node("Sub", ["t2", "s"], ["t3"]), helper.make_node("Mul", ["s", "t3"], ["t4"]),
             helper.make_node("Sub", ["t4", "a"], ["t5"]), helper.make_node("Sub", ["t5", "x"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    data = model.SerializeToString()
    net = load_onnx(data)
    assert [type(n.layer).__name__ for n in net.nodes] == ["Scale", "Scale", "Power", "Power", "Scale", "Eltwise"]
    xs = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    assert_close(net.forward(xs), _run_ort(data, [xs])[0], rtol=1e-5)
    bad = helper.make_model(helper.make_graph([helper.make_node("Add", ["x", "c"], ["y"], name="addc")], "g", [x], [y],
                                              [numpy_helper.from_array(np.ones((4, 4), np.float32), "c")]),
                            opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(OnnxImportError, match=r"node 'addc' \(op Add\): Add with a constant of shape \(4, 4\)"):
        load_onnx(bad.SerializeToString())


@pytest.mark.torch
def test_import_asymmetric_conv_padding_and_constant_pad(rng):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)
            self.conv2 = torch.nn.Conv2d(4, 2, 1)

        def forward(self, x):
            x = self.conv(torch.nn.functional.pad(x, (0, 1, 0, 1)))              # TF-style "same" padding
            return self.conv2(torch.nn.functional.pad(x, (1, 2, 0, 1), value=0.5))
    model = Net().eval()
    x = torch.from_numpy(rng.standard_normal((2, 3, 7, 7)).astype(np.float32))
    data = _torch_export(model, x, torch.onnx.TrainingMode.EVAL)
    net = load_onnx(data)
    assert "ConstantPad2d" in {type(n.layer).__name__ for n in net.nodes}
    with torch.no_grad():
        assert_close(net.forward(x.numpy()), model(x), rtol=1e-5)
    assert_close(net.forward(x.numpy()), _run_ort(data, [x.numpy()])[0], rtol=1e-5)
