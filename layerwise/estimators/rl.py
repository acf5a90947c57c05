"""Reinforcement learning on a grid world: the value function of the objectives survey, found by value
iteration, policy iteration, tabular Q-learning and (for a fixed policy) a solver on the Bellman error;
checked against linear programming and exhaustive policy evaluation.

    world = GridWorld.classic()                     # Russell & Norvig's 4 x 3 world
    V, pi, n = value_iteration(world.P, world.R, world.gamma)

An MDP here is P (S, A, S) transition probabilities and R (S, A) expected rewards; a policy is
pi (S, A), each row a distribution over actions (deterministic policies are one-hot rows).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .. import objectives as ob
from ._base import minimise

__all__ = ["GridWorld", "value_iteration", "policy_iteration", "q_learning", "solve_lp", "best_policy_exhaustive",
           "evaluate_policy_by_solver", "greedy"]

ACTIONS = ("up", "right", "down", "left")
_MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])


@dataclass
class GridWorld:
    """A grid MDP: walls, terminal cells with rewards, a cost per step, slippery moves.

    Each action moves to the intended neighbour with probability ``1 - slip`` and to each
    perpendicular neighbour with ``slip / 2`` (into a wall or off the grid: stay). Entering a
    cell gives its reward (``terminals`` value, else ``step_reward``); terminal cells are
    absorbing with reward 0 afterwards.

    Attributes:
        P (S, A, S), R (S, A), cells (S, 2) the (row, col) of each state, terminal (S,) bool.
    """

    shape: tuple[int, int] = (3, 4)
    walls: tuple[tuple[int, int], ...] = ((1, 1),)
    terminals: dict = field(default_factory=lambda: {(0, 3): 1.0, (1, 3): -1.0})
    step_reward: float = -0.04
    slip: float = 0.2
    gamma: float = 0.95

    @classmethod
    def classic(cls) -> GridWorld:
        """Russell and Norvig's 4 x 3 world (goal +1, pit -1, one wall, 80% intended moves)."""
        return cls()

    def __post_init__(self):
        H, W = self.shape
        if not 0 <= self.slip < 1 or not 0 < self.gamma < 1:
            raise ValueError(f"GridWorld: slip must be in [0, 1) and gamma in (0, 1), got slip={self.slip}, "
                             f"gamma={self.gamma}")
        cells = [(r, c) for r in range(H) for c in range(W) if (r, c) not in set(self.walls)]
        bad = [t for t in self.terminals if t not in cells]
        if bad:
            raise ValueError(f"GridWorld: terminal cells {bad} are walls or off the {H} x {W} grid")
        index = {cell: i for i, cell in enumerate(cells)}
        S, A = len(cells), len(ACTIONS)
        self.cells = np.array(cells)
        self.terminal = np.array([cell in self.terminals for cell in cells])
        reward = np.array([self.terminals.get(cell, self.step_reward) for cell in cells])
        P = np.zeros((S, A, S))
        for s, cell in enumerate(cells):                          # a loop over states and actions (tiny)
            if self.terminal[s]:
                P[s, :, s] = 1.0
                continue
            for a in range(A):
                for d, p in ((a, 1 - self.slip), ((a + 1) % 4, self.slip / 2), ((a + 3) % 4, self.slip / 2)):
                    nxt = tuple(np.array(cell) + _MOVES[d])
                    P[s, a, index.get(nxt, s)] += p
        self.P = P
        self.R = np.where(self.terminal[:, None], 0.0, P @ reward)   # expected reward of entering s'
        self.index = index

    @property
    def n_states(self) -> int:
        return self.P.shape[0]


def greedy(Q: np.ndarray) -> np.ndarray:
    """The deterministic policy (S, A) taking argmax_a Q(s, a) (first action on ties)."""
    return np.eye(Q.shape[1])[Q.argmax(axis=1)]


def _q(P, R, V, gamma):
    return R + gamma * P @ V                                     # (S, A): Q(s, a) = R + gamma sum P V


def value_iteration(P, R, gamma, tol=1e-10, max_iter=10000):
    """Iterate the Bellman optimality operator V <- max_a (R + gamma P V) to its fixed point.

    Stops when max |V_new - V| < tol (1 - gamma) / (2 gamma), which bounds the error of the
    greedy policy's value by tol. Returns (V (S,), greedy policy (S, A), iterations, the sup-norm
    change at each iteration).
    """
    V = np.zeros(P.shape[0])
    deltas = []
    for _ in range(max_iter):
        V_new = _q(P, R, V, gamma).max(axis=1)
        deltas.append(float(np.abs(V_new - V).max()))
        V = V_new
        if deltas[-1] < tol * (1 - gamma) / (2 * gamma):
            break
    return V, greedy(_q(P, R, V, gamma)), len(deltas), deltas


def policy_iteration(P, R, gamma, max_iter=1000):
    """Alternate exact policy evaluation (``objectives.policy_evaluation``: V = (I - gamma P_pi)^-1 r_pi)
    and greedy improvement until the policy is stable (keeping the current action on ties).
    Returns (V, policy, iterations, the values after each evaluation)."""
    S, A = R.shape
    pi = np.eye(A)[np.zeros(S, dtype=int)]
    history = []
    for it in range(1, max_iter + 1):
        V = ob.policy_evaluation(P, R, pi, gamma)
        history.append(V)
        Q = _q(P, R, V, gamma)
        cur = pi.argmax(axis=1)
        best = Q.argmax(axis=1)
        keep = Q[np.arange(S), cur] >= Q[np.arange(S), best] - 1e-12
        new = np.where(keep, cur, best)
        if np.array_equal(new, cur):
            return V, pi, it, history
        pi = np.eye(A)[new]
    return V, pi, max_iter, history


def q_learning(P, R, gamma, episodes=2000, max_steps=100, terminal=None, epsilon=1.0, power=0.6, seed=0):
    """Tabular Q-learning: Q(s, a) += alpha_n (r + gamma max_a' Q(s', a') - Q(s, a)).

    Episodes start in a uniformly random non-terminal state (exploring starts); the behaviour is
    epsilon-greedy (epsilon = 1: uniformly random, which Q-learning, being off-policy, learns the
    optimal Q from). The step size alpha_n = n(s, a)^-power (n the visit count) meets the
    Robbins-Monro conditions for 1/2 < power <= 1. Transitions are sampled from P, rewards are R's
    expectation. Returns (Q (S, A), visit counts (S, A)).
    """
    S, A = R.shape
    rng = np.random.default_rng(seed)
    terminal = np.zeros(S, bool) if terminal is None else np.asarray(terminal)
    starts = np.flatnonzero(~terminal)
    Q = np.zeros((S, A))
    n = np.zeros((S, A))
    cdf = np.cumsum(P, axis=2)
    cdf[..., -1] = 1.0                                           # guard the last bin against round-off
    for _ in range(episodes):                                    # RL is sequential: one step at a time
        s = int(rng.choice(starts))
        explore = rng.random(max_steps) < epsilon                # the episode's random draws, at once
        rand_a = rng.integers(A, size=max_steps)
        u = rng.random(max_steps)
        for t in range(max_steps):
            a = int(rand_a[t]) if explore[t] else int(Q[s].argmax())
            s2 = int(np.searchsorted(cdf[s, a], u[t], side="right"))
            n[s, a] += 1
            target = R[s, a] + (0.0 if terminal[s2] else gamma * Q[s2].max())
            Q[s, a] += n[s, a] ** -power * (target - Q[s, a])
            if terminal[s2]:
                break
            s = s2
    return Q, n


def solve_lp(P, R, gamma):
    """The optimal values by linear programming: minimise sum_s V(s) subject to
    V(s) >= R(s, a) + gamma sum_s' P(s' | s, a) V(s') for every (s, a) (scipy's HiGHS)."""
    from scipy.optimize import linprog

    S, A = R.shape
    A_ub = gamma * P.reshape(S * A, S) - np.repeat(np.eye(S), A, axis=0)   # gamma P V - V(s) <= -R
    res = linprog(np.ones(S), A_ub=A_ub, b_ub=-R.reshape(-1), bounds=[(None, None)] * S, method="highs")
    if not res.success:
        raise RuntimeError(f"solve_lp: the LP failed: {res.message}")
    return res.x


def best_policy_exhaustive(P, R, gamma, terminal=None):
    """Evaluate every deterministic policy exactly (A^S' of them over the S' non-terminal states,
    all solves batched) and return (the pointwise best values, the best policy, the count).
    The optimal policy is best in every state at once, so its values are the pointwise max."""
    S, A = R.shape
    terminal = np.zeros(S, bool) if terminal is None else np.asarray(terminal)
    free = np.flatnonzero(~terminal)
    if A ** len(free) > 200_000:
        raise ValueError(f"best_policy_exhaustive: {A}^{len(free)} policies is too many; use a smaller grid")
    choices = np.array(list(itertools.product(range(A), repeat=len(free))))        # (M, S')
    acts = np.zeros((len(choices), S), dtype=int)
    acts[:, free] = choices
    Pp = P[np.arange(S)[None, :], acts]                                            # (M, S, S)
    rp = R[np.arange(S)[None, :], acts]                                            # (M, S)
    V = np.linalg.solve(np.eye(S)[None] - gamma * Pp, rp[..., None])[..., 0]       # (M, S)
    best = int(V.sum(axis=1).argmax())
    return V.max(axis=0), np.eye(A)[acts[best]], len(choices)


def evaluate_policy_by_solver(P, R, pi, gamma, solver="adam", lr=0.05, max_iter=5000, tol=1e-10):
    """V_pi by minimising the mean-squared Bellman error (``objectives.bellman_error``) with a
    layerwise solver; its minimum 0 is at ``objectives.policy_evaluation``'s exact answer.
    Returns (V, iterations)."""
    def objective(p):
        v, g = ob.bellman_error(p["V"], P, R, pi, gamma)
        return v, {"V": g}
    out, n_iter, _ = minimise(objective, {"V": np.zeros(P.shape[0])}, solver=solver, lr=lr, max_iter=max_iter,
                              tol=tol, owner="evaluate_policy_by_solver", n_iter_no_change=None)
    return out["V"], n_iter
