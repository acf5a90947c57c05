"""k-means: Lloyd's alternation of assignment and mean (or any layerwise solver on the objective)."""
from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import objectives as ob
from ..objectives.unsupervised import _sq_dists
from ._base import check_solver_params, minimise

__all__ = ["KMeans", "kmeans_plusplus"]


def kmeans_plusplus(X: np.ndarray, k: int, rng: np.random.RandomState) -> np.ndarray:
    """k-means++ seeding (Arthur and Vassilvitskii): the first centre uniformly at random, each next
    one a sample drawn with probability proportional to its squared distance to the nearest centre."""
    C = [X[rng.randint(len(X))]]
    d = _sq_dists(X, np.array(C))[:, 0]
    for _ in range(1, k):
        tot = d.sum()
        i = rng.randint(len(X)) if tot <= 0 else int(np.searchsorted(np.cumsum(d), rng.uniform(0, tot)))
        C.append(X[min(i, len(X) - 1)])
        d = np.minimum(d, _sq_dists(X, C[-1][None])[:, 0])
    return np.array(C)


class KMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """k-means clustering.

    Objective (``objectives.kmeans``, scikit-learn's ``inertia_``): L(C) = sum_i min_j ||x_i - c_j||^2,
    dL/dc_j = 2 n_j (c_j - mean S_j). Default ``solver="lloyd"``: alternate assignment and mean,
    which is the gradient step with per-centre step 1 / (2 n_j); it stops when the centres move
    by at most tol * (mean feature variance) in squared Frobenius norm (scikit-learn's rule). Any
    layerwise solver descends L in C instead (for max_iter steps or until the gradient <= tol).
    An empty cluster's centre is moved to the sample farthest from its centre.

    Args:
        n_clusters: k.
        init: ``"k-means++"``, ``"random"`` (k distinct samples) or an array (k, D) of centres.
        n_init: runs from different seeds; the one with the lowest inertia is kept.
        max_iter, tol: see above. solver, lr, lr_policy, solver_options: for the solver path.
        random_state: seed of the initialisation.

    Attributes:
        cluster_centers_ (k, D), labels_ (N,), inertia_, n_iter_.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, _ = load_iris(return_X_y=True)
        >>> km = KMeans(n_clusters=3, random_state=0).fit(X)
        >>> km.cluster_centers_.shape, round(km.inertia_, 1)
        ((3, 4), 78.9)
    """

    def __init__(self, n_clusters=8, *, init="k-means++", n_init=1, max_iter=300, tol=1e-4, solver="lloyd",
                 lr=0.01, lr_policy="fixed", solver_options=None, random_state=None):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver
        self.lr = lr
        self.lr_policy = lr_policy
        self.solver_options = solver_options
        self.random_state = random_state

    def _check(self, X):
        k = self.n_clusters
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"KMeans: n_clusters must be an integer >= 1, got {k!r}")
        if len(X) < k:
            raise ValueError(f"KMeans: n_samples={len(X)} should be >= n_clusters={k}")
        if isinstance(self.n_init, bool) or not isinstance(self.n_init, numbers.Integral) or self.n_init < 1:
            raise ValueError(f"KMeans: n_init must be an integer >= 1, got {self.n_init!r}")
        check_solver_params("KMeans", self.solver, self.lr, self.max_iter, self.tol, ("lloyd",))
        if isinstance(self.init, str):
            if self.init not in ("k-means++", "random"):
                raise ValueError(f"KMeans: init must be 'k-means++', 'random' or an array of centres, "
                                 f"got {self.init!r}")
        else:
            C = np.asarray(self.init, dtype=np.float64)
            if C.shape != (k, X.shape[1]):
                raise ValueError(f"KMeans: init has shape {C.shape}, expected (n_clusters, n_features) = "
                                 f"{(k, X.shape[1])}")

    def _init_centres(self, X, rng):
        if not isinstance(self.init, str):
            return np.array(self.init, dtype=np.float64)
        if self.init == "random":
            return X[rng.choice(len(X), self.n_clusters, replace=False)].copy()
        return kmeans_plusplus(X, self.n_clusters, rng)

    def _lloyd(self, X, C):
        tol = self.tol * float(np.mean(np.var(X, axis=0)))
        for it in range(1, self.max_iter + 1):
            labels = _sq_dists(X, C).argmin(axis=1)
            n = np.bincount(labels, minlength=len(C)).astype(np.float64)
            _, grad = ob.kmeans(C, X)
            C_new = C - grad / (2 * np.maximum(n, 1))[:, None]       # = the mean of each cluster
            for j in np.flatnonzero(n == 0):                          # empty: relocate (loop over clusters)
                far = int(((X - C_new[labels]) ** 2).sum(1).argmax())
                C_new[j] = X[far]
                labels[far] = j
            shift = float(((C_new - C) ** 2).sum())
            C = C_new
            if shift <= tol:
                return C, it, True
        return C, self.max_iter, False

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        self._check(X)
        rng = check_random_state(self.random_state)
        n_init = 1 if not isinstance(self.init, str) else self.n_init
        best = None
        for _ in range(n_init):
            C0 = self._init_centres(X, rng)
            if self.solver == "lloyd":
                C, it, ok = self._lloyd(X, C0)
                if not ok:
                    warnings.warn(f"KMeans: Lloyd did not converge in max_iter={self.max_iter} iterations; "
                                  "increase max_iter", ConvergenceWarning, stacklevel=2)
            else:
                def objective(p):
                    v, g = ob.kmeans(p["C"], X)
                    return v, {"C": g}
                out, it, _ = minimise(objective, {"C": C0}, solver=self.solver, lr=self.lr, max_iter=self.max_iter,
                                      tol=self.tol, lr_policy=self.lr_policy, solver_options=self.solver_options,
                                      owner="KMeans", n_iter_no_change=None)
                C = out["C"]
            inertia = ob.kmeans(C, X)[0]
            if best is None or inertia < best[1]:
                best = (C, inertia, it)
        self.cluster_centers_, self.inertia_, self.n_iter_ = best
        self.labels_ = _sq_dists(X, self.cluster_centers_).argmin(axis=1)   # consistent with the centres
        self._n_features_out = self.n_clusters
        return self

    def predict(self, X):
        """The index of the nearest centre."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return _sq_dists(X, self.cluster_centers_).argmin(axis=1)

    def transform(self, X):
        """Euclidean distances to every centre (N, k)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.sqrt(_sq_dists(X, self.cluster_centers_))

    def score(self, X, y=None):
        """Minus the k-means objective of X (higher is better, as scikit-learn's)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return -ob.kmeans(self.cluster_centers_, X)[0]
