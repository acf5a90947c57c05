"""``layerwise train``: build the trainer from a YAML config and fit (also under ``mpiexec``)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ._common import EXIT_INTERRUPTED, EXIT_NONFINITE, CLIError, tune_malloc

HELP = "train a model from a YAML config (default: DenseNet-BC on digits)"
DESCRIPTION = """\
Train a model. With no CONFIG every default applies: DenseNet-BC on the digits data set
that ships with scikit-learn. A run directory receives config.yaml, checkpoints
(checkpoint-epochNNNN.safetensors), log.csv, log.jsonl and curves.png.
Ctrl-C saves a checkpoint and exits; --resume continues bit for bit."""
EXAMPLES = """
    layerwise train
    layerwise train --print-config > my.yaml        # every field with its default
    layerwise train my.yaml --set solver.lr=0.05 --set augment.flip=true --epochs 100
    layerwise train --resume auto                    # the newest checkpoint of the newest run
    layerwise train --resume runs/cifar/checkpoint-epoch0010.safetensors --epochs 300
    mpiexec -n 2 layerwise train my.yaml             # data-parallel over 2 processes (MPI)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config file (optional; missing keys take their defaults)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one config field, e.g. --set solver.lr=0.05 (value read as YAML); repeatable")
    p.add_argument("--resume", metavar="PATH|auto", help="continue from a checkpoint, a run directory, or 'auto'")
    p.add_argument("--out", metavar="DIR", help="run directory (default: <out_dir>/<date>-<time>-<model>-<data>)")
    p.add_argument("--epochs", type=int, help="shorthand for --set epochs=N")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch)")
    p.add_argument("--print-config", action="store_true", help="print the resulting config as YAML and exit")
    p.add_argument("--distributed", action=argparse.BooleanOptionalAction, default=None,
                   help="data-parallel over MPI (default: on when started by mpiexec with more than one process; "
                   "docs/distributed.md)")


def _find_latest_checkpoint(where: Path) -> Path | None:
    from ..io import find_latest_checkpoint

    try:
        found = find_latest_checkpoint(where)
    except (FileNotFoundError, ValueError):
        found = None
    if found is not None:
        return Path(found)
    cands = [p for ext in ("*.safetensors", "*.npz") for p in where.glob(f"checkpoint-{ext}")]
    return max(cands, key=lambda p: p.stat().st_mtime_ns) if cands else None


def _resolve_resume(arg: str, out: str | None, cfg: Any) -> Path:
    if arg != "auto":
        path = Path(arg)
        if path.is_dir():
            found = _find_latest_checkpoint(path)
            if found is None:
                raise CLIError(f"--resume {arg}: no checkpoint-*.safetensors/.npz in that directory")
            return found
        if not path.is_file():
            raise CLIError(f"--resume {arg}: no such checkpoint file; pass a checkpoint, a run directory or 'auto'")
        return path
    if out is not None or cfg.name is not None:
        run_dir = Path(out) if out is not None else Path(cfg.out_dir) / cfg.name
        found = _find_latest_checkpoint(run_dir) if run_dir.is_dir() else None
        if found is None:
            raise CLIError(f"--resume auto: no checkpoint in {str(run_dir)!r}; start the run without --resume")
        return found
    base = Path(cfg.out_dir)
    runs = sorted((d for d in base.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime_ns,
                  reverse=True) if base.is_dir() else []
    for d in runs:
        found = _find_latest_checkpoint(d)
        if found is not None:
            return found
    raise CLIError(f"--resume auto: no run with a checkpoint under {str(base)!r}; pass --out RUN_DIR or a path")


def run(args: argparse.Namespace) -> int:
    from ..config import default_config_text, load_config
    from ..distributed import MPIUnavailableError, init_distributed

    overrides = list(args.set or [])
    if args.epochs is not None:
        overrides.append(f"epochs={args.epochs}")
    if args.print_config:
        print(default_config_text(load_config(args.config, overrides)), end="")
        return 0
    try:
        comm = init_distributed(args.distributed)  # MPI under `mpiexec -n N` (N > 1), else one process
    except MPIUnavailableError as e:
        raise CLIError(str(e)) from None
    if not comm.distributed:
        return _train(args, overrides, comm)
    try:
        return _train(args, overrides, comm)
    except BaseException as e:  # noqa: BLE001 - one rank failed: the others may wait in a collective
        if getattr(e, "_layerwise_all_ranks", False):  # raised on every rank alike (comm.on_root)
            if not comm.is_root:
                e._layerwise_quiet = True  # type: ignore[attr-defined]  # rank 0 alone prints the one line
            raise
        from ..train.trainer import NonFiniteError

        code = (EXIT_NONFINITE if isinstance(e, NonFiniteError) else EXIT_INTERRUPTED
                if isinstance(e, KeyboardInterrupt) else 1)
        print(f"error: rank {comm.rank} of {comm.size}: {type(e).__name__}: {e}; stopping all ranks",
              file=sys.stderr, flush=True)
        comm.abort(code)
        raise


def _train(args: argparse.Namespace, overrides: list[str], comm: Any) -> int:
    import numpy as np

    from ..config import default_config_text, load_config
    from ..train.build import build_trainer, check_resume_config, check_writable_dir, resolve_run_dir
    from ..train.trainer import NonFiniteError

    def prepare() -> tuple[Any, Path | None, Path]:  # on rank 0 only: config and paths; nothing written yet
        resume = None
        source: Any = args.config
        saved: dict | None = None
        if args.resume is not None:
            probe = load_config(args.config, overrides)
            resume = _resolve_resume(args.resume, args.out, probe)
            from ..io import read_checkpoint_meta

            saved = read_checkpoint_meta(resume).get("config") or {}
            if args.config is None:  # continue with the config the run was started with
                source = saved
        cfg = load_config(source, overrides)
        if saved and resume is not None:
            check_resume_config(saved, cfg, resume)
        run_dir = resume.parent if resume is not None and args.out is None else resolve_run_dir(cfg, args.out)
        check_writable_dir(run_dir)
        return cfg, resume, run_dir

    def create_run_dir() -> None:  # on rank 0, once the whole config has been checked by building it
        from ..train.logs import atomic_write_text

        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CLIError(f"cannot create the run directory {str(run_dir)!r} ({e.strerror}); choose another --out "
                           "(or out_dir in the config)") from None
        atomic_write_text(run_dir / "config.yaml", default_config_text(cfg))

    cfg, resume, run_dir = comm.on_root(prepare)  # the other ranks get rank 0's config and paths
    tune_malloc()
    progress = False if args.no_progress else None
    trainer = build_trainer(cfg, run_dir, progress=progress, comm=comm)
    comm.on_root(create_run_dir)
    n_params = trainer.net.num_params()
    if comm.is_root:
        from .. import _threads

        par = (f", data-parallel over {comm.size} processes (global batch {cfg.batch_size} x {comm.size})"
               if comm.distributed else "")
        if _threads.CHOICE:
            par += f", {_threads.CHOICE}"
        print(f"layerwise train: {cfg.model.name} ({n_params:,} params) on {cfg.data.name} "
              f"({len(trainer.train_loader.dataset) if hasattr(trainer.train_loader, 'dataset') else '?'} train "
              f"images), {cfg.epochs} epochs of {len(trainer.train_loader)} steps, {cfg.solver.name} lr "
              f"{cfg.solver.lr:g} {cfg.lr_policy.name}{par}; run directory {run_dir}", flush=True)
    t0 = time.perf_counter()
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # a NaN/Inf is reported by the trainer's checks instead
            rows = trainer.fit(resume=resume)
    except NonFiniteError as e:
        from ..errors import describe_error

        msg = describe_error(e)
        if "checkpoint" not in msg:  # a training step diverged: say what is kept
            kept = trainer.last_checkpoint
            msg += (f"; the last good checkpoint is {kept} (resume from it with --resume and a lower solver.lr)"
                    if kept is not None else "; no checkpoint of this run was saved before it diverged")
        print(f"layerwise train: error: {msg}", file=sys.stderr)
        if comm.distributed:
            comm.abort(EXIT_NONFINITE)
        return EXIT_NONFINITE
    if trainer.interrupted:
        return EXIT_INTERRUPTED
    wall = time.perf_counter() - t0
    last = rows[-1] if rows else {}
    acc = f", validation top-1 {100 * last['val_top1']:.2f}%" if "val_top1" in last else ""
    if comm.is_root:
        print(f"done in {wall:.1f}s{acc}\ncheckpoint: {trainer.last_checkpoint}\n"
              f"log: {run_dir / 'log.csv'}\ncurves: {run_dir / 'curves.png'}")
    return 0
