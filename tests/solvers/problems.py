"""Small problems the solver tests optimise: a random quadratic and a tiny tanh MLP.

Each problem gives the initial params, a NumPy gradient function (what our solvers see)
and a torch loss (what torch.optim sees, through autograd).
"""
from __future__ import annotations

import numpy as np

from layerwise.core import Param


class Quadratic:
    """f = sum_k 0.5 x_k' A_k x_k - c_k' x_k over two params, A_k random SPD (eigenvalues 0.5..3)."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.shapes = {"w": (3, 2), "b": (4,)}
        self.A, self.c, self.init = {}, {}, {}
        for k, shape in self.shapes.items():
            n = int(np.prod(shape))
            q, _ = np.linalg.qr(rng.standard_normal((n, n)))
            self.A[k] = (q * rng.uniform(0.5, 3.0, n)) @ q.T
            self.c[k] = rng.standard_normal(n)
            self.init[k] = rng.standard_normal(shape)

    def grads(self, v: dict) -> dict:
        return {k: (self.A[k] @ v[k].ravel() - self.c[k]).reshape(v[k].shape) for k in v}

    def torch_loss(self, tp: dict):
        import torch
        out = 0
        for k, x in tp.items():
            A, c = torch.from_numpy(self.A[k]), torch.from_numpy(self.c[k])
            xf = x.reshape(-1)
            out = out + 0.5 * xf @ (A @ xf) - c @ xf
        return out


class TinyMLP:
    """x (16, 4) -> Linear(8) -> tanh -> Linear(3); loss 0.5 * mean_n ||out_n - y_n||^2."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.X = rng.standard_normal((16, 4))
        self.Y = rng.standard_normal((16, 3))
        self.init = {"fc1.weight": rng.standard_normal((8, 4)) * 0.5, "fc1.bias": rng.standard_normal(8) * 0.1,
                     "fc2.weight": rng.standard_normal((3, 8)) * 0.5, "fc2.bias": rng.standard_normal(3) * 0.1}

    def loss(self, v: dict) -> float:
        h = np.tanh(self.X @ v["fc1.weight"].T + v["fc1.bias"])
        out = h @ v["fc2.weight"].T + v["fc2.bias"]
        return 0.5 * float(((out - self.Y) ** 2).sum()) / len(self.X)

    def grads(self, v: dict) -> dict:
        n = len(self.X)
        h = np.tanh(self.X @ v["fc1.weight"].T + v["fc1.bias"])          # (N, 8)
        out = h @ v["fc2.weight"].T + v["fc2.bias"]                      # (N, 3)
        dout = (out - self.Y) / n
        dz = (dout @ v["fc2.weight"]) * (1.0 - h * h)                    # (N, 8)
        return {"fc1.weight": dz.T @ self.X, "fc1.bias": dz.sum(0),
                "fc2.weight": dout.T @ h, "fc2.bias": dout.sum(0)}

    def torch_loss(self, tp: dict):
        import torch
        X, Y = torch.from_numpy(self.X), torch.from_numpy(self.Y)
        h = torch.tanh(X @ tp["fc1.weight"].T + tp["fc1.bias"])
        out = h @ tp["fc2.weight"].T + tp["fc2.bias"]
        return 0.5 * ((out - Y) ** 2).sum() / len(X)


def make_params(problem, dtype=np.float64) -> dict:
    return {k: Param(v.astype(dtype), name=k) for k, v in problem.init.items()}


def run(solver, params: dict, problem, steps: int, lr_changes: dict | None = None) -> None:
    """``steps`` updates; ``lr_changes`` maps an iteration to a new lr set before that update."""
    for i in range(steps):
        if lr_changes and i in lr_changes:
            solver.lr = lr_changes[i]
        g = problem.grads({k: p.data for k, p in params.items()})
        for k, p in params.items():
            p.grad[...] = g[k]
        solver.step()
