"""scikit-learn's own estimator test suite (``parametrize_with_checks``) as a peer check of every
estimator: API conventions, input validation, fitted-state errors, pickling, dtype handling,
invariance to sample order and subsets, and the minimal accuracy checks for classifiers,
regressors and clusterers. Small ``max_iter`` keeps the suite fast; the checks' data are tiny."""
import pytest

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from layerwise import estimators as E  # noqa: E402

ESTIMATORS = [
    E.Perceptron(max_iter=50, random_state=0),
    E.LinearDiscriminantAnalysis(),
    E.LinearSVC(max_iter=100),
    E.LogisticRegression(max_iter=100),
    E.AdaBoostClassifier(n_estimators=10),
    E.LinearRegression(),
    E.Ridge(),
    E.Lasso(),
    E.KMeans(),
    E.PCA(),
    E.Isomap(),
    E.Autoencoder(max_iter=30, random_state=0),
]

# Checks that cannot apply, as scikit-learn's expected-failure mechanism wants them: estimator
# class name -> {check name: reason}. Empty: every estimator passes every check that runs here.
# (scikit-learn itself skips check_array_api_input unless SCIPY_ARRAY_API=1, and the pandas
# checks when pandas is absent.) Listed in docs/estimators.md.
EXPECTED_FAILED: dict[str, dict[str, str]] = {}


def _expected_failed(estimator):
    return EXPECTED_FAILED.get(type(estimator).__name__, {})


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_every_public_estimator_is_checked():
    assert sorted(type(e).__name__ for e in ESTIMATORS) == sorted(E.__all__)
