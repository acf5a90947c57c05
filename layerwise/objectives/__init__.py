"""layerwise.objectives: the classical objective functions of machine learning as plain
functions returning ``(value, gradient)`` (see docs/objectives.md).
"""
from .gan_rl import bellman_error, gan_value, generator_loss, policy_evaluation
from .supervised import (
                         adaboost_alpha,
                         adaboost_exponential,
                         fisher_ratio,
                         lasso_ista,
                         lasso_prox_step,
                         lda_directions,
                         least_squares,
                         logistic_regression,
                         perceptron,
                         ridge_solution,
                         soft_threshold,
                         softmax_regression,
                         svm_primal,
)
from .unsupervised import autoencoder, geodesic_distances, isomap_stress, kmeans, pca_basis, pca_reconstruction

__all__ = [
    "perceptron", "fisher_ratio", "lda_directions", "svm_primal", "logistic_regression", "softmax_regression",
    "adaboost_exponential", "adaboost_alpha", "least_squares", "ridge_solution", "soft_threshold",
    "lasso_prox_step", "lasso_ista",
    "kmeans", "pca_reconstruction", "pca_basis", "autoencoder", "geodesic_distances", "isomap_stress",
    "gan_value", "generator_loss", "policy_evaluation", "bellman_error",
]
