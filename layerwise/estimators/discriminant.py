"""Fisher's linear discriminant analysis: directions that maximise between- over within-class spread."""
from __future__ import annotations

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, ClassifierMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import objectives as ob
from ..objectives.supervised import _scatter
from ._base import check_solver_params, minimise

__all__ = ["LinearDiscriminantAnalysis"]


class LinearDiscriminantAnalysis(ClassNamePrefixFeaturesOutMixin, ClassifierMixin, TransformerMixin, BaseEstimator):
    """Fisher's LDA: ``fit``, ``transform`` (project on the discriminant directions), ``predict``.

    Objective (``objectives.fisher_ratio``, MAXIMISED):
        J(w) = (w^T S_b w) / (w^T S_w w),  S_b / S_w the between / within-class scatter.
    Default ``solver="eigen"``: the generalised eigenproblem S_b w = J S_w w
    (``objectives.lda_directions``), r = min(K - 1, D) directions, largest J first. Any layerwise
    solver instead ascends J one direction at a time, each new direction kept S_w-orthogonal to
    the previous ones (its gradient projected), which reaches the same directions up to scale.

    Directions are scaled so that w^T (S_w / N) w = 1: in the projected space the within-class
    covariance is the identity, so ``predict`` is the nearest class mean there with log-prior
    bonus, decision_k(x) = z^T m_k - ||m_k||^2 / 2 + log pi_k, z = W^T (x - xbar) — the
    Gaussian shared-covariance classifier (scikit-learn's), exact because the class means differ
    only inside the span of the r directions.

    Args:
        n_components: directions kept by ``transform`` (default r); ``predict`` always uses all r.
        solver: ``"eigen"`` or a layerwise solver name (then lr, max_iter, tol, lr_policy,
            solver_options, random_state apply: the start of each ascent is random).

    Attributes:
        scalings_ (D, r), explained_variance_ratio_ (r,) (the share of each J), means_ (K, D),
        priors_ (K,), xbar_ (D,), coef_, intercept_, classes_, n_iter_.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> lda = LinearDiscriminantAnalysis(n_components=2).fit(X, y)
        >>> lda.transform(X).shape, round(lda.score(X, y), 2)
        ((150, 2), 0.98)
    """

    def __init__(self, n_components=None, *, solver="eigen", lr=0.1, max_iter=500, tol=1e-8, lr_policy="fixed",
                 solver_options=None, random_state=None):
        self.n_components = n_components
        self.solver = solver
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.lr_policy = lr_policy
        self.solver_options = solver_options
        self.random_state = random_state

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        N, D = X.shape
        K = len(self.classes_)
        if K < 2:
            raise ValueError(f"LinearDiscriminantAnalysis: needs at least 2 classes, got 1 class "
                             f"({self.classes_[0]!r})")
        if N <= K:
            raise ValueError(f"LinearDiscriminantAnalysis: needs more samples than classes to estimate the "
                             f"within-class scatter, got n_samples={N} for {K} classes")
        r = min(K - 1, D)
        nc = r if self.n_components is None else self.n_components
        if isinstance(nc, bool) or not isinstance(nc, (int, np.integer)) or not 1 <= nc <= r:
            raise ValueError(f"LinearDiscriminantAnalysis: n_components must be an integer in [1, "
                             f"min(n_classes - 1, n_features) = {r}], got {self.n_components!r}")
        try:
            if self.solver == "eigen":
                check_solver_params("LinearDiscriminantAnalysis", self.solver, self.lr, self.max_iter, self.tol,
                                    ("eigen",))
                W = ob.lda_directions(X, yi, k=r)
                self.n_iter_ = 1
            else:
                W = self._ascend(X, yi, r)
        except linalg.LinAlgError as e:
            raise ValueError("LinearDiscriminantAnalysis: the within-class scatter S_w is singular (constant or "
                             f"collinear features: {e}); drop or combine those features (e.g. PCA first)") from None
        W = W * np.sqrt(N)                                               # w^T (S_w / N) w = 1
        J = np.array([ob.fisher_ratio(W[:, j], X, yi)[0] for j in range(r)])   # one per direction
        self.scalings_ = W
        self.explained_variance_ratio_ = J / J.sum() if J.sum() > 0 else np.full(r, 1.0 / r)
        self._max_components = nc
        self.priors_ = np.bincount(yi, minlength=K) / N
        self.means_ = np.stack([X[yi == k].mean(axis=0) for k in range(K)])
        self.xbar_ = self.priors_ @ self.means_
        M = (self.means_ - self.xbar_) @ W                               # (K, r) class means, projected
        coef = M @ W.T                                                   # (K, D)
        icpt = -0.5 * (M * M).sum(axis=1) + np.log(self.priors_) - coef @ self.xbar_
        if K == 2:
            coef, icpt = coef[1:] - coef[:1], icpt[1:] - icpt[:1]
        self.coef_, self.intercept_ = coef, icpt
        self._n_features_out = nc
        return self

    def _ascend(self, X, yi, r):
        """Gradient ascent on J for r S_w-orthogonal directions (w = P u, P = I - V V^T S_w)."""
        Sb, Sw = _scatter(X, yi)
        D = X.shape[1]
        rng = check_random_state(self.random_state)
        V = np.zeros((D, 0))
        n_iter = 0
        check_solver_params("LinearDiscriminantAnalysis", self.solver, self.lr, self.max_iter, self.tol, ("eigen",))
        for _ in range(r):
            P = np.eye(D) - V @ V.T @ Sw

            def objective(p, P=P):
                J, g = ob.fisher_ratio(P @ p["u"], X, yi)
                return -J, {"u": -(P.T @ g)}
            u0 = P @ rng.standard_normal(D)
            out, it, _ = minimise(objective, {"u": u0 / np.sqrt(u0 @ Sw @ u0)}, solver=self.solver, lr=self.lr,
                                  max_iter=self.max_iter, tol=self.tol, lr_policy=self.lr_policy,
                                  solver_options=self.solver_options, owner="LinearDiscriminantAnalysis",
                                  n_iter_no_change=None)
            w = P @ out["u"]
            V = np.hstack([V, (w / np.sqrt(w @ Sw @ w))[:, None]])
            n_iter += it
        self.n_iter_ = n_iter
        return V

    def transform(self, X):
        """Project on the first ``n_components`` discriminant directions: (X - xbar_) W."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return (X - self.xbar_) @ self.scalings_[:, :self._max_components]

    def decision_function(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        s = X @ self.coef_.T + self.intercept_
        return s[:, 0] if s.shape[1] == 1 else s

    def predict(self, X):
        s = self.decision_function(X)
        return self.classes_[(s > 0).astype(int) if s.ndim == 1 else s.argmax(axis=1)]

    def predict_proba(self, X):
        """Posterior class probabilities under the shared-covariance Gaussian model (N, K)."""
        s = self.decision_function(X)
        if s.ndim == 1:
            s = np.stack([np.zeros_like(s), s], axis=1)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
