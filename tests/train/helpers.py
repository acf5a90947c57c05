"""Tiny models and data for the training tests (fast on 2 cores)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from layerwise.data import ArrayDataset, Compose, DataLoader, RandomCrop, RandomHorizontalFlip
from layerwise.losses import SoftmaxCrossEntropyLoss
from layerwise.models import build_model
from layerwise.solvers import build_solver
from layerwise.solvers.lr_policy import build_policy
from layerwise.train import Checkpoint, CSVLogger, LambdaCallback, PlotCurves, StopOnNonFinite, Trainer


def tiny_dataset(n: int = 48, seed: int = 0) -> ArrayDataset:
    """(n, 1, 4, 4) images of 3 classes that a small MLP separates (bright quadrant = class)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(0, 0.3, size=(n, 1, 4, 4)).astype(np.float32)
    x[y == 0, :, :2, :2] += 1.0
    x[y == 1, :, 2:, 2:] += 1.0
    x[y == 2, :, :2, 2:] += 1.0
    return ArrayDataset(x, y, name="tiny")


def tiny_trainer(run_dir: Path, *, epochs: int = 2, seed: int = 0, ext: str = ".safetensors",
                 on_iteration=None, prefetch: bool = True, checkpoint_every: int = 1) -> Trainer:
    """An MLP with dropout and batch norm, SGD + Nesterov + warm-up cosine, crops and flips."""
    train = tiny_dataset(48, seed=1)
    val = tiny_dataset(24, seed=2)
    aug = Compose([RandomCrop((4, 4), padding=1), RandomHorizontalFlip(0.5)])
    loader = DataLoader(train, batch_size=8, shuffle=True, drop_last=True, seed=seed, transform=aug, prefetch=prefetch)
    val_loader = DataLoader(val, batch_size=16, shuffle=False, prefetch=False)
    net = build_model("mlp", hidden=(16,), num_classes=3, dropout=0.3, batchnorm=True, seed=seed)
    net.setup((8, 1, 4, 4))
    policy = build_policy("warmup", 0.1, policy="cosine", warmup_iters=3, start_factor=0.1, max_iter=epochs * len(loader))
    solver = build_solver("sgd", net.named_params(), lr=policy, momentum=0.9, nesterov=True, weight_decay=1e-4)
    callbacks = [StopOnNonFinite(), CSVLogger(run_dir), Checkpoint(run_dir, every=checkpoint_every, ext=ext),
                 PlotCurves(run_dir, every=checkpoint_every)]
    if on_iteration is not None:
        callbacks.append(LambdaCallback(on_step_end=lambda trainer, logs: on_iteration(trainer)))
    return Trainer(net, SoftmaxCrossEntropyLoss(), solver, loader, val_loader=val_loader, epochs=epochs, seed=seed,
                   callbacks=callbacks)


def weights(trainer: Trainer) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in trainer.net.state_dict().items()}
