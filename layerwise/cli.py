"""The ``layerwise`` command: train, test, predict, time, summary, gradcheck, download, plot.

    layerwise train                          # DenseNet-BC on the built-in digits, no download
    layerwise train cifar10.yaml --set solver.lr=0.05
    layerwise train --resume auto            # continue the newest run
    layerwise test runs/<run>/checkpoint-epoch0030.safetensors
    layerwise time densenet_bc --input 3,32,32

Every sub-command has ``--help`` with an example. User errors (a bad config, a missing file, a
full disk) print one line ``layerwise <command>: error: ...`` and exit with status 2; a run that
diverges (NaN/Inf) exits with 3 keeping its last good checkpoint; Ctrl-C during training saves a
checkpoint and exits with 130; ``--debug`` (or LAYERWISE_DEBUG=1) shows tracebacks
(docs/failures.md).
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

EXIT_USAGE, EXIT_NONFINITE, EXIT_INTERRUPTED = 2, 3, 130


class CLIError(Exception):
    """A user error: printed as one ``layerwise <command>: error:`` line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with git's error discipline: one ``prog: error: ...`` line (no usage dump), exit 2."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def _tune_malloc() -> None:
    """Keep freed activation memory in the process (``backend.tune_malloc``; PERF-ANCHORS.md:
    no page faults on every step). Off with ``LAYERWISE_NO_MALLOC_TUNING=1``."""
    if not os.environ.get("LAYERWISE_NO_MALLOC_TUNING"):
        from .backend import tune_malloc

        tune_malloc()


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 3,32,32, got {text!r}") from None
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 3,32,32, got {text!r}")
    return dims


def _kwargs(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["depth=40", "bottleneck=true"]`` -> dict, values read as YAML."""
    from .config import parse_override

    out: dict[str, Any] = {}
    for p in pairs or []:
        path, value = parse_override(p)
        out[".".join(path)] = value
    return out


def _epilog(text: str) -> str:
    return "example:\n" + textwrap.indent(textwrap.dedent(text).strip("\n"), "  ")


# ----------------------------------------------------------------------- train
def _find_latest_checkpoint(where: Path) -> Path | None:
    try:
        from .io import find_latest_checkpoint
    except ImportError:  # pragma: no cover - io not installed
        find_latest_checkpoint = None
    if find_latest_checkpoint is not None:
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


def cmd_train(args: argparse.Namespace) -> int:
    from .config import default_config_text, load_config
    from .distributed import MPIUnavailableError, init_distributed

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
        from .train.trainer import NonFiniteError

        code = (EXIT_NONFINITE if isinstance(e, NonFiniteError) else EXIT_INTERRUPTED
                if isinstance(e, KeyboardInterrupt) else 1)
        print(f"error: rank {comm.rank} of {comm.size}: {type(e).__name__}: {e}; stopping all ranks",
              file=sys.stderr, flush=True)
        comm.abort(code)
        raise


def _train(args: argparse.Namespace, overrides: list[str], comm: Any) -> int:
    from .config import default_config_text, load_config
    from .train.build import build_trainer, check_resume_config, check_writable_dir, resolve_run_dir
    from .train.trainer import NonFiniteError

    def prepare() -> tuple[Any, Path | None, Path]:  # on rank 0 only: config and paths; nothing written yet
        resume = None
        source: Any = args.config
        saved: dict | None = None
        if args.resume is not None:
            probe = load_config(args.config, overrides)
            resume = _resolve_resume(args.resume, args.out, probe)
            from .io import read_checkpoint_meta

            saved = read_checkpoint_meta(resume).get("config") or {}
            if args.config is None:  # continue with the config the run was started with
                source = saved
        cfg = load_config(source, overrides)
        if saved:
            check_resume_config(saved, cfg, resume)
        run_dir = resume.parent if resume is not None and args.out is None else resolve_run_dir(cfg, args.out)
        check_writable_dir(run_dir)
        return cfg, resume, run_dir

    def create_run_dir() -> None:  # on rank 0, once the whole config has been checked by building it
        from .train.logs import atomic_write_text

        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CLIError(f"cannot create the run directory {str(run_dir)!r} ({e.strerror}); choose another --out "
                           "(or out_dir in the config)") from None
        atomic_write_text(run_dir / "config.yaml", default_config_text(cfg))

    cfg, resume, run_dir = comm.on_root(prepare)  # the other ranks get rank 0's config and paths
    _tune_malloc()
    progress = False if args.no_progress else None
    trainer = build_trainer(cfg, run_dir, progress=progress, comm=comm)
    comm.on_root(create_run_dir)
    n_params = trainer.net.num_params()
    if comm.is_root:
        from . import _threads

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
        from .errors import describe_error

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


# ------------------------------------------------------------------ test/predict
def _checkpoint_model(path: str) -> tuple[Any, dict]:
    from .interop.convert import is_interop_source, load_model
    from .train.build import model_from_checkpoint

    if is_interop_source(path):  # a Caffe or ONNX model, used directly
        return load_model(path)
    if not Path(path).is_file():
        raise CLIError(f"no such checkpoint file {path!r}")
    if Path(path).suffix.lower() in (".safetensors", ".npz"):
        return load_model(path)  # training checkpoints and converted models
    return model_from_checkpoint(path)


def _normalizer(meta: dict):
    norm = meta.get("normalize")
    if not norm:
        return None
    from .data import Normalize

    return Normalize(norm["mean"], norm["std"])


def cmd_test(args: argparse.Namespace) -> int:
    from .data import DataLoader, load_dataset
    from .losses import SoftmaxCrossEntropyLoss
    from .train.metrics import format_confusion
    from .train.trainer import evaluate

    _tune_malloc()
    net, meta = _checkpoint_model(args.checkpoint)
    cfg = meta.get("config", {}).get("data", {})
    name = args.data or cfg.get("name") or meta.get("data", {}).get("name")
    root = args.root if args.root is not None else (cfg.get("root") if args.data is None else None)
    ds = load_dataset(name, root=root, split=args.split)
    want = tuple(meta.get("input_shape") or ())
    if want and tuple(ds.sample_shape) != want:
        raise CLIError(f"data {name!r} has samples of shape {ds.sample_shape} but the model was trained on {want}")
    k = int(meta["model"]["num_classes"])
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=False, drop_last=False)
    t0 = time.perf_counter()
    res = evaluate(net, loader, SoftmaxCrossEntropyLoss(), transform=_normalizer(meta), num_classes=k,
                   collect=True, dtype=meta.get("dtype", "float32"))
    dt = time.perf_counter() - t0
    print(f"{name} {args.split}: {res['n']} images, loss {res['loss']:.4f}, top-1 {100 * res['top1']:.2f}%"
          + (f", top-5 {100 * res['top5']:.2f}%" if "top5" in res else "") + f"  ({res['n'] / dt:.0f} img/s)")
    classes = meta.get("data", {}).get("classes")
    if k <= 20:
        print("confusion matrix (rows: true class, columns: predicted):")
        print(format_confusion(res["confusion"], classes if classes and len(classes) == k else None))
    m = res["confusion"]
    per_class = np.diag(m) / np.maximum(m.sum(axis=1), 1)
    worst = np.argsort(per_class)[:3]
    print("lowest per-class accuracy: " + ", ".join(
        f"{(classes[i] if classes and i < len(classes) else i)} {100 * per_class[i]:.1f}%" for i in worst))
    return 0


def _read_input(path: Path, shape: tuple[int, ...], invert: bool) -> np.ndarray:
    """One sample of ``shape`` (C, H, W) from .npy/.npz (data-set scale) or an image file ([0, 1])."""
    if not path.is_file():
        raise CLIError(f"no such file {str(path)!r}")
    if path.suffix == ".npy":
        x = np.load(path, allow_pickle=False).astype(np.float32)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            key = "x" if "x" in z.files else z.files[0]
            x = z[key].astype(np.float32)
    else:
        import matplotlib.image as mpimg

        try:
            img = mpimg.imread(str(path))
        except Exception as e:  # noqa: BLE001 - any decoder error is a user error here
            raise CLIError(f"{path}: cannot read the image ({e}); use PNG/JPEG, .npy or .npz") from None
        img = img.astype(np.float32)
        if img.max() > 1.0:
            img = img / 255.0
        if img.ndim == 3:
            img = img[..., :3]
            img = img.transpose(2, 0, 1)  # (C, H, W)
        else:
            img = img[None]
        if shape[0] == 1 and img.shape[0] == 3:
            img = img.mean(axis=0, keepdims=True)
        elif shape[0] == 3 and img.shape[0] == 1:
            img = np.repeat(img, 3, axis=0)
        x = _resize(img, shape[1:])
        if invert:
            x = 1.0 - x
    if x.ndim == len(shape) - 1:
        x = x[None]
    if x.ndim == len(shape):
        x = x[None]
    if tuple(x.shape[1:]) != tuple(shape):
        raise CLIError(f"{path}: expected samples of shape {tuple(shape)} (or a batch of them), got {x.shape}")
    return x


def _resize(img: np.ndarray, hw: tuple[int, ...]) -> np.ndarray:
    """Area-average (down) or nearest (up) resize of (C, H, W) to ``hw``."""
    c, h, w = img.shape
    H, W = hw
    if (h, w) == (H, W):
        return img
    ys = np.linspace(0, h, H + 1)
    xs = np.linspace(0, w, W + 1)
    out = np.empty((c, H, W), np.float32)
    for i in range(H):  # H, W are the model's input size (small): not a per-pixel hot path
        r0, r1 = int(ys[i]), max(int(np.ceil(ys[i + 1])), int(ys[i]) + 1)
        for j in range(W):
            c0, c1 = int(xs[j]), max(int(np.ceil(xs[j + 1])), int(xs[j]) + 1)
            out[:, i, j] = img[:, r0:r1, c0:c1].mean(axis=(1, 2))
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    net, meta = _checkpoint_model(args.checkpoint)
    shape = tuple(meta.get("input_shape") or meta["data"]["sample_shape"])
    norm = _normalizer(meta)
    classes = meta.get("data", {}).get("classes") or []
    xp_dtype = np.dtype(meta.get("dtype", "float32"))
    for f in args.files:
        x = _read_input(Path(f), shape, args.invert)
        if not np.isfinite(x).all():
            raise CLIError(f"{f}: the input holds NaN/Inf values; pass finite samples")
        if norm is not None:
            x = norm(x, None)
        logits = np.asarray(net.forward(x.astype(xp_dtype)), dtype=np.float64)
        if not np.isfinite(logits).all():
            raise CLIError(f"{f}: the model's outputs are NaN/Inf for this input (the checkpoint "
                           f"{args.checkpoint} or the input overflowed); use an earlier checkpoint")
        z = logits - logits.max(axis=1, keepdims=True)
        prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        for i, p in enumerate(prob):
            top = np.argsort(-p)[: args.top]
            label = lambda k: classes[k] if k < len(classes) else str(k)  # noqa: E731
            tag = f"{f}[{i}]" if len(prob) > 1 else f
            print(f"{tag}: {label(top[0])}  ({', '.join(f'{label(k)} {p[k]:.3f}' for k in top)})")
    return 0


# --------------------------------------------------------------- model tools
def _build_for_tools(name: str, args_kv: Sequence[str] | None, num_classes: int | None) -> Any:
    from .core.registry import registered
    from .interop.convert import is_interop_source, load_model
    from .models import build_model

    if is_interop_source(name):  # a Caffe or ONNX model file
        return load_model(name)[0]
    kw = _kwargs(args_kv)
    if num_classes is not None:
        kw.setdefault("num_classes", num_classes)
    try:
        return build_model(name, **kw)
    except KeyError:
        raise CLIError(f"unknown model {name!r}; known models: {', '.join(registered('model'))}") from None
    except (TypeError, ValueError) as e:
        raise CLIError(f"model {name!r}: {e}") from None


def _tool_input(net: Any, given: tuple[int, ...] | None) -> tuple[int, ...]:
    """--input, or the input a Caffe/ONNX model declares, or 3,32,32."""
    if given is not None:
        return tuple(given)
    shapes = getattr(net, "blob_shapes", {})
    names = getattr(net, "input_names", ())
    if names and names[0] in shapes and type(net).__name__ in ("CaffeNet", "OnnxNet"):
        return tuple(shapes[names[0]][1:])
    return (3, 32, 32)


def cmd_time(args: argparse.Namespace) -> int:
    from .tools.timing import format_timing, time_layers

    _tune_malloc()
    net = _build_for_tools(args.model, args.arg, args.num_classes)
    args.input = _tool_input(net, args.input)
    x = np.random.default_rng(0).standard_normal((args.batch, *args.input)).astype(args.dtype)
    print(f"{args.model}: batch {args.batch} x {','.join(map(str, args.input))}, {args.iters} iterations "
          f"({'forward only' if args.forward_only else 'forward + backward'}), {args.dtype}")
    rows = time_layers(net, x, iters=args.iters, warmup=1, depth=args.depth, backward=not args.forward_only)
    print(format_timing(rows, batch=args.batch))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from .tools.summary import summary

    net = _build_for_tools(args.model, args.arg, args.num_classes)
    print(summary(net, _tool_input(net, args.input), depth=args.depth))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .interop.convert import load_model, save_model

    net, meta = load_model(args.source, weights=args.weights, input_shape=args.input)
    out = save_model(net, meta, args.out)
    print(f"{args.source} -> {out}: {len(net.nodes) if hasattr(net, 'nodes') else 1} layers, "
          f"{net.num_params():,} params, input {tuple(meta.get('input_shape') or ())}")
    return 0


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from .core.registry import lookup, registered
    from .testing.gradcheck import GradcheckError, gradcheck

    name = args.target
    rng = np.random.default_rng(args.seed)
    if name.lower() in registered("model"):
        layer = _build_for_tools(name, args.arg, args.num_classes)
        layer.eval(grad=True)  # BN on running stats, no dropout: deterministic
        shape = args.input or (3, 8, 8)
        max_el = args.max_elements or 4
    else:
        try:
            cls = lookup("layer", name)
        except KeyError:
            raise CLIError(f"{name!r} is neither a layer nor a model; layers: {', '.join(registered('layer'))}; "
                           f"models: {', '.join(registered('model'))}") from None
        try:
            layer = cls(**_kwargs(args.arg))
        except (TypeError, ValueError) as e:
            raise CLIError(f"layer {name!r}: {e}") from None
        if args.eval:
            layer.eval(grad=True)
        shape = args.input or (3, 6, 6)
        max_el = args.max_elements or 300
    x = rng.standard_normal((args.batch, *shape))
    inputs = [x]
    if getattr(layer, "num_inputs", 1) not in (1, None):
        from .core import LossLayer

        if isinstance(layer, LossLayer):
            k = int(np.prod(shape))
            inputs = [rng.standard_normal((args.batch, k)), rng.integers(0, k, size=args.batch)]
        else:
            inputs = [rng.standard_normal((args.batch, *shape)) for _ in range(int(layer.num_inputs))]
    t0 = time.perf_counter()
    try:
        report = gradcheck(layer, *inputs, eps=args.eps, max_elements=max_el, seed=args.seed, raise_on_fail=False)
    except (GradcheckError, ValueError) as e:
        raise CLIError(str(e)) from None
    print(report)
    print(f"({time.perf_counter() - t0:.1f}s, float64, eps {args.eps:g}, input shape {tuple(inputs[0].shape)})")
    return 0 if report.ok else 1


def cmd_download(args: argparse.Namespace) -> int:
    from .data import download

    path = download(args.name, args.root)
    print(f"{args.name}: ready in {path}")
    return 0


_PLOTS = {"optimizers": "optimizers", "reuse": "reuse", "activations": "activations", "center-loss": "center_loss",
          "gridworld": "gridworld", "gan": "gan"}


def cmd_plot(args: argparse.Namespace) -> int:
    if args.what in _PLOTS:
        import importlib

        viz_main = importlib.import_module(f".viz.{_PLOTS[args.what]}", __package__).main
        return int(viz_main(list(args.rest)) or 0)
    from .train.logs import plot_curves, read_log

    ap = _Parser(prog="layerwise plot curves")
    ap.add_argument("log")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(list(args.rest))
    rows = read_log(a.log)
    if not rows:
        raise CLIError(f"{a.log}: the log has no rows yet")
    src = Path(a.log)
    out = Path(a.out) if a.out else (src if src.is_dir() else src.parent) / "curves.png"
    print(plot_curves(rows, out, title=str(src)))
    return 0


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    ap = _Parser(
        prog="layerwise", formatter_class=fmt,
        description="layerwise: a deep-learning framework where every layer owns its forward and backward pass.",
        epilog=_epilog("""
            layerwise train                 # DenseNet-BC on the built-in digits (no download)
            layerwise train --help          # every command explains itself with an example
        """))
    ap.add_argument("--version", action="version", version="layerwise 0.1.0")
    ap.add_argument("--debug", action="store_true",
                    help="show the Python traceback of an error (also LAYERWISE_DEBUG=1); allowed after the command too")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a model from a YAML config (default: DenseNet-BC on digits)",
                       formatter_class=fmt, description=textwrap.dedent("""\
        Train a model. With no CONFIG every default applies: DenseNet-BC on the digits data set
        that ships with scikit-learn. A run directory receives config.yaml, checkpoints
        (checkpoint-epochNNNN.safetensors), log.csv, log.jsonl and curves.png.
        Ctrl-C saves a checkpoint and exits; --resume continues bit for bit."""),
                       epilog=_epilog("""
            layerwise train
            layerwise train --print-config > my.yaml        # every field with its default
            layerwise train my.yaml --set solver.lr=0.05 --set augment.flip=true --epochs 100
            layerwise train --resume auto                    # the newest checkpoint of the newest run
            layerwise train --resume runs/cifar/checkpoint-epoch0010.safetensors --epochs 300
            mpiexec -n 2 layerwise train my.yaml             # data-parallel over 2 processes (MPI)
        """))
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
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("test", help="accuracy and confusion matrix of a checkpoint on a data set",
                       formatter_class=fmt, description="Evaluate a training checkpoint: loss, top-1/top-5 "
                       "accuracy and the confusion matrix, by default on the test split of the data set it was "
                       "trained on.", epilog=_epilog("""
            layerwise test runs/digits/checkpoint-epoch0030.safetensors
            layerwise test model.safetensors --data mnist --root ~/data/mnist --split test
        """))
    p.add_argument("checkpoint")
    p.add_argument("--data", help="data set name (default: the one in the checkpoint)")
    p.add_argument("--root", help="data directory (default: the one in the checkpoint)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--batch-size", type=int, default=256)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("predict", help="classify image/.npy/.npz files with a checkpoint", formatter_class=fmt,
                       description="Print the top classes for each file. Images (PNG, JPEG) are read in [0, 1], "
                       "converted to the model's channels and resized to its input; .npy/.npz hold samples "
                       "(C, H, W) or batches already in the data set's scale.",
                       epilog=_epilog("""
            layerwise predict runs/digits/checkpoint-epoch0030.safetensors seven.png three.npy --top 3
        """))
    p.add_argument("checkpoint")
    p.add_argument("files", nargs="+")
    p.add_argument("--top", type=int, default=3, help="how many classes to list")
    p.add_argument("--invert", action="store_true", help="invert images (dark ink on light paper -> digits' scale)")
    p.set_defaults(func=cmd_predict)

    def model_args(q: argparse.ArgumentParser, default_input: tuple[int, ...] | None) -> None:
        q.add_argument("--input", type=_shape, default=default_input, metavar="C,H,W",
                       help=f"one sample's shape (default {','.join(map(str, default_input)) if default_input else '3,32,32, or what a Caffe/ONNX model declares'})")
        q.add_argument("--arg", action="append", metavar="KEY=VALUE", help="model/layer argument, e.g. --arg depth=40")
        q.add_argument("--num-classes", type=int, default=None)

    p = sub.add_parser("time", help="per-layer forward/backward milliseconds (like caffe time)", formatter_class=fmt,
                       description="Time every layer's forward and backward pass on a random batch.",
                       epilog=_epilog("""
            layerwise time densenet_bc --input 3,32,32 --batch 64 --iters 5
            layerwise time resnet20 --depth 1          # one row per block instead of per layer
        """))
    p.add_argument("model", help="a registered model, or a Caffe .prototxt/.caffemodel or .onnx file")
    model_args(p, None)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--depth", type=int, default=None, help="levels of nested nets to expand (default: all)")
    p.add_argument("--forward-only", action="store_true")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.set_defaults(func=cmd_time)

    p = sub.add_parser("summary", help="layers, output shapes, params and FLOPs of a model", formatter_class=fmt,
                       description="Print each layer's output shape, parameter count and forward FLOPs, "
                       "computed from shapes alone.", epilog=_epilog("""
            layerwise summary densenet_bc --input 3,32,32
            layerwise summary densenet_bc --arg depth=40 --input 1,8,8 --num-classes 10
        """))
    p.add_argument("model", help="a registered model, or a Caffe .prototxt/.caffemodel or .onnx file")
    model_args(p, None)
    p.add_argument("--depth", type=int, default=None, help="levels of nested nets to expand")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("gradcheck", help="finite-difference check of a layer's or model's backward pass",
                       formatter_class=fmt, description="Compare a layer's (or a model's) backward pass with "
                       "central finite differences in float64, for the input and every parameter.",
                       epilog=_epilog("""
            layerwise gradcheck Conv2d --arg out_channels=4 --arg kernel_size=3 --input 3,6,6
            layerwise gradcheck densenet_bc --arg depth=10 --arg growth_rate=4 --input 1,8,8
        """))
    p.add_argument("target", metavar="LAYER|MODEL")
    model_args(p, None)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--eps", type=float, default=1e-6)
    p.add_argument("--max-elements", type=int, default=None, help="elements checked per tensor (random subset)")
    p.add_argument("--eval", action="store_true", help="check the layer in eval mode")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser("convert", help="convert models: Caffe / ONNX / checkpoint in, ONNX / checkpoint out",
                       formatter_class=fmt, description="Convert a Caffe model (.prototxt + .caffemodel), an ONNX "
                       "file or a layerwise checkpoint into an .onnx file or a layerwise checkpoint "
                       "(.safetensors/.npz). test, predict, summary and time also take a Caffe or ONNX model "
                       "directly. See docs/interop.md.", epilog=_epilog("""
            layerwise convert deploy.prototxt model.onnx --weights bvlc.caffemodel
            layerwise convert resnet18.onnx resnet18.safetensors
            layerwise convert runs/digits/checkpoint-epoch0030.safetensors digits.onnx
        """))
    p.add_argument("source", help=".prototxt / .caffemodel, .onnx, or .safetensors / .npz checkpoint")
    p.add_argument("out", help=".onnx, .safetensors or .npz")
    p.add_argument("--weights", help="the .caffemodel of a prototxt (default: <stem>.caffemodel beside it)")
    p.add_argument("--input", type=_shape, default=None, metavar="C,H,W",
                   help="one sample's shape, for prototxts that declare none (train_val data layers)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("download", help="fetch a data set from its official location", formatter_class=fmt,
                       description="Download a data set with checksum checks; without network, the message "
                       "says where to put the files by hand.", epilog=_epilog("""
            layerwise download cifar10 --root ~/data/cifar10
        """))
    p.add_argument("name", help="mnist, fashion_mnist, cifar10 or cifar100")
    p.add_argument("--root", required=True)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("plot", help="plots: training curves, optimizer paths, the articles' figures, grid world, GAN",
                       formatter_class=fmt,
                       description="plot curves LOG [--out PNG]: redraw a run's curves from log.csv/log.jsonl.\n"
                       "plot optimizers ...: optimizer paths on test functions (see plot optimizers --help).\n"
                       "plot reuse CHECKPOINT: DenseNet feature reuse (the paper's Fig. 5).\n"
                       "plot activations: every activation layer and its derivative.\n"
                       "plot center-loss: 2-D features with softmax alone and with center loss.\n"
                       "plot gridworld [--out PNG]: value/policy iteration and Q-learning on a grid world.\n"
                       "plot gan [--out PNG]: a GAN of layerwise layers on a 2-D ring of Gaussians.\n"
                       "docs/figures.md shows each picture and its command.",
                       epilog=_epilog("""
            layerwise plot curves runs/digits/log.jsonl --out curves.png
            layerwise plot optimizers --help
            layerwise plot reuse runs/digits/checkpoint-epoch0040.safetensors --out reuse.png
            layerwise plot gridworld --out gridworld.png
        """))
    p.add_argument("what", choices=["curves", *_PLOTS])
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_plot)
    return ap


def debug_enabled(argv: Sequence[str] | None = None) -> bool:
    """``--debug`` anywhere on the command line, or ``LAYERWISE_DEBUG`` set to anything but 0/empty."""
    return "--debug" in (argv or ()) or os.environ.get("LAYERWISE_DEBUG", "").strip() not in ("", "0")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``layerwise`` command; returns the exit status.

    Failure discipline (docs/failures.md): a failure the user can cause (a bad config, file,
    path, data set or checkpoint, a full disk, a diverged run) prints ONE line
    ``layerwise <command>: error: <what, where, the fix>`` on stderr and exits 2 (3 for a run
    that diverged, 130 for Ctrl-C); anything else is an internal error (one line, exit 1). The
    traceback is shown only with ``--debug`` or ``LAYERWISE_DEBUG=1``.
    """
    from .errors import describe_error, ignore_file_size_signal, is_user_error

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_enabled(argv)
    argv = [a for a in argv if a != "--debug"]
    ignore_file_size_signal()  # a file-size limit (ulimit -f) becomes an OSError we can report
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    prog = f"layerwise {args.command}"
    if extra:  # reported by the sub-command, as git does
        print(f"{prog}: error: unrecognized arguments: {' '.join(extra)}; see '{prog} --help'", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `layerwise test ... | head`: the reader left; exit quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so Python's own flush at exit does not fail again
        return 0
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - sorted into user errors and internal errors below
        if debug:
            raise
        from .train.trainer import NonFiniteError

        quiet = getattr(e, "_layerwise_quiet", False)
        if quiet:  # a non-root MPI rank: the same error is printed once, by rank 0
            return EXIT_NONFINITE if isinstance(e, NonFiniteError) else EXIT_USAGE if is_user_error(e) else 1
        if isinstance(e, NonFiniteError):
            print(f"{prog}: error: {describe_error(e)}", file=sys.stderr)
            return EXIT_NONFINITE
        if is_user_error(e):
            print(f"{prog}: error: {describe_error(e)}", file=sys.stderr)
            return EXIT_USAGE
        print(f"{prog}: error: internal error ({type(e).__name__}: {describe_error(e)}); run again with --debug "
              "for the traceback and report it", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
