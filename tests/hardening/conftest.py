"""Shared pieces of the bad-input and fault suite: tiny data, tiny runs, and the check
that a failure is reported as ONE line ``layerwise <command>: error: ...`` with the right status."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from layerwise.cli import main

ROOT = Path(__file__).resolve().parents[2]


def tiny_arrays(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 1, 4, 4) images of 3 classes an MLP separates (a bright quadrant per class)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(0, 0.3, (n, 1, 4, 4)).astype(np.float32)
    x[y == 0, :, :2, :2] += 1
    x[y == 1, :, 2:, 2:] += 1
    return x, y


def tiny_npz(path: Path, **overrides) -> Path:
    x, y = tiny_arrays()
    arrays = {"x": x, "y": y}
    arrays.update(overrides)
    np.savez(path, **arrays)
    return path


def train_args(npz: Path, out: Path, *extra: str, epochs: int = 1) -> list[str]:
    return ["train", "--set", "data.name=npz", "--set", f"data.root={npz}", "--set", "model.name=mlp",
            "--set", "model.kwargs={hidden: [8]}", "--set", "augment.crop_padding=0", "--set", "batch_size=16",
            "--set", f"epochs={epochs}", "--set", "checkpoint_every=1", "--no-progress", "--out", str(out), *extra]


def expect_error(capsys, argv: list[str], *fragments: str, code: int = 2) -> str:
    """Run ``layerwise argv`` in this process; check status, one stderr line in the standard form, no
    traceback, and that each fragment (case-insensitive) is in it. Returns the line."""
    try:
        got = main(argv)
    except SystemExit as e:  # argparse
        got = e.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert got == code, f"exit {got}, expected {code}; stderr:\n{err}"
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    cmd = next((a for a in argv if not a.startswith("-")), "")
    known = ("train", "test", "predict", "time", "summary", "gradcheck", "download", "plot")
    prefix = f"layerwise {cmd}: error: " if cmd in known else "layerwise: error: "
    assert lines[0].startswith(prefix), lines[0]
    assert "Traceback" not in err
    for f in fragments:
        assert f.lower() in lines[0].lower(), f"{f!r} not in: {lines[0]}"
    return lines[0]


def run_cli(args: list[str], env_extra: dict | None = None, preexec=None, cwd=None) -> subprocess.CompletedProcess:
    """``python -m layerwise.cli args`` in a fresh process (for rlimits, environment and --debug)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore", **(env_extra or {}))
    if "LAYERWISE_DEBUG" not in (env_extra or {}):
        env.pop("LAYERWISE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "layerwise.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env, preexec_fn=preexec, cwd=cwd)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One finished 2-epoch run on a tiny npz (checkpoints after epochs 1 and 2)."""
    d = tmp_path_factory.mktemp("hardening")
    npz = tiny_npz(d / "tiny.npz")
    out = d / "run"
    assert main(train_args(npz, out, epochs=2)) == 0
    return npz, out
