"""A small DenseNet-BC and a small ResNet against PyTorch twins with the same weights (copied by name):
outputs, input gradients, every parameter gradient and the BN running statistics, float64, in train
and eval mode."""
from collections import OrderedDict

import numpy as np
import pytest

from layerwise.models import DenseNetConfig, ResNet, build_densenet
from layerwise.testing.oracle import assert_close, require_torch, to_torch

pytestmark = pytest.mark.torch


def torch_densenet(torch, cfg: DenseNetConfig, in_ch: int):
    nn = torch.nn
    k, c = cfg.growth_rate, cfg.stem_width()

    class DenseLayer(nn.Module):
        def __init__(self, c_in):
            super().__init__()
            w = cfg.bn_size * k if cfg.bottleneck else k
            self.norm1, self.relu1 = nn.BatchNorm2d(c_in), nn.ReLU()
            self.conv1 = nn.Conv2d(c_in, w, 1, bias=False) if cfg.bottleneck else nn.Conv2d(c_in, k, 3, padding=1,
                                                                                              bias=False)
            if cfg.bottleneck:
                self.norm2, self.relu2 = nn.BatchNorm2d(w), nn.ReLU()
                self.conv2 = nn.Conv2d(w, k, 3, padding=1, bias=False)

        def forward(self, feats):
            h = self.conv1(self.relu1(self.norm1(torch.cat(feats, 1))))
            return self.conv2(self.relu2(self.norm2(h))) if cfg.bottleneck else h

    class DenseBlock(nn.ModuleDict):
        def forward(self, x):
            feats = [x]
            for layer in self.values():
                feats.append(layer(feats))
            return torch.cat(feats, 1)

    feats = OrderedDict(conv0=nn.Conv2d(in_ch, c, 3, padding=1, bias=False))
    sizes = cfg.layers_per_block()
    for b, n in enumerate(sizes, 1):
        feats[f"denseblock{b}"] = DenseBlock({f"denselayer{i + 1}": DenseLayer(c + i * k) for i in range(n)})
        c += n * k
        if b < len(sizes):
            out = int(cfg.compression * c)
            feats[f"transition{b}"] = nn.Sequential(OrderedDict(norm=nn.BatchNorm2d(c), relu=nn.ReLU(),
                                                                conv=nn.Conv2d(c, out, 1, bias=False),
                                                                pool=nn.AvgPool2d(2, 2)))
            c = out
    feats["norm5"] = nn.BatchNorm2d(c)
    return nn.Sequential(OrderedDict(features=nn.Sequential(feats), relu=nn.ReLU(),
                                     pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                                     classifier=nn.Linear(c, cfg.num_classes)))


def torch_resnet(torch, layers, width, num_classes, in_ch, preact):
    """CIFAR ResNet with option-B shortcuts (1x1 conv [+ BN]), torchvision's names."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, c_in, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_in if preact else planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or c_in != planes:
                mods = [nn.Conv2d(c_in, planes, 1, stride, bias=False)] + ([] if preact else [nn.BatchNorm2d(planes)])
                self.downsample = nn.Sequential(*mods)

        def forward(self, x):
            if preact:
                a = torch.relu(self.bn1(x))
                out = self.conv2(torch.relu(self.bn2(self.conv1(a))))
                return out + (self.downsample(a) if self.downsample is not None else x)
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(out + (self.downsample(x) if self.downsample is not None else x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(in_ch, width, 3, 1, 1, bias=False)
            if not preact:
                self.bn1 = nn.BatchNorm2d(width)
            c = width
            self.blocks = []
            for s, n in enumerate(layers):
                for i in range(n):
                    planes = width * 2 ** s
                    blk = Block(c, planes, 2 if (s > 0 and i == 0) else 1)
                    self.add_module(f"layer{s + 1}.{i}".replace(".", "_"), blk)
                    self.blocks.append((f"layer{s + 1}.{i}", blk))
                    c = planes
            if preact:
                self.bn_final = nn.BatchNorm2d(c)
            self.fc = nn.Linear(c, num_classes)

        def forward(self, x):
            x = self.conv1(x)
            if not preact:
                x = torch.relu(self.bn1(x))
            for _, blk in self.blocks:
                x = blk(x)
            if preact:
                x = torch.relu(self.bn_final(x))
            return self.fc(x.mean((2, 3)))

    return Net()


def named_torch(module, rename=lambda k: k):
    params = {rename(k): p for k, p in module.named_parameters()}
    buffers = {rename(k): b for k, b in module.named_buffers()}
    return params, buffers


def compare(torch, ours, theirs, x, rename, train: bool):
    theirs.double()
    ours.astype(np.float64)
    ours.forward(x)                                   # set up (train mode: updates running stats once)
    params, buffers = named_torch(theirs, rename)
    ours_p, ours_b = ours.named_params(), ours.named_buffers()
    assert set(ours_p) == set(params), set(ours_p) ^ set(params)
    assert set(ours_b) == set(buffers), set(ours_b) ^ set(buffers)
    with torch.no_grad():                             # copy our weights and statistics by name
        for k, p in params.items():
            p.copy_(to_torch(ours_p[k].data))
        for k, b in buffers.items():
            b.copy_(torch.from_numpy(np.array(ours_b[k])))   # to_torch turns 0-d into 1-d
    for _ in range(2):                                # two steps: the second sees updated running stats
        if train:
            ours.train()
            theirs.train()
        else:
            ours.eval(grad=True)
            theirs.eval()
        ours.zero_grad()
        theirs.zero_grad()
        xt = to_torch(x, requires_grad=True)
        yt = theirs(xt)
        y = ours.forward(x)
        dy = np.random.default_rng(7).standard_normal(y.shape)
        yt.backward(to_torch(dy))
        dx = ours.backward(dy)
        assert_close(y, yt, what="output")
        assert_close(dx, xt.grad, what="input grad")
        for k, p in params.items():
            assert_close(ours_p[k].grad, p.grad, what=f"grad {k}")
        for k, b in ours.named_buffers().items():
            assert_close(np.array(b, dtype=np.float64), buffers[k].double(), what=f"buffer {k}")


@pytest.mark.parametrize("memory_efficient", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_small_densenet_bc_matches_torch(rng, train, memory_efficient):
    torch = require_torch()
    cfg = DenseNetConfig(block_config=(2, 3), growth_rate=4, bottleneck=True, bn_size=2, compression=0.5,
                         num_classes=5, memory_efficient=memory_efficient)
    ours = build_densenet(cfg)
    theirs = torch_densenet(torch, cfg, in_ch=2)
    compare(torch, ours, theirs, rng.standard_normal((3, 2, 8, 8)), lambda k: k, train)


@pytest.mark.parametrize("train", [True, False])
def test_small_plain_densenet_matches_torch(rng, train):
    torch = require_torch()
    cfg = DenseNetConfig(block_config=(2, 2), growth_rate=3, num_classes=4, compression=1.0)
    compare(torch, build_densenet(cfg), torch_densenet(torch, cfg, in_ch=1), rng.standard_normal((2, 1, 8, 8)),
            lambda k: k, train)


@pytest.mark.parametrize("preact", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_small_resnet_matches_torch(rng, train, preact):
    torch = require_torch()
    ours = ResNet((2, 1, 1), width=4, num_classes=3, shortcut="B", preact=preact)
    theirs = torch_resnet(torch, (2, 1, 1), 4, 3, in_ch=3, preact=preact)

    def rename(k):   # torch attribute "layer1_0" -> our node name "layer1.0"
        head, _, rest = k.partition(".")
        return head.replace("_", ".", 1) + "." + rest if head.startswith("layer") else k
    compare(torch, ours, theirs, rng.standard_normal((2, 3, 8, 8)), rename, train)


def test_resnet_option_a_shortcut_matches_torch_padding(rng):
    torch = require_torch()
    from layerwise.models import ShortcutPad
    x = rng.standard_normal((2, 4, 5, 5))
    layer = ShortcutPad(8, stride=2)
    xt = to_torch(x, requires_grad=True)
    yt = torch.nn.functional.pad(xt[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))
    y = layer.forward(x)
    assert_close(y, yt, what="output")
    dy = rng.standard_normal(y.shape)
    yt.backward(to_torch(dy))
    assert_close(layer.backward(dy), xt.grad, what="input grad")
