"""Classical objectives: finite-difference gradients, and minima / values against scikit-learn,
SciPy and closed forms."""
import numpy as np
import pytest

from layerwise import objectives as ob


def numgrad(f, x, eps=1e-6):
    """Central differences of the scalar f at x (float64 array or float)."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def check_grad(fun, x, *args, rtol=1e-6, atol=1e-7):
    _, g = fun(x, *args)
    n = numgrad(lambda v: fun(v, *args)[0], x)
    np.testing.assert_allclose(g, n, rtol=rtol, atol=atol)


@pytest.fixture
def data(rng):
    X = rng.standard_normal((40, 3))
    w_true = np.array([1.5, -2.0, 0.0])
    return X, X @ w_true + 0.1 * rng.standard_normal(40), np.where(X @ w_true + 0.3 * rng.standard_normal(40) > 0, 1, -1)


# ------------------------------------------------------------------ gradients
def test_supervised_gradients_match_finite_differences(rng, data):
    X, t, y = data
    w = rng.standard_normal(3)
    check_grad(ob.perceptron, w, X, y)
    check_grad(ob.fisher_ratio, w, X, y)
    val, (gw, gb) = ob.svm_primal(w, 0.3, X, y, C=0.7)
    np.testing.assert_allclose(gw, numgrad(lambda v: ob.svm_primal(v, 0.3, X, y, 0.7)[0], w), rtol=1e-6, atol=1e-7)
    assert gb == pytest.approx(float(numgrad(lambda b: ob.svm_primal(w, float(b), X, y, 0.7)[0], 0.3)), rel=1e-6)
    check_grad(ob.logistic_regression, w, X, (y > 0).astype(float), 0.1)
    check_grad(ob.softmax_regression, rng.standard_normal((4, 3)), X, rng.integers(0, 4, 40), 0.05)
    H = np.where(rng.random((40, 3)) < 0.5, -1.0, 1.0)
    check_grad(ob.adaboost_exponential, rng.standard_normal(3) * 0.3, H, y)
    check_grad(ob.least_squares, w, X, t, 0.2, 0.05)


def test_unsupervised_gradients_match_finite_differences(rng):
    X = rng.standard_normal((12, 3))
    check_grad(ob.kmeans, rng.standard_normal((3, 3)), X)
    check_grad(ob.pca_reconstruction, rng.standard_normal((3, 2)), X)
    D = ob.geodesic_distances(X, n_neighbors=4)
    check_grad(ob.isomap_stress, rng.standard_normal((12, 2)), D)
    params = {"W1": rng.standard_normal((2, 3)), "b1": rng.standard_normal(2),
              "W2": rng.standard_normal((3, 2)), "b2": rng.standard_normal(3)}
    for act in ("sigmoid", "tanh", "identity"):
        _, grads = ob.autoencoder(params, X, act)
        for k in params:
            def f(v, k=k):
                return ob.autoencoder({**params, k: v}, X, act)[0]
            np.testing.assert_allclose(grads[k], numgrad(f, params[k]), rtol=1e-6, atol=1e-8)


def test_gan_and_bellman_gradients_match_finite_differences(rng):
    a, b = rng.standard_normal(5) * 3, rng.standard_normal(4) * 3
    _, (ga, gb) = ob.gan_value(a, b)
    np.testing.assert_allclose(ga, numgrad(lambda v: ob.gan_value(v, b)[0], a), rtol=1e-6)
    np.testing.assert_allclose(gb, numgrad(lambda v: ob.gan_value(a, v)[0], b), rtol=1e-6)
    for ns in (True, False):
        check_grad(lambda v: ob.generator_loss(v, non_saturating=ns), b)
    S, A = 4, 2
    P = rng.dirichlet(np.ones(S), size=(S, A))
    R, pi = rng.standard_normal((S, A)), rng.dirichlet(np.ones(A), size=S)
    check_grad(ob.bellman_error, rng.standard_normal(S), P, R, pi, 0.9)


# ------------------------------------------------------------------ references
def test_ridge_minimum_matches_sklearn(data):
    from sklearn.linear_model import Ridge
    X, t, _ = data
    l2 = 0.3
    w = ob.ridge_solution(X, t, l2)
    ref = Ridge(alpha=l2 * len(t), fit_intercept=False, solver="cholesky").fit(X, t).coef_
    np.testing.assert_allclose(w, ref, rtol=1e-10)
    assert np.abs(ob.least_squares(w, X, t, l2=l2)[1]).max() < 1e-12


def test_lasso_minimum_matches_sklearn(data):
    from sklearn.linear_model import Lasso
    X, t, _ = data
    l1 = 0.2
    w = ob.lasso_ista(X, t, l1)
    ref = Lasso(alpha=l1, fit_intercept=False, tol=1e-14, max_iter=100000).fit(X, t).coef_
    np.testing.assert_allclose(w, ref, atol=1e-8)
    assert w[2] == 0.0                                         # the irrelevant feature is cut exactly
    assert ob.least_squares(w, X, t, l1=l1)[0] <= ob.least_squares(ref, X, t, l1=l1)[0] + 1e-12
    np.testing.assert_allclose(ob.soft_threshold(np.array([-3.0, 0.5, 2.0]), 1.0), [-2.0, 0.0, 1.0])


def test_lda_directions_match_sklearn(rng):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    means = np.array([[0, 0, 0, 0], [2, 1, 0, -1], [0, 3, 1, 1]], dtype=float)
    y = np.repeat([0, 1, 2], 30)
    X = means[y] + rng.standard_normal((90, 4)) @ np.diag([1.0, 0.5, 2.0, 1.0])
    W = ob.lda_directions(X, y, k=2)
    S = LinearDiscriminantAnalysis(solver="eigen").fit(X, y).scalings_[:, :2]
    for j in range(2):
        cos = W[:, j] @ S[:, j] / np.linalg.norm(W[:, j]) / np.linalg.norm(S[:, j])
        assert abs(cos) == pytest.approx(1.0, abs=1e-10)
    J, g = ob.fisher_ratio(W[:, 0], X, y)
    assert np.abs(g).max() < 1e-9 * max(J, 1)                  # stationary: the generalised eigenvector
    assert J > ob.fisher_ratio(W[:, 1], X, y)[0]


def test_svm_primal_equals_sklearn_dual_at_optimum(rng):
    from sklearn.svm import SVC
    X = np.r_[rng.standard_normal((20, 2)) + 1.2, rng.standard_normal((20, 2)) - 1.2]
    y = np.r_[np.ones(20), -np.ones(20)]
    C = 0.5
    svc = SVC(kernel="linear", C=C, tol=1e-10).fit(X, y)
    w, b = svc.coef_[0], svc.intercept_[0]
    primal = ob.svm_primal(w, b, X, y, C)[0]
    alpha = np.abs(svc.dual_coef_[0])
    dual = alpha.sum() - 0.5 * w @ w
    assert primal == pytest.approx(dual, rel=1e-6)
    for _ in range(5):                                         # and it is a minimum
        assert ob.svm_primal(w + 0.05 * rng.standard_normal(2), b, X, y, C)[0] > primal


def test_logistic_and_softmax_regression_minima_match_sklearn(rng, data):
    from sklearn.linear_model import LogisticRegression
    X, _, y = data
    l2 = 0.05
    y01 = (y > 0).astype(float)
    C = 1 / (l2 * len(y))
    clf = LogisticRegression(C=C, fit_intercept=False, tol=1e-12, max_iter=10000).fit(X, y01)
    assert np.abs(ob.logistic_regression(clf.coef_[0], X, y01, l2)[1]).max() < 1e-7
    yk = rng.integers(0, 3, 40)
    Xk = X + np.eye(3)[yk]
    clf = LogisticRegression(C=C, fit_intercept=False, tol=1e-12, max_iter=10000).fit(Xk, yk)
    assert np.abs(ob.softmax_regression(clf.coef_, Xk, yk, l2)[1]).max() < 1e-7


def test_adaboost_alpha_is_the_line_minimum_and_matches_sklearn(rng):
    from sklearn.ensemble import AdaBoostClassifier
    X = rng.standard_normal((60, 2))
    y = np.where(X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.standard_normal(60) > 0, 1, -1)
    ada = AdaBoostClassifier(n_estimators=2, random_state=0).fit(X, y)
    H = np.stack([e.predict(X) for e in ada.estimators_], axis=1).astype(float)
    a1 = ob.adaboost_alpha(H[:, 0], y)
    # scikit-learn's SAMME weight for two classes is log((1 - err) / err) = 2 alpha
    assert 2 * a1 == pytest.approx(ada.estimator_weights_[0], rel=1e-10)
    a2 = ob.adaboost_alpha(H[:, 1], y, F=a1 * H[:, 0])
    _, g = ob.adaboost_exponential(np.array([a1, a2]), H, y)
    assert abs(g[1]) < 1e-12                                   # zero derivative along the new weight
    assert 2 * a2 == pytest.approx(ada.estimator_weights_[1], rel=1e-10)


def test_kmeans_objective_is_sklearn_inertia(rng):
    from sklearn.cluster import KMeans
    X = np.r_[rng.standard_normal((15, 2)), rng.standard_normal((15, 2)) + 5]
    km = KMeans(n_clusters=2, n_init=3, random_state=0, tol=0).fit(X)
    val, g = ob.kmeans(km.cluster_centers_, X)
    assert val == pytest.approx(km.inertia_, rel=1e-10)
    assert np.abs(g).max() < 1e-10                              # Lloyd fixed point


def test_pca_error_is_discarded_eigenvalues(rng):
    from sklearn.decomposition import PCA
    X = rng.standard_normal((50, 4)) @ rng.standard_normal((4, 4))
    W = ob.pca_basis(X, 2)
    val, g = ob.pca_reconstruction(W, X)
    lam = np.linalg.eigvalsh(np.cov(X.T, bias=True))
    assert val == pytest.approx(lam[:2].sum(), rel=1e-10)
    ev = PCA().fit(X).explained_variance_ * (len(X) - 1) / len(X)
    assert val == pytest.approx(ev[2:].sum(), rel=1e-10)
    assert np.abs(g).max() < 1e-10
    # a linear autoencoder at the PCA solution: half the PCA error, zero gradient
    m = X.mean(0)
    params = {"W1": W.T, "b1": -W.T @ m, "W2": W, "b2": m}
    v_ae, grads = ob.autoencoder(params, X, "identity")
    assert v_ae == pytest.approx(val / 2, rel=1e-10)
    assert max(np.abs(gr).max() for gr in grads.values()) < 1e-10


def test_isomap_geodesics_match_sklearn_and_flat_manifold_has_zero_stress(rng):
    from sklearn.manifold import Isomap
    X = rng.standard_normal((20, 3))
    D = ob.geodesic_distances(X, n_neighbors=5)
    np.testing.assert_allclose(D, Isomap(n_neighbors=5, n_components=2).fit(X).dist_matrix_, rtol=1e-12)
    Y = rng.standard_normal((15, 2))                          # a plane in 3-D, fully connected graph
    Q = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    X3 = np.c_[Y, np.zeros(15)] @ Q.T
    val, g = ob.isomap_stress(Y, ob.geodesic_distances(X3, n_neighbors=14))
    assert val < 1e-20 and np.abs(g).max() < 1e-9
    with pytest.raises(ValueError, match="not connected"):
        ob.geodesic_distances(np.r_[X, X + 100], n_neighbors=2)


def test_gan_optimal_discriminator_gives_jensen_shannon(rng):
    from scipy.spatial.distance import jensenshannon
    p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
    logit = np.log(p / q)                                      # D* = p / (p + q)
    V, (ga, gb) = ob.gan_value(logit, logit, real_weights=p, fake_weights=q)
    assert V == pytest.approx(-np.log(4) + 2 * jensenshannon(p, q) ** 2, rel=1e-12)
    np.testing.assert_allclose(ga + gb, 0, atol=1e-15)          # D* is stationary pointwise
    # non-saturating generator: finite, large gradient where D rejects the fake
    assert abs(ob.generator_loss(np.array([-30.0]))[1][0]) > 0.99
    assert abs(ob.generator_loss(np.array([-30.0]), non_saturating=False)[1][0]) < 1e-12


def test_bellman_error_vanishes_at_policy_value(rng):
    S, A, gamma = 5, 3, 0.9
    P = rng.dirichlet(np.ones(S), size=(S, A))
    R, pi = rng.standard_normal((S, A)), rng.dirichlet(np.ones(A), size=S)
    V = ob.policy_evaluation(P, R, pi, gamma)
    val, g = ob.bellman_error(V, P, R, pi, gamma)
    assert val < 1e-25 and np.abs(g).max() < 1e-12
    Vi = np.zeros(S)                                           # iterative policy evaluation agrees
    for _ in range(400):
        Vi = (pi * R).sum(1) + gamma * np.einsum("sa,sat,t->s", pi, P, Vi)
    np.testing.assert_allclose(Vi, V, rtol=1e-10)


def test_perceptron_is_zero_on_separating_weights(rng):
    from sklearn.linear_model import Perceptron
    X = rng.standard_normal((30, 2))
    y = np.where(X @ np.array([1.0, -1.0]) > 0, 1, -1)
    w = Perceptron(fit_intercept=False, max_iter=1000, tol=None, random_state=0).fit(X, y).coef_[0]
    assert ob.perceptron(w, X, y) == (0.0, pytest.approx(np.zeros(2)))
    val, g = ob.perceptron(-w, X, y)
    assert val > 0 and np.allclose(-w - g, -w + (X * y[:, None]).sum(0))    # step = perceptron update
