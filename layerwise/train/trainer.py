"""The Trainer: epochs of forward / loss / backward / step, and evaluation; the rest are callbacks.

One training step, written out (docs/design.md)::

    x, y = next(train_loader)                # the loader crops, flips and normalises
    logits = net.forward(x)                  # (N, K)
    loss = criterion.forward(logits, y)      # 0-d
    net.backward(criterion.backward())       # grads ADDED into every Param.grad
    solver.step(); net.zero_grad()           # lr = the solver's schedule at its iteration

The learning rate flows one way: the solver owns its schedule (Caffe's ``lr_policy``) and counts
the iterations; the Trainer reads both (``trainer.iteration`` is ``solver.iteration``) and never
sets them. Printing, the progress bar, logs, checkpoints, curves, the NaN check and early
stopping are callbacks (:mod:`layerwise.train.callbacks`).

Exact resume: a checkpoint holds everything the next step depends on: weights and buffers,
the solver's slots and iteration (the schedule's whole position), the loader's state (its
generator and this epoch's order and position; it draws the augmentation from it), every
layer's generator (Dropout masks) and the callbacks' state. Restoring them all makes the losses
after a resume equal those of an uninterrupted run bit for bit (same machine and thread count).

Data parallel (``comm`` with more than one rank, docs/distributed.md): every rank runs this same
loop on its shard of each global batch (the loader's ``rank``/``world_size``); the ranks start
from rank 0's weights, average their gradients (weighted by their sample counts) before each
``solver.step()``, and agree on the batch's loss/accuracy, on NaN and on Ctrl-C with one small
allreduce per step. Callbacks that print or write files run on rank 0 only; a checkpoint also
holds every rank's generators, so a resume with the same number of ranks continues exactly.
"""
from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import get_array_module, to_numpy
from ..core import Layer, Net, NetHook
from ..distributed.comm import Communicator
from .callbacks import Callback, CallbackList, StopOnNonFinite, default_callbacks
from .logs import order_rows
from .metrics import Average, confusion_matrix, topk_correct
from .state import layer_rng_states, set_layer_rng_states

CHECKPOINT_FORMAT = "layerwise-train-checkpoint/2"


class NonFiniteError(FloatingPointError):
    """The loss became NaN or Inf; the message names the iteration and the first layer whose
    output (or parameter) was not finite."""


class Trainer:
    """Trains a classifier Net with a loss layer and a solver.

    Args:
        net: the model; maps a batch (N, ...) to logits (N, K). If it is not built yet, it is set
            up from ``train_loader.dataset.sample_shape`` in float32.
        criterion: a loss layer, ``forward(logits, labels) -> 0-d``, ``backward() -> dlogits``.
        solver: updates ``net``'s params and owns the learning-rate schedule and the iteration
            count: ``step()``, ``iteration``, ``lr_at(it)``, ``state_dict()/load_state_dict()``.
        train_loader: yields ``(x, y)`` batches (it applies the augmentation); ``len()``,
            ``state_dict()/load_state_dict()``.
        val_loader: evaluated after every epoch (None: no evaluation).
        epochs: number of passes over ``train_loader``.
        callbacks: what the run does besides training (``layerwise.train.callbacks``); None: the
            defaults (``default_callbacks()``: the NaN check, a progress bar on a terminal, the epoch
            lines; no files). A ``StopOnNonFinite`` is added when the list holds none.
        seed: seeds the per-rank Dropout generators of a data-parallel run.
        comm: a :class:`layerwise.distributed.Communicator` (None: one process). With more than
            one rank the training is data-parallel: give each rank's loaders ``rank`` and
            ``world_size``.

    Attributes:
        epoch: completed epochs; ``batch_in_epoch``: steps done in the current one.
        iteration: completed solver steps (``solver.iteration``).
        history: the epoch rows so far (what ``fit`` returns); ``losses``: every step's loss.
        stop_training: set by a callback to end the run after the current epoch (early stopping).
        interrupted: Ctrl-C ended the run; ``exception``: the error that ended it, if any.
        last_checkpoint: the path of the last checkpoint written.

    Example:
        >>> trainer = Trainer(net, SoftmaxCrossEntropyLoss(), solver, loader, epochs=2,
        ...                   callbacks=[Checkpoint("runs/demo"), CSVLogger("runs/demo")])  # doctest: +SKIP
        >>> history = trainer.fit()                                                       # doctest: +SKIP
    """

    def __init__(self, net: Layer, criterion: Layer, solver: Any, train_loader: Any, *, val_loader: Any = None,
                 epochs: int = 1, callbacks: Iterable[Callback] | None = None, seed: int = 0,
                 comm: Any = None) -> None:
        if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1:
            raise ValueError(f"Trainer: epochs must be an integer >= 1, got {epochs!r}")
        self.net, self.criterion, self.solver = net, criterion, solver
        if isinstance(net, Net):  # the images need no gradient: the first layer computes no dx (propagate_down)
            net.propagate_down = (False,) * len(net.input_names)
        self.train_loader, self.val_loader = train_loader, val_loader
        self.epochs = int(epochs)
        self.seed = int(seed)
        self.comm = comm if comm is not None else Communicator()
        self.is_root = self.comm.rank == 0
        cbs = list(default_callbacks() if callbacks is None else callbacks)
        if not any(isinstance(cb, StopOnNonFinite) for cb in cbs):
            cbs.append(StopOnNonFinite())
        self.callbacks = CallbackList(cbs, is_root=self.is_root)
        self._dp: Any = None  # DataParallel, once the net is built (more than one rank)
        self._dp_synced = False
        self.epoch = 0
        self.batch_in_epoch = 0
        self.losses: list[float] = []  # every training loss, in order (what resume must reproduce)
        self.history: list[dict[str, Any]] = []
        self._loss_avg, self._acc_avg = Average(), Average()
        self._epoch_time = 0.0  # seconds of training steps in the current epoch
        self.last_checkpoint: Path | None = None
        self.last_eval_error: str | None = None
        self.stop_training = False
        self.exception: BaseException | None = None
        self._stop = False  # Ctrl-C, agreed by all ranks (set from _stop_local by the per-step allreduce)
        self._stop_local = False  # Ctrl-C seen by this process
        self.interrupted = False

    # -------------------------------------------------------------- counters
    @property
    def iteration(self) -> int:
        """Completed solver steps: the solver counts them (its schedule's position); the Trainer reads it."""
        return int(self.solver.iteration)

    @property
    def dtype(self) -> np.dtype:
        """The float dtype batches are cast to: the params' (float32 for a net without params)."""
        for p in self.net.params():
            return np.dtype(p.data.dtype)
        return np.dtype(np.float32)

    def running(self) -> dict[str, float]:
        """This epoch so far: mean loss and accuracy, images and seconds of training steps."""
        return {"loss": self._loss_avg.value, "acc": self._acc_avg.value, "images": self._loss_avg.count,
                "time": self._epoch_time}

    def message(self, text: str) -> None:
        """A line for humans (resumed, Ctrl-C, early stop): handed to the callbacks' ``on_message``."""
        self.callbacks.on_message(self, text)

    # ------------------------------------------------------------------ steps
    def _to_batch(self, x: Any) -> Any:
        return x if x.dtype == self.dtype else x.astype(self.dtype)

    def train_step(self, x: Any, y: Any) -> dict[str, Any]:
        """One step on a batch; returns its logs: ``loss``, ``correct``, ``batch`` (samples over all ranks),
        ``lr`` (of this update), ``finite`` and, when not finite, ``nonfinite`` (what) with ``x``, ``y``.

        A step whose logits or loss are NaN/Inf (on any rank) is not applied: no backward, no update.
        """
        self.net.train()
        self.criterion.train()
        lr = self.solver.lr_at(self.iteration)
        logits = self.net.forward(x)
        xp = get_array_module(logits)
        bad, loss = None, math.nan
        if not bool(xp.isfinite(logits).all()):  # (N, K): cheap, and the loss layer would refuse it
            bad = "the logits hold NaN/Inf"
        else:
            loss = float(self.criterion.forward(logits, y))
            if not math.isfinite(loss):
                bad = f"the training loss is {loss}"
        b = int(y.shape[0])
        correct = topk_correct(logits, y, 1) if bad is None else 0
        if self._dp is not None:  # one small allreduce: the batch's loss, accuracy, Ctrl-C, NaN
            stats = np.array([loss * b if bad is None else 0.0, correct, b, float(self._stop_local),
                              float(bad is not None)], dtype=np.float64)
            self.comm.allreduce(stats)
            if stats[3] > 0:
                self._stop = True
            if stats[4] > 0 and bad is None:
                bad = (f"the training loss is not finite on another rank at iteration {self.iteration} "
                       "(rank 0's message names the layer)")
            if bad is None:
                loss, correct, b = float(stats[0] / stats[2]), int(stats[1]), int(stats[2])
        logs: dict[str, Any] = {"loss": loss, "correct": correct, "batch": b, "lr": lr, "finite": bad is None}
        if bad is not None:
            logs.update(nonfinite=bad, x=x, y=y, loss=math.nan)  # also when only another rank was not finite
            return logs
        self.net.backward(self.criterion.backward())
        if self._dp is not None:
            self._dp.sync_gradients(weight=int(y.shape[0]))  # every rank now holds the global batch's gradient
        self.solver.step()
        self.net.zero_grad()
        return logs

    def diagnose_nonfinite(self, x: Any, what: str) -> str:
        """Re-run the batch forward layer by layer and name where a NaN/Inf first appears."""
        where = f"at iteration {self.iteration} (epoch {self.epoch + 1}, batch {self.batch_in_epoch})"
        xp = get_array_module(x)
        if not bool(xp.isfinite(x).all()):
            return f"{what} {where}: the input batch itself holds NaN/Inf; check the data set"
        bad_params = [k for k, p in self.net.named_params().items() if not bool(xp.isfinite(p.data).all())]
        layer = _first_nonfinite_layer(self.net, (x,))
        msg = f"{what} {where}"
        if layer is not None:
            msg += f"; the first non-finite output comes from layer {layer}"
        else:
            msg += f"; every layer's output is finite, so the loss layer {self.criterion!r} overflowed"
        if bad_params:
            shown = ", ".join(bad_params[:5]) + (f" and {len(bad_params) - 5} more" if len(bad_params) > 5 else "")
            msg += f"; non-finite parameters: {shown} (an earlier update diverged)"
        msg += (f". The learning rate was {self.solver.lr_at(max(self.iteration - 1, 0)):.4g}: lower solver.lr, "
                "add warm-up (lr_policy.warmup_epochs) or gradient clipping")
        return msg

    def diverged(self, what: str, row: dict[str, Any]) -> NonFiniteError:
        """The error that stops a run that diverged in the epoch of ``row``, naming the last good checkpoint."""
        kept = (f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint is not None
                else "no checkpoint of this run was saved before it diverged")
        return NonFiniteError(f"the run diverged in epoch {row['epoch']} (iteration {self.iteration}): {what}; "
                              f"nothing was saved for this epoch and {kept}. Lower solver.lr (it was "
                              f"{self.solver.lr_at(max(self.iteration - 1, 0)):.4g}), add warm-up "
                              "(lr_policy.warmup_epochs) or gradient clipping")

    # --------------------------------------------------------------- evaluate
    def evaluate(self, loader: Any, collect: bool = False) -> dict[str, Any]:
        """Loss, top-1 and (for more than 5 classes) top-5 accuracy over ``loader`` (see ``evaluate``)."""
        k = None
        if isinstance(self.net, Net) and self.net.built:  # every rank knows K, also one whose share is empty
            out = self.net.blob_shapes[self.net.output_names[0]]
            k = int(out[-1]) if len(out) == 2 else None
        return evaluate(self.net, loader, self.criterion, num_classes=k, collect=collect, dtype=self.dtype,
                        comm=self.comm)

    # -------------------------------------------------------------------- fit
    def fit(self, resume: str | Path | None = None) -> list[dict]:
        """Train until ``epochs`` epochs are done (or a callback sets ``stop_training``); returns ``history``.

        Args:
            resume: a checkpoint path to continue from (``Trainer.load_checkpoint``).

        Ctrl-C (SIGINT) finishes the current step, sets ``interrupted`` and returns (the ``Checkpoint``
        callback saves the state); a second Ctrl-C aborts at once.
        """
        self._ensure_built()
        if self._dp is not None and not self._dp_synced:
            self._dp.broadcast()  # every rank starts from rank 0's weights and buffers
            self._dp.seed_layer_generators(self.seed)  # ... but draws its own Dropout masks
            self._dp_synced = True
        if resume is not None:
            self.load_checkpoint(resume)
        self._stop, self._stop_local, self.interrupted = False, False, False
        self.stop_training, self.exception = False, None
        old = self._install_sigint()
        try:
            self.callbacks.on_train_begin(self)
            while self.epoch < self.epochs and not self.stop_training:
                self.callbacks.on_epoch_begin(self)
                self._train_epoch()
                if self._stop and self.batch_in_epoch < len(self.train_loader):
                    break  # mid-epoch: a checkpoint resumes at the next batch
                self._end_epoch()
                if self._stop:
                    break
            self.interrupted = self._stop
        except BaseException as e:
            self.exception = e
            raise
        finally:
            self._restore_sigint(old)
            self.callbacks.on_train_end(self)
        return self.history

    def _train_epoch(self) -> None:
        n_batches = len(self.train_loader)
        last = time.perf_counter()
        try:
            for xb, yb in self.train_loader:
                logs = self.train_step(self._to_batch(xb), yb)
                self.batch_in_epoch += 1
                self.losses.append(logs["loss"])
                if logs["finite"]:
                    b = logs["batch"]  # over all ranks
                    self._loss_avg.update(logs["loss"], b)
                    self._acc_avg.update(logs["correct"] / b, b)
                now = time.perf_counter()
                self._epoch_time, last = self._epoch_time + now - last, now
                self.callbacks.on_step_end(self, logs)
                if self._stop and self.batch_in_epoch < n_batches:
                    break  # after the last batch the loop ends by itself, so the loader closes its epoch
        finally:
            self._epoch_time += time.perf_counter() - last

    def _end_epoch(self) -> None:
        row: dict[str, Any] = {"epoch": self.epoch + 1, "iteration": self.iteration,
                               "train_loss": self._loss_avg.value, "train_acc": self._acc_avg.value}
        if self._dp is not None:
            self._dp.broadcast_buffers()  # evaluate (and save) rank 0's BatchNorm running statistics
        self.last_eval_error = None
        if self.val_loader is not None:
            t0 = time.perf_counter()
            try:
                res = self.evaluate(self.val_loader)
            except NonFiniteError as e:  # the StopOnNonFinite callback stops the run before anything is saved
                self.last_eval_error = str(e)
                res = {"loss": math.nan, "top1": math.nan}
            row.update({"val_loss": res["loss"], "val_top1": res["top1"]})
            if "top5" in res:
                row["val_top5"] = res["top5"]
            row["eval_time"] = round(time.perf_counter() - t0, 3)
        row["lr"] = self.solver.lr_at(max(self.iteration - 1, 0))
        row["train_time"] = round(self._epoch_time, 3)
        row["img_per_s"] = round(self._loss_avg.count / max(self._epoch_time, 1e-9), 1)
        self.epoch += 1
        self.batch_in_epoch = 0
        self._loss_avg, self._acc_avg, self._epoch_time = Average(), Average(), 0.0
        self.history.append(row)
        self.callbacks.on_epoch_end(self, row)

    # ------------------------------------------------------------ checkpoints
    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """One sample's shape: the training set's ``sample_shape``, else the built net's input."""
        ds = getattr(self.train_loader, "dataset", None)
        shape = getattr(ds, "sample_shape", None)
        if shape is not None:
            return tuple(int(d) for d in shape)
        if isinstance(self.net, Net) and self.net.built and self.net.input_names:
            return tuple(self.net.blob_shapes[self.net.input_names[0]][1:])
        return None

    def _ensure_built(self) -> None:
        if not self.net.built:
            if self.input_shape is None:
                raise ValueError("Trainer: the net is not set up yet and the training set has no sample_shape; "
                                 "call net.setup((1, *sample_shape)) or run one forward pass first")
            self.net.setup((1, *self.input_shape), dtype=np.float32)
        if self.comm.distributed and self._dp is None:
            from ..distributed import DataParallel

            self._dp = DataParallel(self.net, self.comm)

    def checkpoint_state(self, meta: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict]:
        """(tensors, meta) of everything a bit-exact resume needs, ``meta`` merged in (collective with
        several ranks: rank 0 gathers every rank's generators; the rest is rank 0's)."""
        tensors: dict[str, np.ndarray] = {}
        for k, v in self.net.state_dict().items():
            tensors[f"model/{k}"] = _contiguous(v)
        out: dict[str, Any] = dict(meta or {})
        shape = self.input_shape
        out.update({
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "iteration": self.iteration,
            "batch_in_epoch": self.batch_in_epoch,
            "epochs": self.epochs,
            "complete": self.epoch >= self.epochs,
            "input_shape": list(shape) if shape else None,
            "dtype": str(self.dtype),
            "lr": self.solver.lr_at(self.iteration),
            "solver": _pack(self.solver.state_dict(), "solver", tensors),
            "loader": _pack(self.train_loader.state_dict(), "loader", tensors),
            "rng": {"layers": layer_rng_states(self.net)},
            "callbacks": self.callbacks.state_dict(),
            "world_size": self.comm.size,
            "running": {"loss": self._loss_avg.state(), "acc": self._acc_avg.state(),
                        "epoch_time": self._epoch_time},
            "history": self.history,
            "history_columns": _columns(self.history),
        })
        if self.comm.distributed:
            out["rng"]["ranks"] = self.comm.gather_object({"layers": out["rng"]["layers"]})
        tensors["train/losses"] = np.asarray(self.losses, dtype=np.float64)
        return tensors, out

    def save_checkpoint(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint atomically (temporary file + rename); returns its path.

        With several ranks every rank must call it; rank 0 writes.
        """
        from ..io import save_checkpoint

        path = Path(path)
        tensors, full = self.checkpoint_state(meta)
        if self.is_root:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(path, tensors, full)
        self.last_checkpoint = path
        return path

    def load_checkpoint(self, path: str | Path) -> dict:
        """Restore weights, solver, counters, loader, every generator and the callbacks' state.

        With several ranks every rank must call it: rank 0 reads the file and hands its contents
        to the others (the file need only exist where rank 0 runs).
        """
        from ..io import load_checkpoint, unpack_state

        tensors, meta = self.comm.on_root(lambda: load_checkpoint(path))
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not a training checkpoint of this version (format {meta.get('format')!r}, "
                             f"expected {CHECKPOINT_FORMAT!r}); weights-only files can be loaded with "
                             "net.load_state_dict")
        self._ensure_built()
        model = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
        try:
            self.net.load_state_dict(model)
        except ValueError as e:
            raise ValueError(f"{path}: the checkpoint does not fit this model ({e}); resume with the config "
                             "the run was started with") from None
        self.solver.load_state_dict(unpack_state(meta["solver"], tensors))
        if self.iteration != int(meta["iteration"]):
            raise ValueError(f"{path}: the solver's iteration ({self.iteration}) does not match the checkpoint's "
                             f"({meta['iteration']}); the file was edited or written by another version")
        self.train_loader.load_state_dict(unpack_state(meta["loader"], tensors))
        rng = meta["rng"]
        ranks = rng.get("ranks")
        if ranks and len(ranks) == self.comm.size:  # this rank's own generators
            rng = ranks[self.comm.rank]
        set_layer_rng_states(self.net, rng["layers"])
        self.callbacks.load_state_dict(meta.get("callbacks", {}))
        self.epoch = int(meta["epoch"])
        self.batch_in_epoch = int(meta["batch_in_epoch"])
        run = meta.get("running", {})
        self._loss_avg = Average(*run.get("loss", (0.0, 0.0)))
        self._acc_avg = Average(*run.get("acc", (0.0, 0.0)))
        self._epoch_time = float(run.get("epoch_time", 0.0))
        self.losses = [float(v) for v in tensors.get("train/losses", np.zeros(0))]
        self.history = order_rows(meta.get("history", []), meta.get("history_columns"))
        if self.epoch > self.epochs:
            raise ValueError(f"{path}: the checkpoint is at epoch {self.epoch}, past epochs={self.epochs}; "
                             "raise epochs to train further")
        self.message(f"Resumed from {path} at epoch {self.epoch + (1 if self.batch_in_epoch else 0)}"
                     f"{f', batch {self.batch_in_epoch}' if self.batch_in_epoch else ''} (iteration {self.iteration})")
        return meta

    # ----------------------------------------------------------------- SIGINT
    def request_stop(self, *_: Any) -> None:
        """Ask the loop to stop after the current step and return (the SIGINT handler)."""
        if self._stop_local:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self._stop_local = True
        if not self.comm.distributed:  # several ranks agree on it at the next step's allreduce
            self._stop = True
        self.message("\nCtrl-C: finishing this step and saving a checkpoint (press Ctrl-C again to abort)")

    def _install_sigint(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None
        return signal.signal(signal.SIGINT, self.request_stop)

    def _restore_sigint(self, old: Any) -> None:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def _columns(rows: list[dict]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    return keys


def _contiguous(v: Any) -> np.ndarray:
    """A C-contiguous NumPy copy-if-needed that keeps 0-d arrays 0-d (np.ascontiguousarray does not)."""
    a = to_numpy(v)
    return a if a.flags.c_contiguous else a.copy()


def _pack(state: dict, prefix: str, tensors: dict[str, np.ndarray]) -> Any:
    """Arrays of a nested state into ``tensors`` (under ``prefix/``); returns the JSON tree."""
    from ..io import pack_state

    arrays, tree = pack_state(state, prefix)
    tensors.update({k: _contiguous(v) for k, v in arrays.items()})
    return tree


def evaluate(net: Layer, loader: Any, criterion: Layer | None = None, *, transform: Callable | None = None,
             num_classes: int | None = None, collect: bool = False, dtype: Any = np.float32,
             comm: Any = None) -> dict[str, Any]:
    """Loss, top-1 and (for more than 5 classes) top-5 accuracy of ``net`` over ``loader``, in eval mode.

    Args:
        net: the model (set to eval mode while evaluating, then back to train mode).
        loader: yields ``(x, y)`` batches.
        criterion: a loss layer (None: no loss is reported).
        transform: ``t(x, None) -> x`` per batch (normalisation).
        num_classes: K (top-5 is reported when K > 5 or unknown; confusion needs K).
        collect: also return ``pred``, ``labels`` and the ``confusion`` matrix (rows: true class).
        comm: with more than one rank, each rank evaluates its shard of ``loader`` (a loader with
            ``rank``/``world_size``) and the sums of loss, correct counts and samples are
            allreduced, so every rank returns the metrics over the whole set (collect: not allowed).

    Returns:
        ``{"loss", "top1", ["top5"], "n", [...collected]}``.

    Raises:
        NonFiniteError: the net's outputs (or the loss) are NaN/Inf on some batch; every rank raises.
    """
    distributed = comm is not None and comm.size > 1
    if distributed and collect:
        raise ValueError("evaluate: collect=True gathers predictions of one process; evaluate on one rank")
    was_training = net.training
    net.eval()
    if criterion is not None:
        criterion.eval()
    dtype = np.dtype(dtype)
    loss, top1, top5, n, bad = 0.0, 0, 0, 0, 0
    preds, labels = [], []
    k = num_classes  # None: the logits' width
    try:
        for xb, yb in loader:
            b = int(yb.shape[0])
            if b == 0:  # a rank's empty share of a short last batch
                continue
            x = transform(xb, None) if transform is not None else xb
            x = x if x.dtype == dtype else x.astype(dtype)
            logits = net.forward(x)
            if k is None:
                k = int(logits.shape[-1])
            if not bool(get_array_module(logits).isfinite(logits).all()):  # (N, K): cheap
                bad += b
                n += b
                continue
            if criterion is not None:
                loss += float(criterion.forward(logits, yb)) * b
            top1 += topk_correct(logits, yb, 1)
            if k is None or k > 5:
                top5 += topk_correct(logits, yb, 5)
            n += b
            if collect:
                preds.append(to_numpy(logits.argmax(axis=1)))
                labels.append(to_numpy(yb))
    finally:
        net.train(was_training)
        if criterion is not None:
            criterion.train()
    if distributed:
        sums = np.array([loss, top1, top5, n, bad], dtype=np.float64)
        comm.allreduce(sums)
        loss, top1, top5, n, bad = float(sums[0]), int(sums[1]), int(sums[2]), int(sums[3]), int(sums[4])
    if n == 0:
        raise ValueError("evaluate: the loader yielded no batches; check the data set and batch size")
    if bad:
        raise NonFiniteError(f"evaluation: the model's outputs hold NaN/Inf for batches of {bad} of {n} samples "
                             "(non-finite weights or an overflow)")
    if criterion is not None and not math.isfinite(loss):
        raise NonFiniteError(f"evaluation: the loss over {n} samples is {loss / n} (the model is certain of wrong "
                             "classes: it has diverged)")
    out: dict[str, Any] = {"top1": top1 / n, "n": n}
    if criterion is not None:
        out["loss"] = loss / n
    if k is None or k > 5:
        out["top5"] = top5 / n
    if collect:
        out["pred"], out["labels"] = np.concatenate(preds), np.concatenate(labels)
        if k is not None:
            out["confusion"] = confusion_matrix(out["pred"], out["labels"], k)
    return out


class _FirstNonFinite(NetHook):
    """Net hook: remembers the first leaf step whose output holds NaN/Inf."""

    def __init__(self) -> None:
        self.where: str | None = None

    def after_forward(self, path, step, ys, leaf):
        if self.where is not None or not leaf:
            return
        arrays = [y for y in ys if y is not None]
        xp = get_array_module(*arrays)
        if not all(bool(xp.isfinite(y).all()) for y in arrays):
            self.where = f"'{path}' ({type(step.layer).__name__})"


def _first_nonfinite_layer(net: Layer, xs: tuple) -> str | None:
    """Forward ``xs`` through the Net's own walk (its hooks), every layer on its own (fusion off
    for the diagnosis), and return "'dotted.path' (Type)" of the first non-finite output."""
    if not isinstance(net, Net):
        return None
    flags = [(m, m.fuse) for m in net.modules() if isinstance(m, Net)]
    hook = _FirstNonFinite()
    try:
        net.set_fusion(False)
        with net.hooks(hook), np.errstate(all="ignore"):
            net.forward(*xs)
    finally:
        for m, fuse in flags:
            m.fuse = fuse
    return hook.where


__all__ = ["Trainer", "NonFiniteError", "evaluate", "CHECKPOINT_FORMAT"]
