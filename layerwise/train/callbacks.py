"""Callbacks: what a training run does besides the step itself.

The Trainer runs epochs of steps and evaluations; everything else (printing, the progress bar,
the CSV/JSON-lines log, checkpoints, the curves PNG, the NaN/divergence check, early stopping) is
a callback, so a user adds behaviour by passing one, never by editing the Trainer. The events,
in the order a run sees them::

    on_train_begin(trainer)                       after a resume has been restored
    on_epoch_begin(trainer)                       also for a resumed, half-done epoch
    on_step_end(trainer, logs)                    logs: loss, correct, batch, lr, finite, x, y
    on_epoch_end(trainer, row)                    row: the epoch's log row (train/val metrics, lr, times)
    on_train_end(trainer)                         always, also after an error (trainer.exception)
    on_message(trainer, text)                     a line for humans (resumed, Ctrl-C, early stop)

A callback implements the events it needs (the base class's are no-ops). ``order`` sorts them
(lower first, then as given): the NaN check runs before anything is written, early stopping
before the checkpoint that must record its decision. Callbacks with ``root_only = True`` (files,
printing) run only on rank 0 of a data-parallel run; the others run on every rank, which keeps
collective calls (saving a checkpoint gathers every rank's generators) and stop decisions in step.
A callback with state that a resumed run needs (early stopping's best value and patience count)
returns it from ``state_dict()`` (JSON types) and takes it back in ``load_state_dict``; the
checkpoint stores it.

This is Keras's callback protocol (``keras.callbacks.Callback``) with the events this loop has.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .logs import CURVES_PNG, EpochLog, plot_curves, progress_enabled

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["Callback", "CallbackList", "StopOnNonFinite", "ConsoleLogger", "ProgressBar", "CSVLogger",
           "Checkpoint", "PlotCurves", "EarlyStopping", "LambdaCallback"]


class Callback:
    """Base class: every event is a no-op; subclasses implement the ones they need."""

    #: lower runs first (ties keep the order given); see the module docstring.
    order: int = 0
    #: True: only rank 0 of a data-parallel run calls it (it writes files or prints).
    root_only: bool = False

    def on_train_begin(self, trainer: Trainer) -> None:
        pass

    def on_epoch_begin(self, trainer: Trainer) -> None:
        pass

    def on_step_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        pass

    def on_train_end(self, trainer: Trainer) -> None:
        pass

    def on_message(self, trainer: Trainer, text: str) -> None:
        pass

    def state_dict(self) -> dict[str, Any] | None:
        """JSON-able state a resumed run needs (None: stateless)."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class CallbackList:
    """The callbacks of one Trainer, sorted by ``order``; dispatches each event to all of them."""

    def __init__(self, callbacks: Iterable[Callback], is_root: bool = True) -> None:
        cbs = list(callbacks)
        for cb in cbs:
            if not isinstance(cb, Callback):
                raise TypeError(f"Trainer: callbacks must be layerwise.train.Callback instances, got "
                                f"{type(cb).__name__}; wrap a function in LambdaCallback(on_step_end=f)")
        self.all = sorted(cbs, key=lambda cb: cb.order)  # sorted() is stable: ties keep the given order
        self.active = [cb for cb in self.all if is_root or not cb.root_only]

    def __iter__(self):
        return iter(self.all)

    def __len__(self) -> int:
        return len(self.all)

    def keys(self) -> list[str]:
        """A stable name per callback for the checkpoint: the class name, numbered when repeated."""
        seen: dict[str, int] = {}
        out = []
        for cb in self.all:
            n = type(cb).__name__
            seen[n] = seen.get(n, 0) + 1
            out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
        return out

    def state_dict(self) -> dict[str, Any]:
        return {k: s for k, cb in zip(self.keys(), self.all) if (s := cb.state_dict()) is not None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, cb in zip(self.keys(), self.all):
            if k in state:
                cb.load_state_dict(state[k])

    def on_train_begin(self, trainer: Trainer) -> None:
        for cb in self.active:
            cb.on_train_begin(trainer)

    def on_epoch_begin(self, trainer: Trainer) -> None:
        for cb in self.active:
            cb.on_epoch_begin(trainer)

    def on_step_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        for cb in self.active:
            cb.on_step_end(trainer, logs)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        for cb in self.active:
            cb.on_epoch_end(trainer, row)

    def on_train_end(self, trainer: Trainer) -> None:
        for cb in self.active:
            cb.on_train_end(trainer)

    def on_message(self, trainer: Trainer, text: str) -> None:
        for cb in self.active:
            cb.on_message(trainer, text)


class StopOnNonFinite(Callback):
    """Stops the run with a :class:`~layerwise.train.NonFiniteError` when a step's loss (or the logits)
    is NaN/Inf, naming the first layer whose output is not finite, and at the end of an epoch whose
    validation is not finite, before anything of that epoch is written (the last good checkpoint stays).

    The Trainer never applies a non-finite step; it always has one of these (it adds this one when
    the callbacks given hold none), so a run cannot go on silently with a NaN.
    """

    order = -100

    def on_step_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        if not logs["finite"]:
            from .trainer import NonFiniteError

            raise NonFiniteError(trainer.diagnose_nonfinite(logs["x"], logs["nonfinite"]))

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if not math.isfinite(row["train_loss"]):
            raise trainer.diverged(f"the epoch's mean training loss is {row['train_loss']}", row)
        if "val_loss" in row and not math.isfinite(row["val_loss"]):
            raise trainer.diverged(trainer.last_eval_error or f"the validation loss is {row['val_loss']}", row)


def _print_flush(text: str) -> None:
    print(text, flush=True)


class ConsoleLogger(Callback):
    """Prints one summary line per epoch and the run's messages (``print_fn``: default ``print``, flushed)."""

    root_only = True

    def __init__(self, print_fn: Callable[[str], None] | None = None) -> None:
        self.print = print_fn or _print_flush

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        self.print(summary_line(row, trainer.epochs))

    def on_message(self, trainer: Trainer, text: str) -> None:
        self.print(text)


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss, accuracy, lr and images/s.

    Args:
        enabled: None: only on an interactive terminal and not under CI (``progress_enabled``).
    """

    root_only = True

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = progress_enabled() if enabled is None else bool(enabled)
        self.bar: Any = None

    def on_epoch_begin(self, trainer: Trainer) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=len(trainer.train_loader), initial=trainer.batch_in_epoch, leave=False,
                        desc=f"epoch {trainer.epoch + 1}/{trainer.epochs}", dynamic_ncols=True, unit="batch")

    def on_step_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        if self.bar is None:
            return
        r = trainer.running()
        self.bar.set_postfix_str(f"loss {r['loss']:.4f} acc {100 * r['acc']:.2f}% lr {logs['lr']:.3g} "
                                 f"{r['images'] / max(r['time'], 1e-9):.0f} img/s", refresh=False)
        self.bar.update(1)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        self._close()

    def on_train_end(self, trainer: Trainer) -> None:
        self._close()


class CSVLogger(Callback):
    """``log.csv`` and ``log.jsonl`` in ``run_dir``: one row per epoch, rewritten from ``trainer.history``
    after every epoch, so a run resumed from an earlier checkpoint drops the rows after it."""

    root_only = True

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    def on_train_begin(self, trainer: Trainer) -> None:
        if trainer.history:  # a resume: the files now end where the checkpoint does
            EpochLog(self.run_dir, trainer.history).write()

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        EpochLog(self.run_dir, trainer.history).write()


class Checkpoint(Callback):
    """Saves a training checkpoint (``trainer.save_checkpoint``) every ``every`` epochs, at the end of
    the run (also an early-stopped one), and when Ctrl-C interrupts it; never after an error.

    Args:
        run_dir: where ``checkpoint-epoch0005.safetensors`` (``-iter...`` mid-epoch) go.
        every: every N epochs (0: only at the end).
        ext: ``".safetensors"`` or ``".npz"``.
        meta: extra JSON-able data stored in every checkpoint (the config, the model's name and
            arguments, the normalisation: what ``layerwise test`` needs to rebuild the model).
    """

    order = 10

    def __init__(self, run_dir: str | Path, every: int = 1, ext: str = ".safetensors",
                 meta: dict[str, Any] | None = None) -> None:
        if ext not in (".safetensors", ".npz"):
            raise ValueError(f"Checkpoint: ext must be '.safetensors' or '.npz', got {ext!r}")
        if isinstance(every, bool) or int(every) != every or every < 0:
            raise ValueError(f"Checkpoint: every must be an integer >= 0 (0 = only at the end), got {every!r}")
        self.run_dir, self.every, self.ext = Path(run_dir), int(every), ext
        self.meta = dict(meta or {})

    def path(self, trainer: Trainer) -> Path:
        tag = (f"epoch{trainer.epoch:04d}" if trainer.batch_in_epoch == 0
               else f"epoch{trainer.epoch:04d}-iter{trainer.iteration:07d}")
        return self.run_dir / f"checkpoint-{tag}{self.ext}"

    def save(self, trainer: Trainer) -> Path:
        return trainer.save_checkpoint(self.path(trainer), meta=self.meta)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        last = trainer.epoch >= trainer.epochs or trainer.stop_training
        if last or (self.every and trainer.epoch % self.every == 0):
            self.save(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        if trainer.exception is not None:
            return
        if trainer.interrupted:
            path = self.save(trainer)
            trainer.message(f"Interrupted at epoch {trainer.epoch + 1}, iteration {trainer.iteration}: saved {path}\n"
                            f"Resume with: layerwise train --resume {path}")


class PlotCurves(Callback):
    """Redraws the loss / accuracy / learning-rate curves PNG every ``every`` epochs and at the end."""

    order = 20
    root_only = True

    def __init__(self, path: str | Path, every: int = 1, title: str = "") -> None:
        path = Path(path)
        self.path = path / CURVES_PNG if path.suffix.lower() != ".png" else path
        self.every, self.title = int(every), title

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        last = trainer.epoch >= trainer.epochs or trainer.stop_training
        if last or (self.every and trainer.epoch % self.every == 0):
            plot_curves(trainer.history, self.path, title=self.title)


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs
    (Keras's ``EarlyStopping``); the run then ends normally and the Checkpoint callback saves it.

    Args:
        monitor: a key of the epoch row: ``val_loss``, ``val_top1``, ``train_loss``, ...
        patience: epochs without improvement before stopping.
        min_delta: the smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracies, min otherwise).
    """

    order = -10

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto") -> None:
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if isinstance(patience, bool) or int(patience) != patience or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 0, got {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        if mode == "auto":
            mode = "max" if ("acc" in monitor or "top" in monitor) else "min"
        self.mode = mode
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0

    def _better(self, v: float) -> bool:
        if self.best is None:
            return True
        return v < self.best - self.min_delta if self.mode == "min" else v > self.best + self.min_delta

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self.monitor not in row:
            raise ValueError(f"EarlyStopping: the epoch row has no {self.monitor!r}; it has {sorted(row)} "
                             "(val_* keys need a val_loader)")
        v = float(row[self.monitor])
        if self._better(v):
            self.best, self.best_epoch, self.wait = v, int(row["epoch"]), 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.stop_training = True
            trainer.message(f"Early stopping at epoch {row['epoch']}: {self.monitor} has not improved for "
                            f"{self.wait} epochs (best {self.best:.4g} at epoch {self.best_epoch})")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state["best"], int(state["best_epoch"]), int(state["wait"])


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_step_end=lambda trainer, logs: ...)``.

    Each argument is the function for the event of that name, with that event's arguments.
    """

    def __init__(self, *, on_train_begin: Callable | None = None, on_epoch_begin: Callable | None = None,
                 on_step_end: Callable | None = None, on_epoch_end: Callable | None = None,
                 on_train_end: Callable | None = None, on_message: Callable | None = None,
                 order: int = 0, root_only: bool = False) -> None:
        self._fns = {"on_train_begin": on_train_begin, "on_epoch_begin": on_epoch_begin,
                     "on_step_end": on_step_end, "on_epoch_end": on_epoch_end, "on_train_end": on_train_end,
                     "on_message": on_message}
        self.order, self.root_only = order, root_only

    def on_train_begin(self, trainer: Trainer) -> None:
        if (f := self._fns["on_train_begin"]) is not None:
            f(trainer)

    def on_epoch_begin(self, trainer: Trainer) -> None:
        if (f := self._fns["on_epoch_begin"]) is not None:
            f(trainer)

    def on_step_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        if (f := self._fns["on_step_end"]) is not None:
            f(trainer, logs)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if (f := self._fns["on_epoch_end"]) is not None:
            f(trainer, row)

    def on_train_end(self, trainer: Trainer) -> None:
        if (f := self._fns["on_train_end"]) is not None:
            f(trainer)

    def on_message(self, trainer: Trainer, text: str) -> None:
        if (f := self._fns["on_message"]) is not None:
            f(trainer, text)


def summary_line(row: dict, epochs: int) -> str:
    """The one-line epoch summary ``ConsoleLogger`` prints."""
    s = f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} acc {100 * row['train_acc']:6.2f}%"
    if "val_loss" in row:
        s += f"  val loss {row['val_loss']:.4f} top-1 {100 * row['val_top1']:6.2f}%"
        if "val_top5" in row:
            s += f" top-5 {100 * row['val_top5']:6.2f}%"
    s += f"  lr {row['lr']:.4g}  {row['train_time']:.1f}s {row['img_per_s']:.0f} img/s"
    return s


def default_callbacks(progress: bool | None = None,
                      print_fn: Callable[[str], None] | None = None) -> list[Callback]:
    """What a Trainer without ``callbacks=`` runs: the NaN check, a progress bar (on a terminal) and
    the epoch lines (nothing on disk: add ``Checkpoint``, ``CSVLogger``, ``PlotCurves`` for that)."""
    return [StopOnNonFinite(), ProgressBar(progress), ConsoleLogger(print_fn)]
