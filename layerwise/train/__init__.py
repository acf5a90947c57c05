"""Training: the Trainer (epochs, evaluation, exact resume), its callbacks and metrics.

    from layerwise.train import Trainer, Checkpoint, CSVLogger, PlotCurves
    solver = SGD(net.named_params(), lr=build_policy("cosine", 0.1, max_iter=30 * len(loader)), momentum=0.9)
    trainer = Trainer(net, SoftmaxCrossEntropyLoss(), solver, loader, val_loader=val, epochs=30,
                      callbacks=[*default_callbacks(), Checkpoint("runs/demo"), CSVLogger("runs/demo")])
    trainer.fit()                      # or trainer.fit(resume="runs/demo/checkpoint-epoch0010.safetensors")

``layerwise.train.build.build_trainer(config, run_dir)`` builds all of it from a YAML config.
"""
from .callbacks import (
                        Callback,
                        CallbackList,
                        Checkpoint,
                        ConsoleLogger,
                        CSVLogger,
                        EarlyStopping,
                        LambdaCallback,
                        PlotCurves,
                        ProgressBar,
                        StopOnNonFinite,
                        default_callbacks,
)
from .logs import EpochLog, plot_curves, read_log
from .metrics import Average, confusion_matrix, format_confusion, topk_correct
from .trainer import CHECKPOINT_FORMAT, NonFiniteError, Trainer, evaluate

__all__ = ["Trainer", "NonFiniteError", "evaluate", "CHECKPOINT_FORMAT", "EpochLog", "plot_curves", "read_log",
           "Average", "confusion_matrix", "format_confusion", "topk_correct", "Callback", "CallbackList",
           "Checkpoint", "ConsoleLogger", "CSVLogger", "EarlyStopping", "LambdaCallback", "PlotCurves", "ProgressBar",
           "StopOnNonFinite", "default_callbacks"]
