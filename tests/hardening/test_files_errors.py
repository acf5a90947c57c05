"""Bad checkpoints, resumes that would train something else, unwritable or full destinations, and the
other commands' bad arguments: one error line, exit 2, nothing half-written; traceback only with --debug."""
from __future__ import annotations

import json
import resource

import numpy as np
import pytest

from layerwise.cli import main
from layerwise.io import load_checkpoint, save_checkpoint

from .conftest import expect_error, run_cli, tiny_npz, train_args


def _ckpt(tiny_run, epoch=2):
    return tiny_run[1] / f"checkpoint-epoch{epoch:04d}.safetensors"


# ------------------------------------------------------------------ test / predict on bad checkpoints
def test_test_on_a_pytorch_file(tmp_path, capsys):
    f = tmp_path / "model.pt"
    f.write_bytes(b"\x80\x02}q\x00.")  # a (tiny) torch.save-style pickle: never loaded
    expect_error(capsys, ["test", str(f)], "model.pt", "PyTorch", ".safetensors")


def test_test_on_a_missing_checkpoint(tmp_path, capsys):
    expect_error(capsys, ["test", str(tmp_path / "none.safetensors")], "none.safetensors")


def test_test_on_a_directory(tmp_path, capsys):
    d = tmp_path / "dir.safetensors"
    d.mkdir()
    expect_error(capsys, ["test", str(d)], "dir.safetensors")


@pytest.mark.parametrize("cut", [10, 100, -50])
def test_test_on_a_truncated_checkpoint(tiny_run, tmp_path, capsys, cut):
    raw = _ckpt(tiny_run).read_bytes()
    f = tmp_path / "cut.safetensors"
    f.write_bytes(raw[:cut])
    expect_error(capsys, ["test", str(f)], "cut.safetensors")


def test_test_on_random_bytes(tmp_path, capsys):
    f = tmp_path / "noise.npz"
    f.write_bytes(np.random.default_rng(0).bytes(300))
    expect_error(capsys, ["test", str(f)], "noise.npz", "not an .npz")


def test_test_on_an_npz_holding_pickled_objects(tmp_path, capsys):
    f = tmp_path / "evil.npz"
    np.savez(f, __layerwise_meta__=np.array([{"a": 1}], dtype=object))
    expect_error(capsys, ["test", str(f)], "evil.npz", "pickled")


def test_test_on_a_safetensors_file_of_another_program(tmp_path, capsys):
    from safetensors.numpy import save_file

    f = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(f))
    expect_error(capsys, ["test", str(f)], "other.safetensors", "not written by")


def test_test_on_a_weights_only_checkpoint(tmp_path, capsys):
    f = tmp_path / "weights.safetensors"
    save_checkpoint(f, {"w": np.zeros(3)}, {"epoch": 1})
    expect_error(capsys, ["test", str(f)], "weights.safetensors", "which model")


def _nan_checkpoint(tiny_run, tmp_path):
    tensors, meta = load_checkpoint(_ckpt(tiny_run))
    k = next(k for k in tensors if k.startswith("model/") and k.endswith("weight"))
    tensors[k] = tensors[k].copy()
    tensors[k][0] = np.nan
    f = tmp_path / "nan.safetensors"
    save_checkpoint(f, tensors, meta)
    return f, k[len("model/"):]


def test_test_refuses_nan_weights(tiny_run, tmp_path, capsys):
    f, name = _nan_checkpoint(tiny_run, tmp_path)
    expect_error(capsys, ["test", str(f)], "nan.safetensors", "NaN", name, "earlier checkpoint")


def test_predict_refuses_nan_weights(tiny_run, tmp_path, capsys):
    f, _ = _nan_checkpoint(tiny_run, tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 4), np.float32))
    expect_error(capsys, ["predict", str(f), str(tmp_path / "x.npy")], "NaN")
    assert capsys.readouterr().out == ""


def test_predict_refuses_nan_input(tiny_run, tmp_path, capsys):
    x = np.zeros((2, 1, 4, 4), np.float32)
    x[1, 0, 0, 0] = np.nan
    np.save(tmp_path / "x.npy", x)
    expect_error(capsys, ["predict", str(_ckpt(tiny_run)), str(tmp_path / "x.npy")], "x.npy", "NaN")


def test_predict_on_a_missing_file(tiny_run, tmp_path, capsys):
    expect_error(capsys, ["predict", str(_ckpt(tiny_run)), str(tmp_path / "none.npy")], "none.npy")


def test_predict_on_the_wrong_shape(tiny_run, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((3, 5, 5), np.float32))
    expect_error(capsys, ["predict", str(_ckpt(tiny_run)), str(tmp_path / "x.npy")], "x.npy", "shape")


def test_predict_on_a_corrupt_image(tiny_run, tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    expect_error(capsys, ["predict", str(_ckpt(tiny_run)), str(tmp_path / "x.png")], "x.png", "cannot read")


def test_predict_on_an_npy_with_objects(tiny_run, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    expect_error(capsys, ["predict", str(_ckpt(tiny_run)), str(tmp_path / "x.npy")], "pickle")


def test_test_with_data_of_another_shape(tiny_run, capsys):
    expect_error(capsys, ["test", str(_ckpt(tiny_run)), "--data", "digits"], "shape", "(1, 4, 4)")


# ---------------------------------------------------------------- resume with a changed experiment
@pytest.mark.parametrize("change,key", [
    (["--set", "batch_size=32"], "batch_size"),
    (["--set", "model.kwargs={hidden: [16]}"], "model.kwargs"),
    (["--set", "solver.lr=0.05"], "solver.lr"),
    (["--set", "solver.name=adam"], "solver.name"),
    (["--set", "data.name=digits"], "data.name"),
    (["--set", "seed=3"], "seed"),
])
def test_resume_with_a_changed_config_is_refused(tiny_run, tmp_path, capsys, change, key):
    npz, _ = tiny_run
    before = sorted(p.name for p in tiny_run[1].iterdir())
    expect_error(capsys, ["train", "--resume", str(_ckpt(tiny_run, 1)), "--out", str(tmp_path / "r"),
                          "--no-progress", *change], "--resume", key, "start a new run")
    assert not (tmp_path / "r").exists() and sorted(p.name for p in tiny_run[1].iterdir()) == before


def test_resume_from_a_config_file_that_changes_the_model(tiny_run, tmp_path, capsys):
    npz, _ = tiny_run
    f = tmp_path / "c.yaml"
    f.write_text(f"data: {{name: npz, root: {npz}}}\nmodel: {{name: lenet}}\n")
    expect_error(capsys, ["train", str(f), "--resume", str(_ckpt(tiny_run, 1)), "--out", str(tmp_path / "r")],
                 "model.name", "'mlp' -> 'lenet'")


def test_resume_with_a_data_file_of_another_size(tiny_run, tmp_path, capsys):
    x, y = np.zeros((60, 1, 4, 4), np.float32), np.arange(60) % 3
    np.savez(tmp_path / "other.npz", x=x, y=y)
    expect_error(capsys, ["train", "--resume", str(_ckpt(tiny_run, 1)), "--out", str(tmp_path / "r"),
                          "--set", f"data.root={tmp_path / 'other.npz'}", "--no-progress"], "num_samples")


def test_resume_a_directory_without_checkpoints(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    expect_error(capsys, ["train", "--resume", str(tmp_path / "empty")], "no checkpoint")


def test_resume_auto_without_any_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expect_error(capsys, ["train", "--resume", "auto"], "--resume auto", "no run")


def test_resume_a_weights_only_checkpoint(tmp_path, capsys):
    f = tmp_path / "w.safetensors"
    save_checkpoint(f, {"w": np.zeros(3)}, {"config": {"model": {"name": "mlp"}}})
    expect_error(capsys, ["train", "--resume", str(f), "--out", str(tmp_path / "r"), "--no-progress"],
                 "not a training checkpoint")


def test_resume_keeps_the_log_columns_in_their_order(tiny_run, tmp_path, capsys):
    """Fails before the fix: the rows came back from the checkpoint's JSON with sorted keys."""
    npz, out = tiny_run
    header = (out / "log.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,iteration,train_loss,train_acc,val_loss")
    new = tmp_path / "resumed"
    assert main(["train", "--resume", str(_ckpt(tiny_run, 1)), "--out", str(new), "--no-progress"]) == 0
    capsys.readouterr()
    assert (new / "log.csv").read_text().splitlines()[0] == header
    first = json.loads((new / "log.jsonl").read_text().splitlines()[0])
    assert list(first) == header.split(",")


# ------------------------------------------------------------------- unwritable and full destinations
def test_out_under_a_regular_file(tmp_path, capsys):
    npz = tiny_npz(tmp_path / "d.npz")
    (tmp_path / "afile").write_text("x")
    expect_error(capsys, train_args(npz, tmp_path / "afile" / "run"), "afile", "not a directory")


def test_out_in_a_read_only_system_directory(tmp_path, capsys):
    npz = tiny_npz(tmp_path / "d.npz")
    expect_error(capsys, train_args(npz, "/proc/layerwise/run"), "/proc/layerwise", "choose another --out")


def _limit_file_size(n):
    def f():
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
    return f


@pytest.mark.parametrize("limit,victim", [(4000, "checkpoint-epoch0001.safetensors"), (20000, "curves.png")])
def test_disk_full_while_saving_is_one_line_and_leaves_no_half_file(tmp_path, limit, victim):
    npz = tiny_npz(tmp_path / "d.npz")
    out = tmp_path / "run"
    r = run_cli(train_args(npz, out), preexec=_limit_file_size(limit))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("layerwise train: error: writing ") and victim in lines[0]
    assert "file-size limit" in lines[0] and "Traceback" not in r.stderr
    left = sorted(p.name for p in out.iterdir())
    assert not any(".tmp" in n for n in left), left  # no half-written temporary file
    if victim == "curves.png":  # the checkpoint written before the failing plot is complete
        tensors, meta = load_checkpoint(out / "checkpoint-epoch0001.safetensors")
        assert meta["epoch"] == 1
    else:
        assert victim not in left


# ------------------------------------------------------------------------ the other commands
def test_plot_curves_of_a_missing_log(tmp_path, capsys):
    expect_error(capsys, ["plot", "curves", str(tmp_path / "none.jsonl")], "none.jsonl")


def test_plot_curves_of_a_corrupt_log(tmp_path, capsys):
    (tmp_path / "log.jsonl").write_text('{"epoch": 1}\n{not json\n')
    expect_error(capsys, ["plot", "curves", str(tmp_path / "log.jsonl")], "log.jsonl:2")


def test_download_of_an_unknown_data_set(tmp_path, capsys):
    expect_error(capsys, ["download", "imagenet", "--root", str(tmp_path)], "imagenet")


def test_gradcheck_of_an_unknown_layer(capsys):
    expect_error(capsys, ["gradcheck", "NoSuchLayer"], "NoSuchLayer", "neither a layer nor a model")


def test_time_of_an_unknown_model(capsys):
    expect_error(capsys, ["time", "nosuchnet"], "nosuchnet", "known models")


def test_summary_with_a_bad_input_shape(capsys):
    expect_error(capsys, ["summary", "mlp", "--input", "3,a"], "--input")


def test_summary_with_bad_model_arguments(capsys):
    expect_error(capsys, ["summary", "mlp", "--arg", "dropout=2"], "mlp", "dropout")


# ------------------------------------------------------------------ --debug and internal errors
def test_debug_flag_and_environment_show_the_traceback(tmp_path):
    args = ["test", str(tmp_path / "none.safetensors")]
    quiet = run_cli(args)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    for extra, env in ((["--debug"], None), ([], {"LAYERWISE_DEBUG": "1"})):
        r = run_cli([*extra, *args], env_extra=env)
        assert "Traceback" in r.stderr and "no such checkpoint file" in r.stderr and r.returncode == 1


def test_internal_error_is_one_line_with_exit_1(monkeypatch, capsys):
    import layerwise.cli as cli

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cmd_summary", broken)
    parser = cli.build_parser  # the sub-command's func is bound when the parser is built

    def patched():
        ap = parser()
        for action in ap._subparsers._group_actions:
            action.choices["summary"].set_defaults(func=broken)
        return ap

    monkeypatch.setattr(cli, "build_parser", patched)
    line = expect_error(capsys, ["summary", "mlp"], "internal error", "RuntimeError: a bug", "--debug", code=1)
    assert "report" in line
