"""DenseNet (Huang, Liu, van der Maaten, Weinberger, CVPR 2017), the whole family.

    net = densenet_bc(depth=100, growth_rate=12)            # CIFAR, 0.8M params
    net = densenet121()                                      # ImageNet, 7,978,856 params
    net = build_densenet(DenseNetConfig(block_config=(2, 2), growth_rate=4,
                                        bottleneck=True, compression=0.5))  # fits 8x8 inputs

Layout (torchvision's names, so weights move between the two by name):
    features: conv0 [norm0 relu0 pool0] denseblock1 transition1 ... denseblockB norm5
    then relu, pool (global average), flatten, classifier (Linear).
A dense layer is BN-ReLU-Conv3x3(k), or BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k) with the
bottleneck (DenseNet-B); a transition is BN-ReLU-Conv1x1(floor(theta*m))-AvgPool2x2, theta < 1
being compression (DenseNet-C); DenseNet-BC is both. ``transition_relu=False`` drops the ReLU of
the transitions (the paper's text says BN + 1x1 conv + pooling; the authors' code has the ReLU).
See docs/densenet.md.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .. import layers as L
from ..core import register
from .common import Model, chain
from .dense_block import DenseBlock, Transition


@dataclass(frozen=True)
class DenseNetConfig:
    """Everything that defines a DenseNet; ``build_densenet(cfg)`` turns it into a Net."""

    depth: int | None = 40                       # total depth L (convs + classifier); ignored if block_config is set
    block_config: tuple[int, ...] | None = None  # layers per dense block, e.g. (6, 12, 24, 16); overrides depth
    num_blocks: int = 3                          # dense blocks when the sizes come from depth (3 on CIFAR)
    growth_rate: int = 12                        # k: maps each dense layer adds
    bottleneck: bool = False                     # DenseNet-B: BN-ReLU-Conv1x1(bn_size*k) before the 3x3
    bn_size: int = 4                             # bottleneck width in units of k (4 in the paper)
    compression: float = 1.0                     # theta in (0, 1]: a transition keeps floor(theta*m) maps (-C: 0.5)
    dropout: float = 0.0                         # dropout after each conv (paper: 0.2 without augmentation)
    # True: BN-ReLU-Conv1x1-Pool (the authors' code); False: BN-Conv1x1-Pool (the paper's text)
    transition_relu: bool = True
    init_features: int | None = None             # stem width; None: 16 (plain), 2k (bottleneck+compression)
    num_classes: int = 10                        # classifier outputs
    stem: str = "cifar"                          # 'cifar': one 3x3 conv; 'imagenet': 7x7/2 conv + 3x3/2 max pool
    memory_efficient: bool = True                # recompute BN-ReLU-Conv1 in backward: memory linear in depth
    # 'fast': the fusion pass (fused channels-first blocks); 'reference': every layer runs alone
    impl: str = "fast"
    init: str = "msra_fan_out"                   # conv init as the authors' code ('msra_fan_in': torchvision)
    seed: int = 0                                # seed of the weight initialisation

    def layers_per_block(self) -> tuple[int, ...]:
        """The dense block sizes, from block_config or from depth."""
        if self.block_config is not None:
            sizes = tuple(int(n) for n in self.block_config)
            if not sizes or min(sizes) < 1:
                raise ValueError(f"DenseNetConfig: block_config must be non-empty positive sizes, "
                                 f"got {self.block_config}")
            return sizes
        if self.depth is None or self.num_blocks < 1:
            raise ValueError("DenseNetConfig: give depth (with num_blocks >= 1) or block_config")
        convs_per_layer = 2 if self.bottleneck else 1
        body = self.depth - self.num_blocks - 1      # stem conv + (B-1) transition convs + classifier
        per = body // (self.num_blocks * convs_per_layer)
        if per < 1 or per * self.num_blocks * convs_per_layer != body:
            step = self.num_blocks * convs_per_layer
            raise ValueError(
                f"DenseNetConfig: depth={self.depth} does not give whole dense blocks: need depth = "
                f"{self.num_blocks + 1} + {step}*n (e.g. {self.num_blocks + 1 + step * max(per, 1)}); "
                "or pass block_config=(n1, n2, ...)")
        return (per,) * self.num_blocks

    def stem_width(self) -> int:
        if self.init_features is not None:
            return int(self.init_features)
        return 2 * self.growth_rate if (self.bottleneck and self.compression < 1) else 16

    def validate(self) -> DenseNetConfig:
        if self.growth_rate < 1:
            raise ValueError(f"DenseNetConfig: growth_rate must be >= 1, got {self.growth_rate}")
        if not 0.0 < self.compression <= 1.0:
            raise ValueError(f"DenseNetConfig: compression (theta) must be in (0, 1], got {self.compression}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DenseNetConfig: dropout must be in [0, 1), got {self.dropout}")
        if self.stem not in ("cifar", "imagenet"):
            raise ValueError(f"DenseNetConfig: stem must be 'cifar' or 'imagenet', got {self.stem!r}")
        if self.impl not in ("reference", "fast"):
            raise ValueError(f"DenseNetConfig: impl must be 'reference' or 'fast', got {self.impl!r}")
        if self.num_classes < 1:
            raise ValueError(f"DenseNetConfig: num_classes must be >= 1, got {self.num_classes}")
        self.layers_per_block()
        return self


class DenseNet(Model):
    """A DenseNet built from a DenseNetConfig (``net.config``); a Net with input blob "data"."""

    def __init__(self, config: DenseNetConfig, *, name: str | None = None) -> None:
        cfg = config.validate()
        super().__init__(inputs="data", init=cfg.init, seed=cfg.seed, name=name or "densenet")
        self.config = cfg
        k, c = cfg.growth_rate, cfg.stem_width()
        if cfg.stem == "imagenet":
            feats = [("conv0", L.Conv2d(c, 7, stride=2, padding=3, bias=False)), ("norm0", L.BatchNorm2d()),
                     ("relu0", L.ReLU()), ("pool0", L.MaxPool2d(3, stride=2, padding=1))]
        else:
            feats = [("conv0", L.Conv2d(c, 3, padding=1, bias=False))]
        sizes = cfg.layers_per_block()
        for b, n in enumerate(sizes, start=1):
            feats.append((f"denseblock{b}", DenseBlock(n, k, bottleneck=cfg.bottleneck, bn_size=cfg.bn_size,
                                                       dropout=cfg.dropout, memory_efficient=cfg.memory_efficient)))
            c += n * k
            if b < len(sizes):
                out = int(cfg.compression * c)          # floor(theta * m)
                feats.append((f"transition{b}", Transition(out, dropout=cfg.dropout, relu=cfg.transition_relu)))
                c = out
        feats.append(("norm5", L.BatchNorm2d()))
        self.num_features = c
        self.add(chain(feats), outputs="features", name="features")
        self.add(L.ReLU(), outputs="relu", name="relu")
        self.add(L.GlobalAvgPool2d(), outputs="pool", name="pool")
        self.add(L.Flatten(), outputs="flatten", name="flatten")
        self.add(L.Linear(cfg.num_classes), outputs="logits", name="classifier")
        self.set_fusion(cfg.impl == "fast")

    def set_memory_efficient(self, on: bool = True) -> DenseNet:
        """Turn the recomputation of BN-ReLU-Conv1 in every dense block on or off."""
        for m in self.modules():
            if isinstance(m, DenseBlock):
                m.memory_efficient = on
        return self


def build_densenet(config: DenseNetConfig | None = None, **overrides) -> DenseNet:
    """Build a DenseNet from a config (default DenseNetConfig()) with fields overridden by keyword."""
    cfg = replace(config or DenseNetConfig(), **overrides)
    return DenseNet(cfg)


@register("model", "densenet")
def densenet(depth: int = 40, growth_rate: int = 12, **kw) -> DenseNet:
    """The paper's plain DenseNet on CIFAR (L=40, k=12: 1,019,722 params with 10 classes)."""
    return build_densenet(DenseNetConfig(depth=depth, growth_rate=growth_rate), **kw)


@register("model", "densenet_bc")
def densenet_bc(depth: int = 100, growth_rate: int = 12, **kw) -> DenseNet:
    """DenseNet-BC on CIFAR: bottleneck + compression 0.5, stem 2k (L=100, k=12: 769,162 params)."""
    return build_densenet(DenseNetConfig(depth=depth, growth_rate=growth_rate, bottleneck=True,
                                         compression=0.5), **kw)


def _row(depth: int, k: int, bc: bool):
    def make(**kw) -> DenseNet:
        return (densenet_bc if bc else densenet)(depth=depth, growth_rate=k, **kw)
    make.__name__ = f"densenet{'_bc' if bc else ''}_{depth}_{k}"
    make.__doc__ = f"The DenseNet paper's CIFAR table row DenseNet{'-BC' if bc else ''} (L={depth}, k={k})."
    return make


# The paper's CIFAR table (Table 2), with the params it reports (10 classes).
PAPER_CIFAR_ROWS = {
    "densenet_40_12": (40, 12, False, 1.0e6),
    "densenet_100_12": (100, 12, False, 7.0e6),
    "densenet_100_24": (100, 24, False, 27.2e6),
    "densenet_bc_100_12": (100, 12, True, 0.8e6),
    "densenet_bc_250_24": (250, 24, True, 15.3e6),
    "densenet_bc_190_40": (190, 40, True, 25.6e6),
}
for _name, (_d, _k, _bc, _) in PAPER_CIFAR_ROWS.items():
    globals()[_name] = register("model", _name)(_row(_d, _k, _bc))


def _imagenet(name: str, blocks: tuple[int, ...], k: int, stem: int):
    def make(num_classes: int = 1000, **kw) -> DenseNet:
        return build_densenet(DenseNetConfig(block_config=blocks, growth_rate=k, bottleneck=True, compression=0.5,
                                             init_features=stem, num_classes=num_classes, stem="imagenet",
                                             init="msra_fan_in"), **kw)
    make.__name__ = name
    make.__doc__ = f"{name} (ImageNet shapes, torchvision's layout): blocks {blocks}, k={k}, stem {stem}."
    return register("model", name)(make)


densenet121 = _imagenet("densenet121", (6, 12, 24, 16), 32, 64)
densenet169 = _imagenet("densenet169", (6, 12, 32, 32), 32, 64)
densenet201 = _imagenet("densenet201", (6, 12, 48, 32), 32, 64)
densenet264 = _imagenet("densenet264", (6, 12, 64, 48), 32, 64)
densenet161 = _imagenet("densenet161", (6, 12, 36, 24), 48, 96)

__all__ = ["DenseNetConfig", "DenseNet", "build_densenet", "densenet", "densenet_bc", "densenet121",
           "densenet161", "densenet169", "densenet201", "densenet264", "PAPER_CIFAR_ROWS",
           *PAPER_CIFAR_ROWS]
