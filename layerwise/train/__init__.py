"""Training: the Trainer (epochs, evaluation, logs, curves, checkpoints, exact resume) and metrics.

    from layerwise.train import Trainer
    trainer = Trainer(net, SoftmaxCrossEntropyLoss(), solver, loader, val_loader=val, epochs=30,
                      policy=policy, run_dir="runs/demo")
    trainer.fit()                      # or trainer.fit(resume="runs/demo/checkpoint-epoch0010.safetensors")

``layerwise.train.build.build_trainer(config, run_dir)`` builds all of it from a YAML config.
"""
from .logs import EpochLog, plot_curves, read_log
from .metrics import Average, confusion_matrix, format_confusion, topk_correct
from .trainer import CHECKPOINT_FORMAT, NonFiniteError, Trainer, evaluate

__all__ = ["Trainer", "NonFiniteError", "evaluate", "CHECKPOINT_FORMAT", "EpochLog", "plot_curves", "read_log",
           "Average", "confusion_matrix", "format_confusion", "topk_correct"]
