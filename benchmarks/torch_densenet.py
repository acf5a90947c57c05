"""The PyTorch twin of layerwise's DenseNet-BC, written out for the benchmarks.

Same architecture as ``layerwise.models.densenet_bc`` (CIFAR stem: one 3x3 conv with 2k
channels; three dense blocks of bottleneck layers BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k);
transitions BN-ReLU-Conv1x1(theta*C)-AvgPool2x2; BN-ReLU-global average pool-Linear).
Parameter names are chosen by the module tree below; ``load_from_layerwise`` copies
weights from a layerwise state dict by matching the two trees in order.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Bottleneck(nn.Module):
    def __init__(self, cin: int, k: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 4 * k, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * k)
        self.conv2 = nn.Conv2d(4 * k, k, 3, padding=1, bias=False)

    def forward(self, x):
        y = self.conv1(F.relu(self.bn1(x)))
        y = self.conv2(F.relu(self.bn2(y)))
        return torch.cat([x, y], 1)


class Transition(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNetBC(nn.Module):
    def __init__(self, depth: int = 100, growth_rate: int = 12, compression: float = 0.5,
                 num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        n = (depth - 4) // 6
        k = growth_rate
        c = 2 * k
        self.conv0 = nn.Conv2d(in_channels, c, 3, padding=1, bias=False)
        layers: list[nn.Module] = []
        for b in range(3):
            for _ in range(n):
                layers.append(Bottleneck(c, k))
                c += k
            if b < 2:
                cout = int(c * compression)
                layers.append(Transition(c, cout))
                c = cout
        self.features = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.features(self.conv0(x))
        x = F.adaptive_avg_pool2d(F.relu(self.bn(x)), 1).flatten(1)
        return self.fc(x)


def _kind(shape) -> str:
    return {4: "conv", 2: "fc", 1: "vec"}.get(len(shape), "other")


def load_from_layerwise(model: nn.Module, state: dict) -> None:
    """Copy a layerwise state dict into ``model`` by walking both in order.

    Both trees list params and buffers in construction order (conv, then each BN's
    weight/bias/running_mean/running_var, ...). We pair entries of the same role in order
    and check every shape, so a mismatch in architecture fails loudly.
    """
    ours = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    theirs = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    if len(ours) != len(theirs):
        raise ValueError(f"layerwise has {len(ours)} tensors, the torch twin {len(theirs)}")

    def order(items):
        # group per role so BN buffers (which layerwise may list after all params) line up
        roles: dict[str, list] = {}
        for k, v in items:
            role = k.rsplit(".", 1)[-1]
            roles.setdefault(role, []).append((k, v))
        return roles

    o, t = order(ours), order(theirs)
    if set(o) != set(t):
        raise ValueError(f"roles differ: layerwise {sorted(o)} vs torch {sorted(t)}")
    new = {}
    for role in t:
        if len(o[role]) != len(t[role]):
            raise ValueError(f"{role}: layerwise has {len(o[role])}, torch {len(t[role])}")
        for (ko, vo), (kt, vt) in zip(o[role], t[role]):
            if tuple(vo.shape) != tuple(vt.shape):
                raise ValueError(f"shape mismatch pairing {ko} {tuple(vo.shape)} with {kt} {tuple(vt.shape)}")
            new[kt] = torch.as_tensor(vo, dtype=vt.dtype)
    model.load_state_dict(new, strict=False)
