"""Critical points told apart by the Hessian's eigenvalues, and the gradient-norm stopping rule."""
import numpy as np
import pytest

from layerwise.viz.critical import classify, find_critical_points, hessian
from layerwise.viz.optimizers import FUNCTIONS, critical_points, main, run_paths, stop_kind


def test_hessian_matches_the_analytic_one():
    np.testing.assert_allclose(hessian(FUNCTIONS["saddle"].grad, 0.3, -0.7), [[2, 0], [0, -2]], atol=1e-8)
    x, y = -0.6, 0.9                                                   # Rosenbrock, by hand
    want = [[2 - 400 * (y - x * x) + 800 * x * x, -400 * x], [-400 * x, 200]]
    np.testing.assert_allclose(hessian(FUNCTIONS["rosenbrock"].grad, x, y), want, rtol=1e-7)
    xs = np.array([0.3, -0.6])                                         # vectorised: (n, 2, 2)
    H = hessian(FUNCTIONS["rosenbrock"].grad, xs, np.array([0.1, 0.9]))
    assert H.shape == (2, 2, 2)
    np.testing.assert_allclose(H[1], want, rtol=1e-7)


@pytest.mark.parametrize("H,kind", [
    ([[2.0, 0.0], [0.0, 3.0]], "minimum"),
    ([[-2.0, 0.5], [0.5, -1.0]], "maximum"),
    ([[0.0, 1.0], [1.0, 0.0]], "saddle"),                 # eigenvalues -1, 1
    ([[1.0, 0.0], [0.0, 0.0]], "degenerate"),
])
def test_classify_by_eigenvalue_signs(H, kind):
    got, lam = classify(np.array(H))
    assert got == kind and lam[0] <= lam[1]


def test_finds_every_critical_point_of_a_function_with_a_maximum():
    f = lambda x, y: np.sin(x) * np.sin(y)                            # noqa: E731
    g = lambda x, y: np.array([np.cos(x) * np.sin(y), np.sin(x) * np.cos(y)])   # noqa: E731
    found = {(round(c.point[0] / (np.pi / 2)), round(c.point[1] / (np.pi / 2))): c.kind
             for c in find_critical_points(f, g, (-2.0, 2.0), (-2.0, 2.0))}
    assert found == {(0, 0): "saddle", (1, 1): "maximum", (-1, -1): "maximum",
                     (1, -1): "minimum", (-1, 1): "minimum"}


def test_the_playground_functions_critical_points():
    assert [(c.point, c.kind) for c in critical_points("saddle")] == [((0.0, 0.0), "saddle")]
    (rb,) = critical_points("rosenbrock")
    assert rb.kind == "minimum" and np.allclose(rb.point, (1, 1), atol=1e-7)
    wells = critical_points("local_minima")
    minima = [c for c in wells if c.kind == "minimum"]
    assert len(minima) == 3 and len([c for c in wells if c.kind == "saddle"]) >= 2
    fn = FUNCTIONS["local_minima"]
    for c in minima:                                                   # one per well, next to its centre
        assert min(np.hypot(c.point[0] - a, c.point[1] - b) for a, b in fn.points.values()) < 0.3
        assert np.linalg.norm(fn.grad(*c.point)) < 1e-8
    assert wells[0].value == min(c.value for c in wells)               # sorted by f: the global one first


def test_tol_stops_gd_on_the_saddle_and_the_hessian_says_so():
    tol = 0.05
    path = run_paths("saddle", solvers=["SGD"], steps=1000, tol=tol)["SGD"]
    fn = FUNCTIONS["saddle"]
    assert len(path) - 1 < 1000                                        # the rule fired
    assert np.linalg.norm(fn.grad(*path[-1])) < tol <= np.linalg.norm(fn.grad(*path[-2]))
    kind, lam = stop_kind("saddle", path[-1])
    assert kind == "saddle" and lam[0] < 0 < lam[1]
    end = run_paths("local_minima", solvers=["SGD"], steps=1000, tol=1e-3)["SGD"][-1]
    assert stop_kind("local_minima", end)[0] == "minimum"
    full = run_paths("saddle", solvers=["SGD"], steps=50)["SGD"]
    assert len(full) == 51                                             # no tol: all steps


def test_cli_tol_reports_the_kind(tmp_path, capsys):
    out = tmp_path / "s.png"
    assert main(["--function", "saddle", "--solvers", "sgd", "--tol", "0.05", "--steps", "300",
                 "--out", str(out), "--dpi", "40"]) == 0
    text = capsys.readouterr().out
    assert "critical point (0, 0): saddle, Hessian eigenvalues -2, 2" in text
    assert "stopped by |g|" in text and "at a saddle" in text
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit):
        main(["--tol", "-1", "--out", str(out)])
