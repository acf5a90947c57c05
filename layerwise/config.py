"""The training config: one YAML file, in the spirit of Caffe's solver.prototxt.

Every field has a default, so an empty config (or none at all) trains DenseNet-BC on the
digits data set that ships with scikit-learn. A config file only lists what it changes::

    model:
      name: densenet_bc
      kwargs: {depth: 40, growth_rate: 12}
    data: {name: cifar10, root: ~/data/cifar10}
    augment: {crop_padding: 4, flip: true}
    solver: {name: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 1.0e-4}
    lr_policy: {name: multistep, milestones: [0.5, 0.75], gamma: 0.1}
    epochs: 300

Caffe's names are accepted too (``base_lr``, ``type``, ``solver_type``, ``max_epoch``...),
and ``--set solver.lr=0.05`` overrides one field (the value is read as YAML).
Unknown keys and bad values raise a ``ConfigError`` naming the key and what is allowed.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad config: the message names the key, the value and what is allowed."""


@dataclass
class ModelConfig:
    name: str = "densenet_bc"  # a registered model: densenet_bc, densenet, resnet20, lenet, mlp, ...
    # keyword arguments of the model builder; num_classes is filled in from the data set.
    # The default is the DenseNet-BC of the paper's smallest row, L=40, k=12 (3 dense blocks of 6 bottleneck
    # layers, 176k params): on 8x8 digits it reached 98.9-99.7% over seeds 0-2 in 80-90 s on 2 cores, where
    # L=22 (71k params) sometimes ended at 98.6%.
    kwargs: dict = field(default_factory=lambda: {"depth": 40, "growth_rate": 12})


@dataclass
class DataConfig:
    name: str = "digits"  # digits (built in), mnist, fashion_mnist, cifar10, cifar100, npz, folder
    root: str | None = None  # directory (or file for npz) holding the data; None = the default
    # "test": validate on the test split; a fraction in (0, 1): hold out that share of the training set
    val: str | float = "test"
    num_workers: int = 1  # 1 = prefetch the next batch in a background thread; 0 = no thread


@dataclass
class AugmentConfig:
    normalize: bool = True  # per-channel mean/std computed on the training set
    crop_padding: int = 1  # pad-and-random-crop by this many pixels (0 = off; CIFAR uses 4)
    flip: bool = False  # random horizontal flip (on for CIFAR; off for digits, where it changes the class)


@dataclass
class SolverConfig:
    name: str = "sgd"  # a registered solver: sgd, adam, rmsprop, adagrad, adadelta, ...
    lr: float = 0.1  # base learning rate (Caffe: base_lr)
    momentum: float = 0.9  # SGD momentum (Adam: beta1 is set with kwargs)
    nesterov: bool = True  # Nesterov momentum (the DenseNet paper's choice)
    weight_decay: float = 5e-4  # L2 weight decay (5e-4 for the small digits set; the DenseNet paper uses 1e-4 on CIFAR)
    kwargs: dict = field(default_factory=dict)  # any other solver argument (betas, eps, clip_gradients, ...)


@dataclass
class LRPolicyConfig:
    name: str = "cosine"  # a registered lr policy: fixed, step, multistep, exp, inv, poly, sigmoid, cosine
    warmup_epochs: float = 1.0  # linear warm-up from warmup_start * lr over this many epochs (0 = off)
    warmup_start: float = 0.1  # the warm-up starts at this fraction of the base lr
    # multistep: the lr is multiplied by gamma at these fractions of the run (the paper: 50%, 75%)
    milestones: list = field(default_factory=lambda: [0.5, 0.75])
    kwargs: dict = field(default_factory=dict)  # other policy arguments (gamma, power, eta_min, ...)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    lr_policy: LRPolicyConfig = field(default_factory=LRPolicyConfig)
    epochs: int = 40  # passes over the training set
    batch_size: int = 64  # images per step
    seed: int = 0  # seeds the weights, the data order, dropout and augmentation
    checkpoint_every: int = 5  # save a checkpoint every N epochs (and always at the end); 0 = only at the end
    out_dir: str = "runs"  # run directories are created under here
    name: str | None = None  # the run directory's name; None = <date>-<time>-<model>-<data>
    eval_batch_size: int = 256  # images per step when evaluating
    dtype: str = "float32"  # float32 or float64
    # data-parallel (mpiexec -n R): BatchNorm statistics over all R ranks' samples (SyncBatchNorm), so R ranks
    # with batch B normalise like one process with batch R*B; false: each rank its own (PyTorch DDP's default)
    sync_batchnorm: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# Caffe (and common) aliases -> our names, per section.
_ALIASES: dict[str, dict[str, str]] = {
    "solver": {"base_lr": "lr", "type": "name", "solver_type": "name", "weight_decay_l2": "weight_decay"},
    "lr_policy": {"type": "name", "policy": "name", "warmup": "warmup_epochs"},
    "model": {"type": "name", "args": "kwargs"},
    "data": {"dataset": "name", "path": "root"},
    "augment": {"padding": "crop_padding", "random_crop": "crop_padding", "mirror": "flip", "hflip": "flip"},
    "": {"max_epoch": "epochs", "max_epochs": "epochs", "batch": "batch_size",
         "snapshot": "checkpoint_every", "snapshot_every": "checkpoint_every", "random_seed": "seed",
         "output_dir": "out_dir", "augmentation": "augment", "optimizer": "solver", "scheduler": "lr_policy",
         "lr_schedule": "lr_policy", "dataset": "data"},
}
# Caffe's solver.prototxt keeps the lr policy inside the solver section.
_SOLVER_POLICY_KEYS = {"lr_policy": "name", "gamma": None, "stepsize": None, "power": None,
                       "warmup_epochs": "warmup_epochs"}

_CHOICES = {
    "data.val": "'test' or a fraction in (0, 1)",
    "dtype": ["float32", "float64"],
}


def _type_name(tp: Any) -> str:
    return tp if isinstance(tp, str) else getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, default: Any, annotation: str) -> Any:
    """Check ``value`` against the field's type (from its annotation string and default)."""
    ann = annotation.replace(" ", "")
    optional = "None" in ann.split("|")
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config key {key!r}: null is not allowed; expected {ann} (default {default!r})")
    if ann.startswith("bool"):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r}: expected true or false, got {value!r}")
    if ann.startswith("int"):
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
        return int(value)
    if ann.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r}: expected a number, got {value!r} ({type(value).__name__});"
                              " write 1.0e-4, not 1e-4, if YAML read it as a string")
        if not math.isfinite(value):
            raise ConfigError(f"config key {key!r}: expected a finite number, got {value!r}")
        return float(value)
    if ann.startswith("str|float"):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key {key!r}: expected {_CHOICES.get(key, ann)}, got {value!r}")
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r}: expected {_CHOICES.get(key, ann)}, got {value!r}")
    if ann.startswith("str"):
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
    if ann.startswith("dict"):
        if isinstance(value, dict):
            _check_finite(key, value)
            return dict(value)
        raise ConfigError(f"config key {key!r}: expected a mapping (key: value, ...), got {value!r}")
    if ann.startswith("list"):
        if isinstance(value, (list, tuple)):
            _check_finite(key, value)
            return list(value)
        raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
    return value


def _check_finite(key: str, value: Any, depth: int = 0, budget: list[int] | None = None) -> None:
    """Reject NaN/Inf anywhere inside a kwargs mapping or a list (``solver.kwargs.eps: .nan``), and
    values nested too deep or too large (a YAML alias "bomb" shares nodes that a walk would expand)."""
    budget = [10_000] if budget is None else budget
    budget[0] -= 1
    if depth > 20 or budget[0] < 0:
        raise ConfigError(f"config key {key!r}: nested too deeply or too large (over 20 levels or 10,000 values); "
                          "a config value is a few numbers, not a data structure")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key {key!r}: expected a finite number, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(f"{key}.{k}", v, depth + 1, budget)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(f"{key}[{i}]", v, depth + 1, budget)


def _fill(cls: type, raw: dict, section: str) -> Any:
    """Build dataclass ``cls`` from ``raw``, renaming aliases and rejecting unknown keys."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config section {section or '(top level)'!r}: expected a mapping, got {raw!r}")
    aliases = _ALIASES.get(section, {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = aliases.get(str(key), str(key))
        dotted = f"{section}.{name}" if section else name
        if name not in fields:
            allowed = ", ".join(fields)
            raise ConfigError(f"unknown config key {(section + '.' if section else '') + str(key)!r}; "
                              f"allowed keys{' in ' + repr(section) if section else ''}: {allowed}")
        if name in values:
            raise ConfigError(f"config key {dotted!r} is given twice (once as an alias such as {key!r})")
        f = fields[name]
        if dataclasses.is_dataclass(f.type) or (isinstance(f.type, str) and f.type.endswith("Config")):
            sub_cls = {"model": ModelConfig, "data": DataConfig, "augment": AugmentConfig,
                       "solver": SolverConfig, "lr_policy": LRPolicyConfig}[name]
            values[name] = _fill(sub_cls, value if value is not None else {}, name)
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore
            values[name] = _coerce(dotted, value, default, _type_name(f.type))
    return cls(**values)


def _hoist_caffe_solver(raw: dict) -> dict:
    """Move Caffe's lr_policy keys from the solver section into lr_policy."""
    solver = raw.get("solver")
    if not isinstance(solver, dict):
        return raw
    moved = {k: solver[k] for k in _SOLVER_POLICY_KEYS if k in solver and not isinstance(solver[k], dict)}
    if not moved:
        return raw
    raw = dict(raw)
    raw["solver"] = {k: v for k, v in solver.items() if k not in moved}
    policy = dict(raw.get("lr_policy") or {})
    for k, v in moved.items():
        target = _SOLVER_POLICY_KEYS[k]
        if target:
            policy[target] = v
        else:
            policy.setdefault("kwargs", {})[k] = v
    raw["lr_policy"] = policy
    return raw


def validate(cfg: Config, check_registries: bool = True) -> Config:
    """Range checks that need more than a type; raise ConfigError naming the key."""
    def bad(key: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"config key {key!r}: got {value!r}; allowed: {allowed}")

    if cfg.epochs < 1:
        raise bad("epochs", cfg.epochs, "an integer >= 1")
    if cfg.batch_size < 1:
        raise bad("batch_size", cfg.batch_size, "an integer >= 1")
    if cfg.eval_batch_size < 1:
        raise bad("eval_batch_size", cfg.eval_batch_size, "an integer >= 1")
    if cfg.checkpoint_every < 0:
        raise bad("checkpoint_every", cfg.checkpoint_every, "an integer >= 0 (0 = only at the end)")
    if cfg.dtype not in _CHOICES["dtype"]:
        raise bad("dtype", cfg.dtype, ", ".join(_CHOICES["dtype"]))
    if cfg.solver.lr <= 0:
        raise bad("solver.lr", cfg.solver.lr, "a number > 0")
    if not 0 <= cfg.solver.momentum < 1:
        raise bad("solver.momentum", cfg.solver.momentum, "a number in [0, 1)")
    if cfg.solver.weight_decay < 0:
        raise bad("solver.weight_decay", cfg.solver.weight_decay, "a number >= 0")
    if cfg.lr_policy.warmup_epochs < 0:
        raise bad("lr_policy.warmup_epochs", cfg.lr_policy.warmup_epochs, "a number >= 0")
    if not 0 < cfg.lr_policy.warmup_start <= 1:
        raise bad("lr_policy.warmup_start", cfg.lr_policy.warmup_start, "a number in (0, 1]")
    if cfg.augment.crop_padding < 0:
        raise bad("augment.crop_padding", cfg.augment.crop_padding, "an integer >= 0")
    if cfg.data.num_workers not in (0, 1):
        raise bad("data.num_workers", cfg.data.num_workers, "0 (no prefetch) or 1 (prefetch in a thread)")
    val = cfg.data.val
    if isinstance(val, str):
        if val != "test":
            try:
                val = float(val)
            except ValueError:
                raise bad("data.val", cfg.data.val, _CHOICES["data.val"]) from None
            cfg.data.val = val
    if not isinstance(val, str) and not 0 < float(val) < 1:
        raise bad("data.val", cfg.data.val, _CHOICES["data.val"])
    _check_dataset(cfg.data.name)
    if check_registries:
        _check_registered("model", "model.name", cfg.model.name)
        _check_registered("solver", "solver.name", cfg.solver.name)
        _check_registered("lr_policy", "lr_policy.name", cfg.lr_policy.name)
    return cfg


def _check_registered(kind: str, key: str, name: str) -> None:
    """Reject names the registry does not know (skipped while the registry is empty)."""
    _import_registries()
    from .core.registry import registered

    known = registered(kind)
    if known and name.lower() not in known:
        raise ConfigError(f"config key {key!r}: unknown {kind} {name!r}; allowed: {', '.join(known)}")


DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "npz", "folder")


def _check_dataset(name: str) -> None:
    if name.lower().replace("-", "_") not in DATASETS:
        raise ConfigError(f"config key 'data.name': unknown data set {name!r}; allowed: {', '.join(DATASETS)}")


def _import_registries() -> None:
    """Import the packages whose modules register models, solvers and lr policies."""
    for mod in ("models", "solvers"):
        try:
            __import__(f"layerwise.{mod}")
        except ImportError:  # pragma: no cover - a broken sub-package is reported by its own use
            pass


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'solver.lr=0.05'`` -> (['solver', 'lr'], 0.05); the value is read with yaml.safe_load."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set solver.lr=0.05")
    key, _, value = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: the key {key!r} is not a dotted name like solver.lr")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({e.problem if hasattr(e, 'problem') else e})") from None
    return key.split("."), parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``--set a.b=value`` overrides to a raw (not yet validated) config dict."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is a value, not a section")
            else:
                child = node[part] = dict(child)
            node = child
        node[path[-1]] = value
    return raw


def load_config(source: str | Path | dict | None = None, overrides: list[str] | None = None,
                check_registries: bool = True) -> Config:
    """Read a config from a YAML file (or a dict, or None = all defaults), apply overrides, validate.

    Args:
        source: path of a YAML file, a mapping, or None.
        overrides: ``["solver.lr=0.05", "epochs=3"]`` (values read as YAML).
        check_registries: also check model/solver/lr_policy names against the registries.

    Raises:
        ConfigError: unknown key, bad type or value, unreadable file; the message names the key.
    """
    if source is None:
        raw: Any = {}
    elif isinstance(source, dict):
        raw = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist; pass a YAML file or no config for the defaults")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                              f"{e.start}); save it as UTF-8") from None
        except OSError as e:
            raise ConfigError(f"config file {str(path)!r} cannot be read ({e.strerror})") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {' '.join(str(e).split())}") from None
        except RecursionError:
            raise ConfigError(f"config file {str(path)!r} is nested too deeply to be a config") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {str(path)!r}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    raw = _hoist_caffe_solver(dict(raw))
    raw = apply_overrides(raw, overrides or [])
    model = raw.get("model")
    if isinstance(model, dict) and "name" in model and "kwargs" not in model \
            and model["name"] != ModelConfig.name:
        # the default kwargs belong to the default model (DenseNet-BC depth/growth): another model
        # named without kwargs gets its own builder's defaults, not DenseNet's arguments
        raw["model"] = {**model, "kwargs": {}}
    return validate(_fill(Config, raw, ""), check_registries=check_registries)


def _field_comments(cls: type) -> dict[str, str]:
    """Each field's comment in the class source: the lines above it and the one on its line."""
    import inspect
    import re

    out: dict[str, str] = {}
    above: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        m = re.match(r"(\w+): [^=]+=.*?(?:#\s?(.*))?$", stripped)
        if stripped.startswith("#"):
            above.append(stripped.lstrip("#").strip())
        elif m:
            out[m.group(1)] = " ".join(above + ([m.group(2).strip()] if m.group(2) else []))
            above = []
        else:
            above = []
    return out


def default_config_text(cfg: Config | None = None) -> str:
    """A config as YAML with each field's comment (``layerwise train --print-config``)."""
    cfg = cfg or Config()

    def value(v: Any) -> str:
        return yaml.safe_dump(v, default_flow_style=True, width=1000).strip().removesuffix("...").strip()

    lines = ["# layerwise training config: every key is optional (missing keys keep these defaults).",
             "# Caffe names are accepted too (base_lr, type, max_epoch, ...); see docs/training.md."]
    top = _field_comments(Config)
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            lines.append(f"{f.name}:")
            sub = _field_comments(type(v))
            for g in dataclasses.fields(v):
                c = sub.get(g.name, "")
                lines.append(f"  {g.name}: {value(getattr(v, g.name))}" + (f"  # {c}" if c else ""))
        else:
            c = top.get(f.name, "")
            lines.append(f"{f.name}: {value(v)}" + (f"  # {c}" if c else ""))
    return "\n".join(lines) + "\n"


__all__ = ["Config", "ModelConfig", "DataConfig", "AugmentConfig", "SolverConfig", "LRPolicyConfig",
           "ConfigError", "load_config", "default_config_text", "apply_overrides", "parse_override", "validate", "DATASETS"]
