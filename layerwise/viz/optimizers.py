"""Optimizer playground: run every solver from the same start on a 2-D test function and draw
the paths over its contour plot (PNG).

    plot_optimizer_paths("saddle", out="paths.png")
    layerwise plot optimizers --function saddle --out paths.png

The functions are the ones the gradient-descent seed discusses plus two classics:

    saddle        f = x^2 - y^2                        a saddle point at (0, 0): gradient 0, not a minimum
    local_minima  f = 0.05 (x^2 + y^2) - sum_i d_i exp(-|p - c_i|^2 / (2 s_i^2))
                                                       three wells A (global), B, C
    rosenbrock    f = (1 - x)^2 + 100 (y - x^2)^2      a curved narrow valley, minimum (1, 1)
    beale         f = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2, minimum (3, 0.5)

The solvers are layerwise's own (``layerwise.solvers``), run on a single 2-element Param, so
the picture shows exactly the rules the library trains with. Matplotlib is used through its
object API with the Agg canvas (no pyplot, no global backend switch).

Critical points: the plot marks every critical point of the function in view with its kind
from the Hessian's eigenvalues (minimum, maximum, saddle; ``layerwise.viz.critical``), and
``tol`` stops a run when the gradient norm falls under it (gradient descent's usual
stopping rule); the legend then says at which kind of point the run stopped, so a run that
"converged" onto a saddle is told apart from one that reached a minimum.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.param import Param
from ..solvers import build_solver
from .common import save_figure
from .critical import CriticalPoint, classify, find_critical_points, hessian

__all__ = ["FUNCTIONS", "SOLVERS", "TestFunction", "run_paths", "critical_points", "stop_kind",
           "plot_optimizer_paths", "main"]

# ----------------------------------------------------------------------------- test functions
_WELLS = ((-1.5, -1.0, 1.2, 0.7), (1.5, 1.2, 0.8, 0.6), (1.6, -1.6, 0.6, 0.5))   # (cx, cy, depth, width)


def _saddle(x, y):
    return x * x - y * y


def _saddle_grad(x, y):
    return np.array([2 * x, -2 * y])


def _wells(x, y):
    f = 0.05 * (x * x + y * y)
    for cx, cy, d, s in _WELLS:
        f = f - d * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
    return f


def _wells_grad(x, y):
    gx, gy = 0.1 * x, 0.1 * y
    for cx, cy, d, s in _WELLS:
        e = d * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s)) / (s * s)
        gx, gy = gx + e * (x - cx), gy + e * (y - cy)
    return np.array([gx, gy])


def _rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def _rosenbrock_grad(x, y):
    return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


_BEALE_C = (1.5, 2.25, 2.625)


def _beale(x, y):
    return sum((c - x + x * y ** (k + 1)) ** 2 for k, c in enumerate(_BEALE_C))


def _beale_grad(x, y):
    gx = gy = 0.0
    for k, c in enumerate(_BEALE_C):
        r = c - x + x * y ** (k + 1)
        gx = gx + 2 * r * (y ** (k + 1) - 1)
        gy = gy + 2 * r * x * (k + 1) * y ** k
    return np.array([gx, gy])


@dataclass(frozen=True)
class TestFunction:
    """A 2-D test function with its gradient, default start, view and per-solver learning rates."""

    name: str
    formula: str
    f: Callable[[Any, Any], Any]               # vectorised: f(X, Y) on grids
    grad: Callable[[float, float], np.ndarray]
    start: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    steps: int
    lrs: Mapping[str, float]
    points: Mapping[str, tuple[float, float]] = field(default_factory=dict)   # minima / saddle to mark
    log_levels: bool = False

    __test__ = False   # not a pytest class


FUNCTIONS: dict[str, TestFunction] = {
    "saddle": TestFunction(
        "saddle", "f = x² − y²", _saddle, _saddle_grad,
        # Almost on the stable axis y = 0: plain GD slides into the saddle and sits there.
        start=(-1.4, 1e-4), xlim=(-1.6, 1.6), ylim=(-1.6, 1.6), steps=100,
        lrs={"SGD": 0.02, "Momentum": 0.02, "Nesterov": 0.02, "AdaGrad": 0.1, "AdaDelta": 1.0,
             "RMSProp": 0.02, "Adam": 0.05},
        points={"saddle (0, 0)": (0.0, 0.0)}),
    "local_minima": TestFunction(
        "local_minima", "three wells: A (global), B, C", _wells, _wells_grad,
        start=(0.2, 2.3), xlim=(-3.2, 3.2), ylim=(-3.0, 3.0), steps=150,
        lrs={"SGD": 0.2, "Momentum": 0.2, "Nesterov": 0.2, "AdaGrad": 0.3, "AdaDelta": 1.0,
             "RMSProp": 0.05, "Adam": 0.1},
        points={"A": _WELLS[0][:2], "B": _WELLS[1][:2], "C": _WELLS[2][:2]}),
    "rosenbrock": TestFunction(
        "rosenbrock", "f = (1 − x)² + 100 (y − x²)²", _rosenbrock, _rosenbrock_grad,
        start=(-1.5, 2.0), xlim=(-2.0, 2.0), ylim=(-1.0, 3.0), steps=1000,
        lrs={"SGD": 1e-3, "Momentum": 2e-4, "Nesterov": 2e-4, "AdaGrad": 0.5, "AdaDelta": 1.0,
             "RMSProp": 0.01, "Adam": 0.05},
        points={"minimum (1, 1)": (1.0, 1.0)}, log_levels=True),
    "beale": TestFunction(
        "beale", "f = Σ_k (c_k − x + x y^k)², c = 1.5, 2.25, 2.625", _beale, _beale_grad,
        start=(1.0, 1.5), xlim=(-0.5, 4.0), ylim=(-1.5, 2.5), steps=1000,
        lrs={"SGD": 1e-3, "Momentum": 1e-4, "Nesterov": 1e-4, "AdaGrad": 0.5, "AdaDelta": 1.0,
             "RMSProp": 0.01, "Adam": 0.05},
        points={"minimum (3, 0.5)": (3.0, 0.5)}, log_levels=True),
}

# label -> (registered solver name, hyper-parameters other than lr)
SOLVERS: dict[str, tuple[str, dict[str, Any]]] = {
    "SGD": ("sgd", {}),
    "Momentum": ("sgd", {"momentum": 0.9}),
    "Nesterov": ("nesterov", {"momentum": 0.9}),
    "AdaGrad": ("adagrad", {"eps": 1e-8}),
    "AdaDelta": ("adadelta", {"rho": 0.9, "eps": 1e-6}),
    "RMSProp": ("rmsprop", {"alpha": 0.9}),
    "Adam": ("adam", {}),
}


def _function(name: str) -> TestFunction:
    try:
        return FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"optimizer playground: unknown function {name!r}; choose one of "
                         f"{', '.join(FUNCTIONS)}") from None


def _solver_specs(fn: TestFunction, solvers: Any) -> dict[str, dict[str, Any]]:
    """Normalise ``solvers`` (None, labels, or label -> {"type": name, "lr": ..., ...}) to configs."""
    if solvers is None:
        solvers = list(SOLVERS)
    if isinstance(solvers, str):
        solvers = [s for s in solvers.split(",") if s]
    if isinstance(solvers, Mapping):
        specs = {}
        for label, cfg in solvers.items():
            cfg = dict(cfg)
            if "type" not in cfg:
                raise ValueError(f"optimizer playground: solver {label!r} needs a 'type' (a registered "
                                 f"solver name such as 'adam'), got {cfg}")
            specs[str(label)] = cfg
        return specs
    known = {k.lower(): k for k in SOLVERS}
    specs = {}
    for s in solvers:
        label = known.get(str(s).strip().lower())
        if label is None:
            raise ValueError(f"optimizer playground: unknown solver {s!r}; choose from {', '.join(SOLVERS)} "
                             "or pass a dict label -> {'type': ..., 'lr': ...}")
        kind, kw = SOLVERS[label]
        specs[label] = {"type": kind, "lr": fn.lrs[label], **kw}
    if not specs:
        raise ValueError("optimizer playground: no solvers selected")
    return specs


def critical_points(function: str) -> list[CriticalPoint]:
    """Every critical point of ``function`` in its plotted box, with its kind (see ``viz.critical``)."""
    fn = _function(function)
    return find_critical_points(fn.f, fn.grad, fn.xlim, fn.ylim)


def stop_kind(function: str, point: Sequence[float]) -> tuple[str, tuple[float, float]]:
    """The kind of point a run stopped at, from the Hessian's eigenvalues there (and them)."""
    fn = _function(function)
    return classify(hessian(fn.grad, float(point[0]), float(point[1])))


def run_paths(function: str = "saddle", steps: int | None = None, solvers: Any = None,
              start: Sequence[float] | None = None, noise: float = 0.0, seed: int = 0,
              tol: float | None = None) -> dict[str, np.ndarray]:
    """Run each solver from the same start; return label -> path, an array (n_points, 2).

    Args:
        function: a name in ``FUNCTIONS``.
        steps: number of updates (default: the function's own).
        solvers: None (all of ``SOLVERS``), a list of labels, or a dict label -> config
            (``{"type": "adam", "lr": 0.1, ...}``, any ``build_solver`` arguments).
        start: (x, y) (default: the function's own).
        noise: standard deviation of Gaussian noise added to each gradient (stochastic
            gradient descent); the same noise sequence for every solver.
        seed: seed of that noise.
        tol: stop a run before a step when the gradient norm ||grad f|| (without the noise)
            is under ``tol``, the stopping rule of gradient descent (None: run all steps).

    A path stops early when it leaves a box three times the plotted area (a run down the
    unbounded side of the saddle), so no value overflows.
    """
    fn = _function(function)
    steps = fn.steps if steps is None else int(steps)
    if steps < 1:
        raise ValueError(f"optimizer playground: steps must be >= 1, got {steps}")
    if tol is not None and not tol > 0:
        raise ValueError(f"optimizer playground: tol must be > 0 (or None for no stopping rule), got {tol}")
    x0 = np.array(fn.start if start is None else start, dtype=np.float64)
    if x0.shape != (2,) or not np.all(np.isfinite(x0)):
        raise ValueError(f"optimizer playground: start must be two finite numbers (x, y), got {start!r}")
    (x_lo, x_hi), (y_lo, y_hi) = fn.xlim, fn.ylim
    bound = 3.0 * max(abs(x_lo), abs(x_hi), abs(y_lo), abs(y_hi))
    paths = {}
    for label, cfg in _solver_specs(fn, solvers).items():
        cfg = dict(cfg)
        kind = cfg.pop("type")
        p = Param(x0.copy(), name="xy")
        solver = build_solver(kind, {"xy": p}, **cfg)
        rng = np.random.default_rng(seed)
        pts = [p.data.copy()]
        for _ in range(steps):
            g = fn.grad(float(p.data[0]), float(p.data[1]))
            if tol is not None and float(np.hypot(g[0], g[1])) < tol:
                break
            if noise:
                g = g + noise * rng.standard_normal(2)
            p.grad[...] = g
            solver.step()
            if not np.all(np.isfinite(p.data)) or np.abs(p.data).max() > bound:
                break
            pts.append(p.data.copy())
        paths[label] = np.array(pts)
    return paths


def _atomic_savefig(fig, out: str, dpi: int) -> None:
    """Write to a temporary file beside ``out`` and rename, so no half-written image is left."""
    save_figure(fig, out, dpi, "optimizer playground")


def plot_optimizer_paths(function: str = "saddle", out: str = "paths.png", steps: int | None = None,
                         solvers: Any = None, start: Sequence[float] | None = None, noise: float = 0.0,
                         seed: int = 0, dpi: int = 120, tol: float | None = None) -> dict[str, np.ndarray]:
    """Draw every solver's path over the contour plot of ``function`` and save it to ``out``.

    Args: as ``run_paths``, plus ``out`` (the image file; its suffix picks the format, PNG by
    default) and ``dpi``.

    Returns:
        label -> path (n_points, 2), the data that was drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    fn = _function(function)
    paths = run_paths(function, steps=steps, solvers=solvers, start=start, noise=noise, seed=seed, tol=tol)
    n_steps = fn.steps if steps is None else int(steps)

    fig = Figure(figsize=(11.5, 7.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = np.linspace(*fn.xlim, 300)
    ys = np.linspace(*fn.ylim, 300)
    X, Y = np.meshgrid(xs, ys)
    Z = fn.f(X, Y)
    if fn.log_levels:
        Zs = Z - Z.min() + 1e-3
        levels = np.logspace(np.log10(Zs.min()), np.log10(Zs.max()), 30)
        ax.contourf(X, Y, Zs, levels=levels, norm=LogNorm(), cmap="Greys_r", alpha=0.55)
        ax.contour(X, Y, Zs, levels=levels, norm=LogNorm(), colors="0.45", linewidths=0.4)
    else:
        ax.contourf(X, Y, Z, levels=30, cmap="Greys_r", alpha=0.55)
        ax.contour(X, Y, Z, levels=30, colors="0.45", linewidths=0.4)

    colors = ["#d62728", "#1f77b4", "#17becf", "#2ca02c", "#bcbd22", "#9467bd", "#ff7f0e",
              "#8c564b", "#e377c2", "#7f7f7f"]
    specs = _solver_specs(fn, solvers)
    for i, (label, path) in enumerate(paths.items()):
        c = colors[i % len(colors)]
        lr = specs[label].get("lr")
        end = path[-1]
        inside = fn.xlim[0] <= end[0] <= fn.xlim[1] and fn.ylim[0] <= end[1] <= fn.ylim[1]
        if tol is not None and inside and len(path) <= n_steps \
                and float(np.linalg.norm(fn.grad(end[0], end[1]))) < tol:
            tail = f"stopped at step {len(path) - 1}, |g| < {tol:g}: a {stop_kind(function, end)[0]}"
        elif inside and len(path) > n_steps:
            tail = f"end f={float(fn.f(end[0], end[1])):.3g}"
        else:
            out_at = next((k for k, q in enumerate(path) if not (fn.xlim[0] <= q[0] <= fn.xlim[1]
                                                               and fn.ylim[0] <= q[1] <= fn.ylim[1])), len(path))
            tail = f"left the plot at step {out_at}"
        z = 10 + len(paths) - i          # earlier solvers (plain SGD first) drawn on top
        ax.plot(path[:, 0], path[:, 1], "-", color=c, lw=1.8 if i == 0 else 1.5, alpha=0.9, zorder=z,
                label=f"{label} (lr={lr:g}): {tail}")
        ax.plot(path[:, 0], path[:, 1], ".", color=c, ms=3, zorder=z)
        ax.plot([end[0]], [end[1]], "s", color=c, ms=7, mec="k", mew=0.8, zorder=40)
    s = paths[next(iter(paths))][0]
    ax.plot([s[0]], [s[1]], "*", color="k", ms=14, zorder=45, label=f"start ({s[0]:g}, {s[1]:g})")
    for name, (px, py) in fn.points.items():
        ax.annotate(name, (px, py), textcoords="offset points", xytext=(8, 8), fontsize=9, zorder=35)
    style = {"minimum": ("o", "#2ca02c"), "maximum": ("^", "#d62728"), "saddle": ("X", "#ff7f0e"),
             "degenerate": ("D", "0.5")}
    shown = set()
    for cp in critical_points(function):
        m, c = style[cp.kind]
        ax.plot([cp.point[0]], [cp.point[1]], m, mfc="none", mec=c, ms=14, mew=2.0, zorder=36,
                label=None if cp.kind in shown else f"critical point: {cp.kind} (Hessian eigenvalues)")
        shown.add(cp.kind)
        ax.annotate(f"{cp.kind}\nλ = {cp.eigenvalues[0]:.3g}, {cp.eigenvalues[1]:.3g}", cp.point,
                    textcoords="offset points", xytext=(8, -22), fontsize=7.5, color=c, zorder=36)
    ax.set_xlim(*fn.xlim)
    ax.set_ylim(*fn.ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    noise_note = f", gradient noise {noise:g}" if noise else ""
    tol_note = f", stop when |g| < {tol:g}" if tol is not None else ""
    ax.set_title(f"{fn.name}: {fn.formula}  ({n_steps} steps{noise_note}{tol_note})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8.5, frameon=False)
    fig.tight_layout()
    _atomic_savefig(fig, out, dpi)
    return paths


def main(argv: list[str] | None = None) -> int:
    """``layerwise plot optimizers``: draw the solvers' paths on a test function to an image file."""
    parser = argparse.ArgumentParser(
        prog="layerwise plot optimizers",
        description="Run every solver from the same start on a 2-D test function and draw the paths "
                    "over its contour plot.")
    parser.add_argument("--function", default="saddle", choices=list(FUNCTIONS),
                        help="test function (default: saddle, f = x^2 - y^2)")
    parser.add_argument("--out", default="paths.png",
                        help="output image; the suffix picks the format (default: paths.png)")
    parser.add_argument("--steps", type=int, default=None, help="number of updates (default: per function)")
    parser.add_argument("--solvers", default=None,
                        help=f"comma-separated subset of {','.join(SOLVERS)} (default: all)")
    parser.add_argument("--start", default=None,
                        help="start point 'x,y'; write --start=-1,0.5 when x is negative (default: per function)")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="std of Gaussian noise added to each gradient, to mimic mini-batch SGD (default: 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the gradient noise")
    parser.add_argument("--tol", type=float, default=None,
                        help="stop a run when the gradient norm falls under TOL; the plot then says whether it "
                             "stopped at a minimum, a maximum or a saddle (default: run all steps)")
    parser.add_argument("--dpi", type=int, default=120)
    args = parser.parse_args(argv)
    start = None
    if args.start is not None:
        try:
            start = [float(v) for v in args.start.split(",")]
        except ValueError:
            parser.error(f"--start must be 'x,y', got {args.start!r}")
        if len(start) != 2:
            parser.error(f"--start must be two numbers 'x,y', got {args.start!r}")
    try:
        paths = plot_optimizer_paths(args.function, out=args.out, steps=args.steps, solvers=args.solvers,
                                     start=start, noise=args.noise, seed=args.seed, dpi=args.dpi, tol=args.tol)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    for cp in critical_points(args.function):
        print(f"critical point ({cp.point[0]:.4g}, {cp.point[1]:.4g}): {cp.kind}, Hessian eigenvalues "
              f"{cp.eigenvalues[0]:.4g}, {cp.eigenvalues[1]:.4g}, f = {cp.value:.4g}")
    fn = FUNCTIONS[args.function]
    for label, path in paths.items():
        x, y = path[-1]
        g = float(np.linalg.norm(fn.grad(x, y)))
        stopped = (f", stopped by |g| = {g:.2g} < {args.tol:g} at a {stop_kind(args.function, (x, y))[0]}"
                   if args.tol is not None and g < args.tol else "")
        print(f"{label:>9}: {len(path) - 1:5d} steps, end ({x:.4g}, {y:.4g}){stopped}")
    print(f"wrote {args.out}")
    return 0
