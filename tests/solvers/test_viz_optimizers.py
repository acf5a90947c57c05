"""The optimizer playground: test-function gradients, the behaviour docs/solvers.md describes, the PNG."""
from __future__ import annotations

import numpy as np
import pytest

from layerwise.viz.optimizers import FUNCTIONS, SOLVERS, main, plot_optimizer_paths, run_paths


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_gradient_matches_central_differences(name):
    fn, rng, eps = FUNCTIONS[name], np.random.default_rng(0), 1e-6
    for _ in range(10):
        x = rng.uniform(*fn.xlim)
        y = rng.uniform(*fn.ylim)
        num = np.array([(fn.f(x + eps, y) - fn.f(x - eps, y)) / (2 * eps),
                        (fn.f(x, y + eps) - fn.f(x, y - eps)) / (2 * eps)])
        np.testing.assert_allclose(fn.grad(x, y), num, rtol=1e-6, atol=1e-5 * max(1.0, np.abs(num).max()))


def test_saddle_gd_stalls_momentum_overshoots_adaptive_rules_rescale_per_coordinate():
    paths = run_paths("saddle")
    sgd = paths["SGD"]
    assert len(sgd) == FUNCTIONS["saddle"].steps + 1 and np.abs(sgd[-1]).max() < 0.05   # stuck at (0, 0)
    assert paths["Momentum"][:, 0].max() > 0.3         # overshoots the saddle along x ...
    assert np.abs(paths["Momentum"][-1, 1]) > 1.5      # ... and its growing velocity escapes along y
    g0 = FUNCTIONS["saddle"].grad(*FUNCTIONS["saddle"].start)
    assert abs(g0[0] / g0[1]) > 1e3                    # the gradient points almost only along x
    for label in ("AdaGrad", "RMSProp", "Adam"):
        step = np.abs(paths[label][1] - paths[label][0])
        assert step[1] > 0.2 * step[0], f"{label}: the first step should be rescaled per coordinate"
        assert np.abs(paths[label][-1, 1]) > 1.5, f"{label} should escape the saddle"
    sgd_step = np.abs(sgd[1] - sgd[0])
    assert sgd_step[1] < 1e-3 * sgd_step[0]


def test_local_minima_gd_stops_in_a_local_well_not_the_global_one():
    fn = FUNCTIONS["local_minima"]
    end = run_paths("local_minima", solvers=["SGD"])["SGD"][-1]
    a = fn.points["A"]
    assert np.linalg.norm(fn.grad(*end)) < 1e-3                   # converged to a stationary point ...
    assert fn.f(*end) > fn.f(*a) + 0.3                            # ... that is not the global minimum A


def test_adam_reaches_the_rosenbrock_minimum():
    end = run_paths("rosenbrock", solvers=["Adam"])["Adam"][-1]
    assert np.linalg.norm(end - np.array([1.0, 1.0])) < 0.1


def test_solver_dict_noise_and_start():
    cfg = {"mine": {"type": "sgd", "lr": 0.1, "momentum": 0.5}}
    a = run_paths("saddle", steps=5, solvers=cfg, start=(1.0, 0.5), noise=0.1, seed=3)["mine"]
    b = run_paths("saddle", steps=5, solvers=cfg, start=(1.0, 0.5), noise=0.1, seed=3)["mine"]
    c = run_paths("saddle", steps=5, solvers=cfg, start=(1.0, 0.5), noise=0.1, seed=4)["mine"]
    assert a.shape == (6, 2) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert tuple(a[0]) == (1.0, 0.5)


def test_plot_writes_a_png_and_main_parses_the_cli(tmp_path, capsys):
    out = tmp_path / "p.png"
    paths = plot_optimizer_paths("beale", out=str(out), steps=20, solvers=["SGD", "Adam"], dpi=40)
    assert set(paths) == {"SGD", "Adam"}
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out2 = tmp_path / "cli.png"
    assert main(["--function", "saddle", "--out", str(out2), "--steps", "10", "--solvers", "sgd,adam",
                 "--start=-1,0.001", "--dpi", "40"]) == 0
    assert out2.read_bytes()[:4] == b"\x89PNG" and "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.png", "p.png"]     # no temp files left


@pytest.mark.parametrize("argv,words", [
    (["--function", "himmelblau"], "invalid choice"),
    (["--solvers", "lbfgs"], "unknown solver 'lbfgs'"),
    (["--start", "1"], "two numbers"),
    (["--out", "/nonexistent/dir/x.png"], "does not exist"),
    (["--steps", "0"], "steps must be >= 1"),
])
def test_cli_bad_arguments_exit_with_a_clear_message(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and words in capsys.readouterr().err


def test_every_default_solver_has_a_learning_rate_for_every_function():
    for fn in FUNCTIONS.values():
        assert set(fn.lrs) == set(SOLVERS)
