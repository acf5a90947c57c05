"""``layerwise plot gridworld``: the grid world's optimal value function and policies (value iteration,
policy iteration, Q-learning) and the convergence of value iteration, in one PNG."""
from __future__ import annotations

import argparse

import numpy as np

from .optimizers import _atomic_savefig

__all__ = ["plot_gridworld", "main"]

_ARROWS = {0: (0, 0.3), 1: (0.3, 0), 2: (0, -0.3), 3: (-0.3, 0)}     # (dx, dy) per action, y up


def _panel(ax, world, V, pi, title):
    from matplotlib.patches import Rectangle

    H, W = world.shape
    grid = np.full((H, W), np.nan)
    grid[world.cells[:, 0], world.cells[:, 1]] = V
    ax.imshow(grid, cmap="RdYlGn", vmin=-1, vmax=1, origin="upper")
    for s, (r, c) in enumerate(world.cells):
        if world.terminal[s]:
            ax.text(c, r, f"{world.terminals[(r, c)]:+g}", ha="center", va="center", fontsize=11, weight="bold")
            continue
        dx, dy = _ARROWS[int(pi[s].argmax())]
        ax.arrow(c - dx / 2, r + dy / 2, dx, -dy, head_width=0.12, color="k", length_includes_head=True)
        ax.text(c, r + 0.35, f"{V[s]:.3f}", ha="center", va="center", fontsize=7)
    for r, c in world.walls:
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, color="0.3"))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def plot_gridworld(out: str = "gridworld.png", episodes: int = 3000, seed: int = 0, dpi: int = 120) -> dict:
    """Solve the classic 4 x 3 world three ways, check against the LP, draw, save to ``out``.

    Returns the numbers drawn: values and policies per method, the LP values, iteration counts.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..estimators import rl

    w = rl.GridWorld.classic()
    V_vi, pi_vi, n_vi, deltas = rl.value_iteration(w.P, w.R, w.gamma)
    V_pi, pi_pi, n_pi, hist = rl.policy_iteration(w.P, w.R, w.gamma)
    Q, _ = rl.q_learning(w.P, w.R, w.gamma, episodes=episodes, terminal=w.terminal, seed=seed)
    V_q = np.where(w.terminal, 0.0, Q.max(axis=1))
    V_lp = rl.solve_lp(w.P, w.R, w.gamma)

    fig = Figure(figsize=(13, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    _panel(axes[0], w, V_vi, pi_vi, f"value iteration ({n_vi} sweeps)\nmax |V - V_LP| = "
                                    f"{np.abs(V_vi - V_lp).max():.1e}")
    _panel(axes[1], w, V_pi, pi_pi, f"policy iteration ({n_pi} improvements)\nmax |V - V_LP| = "
                                    f"{np.abs(V_pi - V_lp).max():.1e}")
    agree = int((Q.argmax(1) == pi_vi.argmax(1))[~w.terminal].sum())
    _panel(axes[2], w, V_q, np.eye(4)[Q.argmax(1)], f"Q-learning ({episodes} episodes)\n"
                                                     f"greedy = optimal in {agree}/{int((~w.terminal).sum())} states")
    ax = axes[3]
    ax.semilogy(np.arange(1, len(deltas) + 1), deltas, label="value iteration: max |V_k+1 - V_k|")
    ax.semilogy(np.arange(1, len(hist) + 1), [max(np.abs(h - V_lp).max(), 1e-16) for h in hist], "o-",
                label="policy iteration: max |V_pi_k - V*|")
    ax.set_xlabel("iteration")
    ax.legend(fontsize=7)
    ax.set_title(f"convergence (gamma = {w.gamma}, slip = {w.slip})", fontsize=9)
    fig.suptitle("Grid world: V*(s) = max_a [R(s, a) + gamma sum_s' P(s'|s, a) V*(s')]; arrows: the policy",
                 fontsize=10)
    fig.tight_layout()
    _atomic_savefig(fig, out, dpi)
    return {"V_vi": V_vi, "V_pi": V_pi, "V_q": V_q, "V_lp": V_lp, "pi_vi": pi_vi, "pi_pi": pi_pi, "Q": Q,
            "n_vi": n_vi, "n_pi": n_pi}


def main(argv: list[str] | None = None) -> int:
    """``layerwise plot gridworld``."""
    ap = argparse.ArgumentParser(prog="layerwise plot gridworld",
                                 description="Solve Russell & Norvig's 4 x 3 grid world by value iteration, "
                                             "policy iteration and Q-learning (checked against an LP) and draw it.")
    ap.add_argument("--out", default="gridworld.png", help="output image (default: gridworld.png)")
    ap.add_argument("--episodes", type=int, default=3000, help="Q-learning episodes (default: 3000)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    r = plot_gridworld(a.out, episodes=a.episodes, seed=a.seed)
    print(f"{a.out}: value iteration {r['n_vi']} sweeps, policy iteration {r['n_pi']} steps, "
          f"max |V_vi - V_LP| = {np.abs(r['V_vi'] - r['V_lp']).max():.1e}")
    return 0
