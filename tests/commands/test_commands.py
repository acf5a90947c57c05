"""layerwise.commands: one module per command, a fast `--help`, and the tools the commands call."""
from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from layerwise.cli import build_parser, main
from layerwise.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_is_a_module_with_arguments_and_run():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(COMMANDS)
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"layerwise.commands.{module}")
        assert mod.HELP and mod.DESCRIPTION and "layerwise " + name in mod.EXAMPLES, name
        assert callable(mod.add_arguments) and callable(mod.run), name
        assert sub.choices[name].get_default("func") is mod.run, name


def test_the_old_cmd_names_are_the_modules_run():
    import layerwise.cli as cli
    from layerwise.commands import summary, train

    assert cli.cmd_train is train.run and cli.cmd_summary is summary.run
    with pytest.raises(AttributeError):
        cli.cmd_nosuch  # noqa: B018


def test_help_imports_no_heavy_package():
    # `layerwise --help` and every `layerwise CMD --help` build all sub-parsers: none may pull in torch,
    # matplotlib or onnx (seconds of start-up), which the commands import only when they run.
    code = ("import json, sys\nfrom layerwise.cli import main\n"
            f"for argv in [['--help']] + [[c, '--help'] for c in {list(COMMANDS)!r}]:\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(json.dumps(sorted(m for m in ('torch', 'matplotlib', 'onnx', 'onnxruntime', 'PIL') "
            "if m in sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


# ------------------------------------------------------------------ summary: the command is tools.summary
def test_summary_command_prints_tools_summary(capsys):
    from layerwise.models import build_model
    from layerwise.tools.summary import summary

    assert main(["summary", "resnet20", "--input", "3,32,32"]) == 0
    out = capsys.readouterr().out
    assert "layer3.2.conv2" in out and "total params: 269,722" in out
    assert out == summary(build_model("resnet20"), (3, 32, 32)) + "\n"
    assert main(["summary", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_summary_default_input_is_the_models_own(capsys):
    from layerwise.models import build_model
    from layerwise.tools.summary import default_input_shape, summary

    assert default_input_shape(build_model("resnet18")) == (3, 224, 224)     # ImageNet stem
    assert default_input_shape(build_model("densenet_bc")) == (3, 32, 32)    # CIFAR stem
    assert default_input_shape(build_model("mlp")) == (3, 32, 32)            # no conv: the fallback
    assert main(["summary", "resnet18", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("input (3, 224, 224)")
    assert out == summary(build_model("resnet18"), depth=1) + "\n"
    assert "1,814,073,344" in out  # torchvision's ResNet-18 at 224 x 224: 1.82 G multiply-adds


def test_time_uses_the_same_default_input(capsys):
    assert main(["time", "lenet", "--batch", "1", "--iters", "1", "--forward-only"]) == 0
    assert capsys.readouterr().out.startswith("lenet: batch 1 x 3,32,32, 1 iterations (forward only)")


# ------------------------------------------------------------------ gradcheck of losses
LOSSES = ["SoftmaxCrossEntropyLoss", "SoftmaxWithLoss", "CrossEntropyLoss", "SigmoidCrossEntropyLoss", "KLDivLoss",
          "EuclideanLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "HingeLoss", "PerceptronLoss",
          "ExponentialLoss", "LogisticLoss", "HingeEmbeddingLoss", "ContrastiveLoss", "TripletLoss", "FastRCNNLoss"]


@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck_command_checks_a_loss(name, capsys):
    assert main(["gradcheck", name, "--batch", "3"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "input[0]" in out


def test_gradcheck_command_loss_arguments_and_shapes(capsys):
    assert main(["gradcheck", "SoftmaxCrossEntropyLoss", "--input", "3,2,2", "--arg", "label_smoothing=0.2"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "input shape (2, 3, 2, 2)" in out
    assert main(["gradcheck", "HingeLoss", "--arg", "mode=binary", "--arg", "norm=2", "--input", "3,2"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["gradcheck", "CenterLoss", "--num-classes", "3", "--arg", "alpha=null"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "param centers" in out
    assert main(["gradcheck", "CenterLoss"]) == 2
    assert "num_classes" in capsys.readouterr().err
    assert main(["gradcheck", "EuclideanLoss", "--arg", "reduction=bogus"]) == 2
    assert "loss 'EuclideanLoss'" in capsys.readouterr().err


def test_gradcheck_of_a_loss_with_a_wrong_backward_fails():
    import numpy as np

    from layerwise.losses import EuclideanLoss
    from layerwise.testing import GradcheckError, gradcheck, loss_inputs

    class Wrong(EuclideanLoss):
        def _backward(self, scale):
            return 1.01 * super()._backward(scale)

    with pytest.raises(GradcheckError, match="FAILED"):
        gradcheck(Wrong(), *loss_inputs(Wrong(), (4,), 3, np.random.default_rng(0)))


# ------------------------------------------------------------------ loss_inputs
def test_loss_inputs_fit_each_kind_of_loss():
    import numpy as np

    import layerwise as lw
    from layerwise.testing import loss_inputs

    z, y = loss_inputs(lw.SoftmaxCrossEntropyLoss(), (5, 3), batch=4, rng=0)
    assert z.shape == (4, 5, 3) and z.dtype == np.float64 and y.shape == (4, 3) and y.dtype.kind == "i"
    assert y.min() >= 0 and y.max() < 5
    p, y = loss_inputs(lw.CrossEntropyLoss(), (6,), batch=50, rng=1)
    assert (p > 0).all() and np.allclose(p.sum(axis=1), 1) and set(np.unique(y)) <= set(range(6))
    p, t = loss_inputs(lw.SigmoidCrossEntropyLoss(), (3,), rng=2)
    assert p.shape == t.shape and (0 <= t).all() and (t <= 1).all()
    for loss in (lw.PerceptronLoss(), lw.HingeLoss(mode="binary")):
        p, t = loss_inputs(loss, (3, 2), batch=20, rng=3)
        assert p.shape == t.shape == (20, 3, 2) and set(np.unique(t)) == {-1, 1}
    z, y = loss_inputs(lw.HingeLoss(), (2, 3), batch=4, rng=4)      # multiclass: (N, C) scores
    assert z.shape == (4, 6) and y.shape == (4,) and y.max() < 6
    x, y = loss_inputs(lw.CenterLoss(2), (5,), batch=30, rng=5)
    assert x.shape == (30, 5) and set(np.unique(y)) == {0, 1}
    a, b, same = loss_inputs(lw.ContrastiveLoss(), (4,), batch=30, rng=6)
    assert a.shape == b.shape == (30, 4) and set(np.unique(same)) == {0, 1}
    logq, t = loss_inputs(lw.KLDivLoss(), (4,), rng=7)
    assert np.allclose(np.exp(logq).sum(axis=1), 1) and np.allclose(t.sum(axis=1), 1)
    _, logt = loss_inputs(lw.KLDivLoss(log_target=True), (4,), rng=7)
    assert np.allclose(np.exp(logt).sum(axis=1), 1)
    s, u, bbox, target = loss_inputs(lw.FastRCNNLoss(), (3,), batch=4, rng=8)
    assert s.shape == (4, 3) and u.shape == (4,) and bbox.shape == (4, 12) and target.shape == (4, 4)
    p, t = loss_inputs(lw.EuclideanLoss(), (2, 2), rng=9)
    assert p.shape == t.shape == (2, 2, 2) and t.dtype == np.float64
    a = loss_inputs(lw.MSELoss(), (3,), rng=np.random.default_rng(10))[0]
    assert np.array_equal(a, loss_inputs(lw.MSELoss(), (3,), rng=10)[0])       # a seed or a Generator


def test_loss_inputs_for_every_registered_loss_pass_gradcheck():
    import numpy as np

    import layerwise as lw
    from layerwise.core.registry import lookup, registered
    from layerwise.testing import gradcheck, loss_inputs

    classes = {lookup("loss", n) for n in registered("loss")}
    built = {c: c() for c in classes if c.__name__ not in ("CenterLoss", "MultiTaskLoss")}
    built[lw.CenterLoss] = lw.CenterLoss(3, alpha=None)
    built[lw.MultiTaskLoss] = lw.MultiTaskLoss([lw.SoftmaxCrossEntropyLoss(), lw.ContrastiveLoss(loss_weight=0.5)])
    assert set(built) == classes
    for cls, loss in built.items():
        loss.eval(grad=True)
        report = gradcheck(loss, *loss_inputs(loss, (4,), batch=3, rng=np.random.default_rng(1)))
        assert report.ok and report.entries, cls.__name__


def test_loss_inputs_refuses_what_it_cannot_build():
    import layerwise as lw
    from layerwise.core import LossLayer
    from layerwise.testing import loss_inputs

    class Custom(LossLayer):
        pass

    with pytest.raises(TypeError, match="no rule for Custom"):
        loss_inputs(Custom(), (3,))
    with pytest.raises(ValueError, match="positive sizes"):
        loss_inputs(lw.MSELoss(), (0,))
