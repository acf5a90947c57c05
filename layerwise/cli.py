"""The ``layerwise`` command: the top-level parser, the error handling and the dispatch.

    layerwise train                          # DenseNet-BC on the built-in digits, no download
    layerwise train cifar10.yaml --set solver.lr=0.05
    layerwise train --resume auto            # continue the newest run
    layerwise test runs/<run>/checkpoint-epoch0030.safetensors
    layerwise time densenet_bc --input 3,32,32

Each sub-command is a module of :mod:`layerwise.commands` (its arguments and ``run``); every one has
``--help`` with an example. User errors (a bad config, a missing file, a full disk) print one line
``layerwise <command>: error: ...`` and exit with status 2; a run that diverges (NaN/Inf) exits
with 3 keeping its last good checkpoint; Ctrl-C during training saves a checkpoint and exits with
130; ``--debug`` (or LAYERWISE_DEBUG=1) shows tracebacks (docs/failures.md).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .commands import COMMANDS
from .commands._common import EXIT_INTERRUPTED, EXIT_NONFINITE, EXIT_USAGE, CLIError, Parser, epilog

__all__ = ["main", "build_parser", "debug_enabled", "CLIError", "EXIT_USAGE", "EXIT_NONFINITE", "EXIT_INTERRUPTED"]


def _command(name: str) -> Any:
    return importlib.import_module(f".commands.{COMMANDS[name]}", __package__)


def __getattr__(name: str) -> Callable[[argparse.Namespace], int]:
    """``cmd_<command>`` (``cmd_train``, ``cmd_summary``, ...): the command's ``run``, the names these
    functions had before each command moved into its own module of ``layerwise.commands``."""
    if name.startswith("cmd_") and name[4:] in COMMANDS:
        run: Callable[[argparse.Namespace], int] = _command(name[4:]).run
        return run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_parser() -> argparse.ArgumentParser:
    """The ``layerwise`` parser: one sub-parser per module of ``layerwise.commands``, bound to its ``run``."""
    fmt = argparse.RawDescriptionHelpFormatter
    ap = Parser(
        prog="layerwise", formatter_class=fmt,
        description="layerwise: a deep-learning framework where every layer owns its forward and backward pass.",
        epilog=epilog("""
            layerwise train                 # DenseNet-BC on the built-in digits (no download)
            layerwise train --help          # every command explains itself with an example
        """))
    ap.add_argument("--version", action="version", version="layerwise 0.1.0")
    ap.add_argument("--debug", action="store_true",
                    help="show the Python traceback of an error (also LAYERWISE_DEBUG=1); allowed after the "
                    "command too")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = _command(name)
        p = sub.add_parser(name, help=mod.HELP, description=mod.DESCRIPTION, epilog=epilog(mod.EXAMPLES),
                           formatter_class=fmt)
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)
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
