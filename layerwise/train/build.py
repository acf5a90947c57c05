"""From a Config to a ready Trainer: data sets, loaders, augmentation, model, loss, solver, schedule.

This is the only module that knows every sub-package by name; the Trainer itself sees
only objects with the protocol's methods.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, ConfigError


def resolve_run_dir(cfg: Config, out: str | Path | None = None) -> Path:
    """``out`` if given, else ``cfg.out_dir / (cfg.name or <date>-<time>-<model>-<data>)``."""
    if out is not None:
        return Path(out)
    name = cfg.name or f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model.name}-{cfg.data.name}"
    return Path(cfg.out_dir) / name


# Config keys a resumed run may change: how long it runs, where and how often it writes, how it
# evaluates, where the data lives. Any other change (model, batch size, solver, lr policy, data set,
# augmentation, seed, dtype) would silently continue a different experiment, so it is refused.
RESUME_MAY_CHANGE = ("epochs", "checkpoint_every", "out_dir", "name", "eval_batch_size", "data.root",
                     "data.num_workers")


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k not in ("kwargs",):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def check_resume_config(saved: dict, cfg: Config, checkpoint: str | Path) -> None:
    """Refuse to resume ``checkpoint`` with a config that trains something else.

    Args:
        saved: the config stored in the checkpoint (``meta["config"]``).
        cfg: the config of this invocation (config file and ``--set`` applied).
        checkpoint: the checkpoint's path, for the message.

    Raises:
        ConfigError: naming each changed key with both values (only ``RESUME_MAY_CHANGE`` may differ).
    """
    from ..config import load_config

    try:
        before = _flatten(load_config(saved, check_registries=False).to_dict())
    except ConfigError:  # a checkpoint of an older config schema: compare what is comparable
        before = _flatten(saved)
    now = _flatten(cfg.to_dict())
    changed = [k for k in now if k in before and k not in RESUME_MAY_CHANGE and before[k] != now[k]]
    if changed:
        shown = ", ".join(f"{k} {before[k]!r} -> {now[k]!r}" for k in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise ConfigError(f"--resume {checkpoint}: the config differs from the one the run was trained with "
                          f"({shown}{more}); resume with the run's own config (leave out the config file and "
                          f"those --set options; only {', '.join(RESUME_MAY_CHANGE)} may change) or start a new "
                          "run without --resume")


def check_writable_dir(path: str | Path) -> None:
    """Fail early (before any data is loaded or file written) when ``path`` cannot become a directory.

    Raises:
        ConfigError: a part of the path is a file, or the nearest existing ancestor is not writable.
    """
    import os

    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"run directory {str(path)!r}: {str(probe)!r} is a file, not a directory; "
                          "choose another --out")
    if probe.is_dir() and not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"run directory {str(path)!r}: no permission to write in {str(probe)!r}; choose a "
                          "writable location with --out (or out_dir in the config)")


def load_data(cfg: Config) -> tuple[Any, Any]:
    """(train, validation) ArrayDatasets as the config says (``data.val``: 'test' or a fraction)."""
    from ..data import load_dataset

    name = cfg.data.name.lower().replace("-", "_")
    train = load_dataset(name, root=cfg.data.root, split="train")
    if cfg.data.val == "test":
        val = load_dataset(name, root=cfg.data.root, split="test")
    else:
        from ..data.dataset import stratified_split

        tr_idx, va_idx = stratified_split(train.y, float(cfg.data.val), seed=cfg.seed)
        train, val = train.subset(tr_idx, name=f"{train.name}[train]"), train.subset(va_idx, name=f"{train.name}[val]")
    if train.x.ndim == 4 and val.x.shape[1:] != train.x.shape[1:]:
        raise ConfigError(f"data {name!r}: train images are {train.x.shape[1:]} but validation images are "
                          f"{val.x.shape[1:]}")
    return train, val


def channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of (N, C, H, W) images (std floored at 1e-6)."""
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    x64 = x.astype(np.float64)
    mean, std = x64.mean(axis=axes), x64.std(axis=axes)
    return [float(m) for m in mean], [float(max(s, 1e-6)) for s in std]


def build_transforms(cfg: Config, sample_shape: tuple[int, ...], mean: list[float] | None,
                     std: list[float] | None) -> tuple[Callable | None, Callable | None]:
    """(train transform, eval transform): crop/flip then normalise; eval only normalises."""
    from ..data import Compose, Normalize, RandomCrop, RandomHorizontalFlip

    train: list[Any] = []
    image = len(sample_shape) == 3
    if cfg.augment.crop_padding > 0:
        if not image:
            raise ConfigError("config key 'augment.crop_padding': random crops need images (N, C, H, W); "
                              "set augment.crop_padding=0 for feature vectors")
        train.append(RandomCrop(tuple(sample_shape[1:]), padding=cfg.augment.crop_padding))
    if cfg.augment.flip:
        if not image:
            raise ConfigError("config key 'augment.flip': flips need images; set augment.flip=false")
        train.append(RandomHorizontalFlip(0.5))
    norm = Normalize(mean, std) if (cfg.augment.normalize and mean is not None and std is not None) else None
    if norm is not None:
        train.append(norm)
    train_t = Compose(train) if len(train) > 1 else (train[0] if train else None)
    return train_t, norm


def build_model(name: str, kwargs: dict, num_classes: int, seed: int) -> Any:
    """The registered model ``name`` with ``num_classes`` filled in; weights seeded by ``seed``."""
    from ..models import build_model as _build

    kw = dict(kwargs)
    kw.setdefault("num_classes", num_classes)
    try:
        net = _build(name, **kw)
    except TypeError as e:
        raise ConfigError(f"config key 'model.kwargs': {e}") from None
    if getattr(net, "_rng", None) is None and not net.built and "seed" not in kwargs:
        net.seed = seed  # the Net draws its fillers from default_rng(seed) at setup
    return net


def _solver_kwargs(cfg: Config) -> dict:
    """The solver section as ``build_solver`` keywords. The section's ``momentum`` is Caffe's: the
    solver's momentum, Adam's beta1 or AdaDelta's rho (``solvers.caffe_names.MOMENTUM_MEANS``); it and
    ``nesterov`` go to the solvers that take them, unless ``kwargs`` sets the same option (kwargs win)."""
    from ..core.registry import lookup
    from ..solvers.caffe_names import given_option, takes_option

    cls = lookup("solver", cfg.solver.name)
    kw: dict[str, Any] = {"lr": cfg.solver.lr, "weight_decay": cfg.solver.weight_decay}
    for key in ("momentum", "nesterov"):
        if takes_option(cls, key) and not given_option(cls, key, cfg.solver.kwargs):
            kw[key] = getattr(cfg.solver, key)
    kw.update(cfg.solver.kwargs)
    return kw


def build_policy_from_config(cfg: Config, iters_per_epoch: int) -> Callable[[int], float]:
    """The lr schedule over ``epochs * iters_per_epoch`` iterations, with linear warm-up.

    What the config leaves out of a policy's arguments, the policy's own ``run_defaults`` fill in
    from the run's length (cosine and poly end at the last iteration, multistep's milestones are
    ``lr_policy.milestones`` fractions of the run, step divides every third of it).
    """
    from ..solvers.caffe_names import policy_options
    from ..solvers.lr_policy import build_policy, run_defaults

    p = cfg.lr_policy
    total = cfg.epochs * iters_per_epoch
    warm = int(round(p.warmup_epochs * iters_per_epoch))
    try:
        kw = policy_options(p.kwargs, f"lr_policy {p.name}")
        kw = {**run_defaults(p.name, total, p.milestones), **kw}
        if warm > 0:
            return build_policy("warmup", cfg.solver.lr, policy=p.name, warmup_iters=warm,
                                start_factor=p.warmup_start, **kw)
        return build_policy(p.name, cfg.solver.lr, **kw)
    except (TypeError, ValueError, KeyError) as e:
        raise ConfigError(f"config section 'lr_policy': {e.args[0] if isinstance(e, KeyError) else e}") from None


def build_trainer(cfg: Config, run_dir: str | Path, *, progress: bool | None = None,
                  print_fn: Callable[[str], None] = print, callbacks: Sequence[Any] = (),
                  checkpoint_ext: str = ".safetensors", comm: Any = None) -> Any:
    """Everything the config describes, wired into a Trainer (nothing is trained yet).

    The solver owns the learning-rate schedule (``lr_policy`` over the run's iterations); the run's
    callbacks are the NaN check, the progress bar (``progress``), the epoch lines (``print_fn``),
    ``log.csv``/``log.jsonl``, a checkpoint every ``checkpoint_every`` epochs, the curves PNG and,
    when ``early_stopping.patience`` is set, early stopping; ``callbacks`` are added after them.

    ``comm`` (a :class:`layerwise.distributed.Communicator` with more than one rank): data-parallel;
    ``batch_size`` is per rank, so a step uses ``batch_size * comm.size`` samples and an epoch has
    ``comm.size`` times fewer steps.
    """
    from ..data import DataLoader
    from ..losses import SoftmaxCrossEntropyLoss
    from ..solvers import build_solver
    from .callbacks import Checkpoint, CSVLogger, EarlyStopping, PlotCurves, default_callbacks
    from .trainer import Trainer

    train, val = load_data(cfg)
    num_classes = max(train.num_classes, val.num_classes)
    mean, std = channel_stats(train.x) if cfg.augment.normalize else (None, None)
    train_t, eval_t = build_transforms(cfg, train.sample_shape, mean, std)
    prefetch = cfg.data.num_workers > 0
    rank, world = (comm.rank, comm.size) if comm is not None else (0, 1)
    if len(train) < world:
        raise ConfigError(f"the training set {train.name!r} has {len(train)} samples, fewer than the {world} "
                          "data-parallel processes; use fewer processes")
    train_loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True,
                              drop_last=len(train) > cfg.batch_size * world, seed=cfg.seed, transform=train_t,
                              prefetch=prefetch, rank=rank, world_size=world)
    val_loader = DataLoader(val, batch_size=cfg.eval_batch_size, shuffle=False, drop_last=False, transform=eval_t,
                            prefetch=prefetch, rank=rank, world_size=world)
    if len(train_loader) == 0:
        raise ConfigError(f"the training set {train.name!r} has {len(train)} samples: no batch of {cfg.batch_size}")
    net = build_model(cfg.model.name, cfg.model.kwargs, num_classes, cfg.seed)
    dtype = np.dtype(cfg.dtype)
    net.setup((cfg.batch_size, *train.sample_shape), dtype=dtype)
    if cfg.sync_batchnorm and comm is not None and comm.distributed:
        from ..layers.sync_batchnorm import convert_sync_batchnorm

        try:
            convert_sync_batchnorm(net, comm)
        except ValueError as e:
            raise ConfigError(f"config key 'sync_batchnorm': {e}") from None
    policy = build_policy_from_config(cfg, len(train_loader))
    try:  # the schedule is the solver's: it evaluates it at its own iteration count
        solver = build_solver(cfg.solver.name, net.named_params(), **{**_solver_kwargs(cfg), "lr": policy})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config section 'solver': {e}") from None
    meta = {
        "config": cfg.to_dict(),
        "model": {"name": cfg.model.name, "kwargs": dict(cfg.model.kwargs), "num_classes": num_classes},
        "data": {"name": cfg.data.name, "classes": list(train.classes), "sample_shape": list(train.sample_shape)},
        "normalize": {"mean": mean, "std": std} if mean is not None else None,
        "num_classes": num_classes,
    }
    run_dir = Path(run_dir)
    cbs = [*default_callbacks(progress, print_fn), CSVLogger(run_dir),
           Checkpoint(run_dir, every=cfg.checkpoint_every, ext=checkpoint_ext, meta=meta),
           PlotCurves(run_dir, every=cfg.checkpoint_every, title=f"{cfg.model.name} on {cfg.data.name}")]
    es = cfg.early_stopping
    if es.patience:
        cbs.append(EarlyStopping(es.monitor, patience=es.patience, min_delta=es.min_delta))
    return Trainer(net, SoftmaxCrossEntropyLoss(), solver, train_loader, val_loader=val_loader, epochs=cfg.epochs,
                   callbacks=[*cbs, *callbacks], seed=cfg.seed, comm=comm)


def model_from_checkpoint(path: str | Path) -> tuple[Any, dict]:
    """Rebuild the model a training checkpoint was made with and load its weights (eval mode)."""
    from ..io import CheckpointError, load_checkpoint

    tensors, meta = load_checkpoint(path)
    m = meta.get("model")
    if not m:
        raise ValueError(f"{path}: the checkpoint does not say which model it holds (no 'model' in its metadata); "
                         "it was not written by `layerwise train`")
    net = build_model(m["name"], m.get("kwargs", {}), int(m["num_classes"]), 0)
    shape = meta.get("input_shape") or meta.get("data", {}).get("sample_shape")
    dtype = np.dtype(meta.get("dtype", "float32"))
    net.setup((1, *shape), dtype=dtype)
    weights = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    bad = [k for k, v in weights.items() if v.dtype.kind in "fc" and not np.isfinite(v).all()]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise CheckpointError(f"checkpoint {path}: the weights hold NaN/Inf ({shown}); the run had diverged when "
                              "it was saved, so its predictions would be meaningless: use an earlier checkpoint")
    try:
        net.load_state_dict(weights)
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path}: its weights do not fit the model its metadata names ({e})") from None
    net.eval()
    return net, meta


__all__ = ["build_trainer", "load_data", "build_transforms", "build_model", "build_policy_from_config",
           "resolve_run_dir", "model_from_checkpoint", "channel_stats"]
