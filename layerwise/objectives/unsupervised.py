"""Unsupervised objectives: k-means, PCA reconstruction, autoencoder reconstruction and
Isomap's stress on geodesic distances. Each returns ``(value, gradient)`` (minimised).
"""
from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import shortest_path

__all__ = ["kmeans", "pca_reconstruction", "pca_basis", "autoencoder", "geodesic_distances", "isomap_stress"]


def _sq_dists(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    return np.maximum((X * X).sum(1)[:, None] - 2 * X @ C.T + (C * C).sum(1)[None, :], 0)


def kmeans(C: np.ndarray, X: np.ndarray):
    """k-means' within-cluster sum of squares (scikit-learn's ``inertia_``).

    L(C) = sum_i min_j ||x_i - c_j||^2;  dL/dc_j = 2 sum_{i in S_j} (c_j - x_i),
    S_j the samples nearest to c_j. The gradient vanishes at a Lloyd fixed point (c_j = mean S_j).
    C (K, D) centres, X (N, D).
    """
    d = _sq_dists(X, C)
    a = d.argmin(axis=1)
    K = C.shape[0]
    onehot = np.eye(K)[a]                                      # (N, K)
    diff = X - C[a]
    grad = -2 * onehot.T @ diff
    return float((diff * diff).sum()), grad


def pca_basis(X: np.ndarray, k: int) -> np.ndarray:
    """The top-k principal directions (D, k): eigenvectors of the covariance, largest first."""
    Xc = X - X.mean(axis=0)
    vals, vecs = np.linalg.eigh(Xc.T @ Xc)
    return vecs[:, ::-1][:, :k]


def pca_reconstruction(W: np.ndarray, X: np.ndarray):
    """PCA's reconstruction error of centred data projected on the columns of W (D, k).

    x~_i = x_i - m;  L(W) = 1/N sum_i ||x~_i - W W^T x~_i||^2 (W orthonormal: e_j^T e_l = d_jl);
    with R = X~ - X~ W W^T:  dL/dW = -2/N (X~^T R W + R^T X~ W).
    At the top-k eigenvectors L equals the sum of the discarded eigenvalues of the (1/N) covariance.
    """
    Xc = X - X.mean(axis=0)
    R = Xc - Xc @ W @ W.T
    N = X.shape[0]
    return float((R * R).sum() / N), -2.0 / N * (Xc.T @ R @ W + R.T @ Xc @ W)


def autoencoder(params: dict, X: np.ndarray, activation: str = "sigmoid"):
    """Reconstruction error of a one-hidden-layer autoencoder; the target is the input itself.

    h = f(W1 x + b1), x^ = W2 h + b2,  L = 1/(2N) sum_i ||x^_i - x_i||^2.
    Backward: E = (X^ - X)/N;  dW2 = E^T H, db2 = sum E;  G = E W2 * f'(.);  dW1 = G^T X, db1 = sum G.
    params: W1 (h, D), b1 (h,), W2 (D, h), b2 (D,);  activation 'sigmoid', 'tanh' or 'identity'
    (the identity case is linear PCA: its minimum is the PCA reconstruction error / 2).
    Returns (value, dict of gradients with the params' keys).
    """
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    A = X @ W1.T + b1
    if activation == "sigmoid":
        H = 1 / (1 + np.exp(-A))
        dH = H * (1 - H)
    elif activation == "tanh":
        H = np.tanh(A)
        dH = 1 - H * H
    elif activation == "identity":
        H, dH = A, np.ones_like(A)
    else:
        raise ValueError(f"autoencoder: activation must be 'sigmoid', 'tanh' or 'identity', got {activation!r}")
    Xh = H @ W2.T + b2
    N = X.shape[0]
    E = (Xh - X) / N
    G = (E @ W2) * dH
    grads = {"W1": G.T @ X, "b1": G.sum(0), "W2": E.T @ H, "b2": E.sum(0)}
    return float(0.5 * ((Xh - X) ** 2).sum() / N), grads


def geodesic_distances(X: np.ndarray, n_neighbors: int = 5) -> np.ndarray:
    """Isomap's geodesic distances: shortest paths in the k-nearest-neighbour graph (N, N)."""
    from sklearn.neighbors import kneighbors_graph

    G = kneighbors_graph(X, n_neighbors, mode="distance")
    D = shortest_path(G, method="D", directed=False)
    if not np.isfinite(D).all():
        raise ValueError(f"geodesic_distances: the {n_neighbors}-nearest-neighbour graph is not connected; "
                         "increase n_neighbors")
    return D


def isomap_stress(Y: np.ndarray, D: np.ndarray):
    """Isomap's objective: keep geodesic distances in the embedding.

    L(Y) = sum_{i<j} (D_ij - ||y_i - y_j||)^2;
    dL/dy_i = -2 sum_{j != i} (D_ij - d_ij) (y_i - y_j) / d_ij,  d_ij = ||y_i - y_j||.
    Y (N, k) embedding, D (N, N) geodesic distances (geodesic_distances).
    """
    diff = Y[:, None, :] - Y[None, :, :]                      # (N, N, k)
    d = np.sqrt((diff * diff).sum(-1))
    off = ~np.eye(len(Y), dtype=bool)
    r = np.where(off, D - d, 0)
    coef = np.where(off & (d > 0), -2 * r / np.where(d > 0, d, 1), 0)
    return float((r * r).sum() / 2), (coef[:, :, None] * diff).sum(axis=1)
