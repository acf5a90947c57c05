"""``layerwise plot gan``: a GAN learning a ring of Gaussians: real data, generator samples at a few
iterations, the final mode coverage and the two objectives' curves, in one PNG."""
from __future__ import annotations

import argparse

import numpy as np

from .optimizers import _atomic_savefig

__all__ = ["plot_gan", "main"]


def plot_gan(out: str = "gan.png", n_iter: int = 2000, modes: int = 8, std: float = 0.05, seed: int = 0,
             snapshots: int = 3, dpi: int = 120) -> dict:
    """Train ``estimators.gan.GAN`` on a ring of ``modes`` Gaussians and draw the run to ``out``.

    Returns the per-mode coverage counts, the share of good samples and the history.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..estimators.gan import GAN, mode_coverage, ring_centres, ring_of_gaussians

    X, _ = ring_of_gaussians(4000, modes=modes, std=std, rng=np.random.default_rng(seed))
    centres = ring_centres(modes)
    gan = GAN(seed=seed)
    marks = np.linspace(0, n_iter, snapshots + 1).astype(int)[1:]
    shots = []
    for i, m in enumerate(marks):
        gan.fit(X, n_iter=int(m - (marks[i - 1] if i else 0)))
        shots.append((int(m), gan.sample(1500)))
    counts, good = mode_coverage(shots[-1][1], centres, std)

    fig = Figure(figsize=(4 * (snapshots + 2), 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, snapshots + 2)
    lim = 2.0 * 1.6
    axes[0].scatter(X[:1500, 0], X[:1500, 1], s=2, c="tab:blue")
    axes[0].set_title(f"data: {modes} Gaussians, std {std:g}", fontsize=9)
    for ax, (it, S) in zip(axes[1:], shots):
        ax.scatter(X[:1500, 0], X[:1500, 1], s=1, c="0.8")
        ax.scatter(S[:, 0], S[:, 1], s=2, c="tab:red")
        ax.set_title(f"generator after {it} iterations", fontsize=9)
    axes[snapshots].set_title(f"after {shots[-1][0]} iterations: {int((counts > 0).sum())}/{modes} modes hit,\n"
                              f"{100 * good:.0f}% of samples within 3 std of a mode", fontsize=9)
    for ax in axes[:-1]:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.plot(centres[:, 0], centres[:, 1], "k+", ms=8)
    h = np.array(gan.history)
    ax = axes[-1]
    ax.plot(h[:, 0], h[:, 1], lw=0.6, label="V(D, G) (D ascends)")
    ax.plot(h[:, 0], h[:, 2], lw=0.6, label="-E log D(G(z)) (G descends)")
    ax.axhline(-np.log(4), color="k", ls=":", lw=0.8, label="-log 4: V at the equilibrium")
    ax.set_xlabel("iteration")
    ax.legend(fontsize=7)
    ax.set_title("the two objectives on each batch", fontsize=9)
    fig.tight_layout()
    _atomic_savefig(fig, out, dpi)
    return {"counts": counts, "good": good, "history": h}


def main(argv: list[str] | None = None) -> int:
    """``layerwise plot gan``."""
    ap = argparse.ArgumentParser(prog="layerwise plot gan",
                                 description="Train a GAN of layerwise layers on a 2-D ring of Gaussians and "
                                             "draw its samples and objectives.")
    ap.add_argument("--out", default="gan.png", help="output image (default: gan.png)")
    ap.add_argument("--iters", type=int, default=2000, help="training iterations (default: 2000)")
    ap.add_argument("--modes", type=int, default=8, help="Gaussians on the ring (default: 8)")
    ap.add_argument("--std", type=float, default=0.05, help="their standard deviation (default: 0.05)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.iters < 3 or a.modes < 1 or not a.std > 0:
        ap.error("--iters must be >= 3, --modes >= 1 and --std > 0")
    r = plot_gan(a.out, n_iter=a.iters, modes=a.modes, std=a.std, seed=a.seed)
    print(f"{a.out}: modes covered {int((r['counts'] > 0).sum())}/{a.modes} (samples per mode {r['counts'].tolist()}), "
          f"{100 * r['good']:.0f}% of samples within 3 std of a mode")
    return 0
