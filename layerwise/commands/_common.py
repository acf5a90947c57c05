"""What the commands share: the user-error type, the argparse flavour, argument parsers, model lookup.

Nothing here imports NumPy or the library at module level, so ``layerwise --help`` stays fast;
each helper imports what it needs when it runs.
"""
from __future__ import annotations

import argparse
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from ..core import Layer

EXIT_USAGE, EXIT_NONFINITE, EXIT_INTERRUPTED = 2, 3, 130


class CLIError(Exception):
    """A user error: printed as one ``layerwise <command>: error:`` line, exit status 2.

    (``layerwise.errors.is_user_error`` recognises it by its name, so that module need not import this one.)
    """


class Parser(argparse.ArgumentParser):
    """argparse with git's error discipline: one ``prog: error: ...`` line (no usage dump), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def epilog(text: str) -> str:
    """The ``example:`` block at the end of a command's ``--help``."""
    return "example:\n" + textwrap.indent(textwrap.dedent(text).strip("\n"), "  ")


def tune_malloc() -> None:
    """Keep freed activation memory in the process (``backend.tune_malloc``: no page faults on
    every step, docs/training.md). Off with ``LAYERWISE_NO_MALLOC_TUNING=1``."""
    if not os.environ.get("LAYERWISE_NO_MALLOC_TUNING"):
        from ..backend import tune_malloc as tune

        tune()


def shape_arg(text: str) -> tuple[int, ...]:
    """argparse type of ``--input``: ``3,32,32`` (or ``3x32x32``) -> (3, 32, 32)."""
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 3,32,32, got {text!r}") from None
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 3,32,32, got {text!r}")
    return dims


def parse_kwargs(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["depth=40", "bottleneck=true"]`` -> dict, values read as YAML."""
    from ..config import parse_override

    out: dict[str, Any] = {}
    for p in pairs or []:
        path, value = parse_override(p)
        out[".".join(path)] = value
    return out


def add_model_arguments(p: argparse.ArgumentParser, default_help: str | None = None) -> None:
    """``--input``, ``--arg`` and ``--num-classes``: how time, summary and gradcheck build a model or layer.

    ``default_help`` says what a missing ``--input`` means (default: ``tools.summary.default_input_shape``'s rule).
    """
    default_help = default_help or "what a Caffe/ONNX model declares, 3,224,224 for ImageNet models, else 3,32,32"
    p.add_argument("--input", type=shape_arg, default=None, metavar="C,H,W",
                   help=f"one sample's shape (default: {default_help})")
    p.add_argument("--arg", action="append", metavar="KEY=VALUE", help="model/layer argument, e.g. --arg depth=40")
    p.add_argument("--num-classes", type=int, default=None)


def build_tool_model(name: str, args_kv: Sequence[str] | None, num_classes: int | None) -> Layer:
    """A registered model built with ``--arg`` / ``--num-classes``, or a Caffe/ONNX model file."""
    from ..core.registry import registered
    from ..interop.convert import is_interop_source, load_model
    from ..models import build_model

    if is_interop_source(name):  # a Caffe or ONNX model file
        net: Layer = load_model(name)[0]
        return net
    kw = parse_kwargs(args_kv)
    if num_classes is not None:
        kw.setdefault("num_classes", num_classes)
    try:
        return build_model(name, **kw)
    except KeyError:
        raise CLIError(f"unknown model {name!r}; known models: {', '.join(registered('model'))}") from None
    except (TypeError, ValueError) as e:
        raise CLIError(f"model {name!r}: {e}") from None


def load_checkpoint_model(path: str) -> tuple[Layer, dict[str, Any]]:
    """The model of a training checkpoint, a converted model or a Caffe/ONNX file, in eval mode, and its metadata."""
    from ..interop.convert import is_interop_source, load_model
    from ..train.build import model_from_checkpoint

    if is_interop_source(path):  # a Caffe or ONNX model, used directly
        return load_model(path)
    if not Path(path).is_file():
        raise CLIError(f"no such checkpoint file {path!r}")
    if Path(path).suffix.lower() in (".safetensors", ".npz"):
        return load_model(path)  # training checkpoints (via model_from_checkpoint) and converted models
    return model_from_checkpoint(path)  # any other file: load_checkpoint says what it is instead


__all__ = ["CLIError", "Parser", "EXIT_USAGE", "EXIT_NONFINITE", "EXIT_INTERRUPTED", "epilog", "tune_malloc",
           "shape_arg", "parse_kwargs", "add_model_arguments", "build_tool_model", "load_checkpoint_model"]
