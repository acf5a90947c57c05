"""PCA (eigen-decomposition, or a solver on the reconstruction error) and Isomap (shortest paths and
classical MDS, or a solver on the stress)."""
from __future__ import annotations

import numbers
import warnings

import numpy as np
from scipy.sparse.csgraph import connected_components, shortest_path
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import objectives as ob
from ._base import check_solver_params, minimise

__all__ = ["PCA", "Isomap"]


def _flip_signs(V: np.ndarray) -> np.ndarray:
    """Make the largest-magnitude entry of each row positive (scikit-learn's deterministic sign)."""
    s = np.sign(V[np.arange(len(V)), np.abs(V).argmax(axis=1)])
    return V * np.where(s == 0, 1, s)[:, None]


def _check_solver_common(owner, est, exact):
    check_solver_params(owner, est.solver, est.lr, est.max_iter, est.tol, (exact,))


class PCA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Principal component analysis.

    Objective (``objectives.pca_reconstruction``): L(W) = 1/N sum_i ||x~_i - W W^T x~_i||^2 over
    centred data, minimised by the top-k eigenvectors of the covariance. Default
    ``solver="eigh"``: that eigen-decomposition (``objectives.pca_basis``). Any layerwise solver
    descends L from a random W (``random_state``) instead; the subspace it finds is then split
    into ordered components by a k x k eigen-problem (Rayleigh-Ritz), so both paths return
    the same components when the solver has converged.

    Args:
        n_components: an int k, a float in (0, 1) (the smallest k explaining that share of the
            variance, eigh only) or None (min(N, D)).
        solver, lr, max_iter, tol, lr_policy, solver_options, random_state: the solver path.

    Attributes:
        components_ (k, D) (largest-magnitude entry of each positive), explained_variance_ (k,)
        (eigenvalues of the covariance with N - 1), explained_variance_ratio_, singular_values_,
        mean_, n_components_, noise_variance_, n_iter_.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, _ = load_iris(return_X_y=True)
        >>> p = PCA(n_components=2).fit(X)
        >>> p.transform(X).shape, p.explained_variance_ratio_.round(3)
        ((150, 2), array([0.925, 0.053]))
    """

    def __init__(self, n_components=None, *, solver="eigh", lr=0.01, max_iter=1000, tol=1e-10, lr_policy="fixed",
                 solver_options=None, random_state=None):
        self.n_components = n_components
        self.solver = solver
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.lr_policy = lr_policy
        self.solver_options = solver_options
        self.random_state = random_state

    def fit(self, X, y=None):
        self._fit(X)
        return self

    def fit_transform(self, X, y=None):
        return self._fit(X) @ self.components_.T

    def _fit(self, X):
        X = validate_data(self, X, dtype=np.float64)
        N, D = X.shape
        if N < 2:
            raise ValueError(f"PCA: needs at least 2 samples to estimate a covariance, got n_samples={N}")
        _check_solver_common("PCA", self, "eigh")
        kmax = min(N, D)
        nc = kmax if self.n_components is None else self.n_components
        frac = isinstance(nc, numbers.Real) and not isinstance(nc, numbers.Integral) and 0 < nc < 1
        if not frac and (isinstance(nc, bool) or not isinstance(nc, numbers.Integral) or not 1 <= nc <= kmax):
            raise ValueError(f"PCA: n_components must be an integer in [1, min(n_samples, n_features) = {kmax}], "
                             f"a float in (0, 1) or None, got {self.n_components!r}")
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        total_var = float((Xc * Xc).sum() / (N - 1))
        if self.solver == "eigh":
            W = ob.pca_basis(X, kmax if frac else nc)                  # (D, k)
            self.n_iter_ = 1
        else:
            if frac:
                raise ValueError("PCA: a fractional n_components needs solver='eigh' (all eigenvalues)")
            W = self._descend(X, nc)
        var = ((Xc @ W) ** 2).sum(axis=0) / (N - 1)                    # the eigenvalues, from the projections
        if frac:
            ratio = np.cumsum(var) / total_var if total_var > 0 else np.ones(len(var))
            nc = int(np.searchsorted(ratio, nc, side="right") + 1)
            nc = min(nc, kmax)
            W, var = W[:, :nc], var[:nc]
        self.components_ = _flip_signs(W.T)
        self.n_components_ = int(nc)
        self.explained_variance_ = var
        self.explained_variance_ratio_ = var / total_var if total_var > 0 else np.zeros_like(var)
        self.singular_values_ = np.sqrt(var * (N - 1))
        rest = total_var - var.sum()
        self.noise_variance_ = max(rest, 0.0) / (min(N, D) - nc) if nc < min(N, D) else 0.0
        self._n_features_out = self.n_components_
        return Xc

    def _descend(self, X, k):
        rng = check_random_state(self.random_state)
        W0 = np.linalg.qr(rng.standard_normal((X.shape[1], k)))[0]

        def objective(p):
            v, g = ob.pca_reconstruction(p["W"], X)
            return v, {"W": g}
        out, self.n_iter_, _ = minimise(objective, {"W": W0}, solver=self.solver, lr=self.lr, max_iter=self.max_iter,
                                        tol=self.tol, lr_policy=self.lr_policy, solver_options=self.solver_options,
                                        owner="PCA", n_iter_no_change=None)
        Q = np.linalg.qr(out["W"])[0]                                   # an orthonormal basis of the subspace
        Xc = X - X.mean(axis=0)
        vals, R = np.linalg.eigh(Q.T @ (Xc.T @ Xc) @ Q)                 # Rayleigh-Ritz: order inside it
        return Q @ R[:, ::-1]

    def transform(self, X):
        """Coordinates on the components: (X - mean_) components_^T."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return (X - self.mean_) @ self.components_.T

    def inverse_transform(self, Z):
        """Back to feature space: Z components_ + mean_."""
        check_is_fitted(self)
        return np.asarray(Z, dtype=np.float64) @ self.components_ + self.mean_


def _connect_components(X: np.ndarray, G, labels: np.ndarray, n: int):
    """Join a disconnected k-NN graph by the shortest edge between every pair of components
    (scikit-learn's completion), so geodesic distances stay finite. Loops over components only."""
    G = G.tolil()
    for a in range(n):
        ia = np.flatnonzero(labels == a)
        for b in range(a + 1, n):
            ib = np.flatnonzero(labels == b)
            d = np.sqrt(np.maximum(ob.unsupervised._sq_dists(X[ia], X[ib]), 0))
            i, j = np.unravel_index(d.argmin(), d.shape)
            G[ia[i], ib[j]] = G[ib[j], ia[i]] = d[i, j]
    return G.tocsr()


class Isomap(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Isomap: an embedding that keeps geodesic (shortest-path) distances on the k-NN graph.

    Objective (``objectives.isomap_stress``): L(Y) = sum_{i<j} (D_ij - ||y_i - y_j||)^2, D the
    geodesic distances (``objectives.geodesic_distances``). Default ``solver="mds"``: classical
    MDS, the top eigenvectors of K = -1/2 H D^2 H (H the centring matrix) scaled by sqrt of their
    eigenvalues (scikit-learn's). Any layerwise solver descends the stress from the MDS
    start with small noise instead. A disconnected graph is completed by the shortest edges
    between components, with a warning (as scikit-learn).

    ``transform`` of new points: geodesics through their k nearest training points, then the
    MDS projection of the centred kernel row (exact for the training points themselves).

    Args:
        n_neighbors: k of the k-NN graph.
        n_components: the embedding's dimension.
        solver, lr, max_iter, tol, lr_policy, solver_options, random_state: the solver path.

    Attributes:
        embedding_ (N, n_components), dist_matrix_ (N, N), nbrs_ (a fitted NearestNeighbors),
        n_iter_.

    Example:
        >>> from sklearn.datasets import load_digits
        >>> X, _ = load_digits(return_X_y=True)
        >>> Isomap(n_neighbors=10).fit_transform(X[:200]).shape
        (200, 2)
    """

    def __init__(self, *, n_neighbors=5, n_components=2, solver="mds", lr=0.001, max_iter=300, tol=1e-8,
                 lr_policy="fixed", solver_options=None, random_state=None):
        self.n_neighbors = n_neighbors
        self.n_components = n_components
        self.solver = solver
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.lr_policy = lr_policy
        self.solver_options = solver_options
        self.random_state = random_state

    def _geodesics(self, X):
        from sklearn.neighbors import NearestNeighbors, kneighbors_graph

        self.nbrs_ = NearestNeighbors(n_neighbors=self.n_neighbors).fit(X)
        G = kneighbors_graph(self.nbrs_, self.n_neighbors, mode="distance")
        n, labels = connected_components(G, directed=False)
        if n == 1:
            return ob.geodesic_distances(X, self.n_neighbors)
        warnings.warn(f"Isomap: the {self.n_neighbors}-nearest-neighbour graph has {n} connected components; "
                      "they are joined by their shortest edges. Increase n_neighbors to avoid this.", stacklevel=3)
        return shortest_path(_connect_components(X, G, labels, n), method="D", directed=False)

    def fit(self, X, y=None):
        self._fit(X)
        return self

    def fit_transform(self, X, y=None):
        return self._fit(X).copy()

    def _fit(self, X):
        X = validate_data(self, X, dtype=np.float64)
        N = X.shape[0]
        k, nc = self.n_neighbors, self.n_components
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k < N:
            raise ValueError(f"Isomap: n_neighbors must be an integer >= 1 and < n_samples={N} (a point is not its "
                             f"own neighbour), got n_neighbors={k!r}")
        if isinstance(nc, bool) or not isinstance(nc, numbers.Integral) or not 1 <= nc <= N:
            raise ValueError(f"Isomap: n_components must be an integer in [1, n_samples = {N}], got {nc!r}")
        _check_solver_common("Isomap", self, "mds")
        D = self._geodesics(X)
        self.dist_matrix_ = D
        K = -0.5 * D ** 2
        self._col_mean, self._all_mean = K.mean(axis=0), K.mean()
        Kc = K - self._col_mean[None, :] - self._col_mean[:, None] + self._all_mean
        vals, vecs = np.linalg.eigh(Kc)
        vals, vecs = vals[::-1][:nc], vecs[:, ::-1][:, :nc]
        vecs = _flip_signs(vecs.T).T
        self._lambdas = np.maximum(vals, 1e-12 * max(vals[0], 1e-300))
        self._alphas = vecs
        Y = vecs * np.sqrt(np.maximum(vals, 0))
        self.n_iter_ = 1
        if self.solver != "mds":
            rng = check_random_state(self.random_state)
            Y0 = Y + 1e-3 * (np.abs(Y).max() + 1) * rng.standard_normal(Y.shape)

            def objective(p):
                v, g = ob.isomap_stress(p["Y"], D)
                return v, {"Y": g}
            out, self.n_iter_, _ = minimise(objective, {"Y": Y0}, solver=self.solver, lr=self.lr,
                                            max_iter=self.max_iter, tol=self.tol, lr_policy=self.lr_policy,
                                            solver_options=self.solver_options, owner="Isomap",
                                            n_iter_no_change=None)
            Y = out["Y"]
        self.embedding_ = Y
        self._n_features_out = nc
        return Y

    def transform(self, X):
        """Embed new points: G_x = min_j (||x - x_j|| + D_j.) over the k nearest training points x_j,
        then the centred kernel row -1/2 G_x^2 projected on the MDS eigenvectors / sqrt(eigenvalues)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        dist, ind = self.nbrs_.kneighbors(X, return_distance=True)       # (M, k)
        G = (dist[:, :, None] + self.dist_matrix_[ind]).min(axis=1)      # (M, N) geodesics through neighbours
        Kx = -0.5 * G ** 2
        Kc = Kx - self._col_mean[None, :] - Kx.mean(axis=1, keepdims=True) + self._all_mean
        return Kc @ self._alphas / np.sqrt(self._lambdas)
