"""layerwise.viz: plots (matplotlib, Agg canvas; imported only when a plot is drawn).

    feature_reuse(net)            DenseNet's Fig. 5 matrices   layerwise plot reuse CHECKPOINT
    plot_activations(out)         every activation and its derivative, from forward/backward
    plot_center_loss(out)         2-D features with softmax alone and with center loss
    plot_optimizer_paths(...)     the optimizer playground
"""
from .activations import activation_curves, plot_activations
from .center_loss import plot_center_loss, train_center_loss
from .critical import classify, find_critical_points, hessian
from .optimizers import critical_points, plot_optimizer_paths, run_paths
from .reuse import feature_reuse, plot_feature_reuse

__all__ = ["plot_optimizer_paths", "run_paths", "critical_points", "hessian", "classify", "find_critical_points",
           "feature_reuse", "plot_feature_reuse", "activation_curves", "plot_activations",
           "train_center_loss", "plot_center_loss"]
