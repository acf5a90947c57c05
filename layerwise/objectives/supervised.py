"""Supervised objectives of classical machine learning, as plain functions.

Each returns ``(value, gradient)`` with the gradient of the value with respect to the
parameters (an array of the parameter's shape, or a tuple for several parameters; a
subgradient at kinks). Data: X (N, D) rows are samples; binary labels y in {-1, +1}
unless stated; the value is minimised unless stated (Fisher's ratio is maximised).
"""
from __future__ import annotations

import numpy as np
from scipy import linalg

from ..functional.logistic import sigmoid as _sigmoid
from ..functional.logistic import softplus as _softplus

__all__ = ["perceptron", "fisher_ratio", "lda_directions", "svm_primal", "logistic_regression",
           "softmax_regression", "adaboost_exponential", "adaboost_alpha", "least_squares",
           "ridge_solution", "soft_threshold", "lasso_prox_step", "lasso_ista"]


def perceptron(w: np.ndarray, X: np.ndarray, y: np.ndarray):
    """Perceptron criterion: the summed negative margin of the misclassified samples.

    L(w) = sum_i max(0, -y_i w^T x_i);  dL/dw = -sum_{i: y_i w^T x_i < 0} y_i x_i.
    Zero exactly when w separates the data; a gradient step is the perceptron update.
    """
    m = y * (X @ w)
    mis = m < 0
    return float(np.maximum(-m, 0).sum()), -(X[mis] * y[mis, None]).sum(axis=0)


def _scatter(X: np.ndarray, y: np.ndarray):
    """Between-class S_b = sum_k n_k (m_k - m)(m_k - m)^T and within-class S_w."""
    m = X.mean(axis=0)
    D = X.shape[1]
    Sb, Sw = np.zeros((D, D)), np.zeros((D, D))
    for k in np.unique(y):                                    # loop over classes, not samples
        Xk = X[y == k]
        d = Xk.mean(axis=0) - m
        Sb += len(Xk) * np.outer(d, d)
        Xc = Xk - Xk.mean(axis=0)
        Sw += Xc.T @ Xc
    return Sb, Sw


def fisher_ratio(w: np.ndarray, X: np.ndarray, y: np.ndarray):
    """Fisher's LDA criterion, to be MAXIMISED: between-class over within-class spread of w^T x.

    J(w) = (w^T S_b w) / (w^T S_w w),  S_b = sum_k n_k (m_k - m)(m_k - m)^T,
    S_w = sum_k sum_{i in k} (x_i - m_k)(x_i - m_k)^T  (y holds class labels, any values);
    dJ/dw = 2 (S_b w - J S_w w) / (w^T S_w w).  Stationary points: S_b w = J S_w w.
    """
    Sb, Sw = _scatter(X, y)
    a, b = w @ Sb @ w, w @ Sw @ w
    J = a / b
    return float(J), 2 * (Sb @ w - J * (Sw @ w)) / b


def lda_directions(X: np.ndarray, y: np.ndarray, k: int = 1) -> np.ndarray:
    """The k directions maximising Fisher's ratio: top generalised eigenvectors S_b w = l S_w w.

    Returns W (D, k), columns scaled so that w^T S_w w = 1, largest ratio first.
    """
    Sb, Sw = _scatter(X, y)
    vals, vecs = linalg.eigh(Sb, Sw)
    return vecs[:, ::-1][:, :k]


def svm_primal(w: np.ndarray, b: float, X: np.ndarray, y: np.ndarray, C: float = 1.0):
    """Soft-margin SVM in its primal, hinge form (Cortes and Vapnik 1995: a structural-risk objective).

    L(w, b) = 1/2 ||w||^2 + C sum_i max(0, 1 - y_i (w^T x_i + b));
    subgradient: dL/dw = w - C sum_{active} y_i x_i,  dL/db = -C sum_{active} y_i,
    active = samples with y_i (w^T x_i + b) < 1.  Equivalent to the constrained form
    min 1/2 ||w||^2 + C sum xi_i  s.t. y_i (w^T x_i + b) >= 1 - xi_i, xi_i >= 0 (scikit-learn's SVC).
    """
    m = y * (X @ w + b)
    act = m < 1
    val = 0.5 * w @ w + C * np.maximum(1 - m, 0).sum()
    return float(val), (w - C * (X[act] * y[act, None]).sum(axis=0), float(-C * y[act].sum()))


def logistic_regression(w: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float = 0.0):
    """Negative log-likelihood of logistic regression, labels y in {0, 1}, plus L2.

    h_i = s(w^T x_i);  L(w) = -1/N sum_i [y_i log h_i + (1 - y_i) log(1 - h_i)] + l2/2 ||w||^2
    (computed stably as 1/N sum softplus(z) - y z);  dL/dw = 1/N X^T (h - y) + l2 w.
    scikit-learn's LogisticRegression(C) minimises the same with C = 1 / (l2 N).
    """
    z = X @ w
    N = len(y)
    val = (_softplus(z) - y * z).sum() / N + 0.5 * l2 * (w @ w)
    return float(val), X.T @ (_sigmoid(z) - y) / N + l2 * w


def softmax_regression(W: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float = 0.0):
    """Softmax regression: mean cross-entropy of softmax(X W^T) with integer labels, plus L2.

    W (K, D);  L(W) = -1/N sum_i log softmax(W x_i)_{y_i} + l2/2 ||W||_F^2;
    dL/dW = 1/N (P - Y)^T X + l2 W, P the probabilities, Y the one-hot labels.
    """
    Z = X @ W.T                                                # (N, K)
    Zs = Z - Z.max(axis=1, keepdims=True)
    logp = Zs - np.log(np.exp(Zs).sum(axis=1, keepdims=True))
    N, K = Z.shape
    Y = np.eye(K)[y]
    val = -(Y * logp).sum() / N + 0.5 * l2 * (W * W).sum()
    return float(val), (np.exp(logp) - Y).T @ X / N + l2 * W


def adaboost_exponential(alpha: np.ndarray, H: np.ndarray, y: np.ndarray):
    """AdaBoost's exponential loss of the additive model F(x) = sum_m alpha_m h_m(x).

    H (N, M): the weak classifiers' outputs h_m(x_i) in {-1, +1};
    L(alpha) = 1/N sum_i exp(-y_i F(x_i));  dL/dalpha_m = -1/N sum_i y_i h_m(x_i) exp(-y_i F(x_i)).
    Minimising over the newest alpha_m alone gives adaboost_alpha (AdaBoost's step).
    """
    e = np.exp(-y * (H @ alpha))
    N = len(y)
    return float(e.sum() / N), -(H.T @ (y * e)) / N


def adaboost_alpha(h: np.ndarray, y: np.ndarray, F: np.ndarray | None = None) -> float:
    """The optimal weight of a new weak learner h given the current model F (default 0).

    With sample weights w_i = exp(-y_i F(x_i)) and weighted error err = sum_{h != y} w / sum w:
    alpha = 1/2 log((1 - err) / err)   (zero of the derivative of the exponential loss).
    """
    w = np.exp(-y * F) if F is not None else np.ones(len(y))
    err = w[h != y].sum() / w.sum()
    return float(0.5 * np.log((1 - err) / err))


def least_squares(w: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float = 0.0, l1: float = 0.0):
    """Linear regression's squared error with ridge (L2) and LASSO (L1) penalties.

    L(w) = 1/(2N) ||X w - y||^2 + l2/2 ||w||^2 + l1 ||w||_1;
    dL/dw = 1/N X^T (X w - y) + l2 w + l1 sign(w)  (a subgradient where w_j = 0).
    scikit-learn: Ridge(alpha) is l2 = alpha / N; Lasso(alpha) is l1 = alpha.
    """
    r = X @ w - y
    N = len(y)
    val = 0.5 * (r @ r) / N + 0.5 * l2 * (w @ w) + l1 * np.abs(w).sum()
    return float(val), X.T @ r / N + l2 * w + l1 * np.sign(w)


def ridge_solution(X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Closed-form minimiser of least_squares with l1 = 0: (X^T X / N + l2 I) w = X^T y / N."""
    N, D = X.shape
    return linalg.solve(X.T @ X / N + l2 * np.eye(D), X.T @ y / N, assume_a="pos")


def soft_threshold(v: np.ndarray, t: float) -> np.ndarray:
    """The proximal operator of t ||.||_1: sign(v) max(|v| - t, 0)."""
    return np.sign(v) * np.maximum(np.abs(v) - t, 0)


def lasso_prox_step(w: np.ndarray, X: np.ndarray, y: np.ndarray, l1: float, step: float) -> np.ndarray:
    """One proximal-gradient (ISTA) step on the LASSO: soft_threshold(w - step * grad_smooth, step * l1)."""
    grad = X.T @ (X @ w - y) / len(y)
    return soft_threshold(w - step * grad, step * l1)


def lasso_ista(X: np.ndarray, y: np.ndarray, l1: float, n_iter: int = 10000, tol: float = 1e-13,
               return_n_iter: bool = False):
    """Minimise the LASSO with accelerated proximal gradient (FISTA), step 1/L, L = ||X||_2^2 / N.

    Stops when no weight moves by more than tol; ``return_n_iter`` also returns the steps taken.
    """
    N, D = X.shape
    step = N / np.linalg.norm(X, 2) ** 2
    w = z = np.zeros(D)
    t = 1.0
    for it in range(n_iter):
        w_new = lasso_prox_step(z, X, y, l1, step)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = w_new + (t - 1) / t_new * (w_new - w)
        if np.max(np.abs(w_new - w)) < tol:
            return (w_new, it + 1) if return_n_iter else w_new
        w, t = w_new, t_new
    return (w, n_iter) if return_n_iter else w
