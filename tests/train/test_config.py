"""The YAML config: defaults, overrides, Caffe names, and clear errors naming the key."""
from __future__ import annotations

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
    assert cfg.lr_policy.name == "step" and cfg.lr_policy.kwargs == {"gamma": 0.5, "stepsize": 100}


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
