"""The YAML config: defaults, overrides, Caffe names, and clear errors naming the key."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from layerwise.config import Config, ConfigError, default_config_text, load_config, parse_override


def test_no_config_is_densenet_bc_on_digits():
    cfg = load_config(None)
    assert cfg.model.name == "densenet_bc" and cfg.data.name == "digits"
    assert cfg == Config()
    assert cfg.augment.flip is False  # flipping a digit changes its class


def test_printed_defaults_round_trip_and_carry_comments():
    text = default_config_text()
    assert load_config(yaml.safe_load(text)) == Config()
    assert "# base learning rate" in text and "lr_policy:" in text


def test_overrides_are_read_as_yaml():
    cfg = load_config(None, ["solver.lr=0.05", "epochs=3", "augment.flip=true", "model.kwargs={depth: 22}",
                             "lr_policy.milestones=[0.3, 0.6]", "name=exp1"])
    assert cfg.solver.lr == 0.05 and cfg.epochs == 3 and cfg.augment.flip is True
    assert cfg.model.kwargs == {"depth": 22} and cfg.lr_policy.milestones == [0.3, 0.6] and cfg.name == "exp1"
    assert parse_override("data.root=~/data") == (["data", "root"], "~/data")


def test_file_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("solver: {lr: 0.2}\nepochs: 7\n")
    cfg = load_config(f, ["epochs=9"])
    assert cfg.solver.lr == 0.2 and cfg.epochs == 9 and cfg.batch_size == Config().batch_size


def test_caffe_names_are_accepted(tmp_path):
    f = tmp_path / "solver.yaml"
    f.write_text("solver:\n  type: sgd\n  base_lr: 0.01\n  lr_policy: step\n  gamma: 0.5\n  stepsize: 100\n"
                 "max_epoch: 4\n")
    cfg = load_config(f)
    assert cfg.solver.lr == 0.01 and cfg.epochs == 4
    assert cfg.lr_policy.name == "step" and cfg.lr_policy.kwargs == {"gamma": 0.5, "step_size": 100}


@pytest.mark.parametrize("raw, words", [
    ({"solver": {"lrr": 0.1}}, ["'solver.lrr'", "allowed keys in 'solver'", "lr,"]),
    ({"epoch": 3}, ["'epoch'", "epochs"]),
    ({"model": 3}, ["'model'", "expected a mapping"]),
    ({"epochs": "ten"}, ["'epochs'", "integer"]),
    ({"epochs": 0}, ["'epochs'", ">= 1"]),
    ({"solver": {"lr": "fast"}}, ["'solver.lr'", "number"]),
    ({"solver": {"lr": -1.0}}, ["'solver.lr'", "> 0"]),
    ({"solver": {"momentum": 1.5}}, ["'solver.momentum'", "[0, 1)"]),
    ({"solver": {"nesterov": "yes please"}}, ["'solver.nesterov'", "true or false"]),
    ({"data": {"val": 1.5}}, ["'data.val'", "'test' or a fraction"]),
    ({"data": {"name": "imagenet22k"}}, ["'data.name'", "cifar10", "digits"]),
    ({"dtype": "float16"}, ["'dtype'", "float32, float64"]),
    ({"model": {"name": "transformer"}}, ["'model.name'", "densenet_bc"]),
    ({"solver": {"name": "lbfgs"}}, ["'solver.name'", "sgd"]),
    ({"lr_policy": {"name": "onecycle"}}, ["'lr_policy.name'", "cosine"]),
    ({"solver": {"lr": 0.1, "base_lr": 0.2}}, ["'solver.lr'", "twice"]),
    ({"solver": {"lr_policy": "step"}, "lr_policy": "cosine"}, ["'lr_policy'", "expected a mapping"]),
    ({"solver": {"gamma": 0.5}, "lr_policy": {"kwargs": [1]}}, ["'lr_policy.kwargs'", "expected a mapping"]),
])
def test_bad_configs_name_the_key_and_the_allowed_values(raw, words):
    with pytest.raises(ConfigError) as e:
        load_config(raw)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_bad_overrides_and_files(tmp_path):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(None, ["solver.lr"])
    with pytest.raises(ConfigError, match="'solver.lr'"):
        load_config(None, ["solver.lr=[1, 2]"])
    with pytest.raises(ConfigError, match="'epochs': expected an integer"):
        load_config(None, ["epochs.x=1"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config({"epochs": 3}, ["epochs.x=1"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("solver: {lr: 0.1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(lst)


def test_naming_another_model_drops_the_default_models_kwargs():
    cfg = load_config(None, ["model.name=lenet"])
    assert cfg.model.name == "lenet" and cfg.model.kwargs == {}
    cfg = load_config(None, ["model.name=resnet20", "model.kwargs={num_classes: 10}"])
    assert cfg.model.kwargs == {"num_classes": 10}
    assert load_config(None, ["model.kwargs={depth: 100}"]).model.kwargs == {"depth": 100}
    assert load_config(None).model.kwargs == {"depth": 40, "growth_rate": 12}


# ------------------------------------------------------------- Caffe's names mean Caffe's defaults
def _solver(cfg):
    import layerwise as lw
    from layerwise.solvers import build_solver
    from layerwise.train.build import _solver_kwargs

    return build_solver(cfg.solver.name, {"w": lw.Param(np.zeros(3))}, **_solver_kwargs(cfg))


def test_caffe_solver_type_without_momentum_gets_caffes_zero():
    cfg = load_config({"solver": {"type": "Nesterov", "base_lr": 0.05}})
    assert (cfg.solver.momentum, cfg.solver.weight_decay) == (0.0, 0.0)      # caffe.proto's defaults
    s = _solver(cfg)
    assert type(s).__name__ == "Nesterov" and s.momentum == 0.0
    ours = load_config({"solver": {"name": "nesterov", "lr": 0.05}})           # our names: our defaults
    assert (ours.solver.momentum, ours.solver.weight_decay) == (0.9, 5e-4)
    assert _solver(ours).momentum == 0.9


@pytest.mark.parametrize("section, expect", [
    ({"type": "Adam", "base_lr": 1e-3}, {"betas": (0.0, 0.999), "eps": 1e-8, "weight_decay": 0.0}),
    ({"name": "adam", "lr": 1e-3}, {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 5e-4}),
    ({"type": "AdaGrad", "base_lr": 0.01}, {"eps": 1e-8, "weight_decay": 0.0}),
    ({"name": "adagrad", "lr": 0.01}, {"eps": 1e-10}),
    ({"type": "AdaDelta", "base_lr": 1.0, "momentum": 0.95}, {"rho": 0.95, "eps": 1e-8}),
    ({"type": "RMSProp", "base_lr": 0.01}, {"momentum": 0.0, "alpha": 0.99, "eps": 1e-8}),
    ({"type": "SGD", "base_lr": 0.01}, {"momentum": 0.0, "nesterov": False}),
    ({"type": "SGD", "base_lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}, {"momentum": 0.9, "weight_decay": 1e-4}),
    ({"type": "Adam", "base_lr": 1e-3, "kwargs": {"momentum2": 0.99, "delta": 1e-6}},
     {"betas": (0.0, 0.99), "eps": 1e-6}),
])
def test_each_solver_gets_the_defaults_of_the_names_it_is_given(section, expect):
    s = _solver(load_config({"solver": section}))
    assert {k: getattr(s, k) for k in expect} == expect


def test_kwargs_win_over_the_sections_momentum():
    # the section's default momentum (0.9) used to overwrite betas[0] given in kwargs
    s = _solver(load_config({"solver": {"name": "adam", "lr": 1e-3, "kwargs": {"betas": [0.5, 0.99]}}}))
    assert s.betas == (0.5, 0.99)
    s = _solver(load_config({"solver": {"name": "adadelta", "lr": 1.0, "kwargs": {"rho": 0.7}}}))
    assert s.rho == 0.7


def test_overrides_can_speak_caffe_and_beat_its_defaults():
    cfg = load_config(None, ["solver.type=Nesterov"])
    assert cfg.solver.momentum == 0.0
    cfg = load_config(None, ["solver.type=Nesterov", "solver.momentum=0.8"])
    assert cfg.solver.momentum == 0.8


def test_a_caffe_schedule_in_the_solver_section_has_no_warmup_and_its_own_milestones():
    from layerwise.train.build import build_policy_from_config

    cfg = load_config({"solver": {"type": "SGD", "base_lr": 0.1, "momentum": 0.9, "lr_policy": "multistep",
                                  "gamma": 0.5, "stepvalue": [100, 300]}, "epochs": 4})
    assert cfg.lr_policy.warmup_epochs == 0.0 and cfg.lr_policy.kwargs == {"gamma": 0.5, "milestones": [100, 300]}
    lr = build_policy_from_config(cfg, 100)
    assert [lr(99), lr(100), lr(300)] == pytest.approx([0.1, 0.05, 0.025])
    # Caffe's spelling in the lr_policy section's kwargs is not overwritten by the run's fractions
    cfg = load_config({"lr_policy": {"name": "multistep", "warmup_epochs": 0, "kwargs": {"stepvalue": [10]}}})
    assert build_policy_from_config(cfg, 100)(10) == pytest.approx(cfg.solver.lr * 0.1)
    with pytest.raises(ConfigError, match="both 'stepsize' and 'step_size'"):
        build_policy_from_config(load_config({"lr_policy": {"name": "step", "kwargs": {"stepsize": 3,
                                                                                     "step_size": 4}}}), 10)


def test_run_length_defaults_come_from_the_policy_classes():
    from layerwise.train.build import build_policy_from_config

    for name, check in [("cosine", lambda p: p.max_iter == 200), ("poly", lambda p: p.max_iter == 200),
                        ("step", lambda p: p.step_size == 66), ("multistep", lambda p: p.milestones == (100, 150))]:
        cfg = load_config({"lr_policy": {"name": name, "warmup_epochs": 0}, "epochs": 2})
        assert check(build_policy_from_config(cfg, 100)), name


# ------------------------------------------------------------------- the fields describe themselves
def test_every_field_has_help_and_print_config_shows_it():
    import dataclasses

    text = default_config_text()
    cfg = Config()
    for section in dataclasses.fields(cfg):
        value = getattr(cfg, section.name)
        for f in dataclasses.fields(value) if dataclasses.is_dataclass(value) else [section]:
            assert f.metadata.get("help"), f"{section.name}.{f.name} has no help"
            assert f"{f.name}: " in text and f"# {f.metadata['help']}" in text


def test_types_come_from_the_type_hints():
    assert load_config({"data": {"root": None}}).data.root is None               # str | None
    with pytest.raises(ConfigError, match=r"'data.name': null is not allowed; expected str"):
        load_config({"data": {"name": None}})
    assert load_config({"data": {"val": 0.2}}).data.val == 0.2                   # str | float
    with pytest.raises(ConfigError, match="'lr_policy.milestones': expected a list"):
        load_config({"lr_policy": {"milestones": 0.5}})
    with pytest.raises(ConfigError, match="'solver.kwargs': expected a mapping"):
        load_config({"solver": {"kwargs": [1]}})
