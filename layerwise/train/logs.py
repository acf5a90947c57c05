"""What a run leaves behind besides checkpoints: the epoch log (CSV and JSON lines), the
training-curves PNG, and the progress bar.
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable

LOG_CSV = "log.csv"
LOG_JSONL = "log.jsonl"
CURVES_PNG = "curves.png"


class EpochLog:
    """One row per epoch, in ``log.csv`` and ``log.jsonl`` of the run directory.

    Both files are rewritten from the in-memory rows after every epoch (a few KB), so a resumed
    run that starts from an earlier checkpoint drops the rows after it and never duplicates one.
    """

    def __init__(self, run_dir: str | Path, rows: Iterable[dict] = ()) -> None:
        self.run_dir = Path(run_dir)
        self.rows: list[dict] = [dict(r) for r in rows]

    def append(self, row: dict) -> None:
        self.rows.append(dict(row))
        self.write()

    def write(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        _atomic_write(self.run_dir / LOG_CSV, _csv_text(keys, self.rows))
        _atomic_write(self.run_dir / LOG_JSONL, "".join(json.dumps(r) + "\n" for r in self.rows))


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


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


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
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
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


__all__ = ["EpochLog", "read_log", "plot_curves", "progress_enabled", "LOG_CSV", "LOG_JSONL", "CURVES_PNG"]
