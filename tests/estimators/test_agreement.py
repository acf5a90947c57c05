"""Agreement with scikit-learn on the data sets that ship with it (fixed seeds).

Classifiers: mean test accuracy over 5 stratified 70/30 splits within 1 percentage point of the
scikit-learn counterpart's (one split of ~50-170 test samples moves by 0.6-2 points per sample, so
the mean of 5 is the fair comparison for the noisy learners). Regression: coefficients to 1e-8
relative (closed forms), R^2 to 1e-3; Lasso coefficients to 1e-4; KMeans inertia within 1% from
the same init; PCA components equal up to sign to 1e-8; LDA directions up to sign and scale;
Isomap embedding up to sign per axis. Then the iterative (solver) paths reach the same answers.
"""
import warnings

import numpy as np
import pytest

sk = pytest.importorskip("sklearn")
from sklearn import datasets  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from layerwise import estimators as E  # noqa: E402
from layerwise import objectives as ob  # noqa: E402


def _load(name):
    return getattr(datasets, f"load_{name}")(return_X_y=True)


def _mean_test_accuracy(est, X, y, seeds=range(5)):
    acc = []
    for s in seeds:
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=s, stratify=y)
        acc.append(make_pipeline(StandardScaler(), clone(est)).fit(Xtr, ytr).score(Xte, yte))
    return float(np.mean(acc))


def _sk(name):
    from sklearn import discriminant_analysis, ensemble, linear_model, svm, tree
    return {
        "Perceptron": linear_model.Perceptron(random_state=0),
        "LinearSVC": svm.LinearSVC(loss="hinge", max_iter=100000, random_state=0),
        "LogisticRegression": linear_model.LogisticRegression(max_iter=10000),
        "AdaBoostClassifier": ensemble.AdaBoostClassifier(tree.DecisionTreeClassifier(max_depth=1), random_state=0),
        "LinearDiscriminantAnalysis": discriminant_analysis.LinearDiscriminantAnalysis(),
    }[name]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("est, data", [
    (E.Perceptron(random_state=0), "breast_cancer"),
    (E.Perceptron(random_state=0), "wine"),
    (E.LinearSVC(), "breast_cancer"),
    (E.LogisticRegression(), "breast_cancer"),
    (E.LogisticRegression(), "iris"),
    (E.LogisticRegression(), "wine"),
    (E.AdaBoostClassifier(), "breast_cancer"),
    (E.AdaBoostClassifier(), "iris"),
    (E.LinearDiscriminantAnalysis(), "breast_cancer"),
    (E.LinearDiscriminantAnalysis(), "wine"),
], ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_classifier_test_accuracy_within_one_point_of_sklearn(est, data):
    X, y = _load(data)
    ours = _mean_test_accuracy(est, X, y)
    theirs = _mean_test_accuracy(_sk(type(est).__name__), X, y)
    assert abs(ours - theirs) <= 0.01, (type(est).__name__, data, ours, theirs)


def test_logistic_regression_reaches_sklearns_coefficients():
    from sklearn.linear_model import LogisticRegression
    X, y = _load("breast_cancer")
    X = StandardScaler().fit_transform(X)
    ours = E.LogisticRegression(C=0.1, tol=1e-9, max_iter=5000).fit(X, y)
    theirs = LogisticRegression(C=0.1, tol=1e-12, max_iter=10000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=0, atol=1e-5 * np.abs(theirs.coef_).max())
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-5)


def test_least_squares_and_ridge_match_sklearn_on_diabetes():
    from sklearn.linear_model import LinearRegression, Ridge
    X, y = _load("diabetes")
    for ours, theirs in [(E.LinearRegression(), LinearRegression()), (E.Ridge(alpha=0.5), Ridge(alpha=0.5))]:
        ours.fit(X, y)
        theirs.fit(X, y)
        np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-8, atol=1e-8 * np.abs(theirs.coef_).max())
        assert ours.intercept_ == pytest.approx(theirs.intercept_, rel=1e-8)
        assert abs(ours.score(X, y) - theirs.score(X, y)) < 1e-3


def test_least_squares_and_ridge_by_a_solver_reach_the_closed_form():
    X, y = _load("diabetes")
    exact = E.Ridge(alpha=0.5).fit(X, y)
    it = E.Ridge(alpha=0.5, solver="nesterov", max_iter=20000).fit(X, y)
    assert it.n_iter_ < 20000                                        # stopped on the gradient tolerance
    np.testing.assert_allclose(it.coef_, exact.coef_, rtol=0, atol=1e-6 * np.abs(exact.coef_).max())
    assert abs(it.score(X, y) - exact.score(X, y)) < 1e-3
    ols = E.LinearRegression(solver="nesterov", max_iter=20000).fit(X, y)
    np.testing.assert_allclose(ols.coef_, E.LinearRegression().fit(X, y).coef_, rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_lasso_coefficients_match_sklearn(alpha):
    from sklearn.linear_model import Lasso
    X, y = _load("diabetes")
    ours = E.Lasso(alpha=alpha).fit(X, y)
    theirs = Lasso(alpha=alpha, tol=1e-12, max_iter=100000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(ours.coef_ == 0, theirs.coef_ == 0)  # the same support, exact zeros
    assert ours.intercept_ == pytest.approx(theirs.intercept_, abs=1e-4)


@pytest.mark.parametrize("data", ["iris", "wine", "digits"])
def test_kmeans_inertia_matches_sklearn_from_the_same_init(data):
    from sklearn.cluster import KMeans
    X, _ = _load(data)
    k = 10 if data == "digits" else 3
    init = X[np.random.RandomState(0).choice(len(X), k, replace=False)]
    ours = E.KMeans(n_clusters=k, init=init).fit(X)
    theirs = KMeans(n_clusters=k, init=init, n_init=1).fit(X)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=0.01)
    assert ours.inertia_ == pytest.approx(ob.kmeans(ours.cluster_centers_, X)[0])
    np.testing.assert_array_equal(ours.predict(X), ours.labels_)


def test_kmeans_by_a_solver_reaches_lloyds_inertia():
    X, _ = _load("iris")
    init = X[[0, 50, 100]]
    lloyd = E.KMeans(n_clusters=3, init=init).fit(X)
    adam = E.KMeans(n_clusters=3, init=init, solver="adam", lr=0.05, max_iter=2000).fit(X)
    assert adam.inertia_ == pytest.approx(lloyd.inertia_, rel=1e-3)


def test_kmeans_plusplus_seeds_distinct_samples_and_is_reproducible():
    X, _ = _load("iris")
    a = E.KMeans(n_clusters=3, random_state=0, max_iter=1).fit(X)
    from layerwise.estimators.cluster import kmeans_plusplus
    C1 = kmeans_plusplus(X, 5, np.random.RandomState(1))
    C2 = kmeans_plusplus(X, 5, np.random.RandomState(1))
    np.testing.assert_array_equal(C1, C2)
    assert len({tuple(c) for c in C1}) == 5 and all((X == c).all(1).any() for c in C1)
    assert a.cluster_centers_.shape == (3, 4)


@pytest.mark.parametrize("data, k", [("iris", 4), ("wine", 5), ("digits", 10)])
def test_pca_components_match_sklearn_up_to_sign(data, k):
    from sklearn.decomposition import PCA
    X, _ = _load(data)
    ours = E.PCA(n_components=k).fit(X)
    theirs = PCA(n_components=k, svd_solver="full").fit(X)
    sign = np.sign((ours.components_ * theirs.components_).sum(axis=1))
    np.testing.assert_allclose(ours.components_, sign[:, None] * theirs.components_, atol=1e-8)
    np.testing.assert_allclose(ours.explained_variance_, theirs.explained_variance_, rtol=1e-8)
    np.testing.assert_allclose(ours.explained_variance_ratio_, theirs.explained_variance_ratio_, rtol=1e-8)
    Z = ours.transform(X)
    np.testing.assert_allclose(Z, sign * theirs.transform(X), atol=1e-7 * np.abs(Z).max())


def test_pca_by_a_solver_finds_the_same_components():
    X, _ = _load("wine")
    X = StandardScaler().fit_transform(X)
    exact = E.PCA(n_components=3).fit(X)
    it = E.PCA(n_components=3, solver="adam", lr=0.01, max_iter=3000, random_state=0).fit(X)
    sign = np.sign((it.components_ * exact.components_).sum(axis=1))
    np.testing.assert_allclose(it.components_, sign[:, None] * exact.components_, atol=1e-6)


@pytest.mark.parametrize("data", ["iris", "wine", "breast_cancer"])
def test_lda_directions_match_sklearn_up_to_sign_and_scale(data):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    X, y = _load(data)
    ours = E.LinearDiscriminantAnalysis().fit(X, y)
    theirs = LinearDiscriminantAnalysis(solver="eigen").fit(X, y)
    r = ours.scalings_.shape[1]
    A = ours.scalings_ / np.linalg.norm(ours.scalings_, axis=0)
    B = theirs.scalings_[:, :r] / np.linalg.norm(theirs.scalings_[:, :r], axis=0)
    np.testing.assert_allclose(np.abs((A * B).sum(axis=0)), 1.0, atol=1e-8)   # |cos| = 1 per direction
    # the classifier is the same shared-covariance Gaussian model: same posteriors as sklearn's default
    np.testing.assert_allclose(ours.predict_proba(X), LinearDiscriminantAnalysis().fit(X, y).predict_proba(X),
                               atol=1e-8)


def test_lda_by_a_solver_finds_the_same_directions():
    X, y = _load("wine")
    X = StandardScaler().fit_transform(X)
    exact = E.LinearDiscriminantAnalysis().fit(X, y)
    it = E.LinearDiscriminantAnalysis(solver="adam", lr=0.05, max_iter=3000, random_state=0).fit(X, y)
    A = exact.scalings_ / np.linalg.norm(exact.scalings_, axis=0)
    B = it.scalings_ / np.linalg.norm(it.scalings_, axis=0)
    np.testing.assert_allclose(np.abs((A * B).sum(axis=0)), 1.0, atol=1e-8)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_isomap_embedding_matches_sklearn_up_to_sign_per_axis():
    """digits[:300] with 10 neighbours has 2 graph components: both complete the graph the same way."""
    from sklearn.manifold import Isomap
    X, _ = _load("digits")
    ours = E.Isomap(n_neighbors=10).fit(X[:300])
    theirs = Isomap(n_neighbors=10, eigen_solver="dense").fit(X[:300])
    sign = np.sign((ours.embedding_ * theirs.embedding_).sum(axis=0))
    scale = np.abs(theirs.embedding_).max()
    np.testing.assert_allclose(ours.embedding_, sign * theirs.embedding_, atol=1e-8 * scale)
    new = X[300:340]
    np.testing.assert_allclose(ours.transform(new), sign * theirs.transform(new), atol=1e-8 * scale)


def test_isomap_by_a_solver_lowers_the_stress_below_mds():
    X, _ = _load("digits")
    mds = E.Isomap(n_neighbors=10).fit(X[:150])
    it = E.Isomap(n_neighbors=10, solver="adam", lr=0.05, max_iter=100, random_state=0).fit(X[:150])
    s_mds = ob.isomap_stress(mds.embedding_, mds.dist_matrix_)[0]
    s_it = ob.isomap_stress(it.embedding_, mds.dist_matrix_)[0]
    assert s_it < 0.9 * s_mds


def test_isomap_completes_a_disconnected_graph_with_a_warning():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.1, (15, 2)), rng.normal(5, 0.1, (15, 2))])
    with pytest.warns(UserWarning, match="connected components"):
        emb = E.Isomap(n_neighbors=3, n_components=1).fit_transform(X)
    assert np.isfinite(emb).all()
    assert abs(emb[:15].mean() - emb[15:].mean()) > 4                # the two blobs stay apart


def test_adaboost_exact_and_solver_alphas_agree():
    X, y = _load("breast_cancer")
    a = E.AdaBoostClassifier(n_estimators=10).fit(X, y)
    b = E.AdaBoostClassifier(n_estimators=10, solver="sgd", lr=0.5, max_iter=500, tol=1e-12).fit(X, y)
    np.testing.assert_allclose(b.estimator_weights_, a.estimator_weights_, rtol=1e-6)
    assert np.all(np.diff(a.train_loss_) < 0)                        # each round lowers the exponential loss


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_autoencoder_gradient_is_the_objectives_gradient():
    """The layers' backward through EuclideanLoss equals objectives.autoencoder's gradient."""
    X, _ = _load("iris")
    ae = E.Autoencoder((3,), activation="sigmoid", max_iter=1, random_state=0).fit(X)
    enc, dec = ae.encoder_[0], ae.decoder_[0]
    params = {"W1": enc.weight.data, "b1": enc.bias.data, "W2": dec.weight.data, "b2": dec.bias.data}
    value, grads = ob.autoencoder(params, X, "sigmoid")
    from layerwise.losses import EuclideanLoss
    loss = EuclideanLoss()
    ae.encoder_.train()
    ae.decoder_.train()
    for net in (ae.encoder_, ae.decoder_):
        net.zero_grad()
    v = loss.forward(ae.decoder_.forward(ae.encoder_.forward(X)), X)
    ae.encoder_.backward(ae.decoder_.backward(loss.backward()))
    assert float(v) == pytest.approx(value, rel=1e-12)
    for k, p in (("W1", enc.weight), ("b1", enc.bias), ("W2", dec.weight), ("b2", dec.bias)):
        np.testing.assert_allclose(p.grad, grads[k], rtol=1e-10, atol=1e-12)


def test_linear_autoencoder_reaches_the_pca_reconstruction_error():
    X, _ = _load("wine")
    X = StandardScaler().fit_transform(X)
    ae = E.Autoencoder((3,), activation="identity", lr=0.02, max_iter=3000, tol=1e-9, random_state=0).fit(X)
    pca = E.PCA(n_components=3).fit(X)
    err_pca = ((pca.inverse_transform(pca.transform(X)) - X) ** 2).sum() / len(X)
    assert -ae.score(X) == pytest.approx(err_pca, rel=1e-3)
    assert ae.loss_curve_[-1] < ae.loss_curve_[0] / 2


def test_estimators_work_in_pipeline_gridsearch_and_cross_val():
    X, y = _load("iris")
    pipe = make_pipeline(StandardScaler(), E.PCA(n_components=3), E.LogisticRegression())
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.85
    grid = GridSearchCV(make_pipeline(StandardScaler(), E.LogisticRegression()),
                        {"logisticregression__C": [0.01, 1.0]}, cv=3).fit(X, y)
    assert grid.best_params_["logisticregression__C"] == 1.0
    Xd, yd = _load("diabetes")
    assert cross_val_score(E.Ridge(alpha=0.1), Xd, yd, cv=3).mean() > 0.4


def test_bad_parameters_name_the_estimator_and_the_fix():
    X, y = _load("iris")
    with pytest.raises(ValueError, match="LogisticRegression: solver must be one of"):
        E.LogisticRegression(solver="newton").fit(X, y)
    with pytest.raises(ValueError, match="LogisticRegression: C must be a number > 0"):
        E.LogisticRegression(C=0).fit(X, y)
    with pytest.raises(ValueError, match="KMeans: init has shape"):
        E.KMeans(n_clusters=3, init=np.zeros((2, 4))).fit(X)
    with pytest.raises(ValueError, match="LinearDiscriminantAnalysis: n_components must be"):
        E.LinearDiscriminantAnalysis(n_components=3).fit(X, y)
    with pytest.raises(FloatingPointError, match="lower lr"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            E.LinearRegression(solver="sgd", lr=1e4, max_iter=2000).fit(*_load("diabetes"))


def test_lr_auto_is_only_for_the_models_with_a_lipschitz_bound():
    X, _ = _load("iris")
    with pytest.raises(ValueError, match="PCA: lr must be a number > 0, got 'auto'"):
        E.PCA(n_components=2, solver="adam", lr="auto").fit(X)
    with pytest.raises(ValueError, match="Ridge: lr must be 'auto'"):
        E.Ridge(solver="adam", lr=-1.0).fit(X, X[:, 0])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver, lr, max_iter", [
    ("sgd", "auto", 300), ("nesterov", "auto", 300), ("adam", 0.05, 300), ("adamw", 0.05, 300),
    ("rmsprop", 0.01, 300), ("adagrad", 0.5, 300), ("adadelta", 1.0, 2000)])   # AdaDelta starts slowly
def test_every_layerwise_solver_fits_logistic_regression(solver, lr, max_iter):
    X, y = _load("iris")
    X = StandardScaler().fit_transform(X)
    ref = E.LogisticRegression(tol=1e-9, max_iter=5000).fit(X, y)
    est = E.LogisticRegression(solver=solver, lr=lr, max_iter=max_iter).fit(X, y)
    assert est.loss_curve_[-1] < 0.5 * est.loss_curve_[0]            # log 3 at W = 0
    assert est.score(X, y) >= ref.score(X, y) - 0.03


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_an_lr_policy_reaches_the_solver():
    X, y = _load("iris")
    X = StandardScaler().fit_transform(X)
    fixed = E.LogisticRegression(solver="sgd", lr=0.5, max_iter=50, tol=0).fit(X, y)
    frozen = E.LogisticRegression(solver="sgd", lr=0.5, max_iter=50, tol=0, lr_policy="step",
                                  solver_options={"gamma": 1e-9, "step_size": 5}).fit(X, y)
    # lr drops a billion-fold after 5 steps: the objective stops moving there, unlike with the fixed lr
    np.testing.assert_array_equal(frozen.loss_curve_[:6], fixed.loss_curve_[:6])
    assert abs(frozen.loss_curve_[6] - frozen.loss_curve_[-1]) < 1e-8
    assert fixed.loss_curve_[6] - fixed.loss_curve_[-1] > 1e-2
