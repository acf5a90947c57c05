"""Autoencoder: an MLP of layerwise layers trained to reproduce its input."""
from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import check_solver_params, minimise

__all__ = ["Autoencoder"]

_ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")


def _activation(name: str):
    from ..layers import ReLU, Sigmoid, TanH

    return {"tanh": TanH, "sigmoid": Sigmoid, "relu": ReLU}[name]()


class Autoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """An autoencoder: encoder and decoder are ``Sequential`` nets of ``Linear`` and activation layers.

    Objective (``objectives.autoencoder`` for one hidden layer; the same reconstruction error
    for deeper ones), through ``EuclideanLoss``:
        L = 1/(2N) sum_i ||dec(enc(x_i)) - x_i||^2.
    The gradient comes from the layers' own backward passes; a layerwise solver (default Adam)
    takes full-batch steps; the iterate with the lowest L is kept.

    Layout for ``hidden_layer_sizes=(h1, ..., hc)``: encoder Linear(h1), f, ..., Linear(hc), f
    (the code has hc units); decoder Linear(h_{c-1}), f, ..., Linear(D) (a linear output).

    Args:
        hidden_layer_sizes: the encoder's widths; the last is the code size.
        activation: ``tanh``, ``sigmoid``, ``relu`` or ``identity`` (then the optimum spans the
            PCA subspace).
        solver, lr, max_iter, tol, lr_policy, solver_options: the solver loop (``minimise``).
        random_state: seed of the weight initialisation.

    Attributes:
        encoder_, decoder_ (``Sequential``), n_iter_, loss_curve_, n_features_in_.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, _ = load_iris(return_X_y=True)
        >>> ae = Autoencoder((2,), max_iter=50, random_state=0).fit(X)
        >>> ae.transform(X).shape, ae.inverse_transform(ae.transform(X)).shape
        ((150, 2), (150, 4))
    """

    def __init__(self, hidden_layer_sizes=(8,), *, activation="tanh", solver="adam", lr=0.01, max_iter=500,
                 tol=1e-7, lr_policy="fixed", solver_options=None, random_state=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.lr_policy = lr_policy
        self.solver_options = solver_options
        self.random_state = random_state

    def _build(self, D: int, seed: int):
        from ..core import Sequential
        from ..layers import Linear

        sizes = tuple(self.hidden_layer_sizes)
        enc, dec = [], []
        for h in sizes:
            enc.append(Linear(h))
            if self.activation != "identity":
                enc.append(_activation(self.activation))
        for h in sizes[-2::-1]:
            dec.append(Linear(h))
            if self.activation != "identity":
                dec.append(_activation(self.activation))
        dec.append(Linear(D))
        return Sequential(*enc, seed=seed, name="encoder"), Sequential(*dec, seed=seed + 1, name="decoder")

    def fit(self, X, y=None):
        from ..losses import EuclideanLoss

        X = validate_data(self, X, dtype=np.float64)
        sizes = self.hidden_layer_sizes
        if (not isinstance(sizes, (tuple, list)) or not sizes
                or any(isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1 for h in sizes)):
            raise ValueError(f"Autoencoder: hidden_layer_sizes must be a non-empty tuple of positive integers, "
                             f"got {sizes!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"Autoencoder: activation must be one of {_ACTIVATIONS}, got {self.activation!r}")
        check_solver_params("Autoencoder", self.solver, self.lr, self.max_iter, self.tol)
        seed = int(check_random_state(self.random_state).randint(2 ** 31 - 2))
        enc, dec = self._build(X.shape[1], seed)
        loss = EuclideanLoss()
        enc.setup(X.shape, dtype=np.float64)
        dec.setup((X.shape[0], sizes[-1]), dtype=np.float64)
        params = {**{f"encoder.{k}": p for k, p in enc.named_params().items()},
                  **{f"decoder.{k}": p for k, p in dec.named_params().items()}}

        def objective(_):                               # the Params are the nets' own: just run the nets
            enc.zero_grad()
            dec.zero_grad()
            value = loss.forward(dec.forward(enc.forward(X)), X)
            enc.backward(dec.backward(loss.backward()))
            return float(value), {k: p.grad for k, p in params.items()}

        out, self.n_iter_, self.loss_curve_ = minimise(
            objective, params, solver=self.solver, lr=self.lr, max_iter=self.max_iter, tol=self.tol,
            lr_policy=self.lr_policy, solver_options=self.solver_options, owner="Autoencoder", n_iter_no_change=None)
        for k, p in params.items():
            p.data[...] = out[k]
        enc.eval()
        dec.eval()
        self.encoder_, self.decoder_ = enc, dec
        self._n_features_out = sizes[-1]
        return self

    def transform(self, X):
        """The code enc(X) (N, hidden_layer_sizes[-1])."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.asarray(self.encoder_.forward(X))

    def inverse_transform(self, Z):
        """The reconstruction dec(Z) (N, D) of codes Z."""
        check_is_fitted(self)
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != self.hidden_layer_sizes[-1]:
            raise ValueError(f"Autoencoder.inverse_transform: expected codes of shape "
                             f"(N, {self.hidden_layer_sizes[-1]}), got {Z.shape}")
        return np.asarray(self.decoder_.forward(Z))

    def score(self, X, y=None):
        """Minus the mean squared reconstruction error per sample, 1/N sum ||x^ - x||^2 (higher is better)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        R = np.asarray(self.decoder_.forward(self.encoder_.forward(X)))
        return -float(((R - X) ** 2).sum() / len(X))
