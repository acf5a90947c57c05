"""PyTorch twins of the networks in bench_models.py, with layerwise's parameter names.

Each builder returns a ``torch.nn.Module`` whose ``state_dict`` keys equal those of the
layerwise model, so ``load_from_layerwise`` copies weights by name (the benchmark checks
the first-step loss of both sides before it times anything).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ShortcutA(nn.Module):
    """ResNet's option-A shortcut: subsample by stride, zero-pad channels symmetrically."""

    def __init__(self, out_channels: int, stride: int):
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        p = (self.out_channels - x.shape[1]) // 2
        return F.pad(x, (0, 0, 0, 0, p, self.out_channels - x.shape[1] - p))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = ShortcutA(planes, stride) if (stride != 1 or in_planes != planes) else nn.Identity()

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al. 2016's CIFAR ResNet (6n+2 layers, 16-32-64 channels, option-A shortcuts)."""

    def __init__(self, depth: int = 56, num_classes: int = 10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for s in range(3):
            planes = 16 * 2 ** s
            blocks = []
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def lenet_caffe(num_classes: int = 10) -> nn.Module:
    """Caffe's MNIST LeNet (examples/mnist/lenet.prototxt) composed with Sequential, as bench_models.py does."""
    return nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2, 2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2, 2),
                         nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, num_classes))


def vgg_small(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """Two conv3x3-BN-ReLU then a 2x2 max pool, at 32, 64, 128 channels; flatten; linear."""
    layers: list[nn.Module] = []
    c_in = in_channels
    for c in (32, 64, 128):
        for _ in range(2):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        layers.append(nn.MaxPool2d(2, 2))
    layers += [nn.Flatten(), nn.Linear(128 * 4 * 4, num_classes)]
    return nn.Sequential(*layers)


def load_from_layerwise(model: nn.Module, state: dict) -> None:
    """Copy a layerwise state dict into ``model`` by name (both use PyTorch's names)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise KeyError(f"layerwise state lacks {missing[:5]}")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(torch.as_tensor(state[k]).reshape(v.shape).to(v.dtype))
