"""layerwise.estimators: scikit-learn-compatible learners, each an objective from
``layerwise.objectives`` minimised by a solver from ``layerwise.solvers`` (or the closed form /
exact procedure the objective admits). See docs/estimators.md.
"""
from .linear import Lasso, LinearRegression, LinearSVC, LogisticRegression, Perceptron, Ridge

__all__ = ["Perceptron", "LinearSVC", "LogisticRegression", "LinearRegression", "Ridge", "Lasso"]
