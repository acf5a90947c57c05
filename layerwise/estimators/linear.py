"""Linear models: Perceptron, LinearSVC, LogisticRegression (solver-fitted) and LinearRegression,
Ridge, Lasso (closed form / proximal by default, any layerwise solver on request).

The objectives are ``layerwise.objectives``' functions; this module only arranges the data
(labels, the intercept column, one-vs-rest) and calls ``minimise`` or the closed form.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import objectives as ob
from ._base import N_ITER_NO_CHANGE, add_intercept_column, check_solver_params, minimise, real_number

__all__ = ["Perceptron", "LinearSVC", "LogisticRegression", "LinearRegression", "Ridge", "Lasso"]


def _check_positive(owner: str, name: str, v: Any) -> None:
    x = real_number(v)
    if x is None or not x > 0 or not np.isfinite(x):
        raise ValueError(f"{owner}: {name} must be a number > 0, got {v!r}")


def _check_nonneg(owner: str, name: str, v: Any) -> None:
    x = real_number(v)
    if x is None or not x >= 0 or not np.isfinite(x):
        raise ValueError(f"{owner}: {name} must be a number >= 0, got {v!r}")


class _IterativeParams:
    """The parameters every solver-fitted estimator shares (documented on each class)."""

    def _run(self, objective, params, lipschitz=None, keep_best=True, exact=(), solver_options=None,
             smooth=False):
        """Minimise ``objective`` from ``params`` with this estimator's solver settings; lr "auto" is
        1 / lipschitz (0.01 when the objective has no Lipschitz gradient)."""
        name = type(self).__name__
        check_solver_params(name, self.solver, self.lr, self.max_iter, self.tol, exact, allow_auto=True)
        lr = (1.0 / lipschitz if lipschitz else 0.01) if self.lr == "auto" else self.lr
        out, self.n_iter_, self.loss_curve_ = minimise(
            objective, params, solver=self.solver, lr=lr, max_iter=self.max_iter, tol=self.tol,
            lr_policy=self.lr_policy, solver_options=solver_options or self.solver_options, owner=name,
            keep_best=keep_best, n_iter_no_change=None if smooth else N_ITER_NO_CHANGE)
        return out


# ----------------------------------------------------------------------------- classifiers
class _LinearClassifier(ClassifierMixin, _IterativeParams, BaseEstimator):
    """decision_function / predict from coef_ (K or 1, D) and intercept_, labels of any type."""

    def _validate_xy(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__}: needs samples of at least 2 classes, got 1 class "
                             f"({self.classes_[0]!r})")
        return X, yi

    def _set_coef(self, W: np.ndarray) -> None:
        """W (K, D + fit_intercept): rows are the per-class weights, the intercept last."""
        if self.fit_intercept:
            self.coef_, self.intercept_ = W[:, :-1].copy(), W[:, -1].copy()
        else:
            self.coef_, self.intercept_ = W.copy(), np.zeros(W.shape[0])

    def decision_function(self, X):
        """Scores (N,) for 2 classes (positive: ``classes_[1]``), (N, K) otherwise."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        s = X @ self.coef_.T + self.intercept_
        return s[:, 0] if s.shape[1] == 1 else s

    def predict(self, X):
        s = self.decision_function(X)
        idx = (s > 0).astype(int) if s.ndim == 1 else s.argmax(axis=1)
        return self.classes_[idx]

    def _ovr_targets(self, yi: np.ndarray) -> np.ndarray:
        """{-1, +1} targets (N, M): one column for 2 classes, one per class (one-vs-rest) otherwise."""
        K = len(self.classes_)
        if K == 2:
            return np.where(yi == 1, 1.0, -1.0)[:, None]
        return np.where(yi[:, None] == np.arange(K)[None, :], 1.0, -1.0)


class Perceptron(_LinearClassifier):
    """Rosenblatt's perceptron: the perceptron criterion minimised by gradient descent.

    Objective (``objectives.perceptron``, per class one-vs-rest):
        L(w) = sum_i max(0, -y_i w^T x_i),  y in {-1, +1};  a gradient step with lr 1 is the batch
        perceptron update w += sum_{misclassified} y_i x_i.
    The start is a small random w (``random_state``): at w = 0 the criterion is 0 and its
    gradient vanishes, the known trivial minimiser. The last iterate is kept (as scikit-learn).

    Args:
        fit_intercept: learn a bias (the last weight, on a column of ones).
        solver: any layerwise solver name (default ``"sgd"``: the perceptron rule).
        lr: learning rate (the criterion is scale-free, so 1 is as good as any).
        max_iter: the most full-batch updates.
        tol: stop when the gradient's largest entry is <= tol (in practice: no sample misclassified).
        lr_policy: a layerwise lr policy name; its arguments go in ``solver_options``.
        solver_options: extra solver arguments (momentum, betas, gamma, ...).
        random_state: seed of the starting weights.

    Attributes:
        coef_ (1 or K, D), intercept_ (1 or K,), classes_, n_iter_, loss_curve_, n_features_in_.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> Perceptron(random_state=0).fit(X[:100], y[:100]).score(X[:100], y[:100])
        1.0
    """

    def __init__(self, *, fit_intercept=True, solver="sgd", lr=1.0, max_iter=1000, tol=1e-3, lr_policy="fixed",
                 solver_options=None, random_state=None):
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.lr_policy = lr_policy
        self.solver_options = solver_options
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.utils import check_random_state

        X, yi = self._validate_xy(X, y)
        Xa = add_intercept_column(X, self.fit_intercept)
        Y = self._ovr_targets(yi)                                             # (N, M)
        rng = check_random_state(self.random_state)
        W0 = 1e-3 * rng.standard_normal((Y.shape[1], Xa.shape[1]))

        def objective(p):
            W = p["W"]
            parts = [ob.perceptron(W[m], Xa, Y[:, m]) for m in range(len(W))]  # one loop step per class
            return sum(v for v, _ in parts), {"W": np.stack([g for _, g in parts])}

        self._set_coef(self._run(objective, {"W": W0}, keep_best=False, smooth=True)["W"])
        return self


class LinearSVC(_LinearClassifier):
    """Linear support vector classifier: the soft-margin SVM in its primal hinge form.

    Objective (``objectives.svm_primal``, one-vs-rest), divided by C N for conditioning (the
    minimiser is the same):
        L(w, b) = 1/2 ||w||^2 + C sum_i max(0, 1 - y_i (w^T x_i + b)).
    Minimised by subgradient descent; the iterate with the lowest objective is kept. Unlike
    liblinear (scikit-learn's LinearSVC), the intercept is not penalised and the loss is the
    plain hinge (scikit-learn's ``loss="hinge"``), not the squared hinge.

    Args:
        C: the inverse regularisation strength.
        fit_intercept, solver, lr, max_iter, tol, lr_policy, solver_options: as ``Perceptron``;
            default solver Adam with lr 0.01 and the ``inv`` policy (gamma 0.01, power 0.5).

    Attributes:
        coef_ (1 or K, D), intercept_, classes_, n_iter_, loss_curve_ (summed over classes).
    """

    def __init__(self, *, C=1.0, fit_intercept=True, solver="adam", lr=0.01, max_iter=1000, tol=1e-6,
                 lr_policy="inv", solver_options=None):
        self.C = C
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.lr_policy = lr_policy
        self.solver_options = solver_options

    def fit(self, X, y):
        _check_positive("LinearSVC", "C", self.C)
        X, yi = self._validate_xy(X, y)
        Y = self._ovr_targets(yi)
        N, D = X.shape
        M = Y.shape[1]
        scale = 1.0 / (self.C * N)

        def objective(p):
            w, b = p["w"], p["b"] * self.fit_intercept
            parts = [ob.svm_primal(w[m], b[m], X, Y[:, m], self.C) for m in range(M)]
            gb = np.array([g[1] for _, g in parts]) * self.fit_intercept
            return scale * sum(v for v, _ in parts), {"w": scale * np.stack([g[0] for _, g in parts]),
                                                      "b": scale * gb}

        opts = self.solver_options
        if self.lr_policy == "inv" and not opts:
            opts = {"gamma": 0.01, "power": 0.5}
        out = self._run(objective, {"w": np.zeros((M, D)), "b": np.zeros(M)}, solver_options=opts)
        self.coef_, self.intercept_ = out["w"], out["b"] * self.fit_intercept
        return self


class LogisticRegression(_LinearClassifier):
    """Logistic regression, binary (sigmoid) or multinomial (softmax), L2-regularised.

    Objectives (``objectives.logistic_regression`` / ``softmax_regression``):
        L(w) = -1/N sum_i log p(y_i | x_i) + l2/2 ||w||^2,  l2 = 1 / (C N)
    which is scikit-learn's LogisticRegression(C) objective divided by C N (same minimiser); the
    intercept is not penalised (the l2 term's share of it is taken back out of value and gradient).
    Default: Nesterov momentum with lr = 1 / L, L the gradient's Lipschitz bound
    (1/4 or 1/2) ||X||_2^2 / N + l2.

    Args:
        C: the inverse regularisation strength.
        fit_intercept, solver, lr ("auto" or a number), max_iter, tol, lr_policy, solver_options:
            as ``Perceptron``.

    Attributes:
        coef_ (1 or K, D), intercept_, classes_, n_iter_, loss_curve_.
    """

    def __init__(self, *, C=1.0, fit_intercept=True, solver="nesterov", lr="auto", max_iter=1000, tol=1e-6,
                 lr_policy="fixed", solver_options=None):
        self.C = C
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.lr_policy = lr_policy
        self.solver_options = solver_options

    def fit(self, X, y):
        _check_positive("LogisticRegression", "C", self.C)
        X, yi = self._validate_xy(X, y)
        Xa = add_intercept_column(X, self.fit_intercept)
        N = len(yi)
        K = len(self.classes_)
        l2 = 1.0 / (self.C * N)
        fi = self.fit_intercept

        if K == 2:
            t = yi.astype(np.float64)

            def objective(p):
                w = p["W"][0]
                v, g = ob.logistic_regression(w, Xa, t, l2)
                if fi:                                   # the intercept is not penalised
                    v, g = v - 0.5 * l2 * w[-1] ** 2, g.copy()
                    g[-1] -= l2 * w[-1]
                return v, {"W": g[None]}
            M, curv = 1, 0.25
        else:
            def objective(p):
                W = p["W"]
                v, g = ob.softmax_regression(W, Xa, yi, l2)
                if fi:
                    v, g = v - 0.5 * l2 * (W[:, -1] ** 2).sum(), g.copy()
                    g[:, -1] -= l2 * W[:, -1]
                return v, {"W": g}
            M, curv = K, 0.5
        L = curv * np.linalg.norm(Xa, 2) ** 2 / N + l2
        self._set_coef(self._run(objective, {"W": np.zeros((M, Xa.shape[1]))}, lipschitz=L, smooth=True)["W"])
        return self

    def predict_proba(self, X):
        """Class probabilities (N, K): sigmoid for 2 classes, softmax otherwise."""
        s = self.decision_function(X)
        if s.ndim == 1:
            p1 = 0.5 * (1 + np.tanh(0.5 * s))            # sigmoid without overflow
            return np.stack([1 - p1, p1], axis=1)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


# ----------------------------------------------------------------------------- regressors
class _LinearRegressor(RegressorMixin, _IterativeParams, BaseEstimator):
    """Centre X and y (the intercept), solve for w, predict X w + b."""

    _default_solver = "closed_form"

    def _penalties(self, N: int) -> tuple[float, float]:
        return 0.0, 0.0

    def _exact(self, Xc, yc):
        raise NotImplementedError

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        name = type(self).__name__
        if self.fit_intercept:
            xm, ym = X.mean(axis=0), y.mean()
        else:
            xm, ym = np.zeros(X.shape[1]), 0.0
        Xc, yc = X - xm, y - ym
        l2, l1 = self._penalties(len(y))
        if self.solver == self._default_solver:
            check_solver_params(name, self.solver, self.lr, self.max_iter, self.tol, (self._default_solver,),
                                allow_auto=True)
            self.n_iter_ = 1                             # one exact solve (Lasso's FISTA sets its own count)
            w = self._exact(Xc, yc)
        else:
            def objective(p):
                v, g = ob.least_squares(p["w"], Xc, yc, l2, l1)
                return v, {"w": g}
            L = np.linalg.norm(Xc, 2) ** 2 / len(y) + l2
            w = self._run(objective, {"w": np.zeros(X.shape[1])}, lipschitz=L, exact=(self._default_solver,),
                          smooth=l1 == 0)["w"]
        self.coef_ = w
        self.intercept_ = float(ym - xm @ w)
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_ + self.intercept_


class LinearRegression(_LinearRegressor):
    """Ordinary least squares.

    Objective (``objectives.least_squares``): L(w) = 1/(2N) ||X w - y||^2 (X, y centred for the
    intercept). Default ``solver="closed_form"``: the minimum-norm solution of the normal equations
    by ``scipy.linalg.lstsq`` (as scikit-learn); any layerwise solver minimises L instead.

    Args:
        fit_intercept: centre X and y and learn b = mean(y) - mean(X) w.
        solver: ``"closed_form"`` or a layerwise solver name; lr ("auto" = 1/L), max_iter, tol,
            lr_policy, solver_options apply to the latter.

    Attributes:
        coef_ (D,), intercept_ (float), n_features_in_ (and n_iter_, loss_curve_ for a solver).
    """

    def __init__(self, *, fit_intercept=True, solver="closed_form", lr="auto", max_iter=1000, tol=1e-10,
                 lr_policy="fixed", solver_options=None):
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.lr_policy = lr_policy
        self.solver_options = solver_options

    def _exact(self, Xc, yc):
        return linalg.lstsq(Xc, yc)[0]


class Ridge(_LinearRegressor):
    """Ridge regression: least squares with an L2 penalty.

    scikit-learn's objective ||y - X w||^2 + alpha ||w||^2 is, divided by 2N,
    ``objectives.least_squares`` with l2 = alpha / N. Default ``solver="closed_form"``:
    ``objectives.ridge_solution``, (X^T X / N + l2 I) w = X^T y / N.

    Args:
        alpha: the L2 strength (scikit-learn's).
        fit_intercept, solver, lr, max_iter, tol, lr_policy, solver_options: as ``LinearRegression``.
    """

    def __init__(self, alpha=1.0, *, fit_intercept=True, solver="closed_form", lr="auto", max_iter=1000,
                 tol=1e-10, lr_policy="fixed", solver_options=None):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.lr_policy = lr_policy
        self.solver_options = solver_options

    def _penalties(self, N):
        _check_nonneg("Ridge", "alpha", self.alpha)
        return self.alpha / N, 0.0

    def _exact(self, Xc, yc):
        l2 = self.alpha / len(yc)
        if l2 == 0:
            return linalg.lstsq(Xc, yc)[0]
        return ob.ridge_solution(Xc, yc, l2)


class Lasso(_LinearRegressor):
    """LASSO: least squares with an L1 penalty.

    Objective (scikit-learn's, ``objectives.least_squares`` with l1 = alpha):
        L(w) = 1/(2N) ||X w - y||^2 + alpha ||w||_1.
    Default ``solver="fista"``: accelerated proximal gradient (``objectives.lasso_ista``), step
    1/L, soft-thresholding, which gives exact zeros. A layerwise solver runs subgradient descent
    instead (small weights hover around 0 rather than being exactly 0).

    Args:
        alpha: the L1 strength.
        fit_intercept, solver, lr, max_iter, tol, lr_policy, solver_options: as ``LinearRegression``
            (FISTA stops when no weight moves by more than tol).
    """

    _default_solver = "fista"

    def __init__(self, alpha=1.0, *, fit_intercept=True, solver="fista", lr="auto", max_iter=10000, tol=1e-10,
                 lr_policy="fixed", solver_options=None):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.lr_policy = lr_policy
        self.solver_options = solver_options

    def _penalties(self, N):
        _check_nonneg("Lasso", "alpha", self.alpha)
        return 0.0, float(self.alpha)

    def _exact(self, Xc, yc):
        if not np.any(Xc):                               # constant features: the solution is w = 0
            self.n_iter_ = 1
            return np.zeros(Xc.shape[1])
        w, self.n_iter_ = ob.lasso_ista(Xc, yc, float(self.alpha), n_iter=self.max_iter, tol=self.tol,
                                        return_n_iter=True)
        if self.n_iter_ >= self.max_iter:
            warnings.warn(f"Lasso: FISTA did not converge in max_iter={self.max_iter} iterations (tol={self.tol:g}); "
                          "increase max_iter", ConvergenceWarning, stacklevel=3)
        return w
