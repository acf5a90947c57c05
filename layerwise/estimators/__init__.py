"""layerwise.estimators: scikit-learn-compatible learners, each an objective from
``layerwise.objectives`` minimised by a solver from ``layerwise.solvers`` (or the closed form /
exact procedure the objective admits). See docs/estimators.md.

    from layerwise.estimators import LogisticRegression
    LogisticRegression(C=1.0, solver="nesterov").fit(X, y).score(X, y)
"""
from .autoencoder import Autoencoder
from .cluster import KMeans
from .decomposition import PCA, Isomap
from .discriminant import LinearDiscriminantAnalysis
from .ensemble import AdaBoostClassifier
from .linear import Lasso, LinearRegression, LinearSVC, LogisticRegression, Perceptron, Ridge

__all__ = ["Perceptron", "LinearDiscriminantAnalysis", "LinearSVC", "LogisticRegression", "AdaBoostClassifier",
           "LinearRegression", "Ridge", "Lasso", "KMeans", "PCA", "Isomap", "Autoencoder"]
