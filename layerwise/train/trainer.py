"""The Trainer: epochs of forward / loss / backward / step, evaluation, logs, checkpoints.

One training step, written out (DESIGN.md)::

    x = augment(x, aug_rng)                 # pad-and-crop, flip, normalise
    logits = net.forward(x)                  # (N, K)
    loss = criterion.forward(logits, y)      # 0-d
    net.backward(criterion.backward())       # grads ADDED into every Param.grad
    solver.step(); net.zero_grad()           # lr = policy(iteration), a pure function

Exact resume: a checkpoint holds everything the next step depends on: weights and buffers,
the solver's slots, the iteration (the schedule's whole position), the loader's state (its
generator and this epoch's order and position), the augmentation generator and every layer's
generator (Dropout masks). Restoring them all makes the losses after a resume equal those
of an uninterrupted run bit for bit (on the same machine and thread count).

Data parallel (``comm`` with more than one rank, docs/distributed.md): every rank runs this same
loop on its shard of each global batch (the loader's ``rank``/``world_size``); the ranks start
from rank 0's weights, average their gradients (weighted by their sample counts) before each
``solver.step()``, and agree on the batch's loss/accuracy and on Ctrl-C with one small allreduce
per step. Only rank 0 prints, writes logs, curves and checkpoints; a checkpoint also holds every
rank's generators, so a resume with the same number of ranks continues exactly.
"""
from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import get_array_module, to_numpy
from ..core import Layer, Net, NetHook
from ..distributed.comm import Communicator
from .logs import CURVES_PNG, EpochLog, plot_curves, progress_enabled
from .metrics import Average, confusion_matrix, topk_correct
from .state import generator_state, layer_rng_states, set_generator_state, set_layer_rng_states

CHECKPOINT_FORMAT = "layerwise-train-checkpoint/1"


class NonFiniteError(FloatingPointError):
    """The loss became NaN or Inf; the message names the iteration and the first layer whose
    output (or parameter) was not finite."""


class Trainer:
    """Trains a classifier Net with a loss layer and a solver.

    Args:
        net: the model; maps a batch (N, C, H, W) to logits (N, K).
        criterion: a loss layer, ``forward(logits, labels) -> 0-d``, ``backward() -> dlogits``.
        solver: updates ``net``'s params: ``step()``, ``lr``, ``state_dict()/load_state_dict()``.
        train_loader: yields ``(x, y)`` batches; ``len()``, ``state_dict()/load_state_dict()``.
        val_loader: evaluated after every epoch (None: no evaluation).
        policy: ``iteration -> lr`` (None: keep ``solver.lr``).
        epochs: number of passes over ``train_loader``.
        run_dir: where checkpoints, ``log.csv``/``log.jsonl`` and ``curves.png`` go.
        train_transform: ``t(x, rng) -> x`` applied to every training batch with the trainer's
            own augmentation generator (seeded from ``seed``).
        eval_transform: ``t(x, rng) -> x`` for evaluation batches (normalisation only).
        seed: seeds the augmentation generator.
        checkpoint_every: save every N epochs (0: only at the end); always at the end.
        num_classes: K, used for top-5 (reported when K > 5) and confusion matrices.
        input_shape: (C, H, W), to set the net up before loading a checkpoint.
        meta: extra JSON-able data stored in every checkpoint (the config, normalisation, ...).
        progress: show a tqdm bar (None: only on a terminal and not under CI).
        checkpoint_ext: ".safetensors" (default) or ".npz".
        dtype: the float dtype batches are cast to (the params' dtype).
        print_fn: where epoch summaries go (default: print).
        on_iteration: optional callback ``f(trainer)`` after every step (tests, custom logging).
        comm: a :class:`layerwise.distributed.Communicator` (None: one process). With more than
            one rank the training is data-parallel: give each rank's loaders ``rank`` and
            ``world_size``; only rank 0 prints and writes files.

    Example:
        >>> trainer = Trainer(net, SoftmaxCrossEntropyLoss(), solver, loader, epochs=2,
        ...                   run_dir="runs/demo")                      # doctest: +SKIP
        >>> history = trainer.fit()                                     # doctest: +SKIP
    """

    def __init__(self, net: Layer, criterion: Layer, solver: Any, train_loader: Any, *,
                 val_loader: Any = None, policy: Callable[[int], float] | None = None, epochs: int = 1,
                 run_dir: str | Path = "runs/run", train_transform: Callable | None = None,
                 eval_transform: Callable | None = None, seed: int = 0, checkpoint_every: int = 1,
                 num_classes: int | None = None, input_shape: tuple[int, ...] | None = None,
                 meta: dict | None = None, progress: bool | None = None, checkpoint_ext: str = ".safetensors",
                 dtype: Any = np.float32, print_fn: Callable[[str], None] | None = None,
                 on_iteration: Callable[[Trainer], None] | None = None, comm: Any = None) -> None:
        if epochs < 1:
            raise ValueError(f"Trainer: epochs must be >= 1, got {epochs}")
        if checkpoint_ext not in (".safetensors", ".npz"):
            raise ValueError(f"Trainer: checkpoint_ext must be '.safetensors' or '.npz', got {checkpoint_ext!r}")
        self.net, self.criterion, self.solver = net, criterion, solver
        if isinstance(net, Net):   # the images need no gradient: the first layer computes no dx (propagate_down)
            net.propagate_down = (False,) * len(net.input_names)
        self.train_loader, self.val_loader = train_loader, val_loader
        self.policy = policy
        if policy is not None:
            solver.lr = policy  # the solver evaluates it at its own iteration
        self.epochs = int(epochs)
        self.run_dir = Path(run_dir)
        self.train_transform, self.eval_transform = train_transform, eval_transform
        self.seed = int(seed)
        self.checkpoint_every = int(checkpoint_every)
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.meta = dict(meta or {})
        self.progress = progress_enabled() if progress is None else bool(progress)
        self.checkpoint_ext = checkpoint_ext
        self.dtype = np.dtype(dtype)
        self.print = print_fn or _print_flush  # flushed: epoch lines show up at once in pipes and logs
        self.on_iteration = on_iteration
        self.comm = comm if comm is not None else Communicator()
        self.is_root = self.comm.rank == 0
        if not self.is_root:  # only rank 0 talks
            self.print, self.progress = _quiet, False
        self._dp: Any = None  # DataParallel, once the net is built (more than one rank)
        self._dp_synced = False
        self._batch_count = 0  # samples of the last step, over all ranks
        # Augmentation has its own stream so that changing the data order never changes the crops.
        self.aug_rng = np.random.default_rng([self.seed, 0xA06])
        self.epoch = 0  # completed epochs
        self.iteration = 0  # completed solver steps
        self.batch_in_epoch = 0  # steps done in the current (unfinished) epoch
        self.losses: list[float] = []  # every training loss, in order (what resume must reproduce)
        self._loss_avg, self._acc_avg = Average(), Average()
        self._epoch_time = 0.0  # seconds of training steps in the current epoch
        self.log = EpochLog(self.run_dir)
        self.last_checkpoint: Path | None = None
        self._stop = False  # agreed by all ranks (set from _stop_local by the per-step allreduce)
        self._stop_local = False  # Ctrl-C seen by this process
        self.interrupted = False

    # ------------------------------------------------------------------ steps
    def lr_at(self, iteration: int) -> float:
        return float(self.policy(iteration)) if self.policy is not None else float(self.solver.lr)

    def _to_batch(self, x: Any, transform: Callable | None, rng: np.random.Generator | None) -> Any:
        if transform is not None:
            x = transform(x, rng)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        return x

    def train_step(self, x: Any, y: Any) -> tuple[float, int]:
        """One step on an already transformed batch; returns (loss, number correct)."""
        self.net.train()
        self.criterion.train()
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
            if stats[4] > 0 and bad is None:
                raise NonFiniteError(f"the training loss is not finite on another rank at iteration "
                                     f"{self.iteration} (rank 0's message names the layer)")
            if stats[3] > 0:
                self._stop = True
        if bad is not None:
            raise NonFiniteError(self.diagnose_nonfinite(x, bad))
        self.net.backward(self.criterion.backward())
        if self._dp is not None:
            self._dp.sync_gradients(weight=b)  # every rank now holds the gradient of the global batch
            loss, correct, b = float(stats[0] / stats[2]), int(stats[1]), int(stats[2])
        self._batch_count = b
        self.solver.step()  # lr = policy(solver.iteration)
        self.net.zero_grad()
        self.iteration += 1
        return loss, correct

    def diagnose_nonfinite(self, x: Any, what: str) -> str:
        """Re-run the batch forward layer by layer and name where a NaN/Inf first appears."""
        where = f"at iteration {self.iteration} (epoch {self.epoch + 1}, batch {self.batch_in_epoch + 1})"
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
        msg += (f". The learning rate was {self.lr_at(max(self.iteration - 1, 0)):.4g}: lower solver.lr, "
                "add warm-up (lr_policy.warmup_epochs) or gradient clipping")
        return msg

    # --------------------------------------------------------------- evaluate
    def evaluate(self, loader: Any, collect: bool = False) -> dict[str, Any]:
        """Loss, top-1 and (for more than 5 classes) top-5 accuracy over ``loader`` (see ``evaluate``)."""
        return evaluate(self.net, loader, self.criterion, transform=self.eval_transform,
                        num_classes=self.num_classes, collect=collect, dtype=self.dtype, comm=self.comm)

    # -------------------------------------------------------------------- fit
    def fit(self, resume: str | Path | None = None) -> list[dict]:
        """Train until ``epochs`` epochs are done; returns the epoch log rows.

        Args:
            resume: a checkpoint path to continue from (``Trainer.load_checkpoint``).

        Ctrl-C (SIGINT) finishes the current step, saves a checkpoint, sets ``interrupted``
        and returns; a second Ctrl-C aborts at once.
        """
        self._ensure_built()
        if self._dp is not None and not self._dp_synced:
            self._dp.broadcast()  # every rank starts from rank 0's weights and buffers
            self._dp.seed_layer_generators(self.seed)  # ... but draws its own Dropout masks and crops
            self.aug_rng = np.random.default_rng([self.seed, 0xA06, self.comm.rank])
            self._dp_synced = True
        if resume is not None:
            self.load_checkpoint(resume)
        self._stop, self._stop_local, self.interrupted = False, False, False
        old = self._install_sigint()
        try:
            while self.epoch < self.epochs:
                self._train_epoch()
                if self._stop and self.batch_in_epoch < len(self.train_loader):
                    break  # mid-epoch: the checkpoint below resumes at the next batch
                self._end_epoch()
                if self._stop:
                    break
            if self._stop:
                self.interrupted = True
                path = self.save_checkpoint()
                self.print(f"Interrupted at epoch {self.epoch + 1}, iteration {self.iteration}: saved {path}\n"
                           f"Resume with: layerwise train --resume {path}")
        finally:
            self._restore_sigint(old)
        return self.log.rows

    def _train_epoch(self) -> None:
        n_batches = len(self.train_loader)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_batches, initial=self.batch_in_epoch, desc=f"epoch {self.epoch + 1}/{self.epochs}",
                       leave=False, dynamic_ncols=True, unit="batch")
        images = 0
        t0 = time.perf_counter()
        try:
            for xb, yb in self.train_loader:
                x = self._to_batch(xb, self.train_transform, self.aug_rng)
                loss, correct = self.train_step(x, yb)
                b = self._batch_count  # over all ranks
                images += b
                self.batch_in_epoch += 1
                self.losses.append(loss)
                self._loss_avg.update(loss, b)
                self._acc_avg.update(correct / b, b)
                if bar is not None:
                    dt = time.perf_counter() - t0
                    bar.set_postfix_str(f"loss {self._loss_avg.value:.4f} acc {100 * self._acc_avg.value:.2f}% "
                                        f"lr {self.solver.lr:.3g} {images / max(dt, 1e-9):.0f} img/s", refresh=False)
                    bar.update(1)
                if self.on_iteration is not None:
                    self.on_iteration(self)
                if self._stop and self.batch_in_epoch < n_batches:
                    break  # after the last batch the loop ends by itself, so the loader closes its epoch
        finally:
            self._epoch_time += time.perf_counter() - t0
            if bar is not None:
                bar.close()

    def _end_epoch(self) -> None:
        row: dict[str, Any] = {"epoch": self.epoch + 1, "iteration": self.iteration,
                               "train_loss": self._loss_avg.value, "train_acc": self._acc_avg.value}
        if self._dp is not None:
            self._dp.broadcast_buffers()  # evaluate (and save) rank 0's BatchNorm running statistics
        if not math.isfinite(row["train_loss"]):
            raise self._diverged(f"the epoch's mean training loss is {row['train_loss']}")
        if self.val_loader is not None:
            t0 = time.perf_counter()
            try:
                res = self.evaluate(self.val_loader)
            except NonFiniteError as e:  # checked before the checkpoint below: the last good one stays
                raise self._diverged(str(e)) from None
            row.update({"val_loss": res["loss"], "val_top1": res["top1"]})
            if "top5" in res:
                row["val_top5"] = res["top5"]
            row["eval_time"] = round(time.perf_counter() - t0, 3)
        row["lr"] = self.lr_at(max(self.iteration - 1, 0))
        row["train_time"] = round(self._epoch_time, 3)
        row["img_per_s"] = round(self._loss_avg.count / max(self._epoch_time, 1e-9), 1)
        self.epoch += 1
        self.batch_in_epoch = 0
        self._loss_avg, self._acc_avg, self._epoch_time = Average(), Average(), 0.0
        if self.is_root:
            self.log.append(row)
        else:
            self.log.rows.append(dict(row))
        self.print(_summary_line(row, self.epochs))
        last = self.epoch == self.epochs
        if last or (self.checkpoint_every and self.epoch % self.checkpoint_every == 0):
            self.save_checkpoint()
            if self.is_root:
                self.plot()

    def _diverged(self, what: str) -> NonFiniteError:
        """The error that stops a diverged run at the end of an epoch, naming the last good checkpoint."""
        kept = (f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint is not None
                else "no checkpoint of this run was saved before it diverged")
        return NonFiniteError(f"the run diverged in epoch {self.epoch + 1} (iteration {self.iteration}): {what}; "
                              f"nothing was saved for this epoch and {kept}. Lower solver.lr (it was "
                              f"{self.lr_at(max(self.iteration - 1, 0)):.4g}), add warm-up (lr_policy.warmup_epochs) "
                              "or gradient clipping")

    def plot(self) -> Path | None:
        """Redraw ``curves.png`` from the log (returns its path)."""
        if not self.log.rows:
            return None
        return plot_curves(self.log.rows, self.run_dir / CURVES_PNG, title=str(self.meta.get("title", self.run_dir.name)))

    # ------------------------------------------------------------ checkpoints
    def _ensure_built(self) -> None:
        if not self.net.built:
            if self.input_shape is None:
                raise ValueError("Trainer: the net is not set up yet and input_shape is unknown; pass "
                                 "input_shape=(C, H, W) or run one forward pass first")
            self.net.setup((1, *self.input_shape), dtype=self.dtype)
        if self.comm.distributed and self._dp is None:
            from ..distributed import DataParallel

            self._dp = DataParallel(self.net, self.comm)

    def checkpoint_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """(tensors, meta) of everything a bit-exact resume needs (collective with several ranks:
        rank 0 gathers every rank's generators; the rest is rank 0's)."""
        tensors: dict[str, np.ndarray] = {}
        for k, v in self.net.state_dict().items():
            tensors[f"model/{k}"] = _contiguous(v)
        meta: dict[str, Any] = dict(self.meta)
        meta.update({
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "iteration": self.iteration,
            "batch_in_epoch": self.batch_in_epoch,
            "epochs": self.epochs,
            "complete": self.epoch >= self.epochs,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "dtype": str(self.dtype),
            "lr": self.lr_at(self.iteration),
            "solver": _pack(self.solver.state_dict(), "solver", tensors),
            "loader": _pack(self.train_loader.state_dict(), "loader", tensors),
            "rng": {"augment": generator_state(self.aug_rng), "layers": layer_rng_states(self.net)},
            "world_size": self.comm.size,
            "running": {"loss": self._loss_avg.state(), "acc": self._acc_avg.state(),
                        "epoch_time": self._epoch_time},
            "history": self.log.rows,
            "log_columns": self.log.columns(),
        })
        if self.comm.distributed:
            meta["rng"]["ranks"] = self.comm.gather_object(
                {"augment": meta["rng"]["augment"], "layers": meta["rng"]["layers"]})
        tensors["train/losses"] = np.asarray(self.losses, dtype=np.float64)
        return tensors, meta

    def checkpoint_path(self) -> Path:
        tag = f"epoch{self.epoch:04d}" if self.batch_in_epoch == 0 else \
            f"epoch{self.epoch:04d}-iter{self.iteration:07d}"
        return self.run_dir / f"checkpoint-{tag}{self.checkpoint_ext}"

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write a checkpoint atomically (temporary file + rename); returns its path.

        With several ranks every rank must call it; rank 0 writes.
        """
        from ..io import save_checkpoint

        path = Path(path) if path is not None else self.checkpoint_path()
        tensors, meta = self.checkpoint_state()
        if self.is_root:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(path, tensors, meta)
        self.last_checkpoint = path
        return path

    def load_checkpoint(self, path: str | Path) -> dict:
        """Restore weights, solver, counters, loader and every generator from a checkpoint.

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
        self.train_loader.load_state_dict(unpack_state(meta["loader"], tensors))
        rng = meta["rng"]
        ranks = rng.get("ranks")
        if ranks and len(ranks) == self.comm.size:  # this rank's own generators
            rng = ranks[self.comm.rank]
        set_generator_state(self.aug_rng, rng["augment"])
        set_layer_rng_states(self.net, rng["layers"])
        self.epoch, self.iteration = int(meta["epoch"]), int(meta["iteration"])
        self.batch_in_epoch = int(meta["batch_in_epoch"])
        run = meta.get("running", {})
        self._loss_avg = Average(*run.get("loss", (0.0, 0.0)))
        self._acc_avg = Average(*run.get("acc", (0.0, 0.0)))
        self._epoch_time = float(run.get("epoch_time", 0.0))
        self.losses = [float(v) for v in tensors.get("train/losses", np.zeros(0))]
        self.log = EpochLog(self.run_dir, meta.get("history", []), columns=meta.get("log_columns"))
        if self.is_root:
            self.log.write()  # drop rows written after this checkpoint by an earlier attempt
        if self.epoch > self.epochs:
            raise ValueError(f"{path}: the checkpoint is at epoch {self.epoch}, past epochs={self.epochs}; "
                             "raise epochs to train further")
        self.print(f"Resumed from {path} at epoch {self.epoch + (1 if self.batch_in_epoch else 0)}"
                   f"{f', batch {self.batch_in_epoch}' if self.batch_in_epoch else ''} (iteration {self.iteration})")
        return meta

    # ----------------------------------------------------------------- SIGINT
    def request_stop(self, *_: Any) -> None:
        """Ask the loop to stop after the current step, save a checkpoint and return (the SIGINT handler)."""
        if self._stop_local:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self._stop_local = True
        if not self.comm.distributed:  # several ranks agree on it at the next step's allreduce
            self._stop = True
        self.print("\nCtrl-C: finishing this step and saving a checkpoint (press Ctrl-C again to abort)")

    def _install_sigint(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None
        return signal.signal(signal.SIGINT, self.request_stop)

    def _restore_sigint(self, old: Any) -> None:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def _print_flush(text: str) -> None:
    print(text, flush=True)


def _quiet(text: str) -> None:
    pass


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
    k = num_classes
    try:
        for xb, yb in loader:
            b = int(yb.shape[0])
            if b == 0:  # a rank's empty share of a short last batch
                continue
            x = transform(xb, None) if transform is not None else xb
            x = x if x.dtype == dtype else x.astype(dtype)
            logits = net.forward(x)
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


def _summary_line(row: dict, epochs: int) -> str:
    s = f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} acc {100 * row['train_acc']:6.2f}%"
    if "val_loss" in row:
        s += f"  val loss {row['val_loss']:.4f} top-1 {100 * row['val_top1']:6.2f}%"
        if "val_top5" in row:
            s += f" top-5 {100 * row['val_top5']:6.2f}%"
    s += f"  lr {row['lr']:.4g}  {row['train_time']:.1f}s {row['img_per_s']:.0f} img/s"
    return s


__all__ = ["Trainer", "NonFiniteError", "evaluate", "CHECKPOINT_FORMAT"]
