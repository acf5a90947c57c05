"""Bad configs and --set values: one error line naming the key, exit 2, and NO run directory created
(the whole config, model, solver and schedule included, is checked before anything is written)."""
from __future__ import annotations

import pytest

from .conftest import expect_error, tiny_npz, train_args

# (--set overrides, fragments the one-line message must contain)
BAD_SETS = [
    (["solver.lrr=0.1"], ["solver.lrr", "allowed keys"]),
    (["solver.lr=.nan"], ["solver.lr", "finite"]),
    (["solver.lr=.inf"], ["solver.lr", "finite"]),
    (["solver.lr=-1"], ["solver.lr", "> 0"]),
    (["solver.lr=abc"], ["solver.lr", "number"]),
    (["solver.lr=nan"], ["solver.lr"]),
    (["epochs=0"], ["epochs", ">= 1"]),
    (["epochs=1.5"], ["epochs", "integer"]),
    (["batch_size=0"], ["batch_size"]),
    (["batch_size=true"], ["batch_size", "integer"]),
    (["dtype=float16"], ["dtype", "float32"]),
    (["data.name=imagenet"], ["data.name", "cifar10"]),
    (["model.name=nosuch"], ["model.name", "unknown model"]),
    (["solver.name=nosuch"], ["solver.name", "unknown solver"]),
    (["lr_policy.name=nosuch"], ["lr_policy.name"]),
    (["data.val=1.5"], ["data.val"]),
    (["data.val=.nan"], ["data.val"]),
    (["solver.momentum=1.0"], ["solver.momentum", "[0, 1)"]),
    (["solver.kwargs={eps: .nan}"], ["solver.kwargs.eps", "finite"]),
    (["lr_policy.milestones=[.nan]"], ["lr_policy.milestones", "finite"]),
    (["augment.crop_padding=-1"], ["augment.crop_padding"]),
    (["data.num_workers=2"], ["data.num_workers"]),
    (["checkpoint_every=-1"], ["checkpoint_every"]),
    (["lr_policy.warmup_start=0"], ["lr_policy.warmup_start"]),
    (["model.kwargs=notamap"], ["model.kwargs", "mapping"]),
    (["sync_batchnorm=yes please"], ["sync_batchnorm", "true or false"]),
    (["solver.lr"], ["KEY=VALUE"]),
    (["solver.lr=[1"], ["not valid YAML"]),
    (["epochs.x=1"], ["epochs", "not a section"]),
    (["model.kwargs={hidden: [8], nosuch: 1}"], ["model.kwargs", "nosuch"]),
    (["lr_policy.kwargs={nosuch: 1}"], ["lr_policy"]),
    (["solver.kwargs={nosuch: 1}"], ["solver"]),
    (["augment.crop_padding=2", "data.name=npz"], []),  # crops need images; the npz here holds vectors
]


@pytest.mark.parametrize("sets,fragments", BAD_SETS, ids=[" ".join(s) for s, _ in BAD_SETS])
def test_bad_set_value_is_one_line_and_no_run_directory(sets, fragments, tmp_path, capsys):
    import numpy as np

    vectors = sets == ["augment.crop_padding=2", "data.name=npz"]
    npz = tiny_npz(tmp_path / "d.npz", **({"x": np.zeros((90, 16), np.float32)} if vectors else {}))
    out = tmp_path / "run"
    argv = train_args(npz, out) + [a for s in sets for a in ("--set", s)]
    if vectors:
        fragments = ["augment.crop_padding", "images"]
    expect_error(capsys, argv, *fragments)
    assert not out.exists(), "the run directory was created before the config was checked"


def test_missing_config_file(tmp_path, capsys):
    expect_error(capsys, ["train", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "r")], "nope.yaml",
                 "does not exist")


def test_config_file_that_is_not_utf8(tmp_path, capsys):
    f = tmp_path / "latin1.yaml"
    f.write_bytes("solver: {lr: 0.1}  # r\xe9glage\n".encode("latin-1"))
    expect_error(capsys, ["train", str(f), "--out", str(tmp_path / "r")], "latin1.yaml", "UTF-8", "offset")
    assert not (tmp_path / "r").exists()


def test_config_file_that_is_not_yaml(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text("solver: {lr: 0.1\nepochs: [\n")
    expect_error(capsys, ["train", str(f), "--out", str(tmp_path / "r")], "bad.yaml", "not valid YAML")


def test_config_file_with_a_list_at_the_top(tmp_path, capsys):
    f = tmp_path / "list.yaml"
    f.write_text("- 1\n- 2\n")
    expect_error(capsys, ["train", str(f), "--out", str(tmp_path / "r")], "list.yaml", "mapping")


def test_config_yaml_alias_bomb_is_refused_quickly(tmp_path, capsys):
    import time

    lines = ["a0: &a0 [1, 2]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    f = tmp_path / "bomb.yaml"  # 40 lines of YAML that a naive walk would expand to 2**40 values
    f.write_text("model:\n  name: mlp\n  kwargs:\n" + "\n".join(f"    {ln}" for ln in lines) + "\n")
    t0 = time.perf_counter()
    expect_error(capsys, ["train", str(f), "--out", str(tmp_path / "r")], "model.kwargs", "too large")
    assert time.perf_counter() - t0 < 5


def test_argparse_errors_are_one_line(capsys):
    expect_error(capsys, ["train", "--epochs", "abc"], "--epochs", "invalid int")
    expect_error(capsys, ["train", "--nosuch"], "unrecognized arguments")
    expect_error(capsys, ["nosuchcommand"], "invalid choice")
