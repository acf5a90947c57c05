"""layerwise.viz: plots (matplotlib, Agg canvas; imported only when a plot is drawn)."""
from .optimizers import plot_optimizer_paths, run_paths

__all__ = ["plot_optimizer_paths", "run_paths"]
