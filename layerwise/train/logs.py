"""What a run leaves behind besides checkpoints: the epoch log (CSV and JSON lines), the
training-curves PNG, and the progress bar.
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LOG_CSV = "log.csv"
LOG_JSONL = "log.jsonl"
CURVES_PNG = "curves.png"


# The order in which the Trainer writes an epoch's row (other keys follow, in their own order).
COLUMN_ORDER = ("epoch", "iteration", "train_loss", "train_acc", "val_loss", "val_top1", "val_top5", "eval_time",
                "lr", "train_time", "img_per_s")


def order_rows(rows: Iterable[dict], columns: Iterable[str] | None = None) -> list[dict]:
    """Copies of ``rows`` with their keys in the order ``columns`` gives (else :data:`COLUMN_ORDER`; other
    keys after them): rows restored from a checkpoint, whose JSON is stored with sorted keys, get back
    the order in which the Trainer wrote them."""
    order = list(columns) if columns else list(COLUMN_ORDER)
    rank = {k: i for i, k in enumerate(order)}
    return [{k: r[k] for k in sorted(r, key=lambda k: rank.get(k, len(rank)))} for r in rows]


class EpochLog:
    """One row per epoch, in ``log.csv`` and ``log.jsonl`` of the run directory.

    Both files are rewritten from the in-memory rows after every epoch (a few KB), so a resumed
    run that starts from an earlier checkpoint drops the rows after it and never duplicates one.

    Columns keep the order in which the Trainer first wrote them. Rows restored from a checkpoint
    (whose JSON metadata is stored with sorted keys) are put back in the order ``columns`` gives
    (saved in the checkpoint as ``log_columns``), else in :data:`COLUMN_ORDER`, so a resume never
    reorders the files.
    """

    def __init__(self, run_dir: str | Path, rows: Iterable[dict] = (), columns: Iterable[str] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.rows: list[dict] = order_rows(rows, columns)

    def columns(self) -> list[str]:
        """The column names in file order (first appearance over the rows)."""
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        return keys

    def append(self, row: dict) -> None:
        self.rows.append(dict(row))
        self.write()

    def write(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        keys = self.columns()
        atomic_write_text(self.run_dir / LOG_CSV, _csv_text(keys, self.rows))
        atomic_write_text(self.run_dir / LOG_JSONL, "".join(json.dumps(r) + "\n" for r in self.rows))


def _csv_text(keys: list[str], rows: list[dict]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k, "")) for k in keys})
    return buf.getvalue()


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to a temporary file next to ``path`` and rename it over ``path``: readers see
    the old file or the new one, never half of one; on failure (disk full) the temporary file is removed.

    Raises:
        OSError: with ``filename`` set to ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise type(e)(e.errno, e.strerror, str(path)) from None


_atomic_write = atomic_write_text


def read_log(path: str | Path) -> list[dict]:
    """Rows of a ``log.jsonl`` or ``log.csv`` file (or a run directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_JSONL if (path / LOG_JSONL).exists() else path / LOG_CSV
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {str(path)!r}; pass a run directory, log.jsonl or log.csv")
    if path.suffix == ".jsonl":
        rows = []
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{i}: not a JSON line ({e.msg})") from None
        return rows
    with path.open(newline="") as f:
        return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _num(v: str) -> Any:
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def plot_curves(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Draw loss, accuracy and learning rate per epoch to a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    path = Path(path)
    ep = [r["epoch"] for r in rows]

    def col(k: str) -> list[float]:
        return [float(r[k]) if r.get(k) not in (None, "") else math.nan for r in rows]

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    ax.plot(ep, col("train_loss"), "o-", ms=3, label="train")
    if any("val_loss" in r for r in rows):
        ax.plot(ep, col("val_loss"), "o-", ms=3, label="validation")
    ax.set_yscale("log")
    ax.set(title="loss", xlabel="epoch")
    ax.legend()
    ax = axes[1]
    ax.plot(ep, [100 * v for v in col("train_acc")], "o-", ms=3, label="train top-1")
    if any("val_top1" in r for r in rows):
        ax.plot(ep, [100 * v for v in col("val_top1")], "o-", ms=3, label="validation top-1")
        best = max(range(len(rows)), key=lambda i: col("val_top1")[i] if not math.isnan(col("val_top1")[i]) else -1)
        ax.annotate(f"best {100 * col('val_top1')[best]:.2f}%", (ep[best], 100 * col("val_top1")[best]),
                    textcoords="offset points", xytext=(0, -14), ha="center")
    if any("val_top5" in r for r in rows):
        ax.plot(ep, [100 * v for v in col("val_top5")], "--", label="validation top-5")
    ax.set(title="accuracy (%)", xlabel="epoch")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax = axes[2]
    ax.plot(ep, col("lr"), "o-", ms=3)
    ax.set(title="learning rate (end of epoch)", xlabel="epoch")
    for a in axes:
        a.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    try:
        fig.savefig(tmp, dpi=90)
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise type(e)(e.errno, e.strerror, str(path)) from None
    finally:
        plt.close(fig)
    return path


def progress_enabled(stream=None) -> bool:
    """Show a progress bar only on an interactive terminal and never under CI."""
    if os.environ.get("CI") or os.environ.get("LAYERWISE_NO_PROGRESS"):
        return False
    stream = stream or sys.stderr
    try:
        return bool(stream.isatty()) and bool(sys.stdout.isatty())
    except (AttributeError, ValueError):
        return False


__all__ = ["EpochLog", "order_rows", "atomic_write_text", "COLUMN_ORDER", "read_log", "plot_curves",
           "progress_enabled", "LOG_CSV", "LOG_JSONL", "CURVES_PNG"]
