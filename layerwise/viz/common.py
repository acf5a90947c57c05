"""Shared pieces of the plot commands: a Figure on the Agg canvas and an atomic save."""
from __future__ import annotations

import os
import tempfile
from typing import Any


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on its own Agg canvas (no pyplot, no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, out: str | os.PathLike, dpi: int, what: str = "plot") -> str:
    """Write ``fig`` to a temporary file beside ``out`` and rename it, so no half-written image is left.

    Raises:
        FileNotFoundError: the folder of ``out`` does not exist (the message names it).
    """
    out = os.fspath(out)
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{what}: the folder of {out!r} does not exist; create it first")
    suffix = os.path.splitext(out)[1] or ".png"
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, format=suffix[1:])
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)        # mkstemp makes it 0600; an image is for everyone to read
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return out
