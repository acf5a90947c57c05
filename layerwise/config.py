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
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from .solvers.caffe_names import CONFIG_ALIASES, SOLVER_POLICY_KEYS, caffe_defaults, policy_options, speaks_caffe

# The epoch-log columns early stopping may watch (the Trainer's row; val_* need a validation set).
_MONITORS = ("val_loss", "val_top1", "val_top5", "train_loss", "train_acc")


class ConfigError(ValueError):
    """A bad config: the message names the key, the value and what is allowed."""


def _help(text: str) -> dict[str, str]:
    """A field's metadata: ``help`` is its comment in ``layerwise train --print-config``."""
    return {"help": text}


@dataclass
class ModelConfig:
    name: str = field(default="densenet_bc",
                      metadata=_help("a registered model: densenet_bc, densenet, resnet20, lenet, mlp, ..."))
    # The default is the DenseNet-BC of the paper's smallest row, L=40, k=12 (3 dense blocks of 6 bottleneck
    # layers, 176k params): on 8x8 digits it reached 98.9-99.7% over seeds 0-2 in 80-90 s on 2 cores, where
    # L=22 (71k params) sometimes ended at 98.6%.
    kwargs: dict[str, Any] = field(
        default_factory=lambda: {"depth": 40, "growth_rate": 12},
        metadata=_help("keyword arguments of the model builder; num_classes is filled in from the data set"))


@dataclass
class DataConfig:
    name: str = field(default="digits", metadata=_help(
        "digits (built in), mnist, fashion_mnist, cifar10, cifar100, npz, folder"))
    root: str | None = field(default=None, metadata=_help(
        "directory (or file for npz) holding the data; None = the default"))
    val: str | float = field(default="test", metadata=_help(
        '"test": validate on the test split; a fraction in (0, 1): hold out that share of the training set'))
    num_workers: int = field(default=1, metadata=_help(
        "1 = prefetch the next batch in a background thread; 0 = no thread"))


@dataclass
class AugmentConfig:
    normalize: bool = field(default=True, metadata=_help("per-channel mean/std computed on the training set"))
    crop_padding: int = field(default=1, metadata=_help(
        "pad-and-random-crop by this many pixels (0 = off; CIFAR uses 4)"))
    flip: bool = field(default=False, metadata=_help(
        "random horizontal flip (on for CIFAR; off for digits, where it changes the class)"))


@dataclass
class SolverConfig:
    name: str = field(default="sgd", metadata=_help(
        "a registered solver: sgd, nesterov, adam, adamw, rmsprop, adagrad, adadelta (Caffe: type)"))
    lr: float = field(default=0.1, metadata=_help("base learning rate (Caffe: base_lr)"))
    momentum: float = field(default=0.9, metadata=_help(
        "momentum as Caffe means it: SGD's and RMSProp's momentum, Adam's beta1, AdaDelta's rho"))
    nesterov: bool = field(default=True, metadata=_help("Nesterov momentum (the DenseNet paper's choice)"))
    weight_decay: float = field(default=5e-4, metadata=_help(
        "L2 weight decay (5e-4 for the small digits set; the DenseNet paper uses 1e-4 on CIFAR)"))
    kwargs: dict[str, Any] = field(default_factory=dict, metadata=_help(
        "any other solver argument (betas, eps, clip_gradients, ...)"))


@dataclass
class LRPolicyConfig:
    name: str = field(default="cosine", metadata=_help(
        "a registered lr policy: fixed, step, multistep, exp, inv, poly, sigmoid, cosine"))
    warmup_epochs: float = field(default=1.0, metadata=_help(
        "linear warm-up from warmup_start * lr over this many epochs (0 = off)"))
    warmup_start: float = field(default=0.1, metadata=_help("the warm-up starts at this fraction of the base lr"))
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75], metadata=_help(
        "multistep: the lr is multiplied by gamma at these fractions of the run (the paper: 50%, 75%)"))
    kwargs: dict[str, Any] = field(default_factory=dict, metadata=_help(
        "other policy arguments (gamma, power, eta_min, ...)"))


@dataclass
class EarlyStoppingConfig:
    patience: int = field(default=0, metadata=_help(
        "stop when `monitor` has not improved for this many epochs (0: off; Keras's EarlyStopping)"))
    monitor: str = field(default="val_loss", metadata=_help(
        "the epoch-log column to watch: val_loss, val_top1, val_top5, train_loss or train_acc"))
    min_delta: float = field(default=0.0, metadata=_help("the smallest change that counts as an improvement"))


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    lr_policy: LRPolicyConfig = field(default_factory=LRPolicyConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    epochs: int = field(default=40, metadata=_help("passes over the training set"))
    batch_size: int = field(default=64, metadata=_help("images per step"))
    seed: int = field(default=0, metadata=_help("seeds the weights, the data order, dropout and augmentation"))
    checkpoint_every: int = field(default=5, metadata=_help(
        "save a checkpoint every N epochs (and always at the end); 0 = only at the end"))
    out_dir: str = field(default="runs", metadata=_help("run directories are created under here"))
    name: str | None = field(default=None, metadata=_help(
        "the run directory's name; None = <date>-<time>-<model>-<data>"))
    eval_batch_size: int = field(default=256, metadata=_help("images per step when evaluating"))
    dtype: str = field(default="float32", metadata=_help("float32 or float64"))
    sync_batchnorm: bool = field(default=False, metadata=_help(
        "data-parallel (mpiexec -n R): BatchNorm statistics over all R ranks' samples (SyncBatchNorm), so R "
        "ranks with batch B normalise like one process with batch R*B; false: each rank its own (PyTorch "
        "DDP's default)"))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# What a few keys allow, for the messages (the rest say their type).
_CHOICES: dict[str, str] = {"data.val": "'test' or a fraction in (0, 1)", "dtype": "float32, float64"}
DTYPES = ("float32", "float64")


def _type_name(tp: Any) -> str:
    """``str | None`` for a union, the class's name otherwise (for messages)."""
    if get_origin(tp) in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    return "None" if tp is type(None) else getattr(get_origin(tp) or tp, "__name__", str(tp))


def _coerce(key: str, value: Any, default: Any, tp: Any) -> Any:
    """Check ``value`` against the field's type hint ``tp`` (resolved by ``typing.get_type_hints``)."""
    options = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"config key {key!r}: null is not allowed; expected {_type_name(tp)} (default {default!r})")
    kinds = {get_origin(o) or o for o in options if o is not type(None)}
    if kinds == {bool}:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r}: expected true or false, got {value!r}")
    if kinds == {int}:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
        return int(value)
    if kinds == {float}:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r}: expected a number, got {value!r} ({type(value).__name__});"
                              " write 1.0e-4, not 1e-4, if YAML read it as a string")
        if not math.isfinite(value):
            raise ConfigError(f"config key {key!r}: expected a finite number, got {value!r}")
        return float(value)
    if kinds == {str, float}:
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key {key!r}: expected {_CHOICES.get(key, _type_name(tp))}, got {value!r}")
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r}: expected {_CHOICES.get(key, _type_name(tp))}, got {value!r}")
    if kinds == {str}:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
    if kinds == {dict}:
        if isinstance(value, dict):
            _check_finite(key, value)
            return dict(value)
        raise ConfigError(f"config key {key!r}: expected a mapping (key: value, ...), got {value!r}")
    if kinds == {list}:
        if isinstance(value, (list, tuple)):
            _check_finite(key, value)
            return list(value)
        raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
    raise TypeError(f"config field {key!r}: no check for its type {_type_name(tp)}; teach _coerce that type")


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


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _fill(cls: type, raw: Any, section: str) -> Any:
    """Build dataclass ``cls`` from ``raw``, renaming aliases and rejecting unknown keys."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config section {section or '(top level)'!r}: expected a mapping, got {raw!r}")
    aliases = CONFIG_ALIASES.get(section, {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
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
        tp = hints[name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            values[name] = _fill(tp, value if value is not None else {}, name)
        else:
            values[name] = _coerce(dotted, value, _default(fields[name]), tp)
    return cls(**values)


def _hoist_caffe_solver(raw: dict) -> dict:
    """Move Caffe's lr_policy keys from the solver section into lr_policy (Caffe's names for the
    policy's arguments become ours). Caffe has no warm-up: a schedule given this way gets none unless
    the config asks for one."""
    solver = raw.get("solver")
    if not isinstance(solver, dict):
        return raw
    moved = {k: solver[k] for k in SOLVER_POLICY_KEYS if k in solver and not isinstance(solver[k], dict)}
    if not moved:
        return raw
    given = raw.get("lr_policy") or {}
    if not isinstance(given, dict):
        raise ConfigError(f"config section 'lr_policy': expected a mapping, got {given!r}")
    if not isinstance(given.get("kwargs") or {}, dict):
        raise ConfigError(f"config key 'lr_policy.kwargs': expected a mapping (key: value, ...), got "
                          f"{given['kwargs']!r}")
    raw = dict(raw)
    raw["solver"] = {k: v for k, v in solver.items() if k not in moved}
    policy = dict(given)
    extra = {}
    for k, v in moved.items():
        target = SOLVER_POLICY_KEYS[k]
        if target:
            policy[target] = v
        else:
            extra[k] = v
    if extra:
        try:
            policy["kwargs"] = policy_options({**(policy.get("kwargs") or {}), **extra}, "config section 'lr_policy'")
        except TypeError as e:
            raise ConfigError(str(e)) from None
    if "lr_policy" in moved and not {"warmup_epochs", "warmup"} & set(policy):
        policy["warmup_epochs"] = 0.0
    raw["lr_policy"] = policy
    return raw


def _solver_keys(solver: Any) -> set[str]:
    """The keys of a raw solver section and of its kwargs."""
    if not isinstance(solver, dict):
        return set()
    kwargs = solver.get("kwargs")
    return {str(k) for k in solver} | ({str(k) for k in kwargs} if isinstance(kwargs, dict) else set())


def _apply_caffe_defaults(raw: dict) -> dict:
    """A solver section written with Caffe's names gets Caffe's defaults for what it leaves out
    (``layerwise.solvers.caffe_names``): momentum 0, weight_decay 0, delta 1e-8, ... instead of this
    config's own defaults. Fields of the section are set there, the rest go into its kwargs."""
    solver = raw.get("solver")
    if not isinstance(solver, dict):
        return raw
    aliases = CONFIG_ALIASES["solver"]
    named = {aliases.get(str(k), str(k)): v for k, v in solver.items()}
    _import_registries()
    from .core.registry import lookup

    try:
        cls = lookup("solver", str(named.get("name", SolverConfig.name)))
    except KeyError:  # validate() names the unknown solver
        return raw
    given_kwargs = solver.get("kwargs")
    kwargs: dict[str, Any] = given_kwargs if isinstance(given_kwargs, dict) else {}
    missing = caffe_defaults(cls, set(named) | set(kwargs))
    if not missing:
        return raw
    own = {f.name for f in dataclasses.fields(SolverConfig)}
    solver = {**solver, **{k: v for k, v in missing.items() if k in own}}
    extra = {k: v for k, v in missing.items() if k not in own}
    if extra:
        solver["kwargs"] = {**extra, **kwargs}
    return {**raw, "solver": solver}


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
    if cfg.dtype not in DTYPES:
        raise bad("dtype", cfg.dtype, _CHOICES["dtype"])
    if cfg.solver.lr <= 0:
        raise bad("solver.lr", cfg.solver.lr, "a number > 0")
    if not 0 <= cfg.solver.momentum < 1:
        raise bad("solver.momentum", cfg.solver.momentum, "a number in [0, 1)")
    if cfg.solver.weight_decay < 0:
        raise bad("solver.weight_decay", cfg.solver.weight_decay, "a number >= 0")
    es = cfg.early_stopping
    if isinstance(es.patience, bool) or not isinstance(es.patience, int) or es.patience < 0:
        raise bad("early_stopping.patience", es.patience, "an integer >= 0 (0 = off)")
    if es.monitor not in _MONITORS:
        raise bad("early_stopping.monitor", es.monitor, ", ".join(_MONITORS))
    if not es.min_delta >= 0:
        raise bad("early_stopping.min_delta", es.min_delta, "a number >= 0")
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
        problem = e.problem if hasattr(e, "problem") else e
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({problem})") from None
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
            raise ConfigError(f"config file {str(path)!r} does not exist; pass a YAML file or no config for the "
                              "defaults")
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
            raise ConfigError(f"config file {str(path)!r}: expected a mapping of keys at the top level, got "
                              f"{type(raw).__name__}")
    caffe = speaks_caffe(_solver_keys(raw.get("solver")))     # before the policy keys leave the section
    raw = _hoist_caffe_solver(dict(raw))
    raw = apply_overrides(raw, overrides or [])
    if caffe or speaks_caffe(_solver_keys(raw.get("solver"))):
        raw = _apply_caffe_defaults(raw)
    model = raw.get("model")
    if isinstance(model, dict) and "name" in model and "kwargs" not in model \
            and model["name"] != ModelConfig.name:
        # the default kwargs belong to the default model (DenseNet-BC depth/growth): another model
        # named without kwargs gets its own builder's defaults, not DenseNet's arguments
        raw["model"] = {**model, "kwargs": {}}
    return validate(_fill(Config, raw, ""), check_registries=check_registries)


def default_config_text(cfg: Config | None = None) -> str:
    """A config as YAML with each field's help as a comment (``layerwise train --print-config``)."""
    cfg = cfg or Config()

    def value(v: Any) -> str:
        return yaml.safe_dump(v, default_flow_style=True, width=1000).strip().removesuffix("...").strip()

    def line(indent: str, f: dataclasses.Field, v: Any) -> str:
        c = f.metadata.get("help", "")
        return f"{indent}{f.name}: {value(v)}" + (f"  # {c}" if c else "")

    lines = ["# layerwise training config: every key is optional (missing keys keep these defaults).",
             "# Caffe names are accepted too (base_lr, type, max_epoch, ...), with Caffe's defaults; see "
             "docs/training.md."]
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            lines.append(f"{f.name}:")
            lines.extend(line("  ", g, getattr(v, g.name)) for g in dataclasses.fields(v))
        else:
            lines.append(line("", f, v))
    return "\n".join(lines) + "\n"


__all__ = ["Config", "ModelConfig", "DataConfig", "AugmentConfig", "SolverConfig", "LRPolicyConfig",
           "EarlyStoppingConfig", "ConfigError", "load_config", "default_config_text", "apply_overrides",
           "parse_override", "validate", "DATASETS"]
