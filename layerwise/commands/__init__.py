"""The ``layerwise`` sub-commands, one small module each, each calling the library.

Every module defines ``HELP`` (the line in ``layerwise --help``), ``DESCRIPTION`` and ``EXAMPLES``
(its ``--help`` text), ``add_arguments(parser)`` and ``run(args) -> int`` (the exit status).
Modules import nothing heavy at load time: ``layerwise --help`` builds every sub-parser, and the
library pieces a command needs are imported inside its ``run``. ``layerwise.cli`` holds the
top-level parser, the error handling (docs/failures.md) and the dispatch.
"""
from __future__ import annotations

# command name -> module in this package, in the order of ``layerwise --help``
COMMANDS = {"train": "train", "test": "test", "predict": "predict", "time": "time", "summary": "summary",
            "gradcheck": "gradcheck", "convert": "convert", "download": "download", "plot": "plot"}

__all__ = ["COMMANDS"]
