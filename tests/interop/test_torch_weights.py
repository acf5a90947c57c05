"""torchvision state dicts into the registry models that mirror torchvision (same outputs as the
torch.nn model with torchvision's module names), safetensors files from torch, legacy DenseNet
names, pickles refused, and the error that lists every bad key."""
import numpy as np
import pytest

from layerwise.interop.torch_weights import StateDictError
from layerwise.models import build_model
from layerwise.testing.oracle import assert_close

torch = pytest.importorskip("torch", reason="PyTorch oracle not installed: pip install torch==2.13.0")
pytestmark = pytest.mark.torch


def _torch_model(name):
    from tests.interop.torch_models import BasicBlock, Bottleneck, DenseNet, ResNet, randomize_bn
    torch.manual_seed(0)
    make = {"resnet18": lambda: ResNet(BasicBlock, [2, 2, 2, 2]), "resnet34": lambda: ResNet(BasicBlock, [3, 4, 6, 3]),
            "resnet50": lambda: ResNet(Bottleneck, [3, 4, 6, 3]),
            "densenet121": lambda: DenseNet(32, (6, 12, 24, 16), 64), "densenet161": lambda: DenseNet(48, (6, 12, 36, 24), 96),
            "densenet169": lambda: DenseNet(32, (6, 12, 32, 32), 64),
            "densenet201": lambda: DenseNet(32, (6, 12, 48, 32), 64)}[name]
    return randomize_bn(make()).eval()


# full-size torchvision architectures (8-29M params): two run always, the other five are marked slow (~4 s each)
@pytest.mark.parametrize("name", ["resnet18", "densenet121"] + [
    pytest.param(n, marks=pytest.mark.slow) for n in ("resnet34", "resnet50", "densenet161", "densenet169",
                                                      "densenet201")])
def test_torchvision_state_dict_loads_with_equal_outputs(name, rng):
    model = _torch_model(name)
    net = build_model(name)                       # not set up yet: load_state_dict sets it up
    net.load_state_dict(model.state_dict())
    net.eval()
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    assert_close(net.forward(x), ref, rtol=1e-4, what=name)


def test_safetensors_from_torch_loads_directly_and_pickles_are_refused(tmp_path, rng):
    st = pytest.importorskip("safetensors.torch")
    from tests.interop.torch_models import BasicBlock, ResNet, randomize_bn
    model = randomize_bn(ResNet(BasicBlock, [2, 2, 2, 2], num_classes=10, width=8)).eval()
    path = tmp_path / "resnet.safetensors"
    st.save_file(model.state_dict(), str(path))
    net = build_model("resnet18", num_classes=10, width=8)
    net.load_state_dict(path)
    net.eval()
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        assert_close(net.forward(x), model(torch.from_numpy(x)), rtol=1e-4)
    pt = tmp_path / "resnet.pt"
    torch.save(model.state_dict(), pt)
    with pytest.raises(StateDictError, match=r"pickled PyTorch file.*refused.*st.save_file"):
        net.load_state_dict(pt)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(StateDictError, match="corrupt or truncated"):
        net.load_state_dict(cut)


def test_legacy_densenet_names_module_prefix_and_num_batches_tracked(rng):
    from tests.interop.torch_models import DenseNet, randomize_bn
    model = randomize_bn(DenseNet(4, (2, 2), 8, 2, num_classes=5)).eval()
    legacy = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue                                              # optional
        for part in ("norm1", "norm2", "conv1", "conv2", "relu1", "relu2"):
            k = k.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.")   # torchvision < 0.3: norm.1.weight
        legacy["module." + k] = v                                 # saved from DataParallel
    assert any(".norm.1.weight" in k for k in legacy)
    net = build_model("densenet121", block_config=(2, 2), growth_rate=4, init_features=8, bn_size=2, num_classes=5)
    net.load_state_dict(legacy)
    net.eval()
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        assert_close(net.forward(x), model(torch.from_numpy(x)), rtol=1e-4)


def test_misfit_lists_missing_unexpected_and_misshaped_keys():
    from tests.interop.torch_models import BasicBlock, ResNet
    sd = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=10, width=8).state_dict()
    del sd["layer1.0.conv1.weight"]
    sd["extra.weight"] = torch.zeros(3)
    net = build_model("resnet18", num_classes=7, width=8)
    with pytest.raises(StateDictError) as e:
        net.load_state_dict(sd)
    msg = str(e.value)
    assert "missing keys (1): ['layer1.0.conv1.weight']" in msg
    assert "unexpected keys (1): ['extra.weight']" in msg
    assert "fc.weight: (10, 64) vs (7, 64)" in msg and "fc.bias: (10,) vs (7,)" in msg
