"""The GAN minimax value function and the Bellman expectation error of a value function."""
from __future__ import annotations

import numpy as np

from ..functional.logistic import sigmoid as _sigmoid
from ..functional.logistic import softplus as _softplus

__all__ = ["gan_value", "generator_loss", "policy_evaluation", "bellman_error"]


def _weights(w, n):
    return np.full(n, 1.0 / n) if w is None else np.asarray(w, dtype=np.float64)


def gan_value(real_logits: np.ndarray, fake_logits: np.ndarray, real_weights=None, fake_weights=None):
    """GAN value V(D, G) = E_x log D(x) + E_z log(1 - D(G(z))), D = sigmoid(logit).

    The discriminator MAXIMISES V, the generator minimises it. Expectations are weighted means
    (default: uniform over the samples). Stable forms: log D = -softplus(-a), log(1 - D) = -softplus(b).
    Returns (V, (dV/da, dV/db)) with dV/da_i = w_i (1 - D(a_i)), dV/db_j = -v_j D(b_j).
    With the optimal D* = p_data / (p_data + p_g):  V = -log 4 + 2 JS(p_data || p_g).
    """
    a, b = np.asarray(real_logits, float), np.asarray(fake_logits, float)
    wa, wb = _weights(real_weights, a.size), _weights(fake_weights, b.size)
    V = -(wa * _softplus(-a)).sum() - (wb * _softplus(b)).sum()
    return float(V), (wa * _sigmoid(-a), -wb * _sigmoid(b))


def generator_loss(fake_logits: np.ndarray, non_saturating: bool = True, fake_weights=None):
    """The generator's loss on D's logits b = logit D(G(z)), minimised.

    non_saturating (Goodfellow et al.'s practical form): L = -E log D(G(z)) = E softplus(-b),
        dL/db = -v (1 - D(b)): strong gradients while D rejects the fakes.
    minimax: L = E log(1 - D(G(z))) = -E softplus(b), dL/db = -v D(b): vanishes when D(b) -> 0.
    """
    b = np.asarray(fake_logits, float)
    wb = _weights(fake_weights, b.size)
    if non_saturating:
        return float((wb * _softplus(-b)).sum()), -wb * _sigmoid(-b)
    return float(-(wb * _softplus(b)).sum()), -wb * _sigmoid(b)


def _policy_mdp(P: np.ndarray, R: np.ndarray, pi: np.ndarray):
    """r_pi (S,) and P_pi (S, S) of a policy pi (S, A) on P (S, A, S), R (S, A)."""
    return (pi * R).sum(1), np.einsum("sa,sat->st", pi, P)


def policy_evaluation(P: np.ndarray, R: np.ndarray, pi: np.ndarray, gamma: float) -> np.ndarray:
    """The state value V_pi(s) = E[sum_t gamma^t r_t | s_0 = s, pi], solved exactly:
    V = (I - gamma P_pi)^-1 r_pi (the fixed point of the Bellman expectation equation)."""
    r, Pp = _policy_mdp(P, R, pi)
    return np.linalg.solve(np.eye(len(r)) - gamma * Pp, r)


def bellman_error(V: np.ndarray, P: np.ndarray, R: np.ndarray, pi: np.ndarray, gamma: float):
    """Mean-squared Bellman expectation error of a value function on a finite MDP.

    e = V - (r_pi + gamma P_pi V),  L(V) = 1/2 ||e||^2,  dL/dV = (I - gamma P_pi)^T e.
    P (S, A, S) transition probabilities, R (S, A) expected rewards, pi (S, A) the policy.
    L = 0 exactly at V_pi (policy_evaluation).
    """
    r, Pp = _policy_mdp(P, R, pi)
    e = V - r - gamma * Pp @ V
    return float(0.5 * e @ e), e - gamma * Pp.T @ e
