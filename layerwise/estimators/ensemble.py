"""AdaBoost with decision stumps: forward stagewise minimisation of the exponential loss."""
from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import objectives as ob
from ._base import check_solver_params, minimise

__all__ = ["AdaBoostClassifier"]


def best_stump(X: np.ndarray, yi: np.ndarray, w: np.ndarray, K: int):
    """The decision stump with the lowest weighted error.

    A stump is (feature j, threshold t, class left, class right): x_j <= t -> left. Each leaf
    predicts its weighted majority class, so the error of a split is sum w - sum over leaves of
    the leaf's largest class weight. All splits of one feature come from one sort and one
    cumulative sum (a loop over features, not samples).

    Returns:
        (weighted error, j, t, left, right); j = -1 when no feature varies (a constant stump).
    """
    Yw = np.eye(K)[yi] * w[:, None]                                  # (N, K) weighted one-hot
    total = Yw.sum(axis=0)
    best = (w.sum() - total.max(), -1, 0.0, int(total.argmax()), int(total.argmax()))
    for j in range(X.shape[1]):
        order = np.argsort(X[:, j], kind="stable")
        xs = X[order, j]
        left = np.cumsum(Yw[order], axis=0)[:-1]                     # (N-1, K): samples 0..i go left
        correct = left.max(axis=1) + (total - left).max(axis=1)
        correct[xs[1:] <= xs[:-1]] = -np.inf                         # split only between distinct values
        i = int(np.argmax(correct))
        err = w.sum() - correct[i]
        if err < best[0] - 1e-12 * w.sum():
            best = (err, j, 0.5 * (xs[i] + xs[i + 1]), int(left[i].argmax()), int((total - left[i]).argmax()))
    return best


class AdaBoostClassifier(ClassifierMixin, BaseEstimator):
    """AdaBoost with decision stumps (discrete AdaBoost; SAMME for more than 2 classes).

    Objective (``objectives.adaboost_exponential``): L(alpha) = 1/N sum_i exp(-y_i F(x_i)),
    F = sum_m alpha_m h_m, minimised forward stagewise: each round adds the stump with the lowest
    weighted error under w_i = exp(-y_i F(x_i)) (the classic weight update), with the weight
    that minimises L over the new alpha alone: alpha = 1/2 log((1 - err) / err)
    (``objectives.adaboost_alpha``; ``solver="exact"``, the default). Any layerwise solver
    instead finds that alpha by descending L (same minimum). For K > 2 classes: SAMME,
    alpha = log((1 - err) / err) + log(K - 1), w_i *= exp(alpha [h(x_i) != y_i]).
    Boosting stops early at a perfect stump, or at one no better than chance.

    Args:
        n_estimators: the most stumps.
        learning_rate: shrinks every alpha.
        solver: ``"exact"`` or a layerwise solver name (lr, max_iter, tol for the alpha search).

    Attributes:
        classes_, estimator_weights_ (M,), estimator_errors_ (M,), stumps_ (M, 4) rows
        (feature, threshold, left class, right class), train_loss_ (binary: L after each round).

    Example:
        >>> from sklearn.datasets import load_breast_cancer
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> round(AdaBoostClassifier(n_estimators=20).fit(X, y).score(X, y), 2)
        0.99
    """

    def __init__(self, n_estimators=50, *, learning_rate=1.0, solver="exact", lr=0.5, max_iter=200, tol=1e-10):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.solver = solver
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol

    def _alpha(self, h: np.ndarray, y: np.ndarray, F: np.ndarray) -> float:
        """The new stump's weight: closed form, or a solver descending the exponential loss in it."""
        if self.solver == "exact":
            return ob.adaboost_alpha(h, y, F)
        H = np.column_stack([F, h])                                  # F fixed (weight 1), h's alpha free

        def objective(p):
            v, g = ob.adaboost_exponential(np.array([1.0, p["a"][0]]), H, y)
            return v, {"a": g[1:]}
        out, it, _ = minimise(objective, {"a": np.zeros(1)}, solver=self.solver, lr=self.lr, max_iter=self.max_iter,
                              tol=self.tol, owner="AdaBoostClassifier", n_iter_no_change=None)
        self.n_iter_ += it
        return float(out["a"][0])

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        n = self.n_estimators
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"AdaBoostClassifier: n_estimators must be an integer >= 1, got {n!r}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0:
            raise ValueError(f"AdaBoostClassifier: learning_rate must be a number > 0, got {lr!r}")
        check_solver_params("AdaBoostClassifier", self.solver, self.lr, self.max_iter, self.tol, ("exact",))
        self.classes_, yi = np.unique(y, return_inverse=True)
        K = len(self.classes_)
        if K < 2:
            raise ValueError(f"AdaBoostClassifier: needs samples of at least 2 classes, got 1 class "
                             f"({self.classes_[0]!r})")
        N = len(yi)
        ys = np.where(yi == 1, 1.0, -1.0)                            # binary coding (classes_[1] = +1)
        F = np.zeros(N)
        w = np.full(N, 1.0 / N)
        stumps, alphas, errors, losses = [], [], [], []
        self.n_iter_ = 0
        for m in range(n):
            err, j, t, left, right = best_stump(X, yi, w, K)
            err = max(err / w.sum(), 0.0)
            if err >= 1.0 - 1.0 / K - 1e-12:                         # no better than chance: stop
                if m == 0:
                    raise ValueError("AdaBoostClassifier: the best stump is no better than chance on the "
                                     "training data; boosting cannot start (check the labels and features)")
                break
            pred = np.where(X[:, j] <= t, left, right) if j >= 0 else np.full(N, left)
            stumps.append((j, t, left, right))
            errors.append(err)
            if err <= 0:                                             # a perfect stump: keep it and stop
                alphas.append(1.0)
                break
            if K == 2:
                h = np.where(pred == 1, 1.0, -1.0)
                a = lr * self._alpha(h, ys, F)
                F += a * h
                w = np.exp(-ys * F)                                  # the classic update, w = exp(-y F)
                losses.append(ob.adaboost_exponential(np.ones(1), F[:, None], ys)[0])
            else:
                a = lr * (np.log((1 - err) / err) + np.log(K - 1))
                w = w * np.exp(a * (pred != yi))
            w = w / w.sum()
            alphas.append(a)
        self.stumps_ = np.array(stumps, dtype=np.float64).reshape(-1, 4)
        self.estimator_weights_ = np.array(alphas)
        self.estimator_errors_ = np.array(errors)
        self.train_loss_ = np.array(losses)
        self.n_iter_ = max(self.n_iter_, len(alphas))
        return self

    def _votes(self, X) -> np.ndarray:
        """(N, M) class index predicted by each stump."""
        j, t, left, right = (self.stumps_[:, c] for c in range(4))
        ji = j.astype(int)
        Xj = np.where(ji >= 0, X[:, np.maximum(ji, 0)], -np.inf)      # constant stumps send all left
        return np.where(Xj <= t, left, right).astype(int)

    def decision_function(self, X):
        """Normalised vote: (N,) for 2 classes (> 0 means classes_[1]), else (N, K) class weights."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        V = self._votes(X)
        a = self.estimator_weights_
        K = len(self.classes_)
        if K == 2:
            return (np.where(V == 1, 1.0, -1.0) @ a) / a.sum()
        return np.stack([(V == k) @ a for k in range(K)], axis=1) / a.sum()

    def predict(self, X):
        s = self.decision_function(X)
        return self.classes_[(s > 0).astype(int) if s.ndim == 1 else s.argmax(axis=1)]
