"""ResNet, DenseNet's baseline: CIFAR ResNet-20/32/44/56/110 (He et al. 2016, section 4.2),
its pre-activation variant (He et al., "Identity Mappings in Deep Residual Networks"), and
ImageNet ResNet-18/34/50 with torchvision's layout and parameter names.

    net = resnet110()                 # CIFAR, 1.7M params, shortcut option A (parameter-free)
    net = resnet20(preact=True)       # BN-ReLU-Conv ordering, identity after the add
    net = resnet50()                  # ImageNet, 25,557,032 params (torchvision's count)

A block is a Net: conv1 bn1 relu1 conv2 bn2 (+ conv3 bn3 for the bottleneck), a shortcut
(identity, ``shortcut`` = ShortcutPad for option A, or ``downsample`` = 1x1 conv + BN for
option B / ImageNet), ``add`` and the final ``relu``.
"""
from __future__ import annotations

from .. import layers as L
from ..core import Layer, Net, register
from .common import Model, ShortcutPad, chain


def _basic(planes: int, stride: int, in_planes: int, shortcut: str, preact: bool) -> Net:
    blk = Net(inputs="x", name="block")
    need_proj = stride != 1 or in_planes != planes
    if preact:
        blk.add(L.BatchNorm2d(), "x", "bn1", name="bn1")
        blk.add(L.ReLU(), "bn1", "relu1", name="relu1")
        blk.add(L.Conv2d(planes, 3, stride=stride, padding=1, bias=False), "relu1", "conv1", name="conv1")
        blk.add(L.BatchNorm2d(), "conv1", "bn2", name="bn2")
        blk.add(L.ReLU(), "bn2", "relu2", name="relu2")
        blk.add(L.Conv2d(planes, 3, padding=1, bias=False), "relu2", "conv2", name="conv2")
        res, src = "conv2", ("relu1" if need_proj and shortcut == "B" else "x")
    else:
        blk.add(L.Conv2d(planes, 3, stride=stride, padding=1, bias=False), "x", "conv1", name="conv1")
        blk.add(L.BatchNorm2d(), "conv1", "bn1", name="bn1")
        blk.add(L.ReLU(), "bn1", "relu1", name="relu1")
        blk.add(L.Conv2d(planes, 3, padding=1, bias=False), "relu1", "conv2", name="conv2")
        blk.add(L.BatchNorm2d(), "conv2", "bn2", name="bn2")
        res, src = "bn2", "x"
    short = _shortcut(blk, src, planes, stride, need_proj, shortcut, preact)
    blk.add(L.Eltwise("sum"), [res, short], "add", name="add")
    if not preact:
        blk.add(L.ReLU(), "add", "relu", name="relu")
    return blk


def _bottleneck(planes: int, stride: int, in_planes: int) -> Net:
    """torchvision's Bottleneck (v1.5: the stride sits on the 3x3 conv), expansion 4."""
    blk = Net(inputs="x", name="block")
    blk.add(L.Conv2d(planes, 1, bias=False), "x", "conv1", name="conv1")
    blk.add(L.BatchNorm2d(), "conv1", "bn1", name="bn1")
    blk.add(L.ReLU(), "bn1", "relu1", name="relu1")
    blk.add(L.Conv2d(planes, 3, stride=stride, padding=1, bias=False), "relu1", "conv2", name="conv2")
    blk.add(L.BatchNorm2d(), "conv2", "bn2", name="bn2")
    blk.add(L.ReLU(), "bn2", "relu2", name="relu2")
    blk.add(L.Conv2d(4 * planes, 1, bias=False), "relu2", "conv3", name="conv3")
    blk.add(L.BatchNorm2d(), "conv3", "bn3", name="bn3")
    short = _shortcut(blk, "x", 4 * planes, stride, stride != 1 or in_planes != 4 * planes, "B", False)
    blk.add(L.Eltwise("sum"), ["bn3", short], "add", name="add")
    blk.add(L.ReLU(), "add", "relu", name="relu")
    return blk


def _shortcut(blk: Net, src: str, planes: int, stride: int, need: bool, kind: str, preact: bool) -> str:
    if not need:
        return src
    if kind == "A":
        blk.add(ShortcutPad(planes, stride), src, "shortcut", name="shortcut")
        return "shortcut"
    layers: list[tuple[str, Layer]] = [("0", L.Conv2d(planes, 1, stride=stride, bias=False))]
    if not preact:
        layers.append(("1", L.BatchNorm2d()))
    blk.add(chain(layers), src, "downsample", name="downsample")
    return "downsample"


class ResNet(Model):
    """CIFAR ResNet (``stem='cifar'``: 3x3 conv, 16-32-64 channels, 6n+2 layers) or ImageNet
    ResNet (``stem='imagenet'``: 7x7/2 conv + 3x3/2 max pool, 64-128-256-512 channels).

    Args:
        layers: blocks per stage, e.g. (18, 18, 18) for ResNet-110, (2, 2, 2, 2) for ResNet-18.
        block: "basic" or "bottleneck".
        num_classes: classifier outputs.
        stem: "cifar" or "imagenet".
        width: channels of the first stage (16 on CIFAR, 64 on ImageNet); doubled per stage.
        shortcut: "A" (parameter-free zero padding, the CIFAR paper) or "B" (1x1 conv + BN).
        preact: pre-activation blocks (BN-ReLU-Conv; a final BN-ReLU before pooling).
    """

    def __init__(self, layers: tuple[int, ...], *, block: str = "basic", num_classes: int = 10,
                 stem: str = "cifar", width: int | None = None, shortcut: str = "A", preact: bool = False,
                 init: str = "msra_fan_out", seed: int = 0, name: str | None = None) -> None:
        if block not in ("basic", "bottleneck"):
            raise ValueError(f"ResNet: block must be 'basic' or 'bottleneck', got {block!r}")
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"ResNet: stem must be 'cifar' or 'imagenet', got {stem!r}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"ResNet: shortcut must be 'A' (zero padding) or 'B' (1x1 conv), got {shortcut!r}")
        if not layers or min(layers) < 1:
            raise ValueError(f"ResNet: layers must be positive block counts per stage, got {layers}")
        if preact and block != "basic":
            raise ValueError("ResNet: preact=True is implemented for basic blocks; use block='basic'")
        super().__init__(inputs="data", init=init, seed=seed, name=name or "resnet")
        self.stem = stem
        width = width or (16 if stem == "cifar" else 64)
        if stem == "cifar":
            self.add(L.Conv2d(width, 3, padding=1, bias=False), "data", "conv1", name="conv1")
        else:
            self.add(L.Conv2d(width, 7, stride=2, padding=3, bias=False), "data", "conv1", name="conv1")
        top = "conv1"
        if not preact:
            self.add(L.BatchNorm2d(), top, "bn1", name="bn1")
            self.add(L.ReLU(), "bn1", "relu", name="relu")
            top = "relu"
        if stem == "imagenet":
            self.add(L.MaxPool2d(3, stride=2, padding=1), top, "maxpool", name="maxpool")
            top = "maxpool"
        in_planes = width
        expansion = 4 if block == "bottleneck" else 1
        for s, n in enumerate(layers):
            planes = width * 2 ** s
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                blk = (_bottleneck(planes, stride, in_planes) if block == "bottleneck"
                       else _basic(planes, stride, in_planes, shortcut if stem == "cifar" else "B", preact))
                bname = f"layer{s + 1}.{i}"
                self.add(blk, top, bname, name=bname)
                top, in_planes = bname, planes * expansion
        if preact:
            self.add(L.BatchNorm2d(), top, "bn_final", name="bn_final")
            self.add(L.ReLU(), "bn_final", "relu_final", name="relu_final")
            top = "relu_final"
        self.add(L.GlobalAvgPool2d(), top, "avgpool", name="avgpool")
        self.add(L.Flatten(), "avgpool", "flatten", name="flatten")
        self.add(L.Linear(num_classes), "flatten", "logits", name="fc")


def _cifar(depth: int):
    if (depth - 2) % 6:
        raise ValueError(f"resnet: CIFAR depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
    return ((depth - 2) // 6,) * 3


@register("model", "resnet")
def resnet(depth: int = 20, *, stem: str = "cifar", **kw) -> ResNet:
    """CIFAR ResNet of depth 6n+2, or ImageNet ResNet-18/34/50/101/152 with ``stem='imagenet'``."""
    if stem == "cifar":
        return ResNet(_cifar(depth), stem="cifar", **kw)
    table = {18: ((2, 2, 2, 2), "basic"), 34: ((3, 4, 6, 3), "basic"), 50: ((3, 4, 6, 3), "bottleneck"),
             101: ((3, 4, 23, 3), "bottleneck"), 152: ((3, 8, 36, 3), "bottleneck")}
    if depth not in table:
        raise ValueError(f"resnet: ImageNet depth must be one of {sorted(table)}, got {depth}")
    layers, block = table[depth]
    kw.setdefault("num_classes", 1000)
    kw.setdefault("init", "msra_fan_out")
    return ResNet(layers, block=block, stem="imagenet", **kw)


def _named(name: str, depth: int, stem: str, preact: bool = False):
    def make(**kw) -> ResNet:
        if preact:
            kw.setdefault("preact", True)
        return resnet(depth, stem=stem, **kw)
    make.__name__ = name
    make.__doc__ = f"{name}: ResNet-{depth} ({stem} shapes{', pre-activation' if preact else ''})."
    return register("model", name)(make)


resnet20 = _named("resnet20", 20, "cifar")
resnet32 = _named("resnet32", 32, "cifar")
resnet44 = _named("resnet44", 44, "cifar")
resnet56 = _named("resnet56", 56, "cifar")
resnet110 = _named("resnet110", 110, "cifar")
preact_resnet20 = _named("preact_resnet20", 20, "cifar", preact=True)
preact_resnet56 = _named("preact_resnet56", 56, "cifar", preact=True)
preact_resnet110 = _named("preact_resnet110", 110, "cifar", preact=True)
resnet18 = _named("resnet18", 18, "imagenet")
resnet34 = _named("resnet34", 34, "imagenet")
resnet50 = _named("resnet50", 50, "imagenet")

__all__ = ["ResNet", "resnet", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "preact_resnet20",
           "preact_resnet56", "preact_resnet110", "resnet18", "resnet34", "resnet50"]
