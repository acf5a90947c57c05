"""Regenerate the command output shown in README.md from real runs, so that it cannot go stale.

README.md marks every shown output as a region (the HTML comments do not render):

    <!-- output: layerwise test runs/digits/checkpoint-epoch0002.safetensors -->
    ```console
    $ layerwise test runs/digits/checkpoint-epoch0002.safetensors
    <what the command printed>
    ```
    <!-- /output -->

``python scripts/update_readme.py`` runs the marked commands in the order they appear, all in one
fresh temporary directory (so ``layerwise test`` finds the checkpoint that ``layerwise train`` wrote
before it), with this checkout's ``layerwise`` (the ``[project.scripts]`` entry point of
pyproject.toml, run by this Python), and rewrites each region with what the command printed:
stdout and stderr as they came, run directories relative to the temporary directory, timings
this machine's. A command may end in ``| tail -n N`` or ``| head -n N`` to show only part of its
output (the README shows the summary's totals this way); the filter is applied here, no shell runs.

If a command fails (non-zero exit), README.md is left as it was and the script exits 1 with the
command's output. tests/test_docs.py checks that the regions have this format, that the summary
totals are what ``layerwise summary`` prints today and that the shown test accuracy is the one
the shown training ended with.

Usage: python scripts/update_readme.py [--readme README.md] [--stdout]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGION = re.compile(r"<!-- output: (?P<cmd>[^\n]+?) -->\n(?P<body>.*?)<!-- /output -->", re.S)
BODY = re.compile(r"```console\n\$ (?P<cmd>[^\n]*)\n(?P<out>.*?)```\n\Z", re.S)
PIPE = re.compile(r"^(?P<cmd>.+?)\s*\|\s*(?P<which>head|tail) -n (?P<n>\d+)$")


class ReadmeError(ValueError):
    """A malformed output region or a failed command; the message says which and what to fix."""


@dataclass(frozen=True)
class Region:
    cmd: str         # the command as written in the marker (with any | head/tail filter)
    output: str      # the output shown (ends with a newline, or empty)
    start: int       # character span of the whole region in the README
    end: int
    line: int        # line of the opening marker (1-based)


def render(cmd: str, output: str) -> str:
    """The text of a region for ``cmd`` showing ``output``."""
    if output and not output.endswith("\n"):
        output += "\n"
    return f"<!-- output: {cmd} -->\n```console\n$ {cmd}\n{output}```\n<!-- /output -->"


def parse_regions(text: str) -> list[Region]:
    """The output regions of a README, in order; a region not in the format raises ReadmeError."""
    regions = []
    for m in REGION.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        body = BODY.match(m.group("body"))
        if body is None:
            raise ReadmeError(f"README line {line}: the region of {m.group('cmd')!r} must hold exactly one "
                              "```console block whose first line is '$ <the command>'; run scripts/update_readme.py")
        if body.group("cmd") != m.group("cmd"):
            raise ReadmeError(f"README line {line}: the marker says {m.group('cmd')!r} but the block shows "
                              f"'$ {body.group('cmd')}'; run scripts/update_readme.py")
        regions.append(Region(m.group("cmd"), body.group("out"), m.start(), m.end(), line))
    opened, closed = text.count("<!-- output: "), text.count("<!-- /output -->")
    if not opened == closed == len(regions):
        raise ReadmeError(f"README: {opened} '<!-- output: ... -->' markers, {closed} '<!-- /output -->' markers and "
                          f"{len(regions)} well-formed regions; every marker needs its closing one")
    return regions


def split_command(cmd: str) -> tuple[list[str], tuple[str, int] | None]:
    """``"layerwise summary m | tail -n 3"`` -> (["summary", "m"], ("tail", 3))."""
    m = PIPE.match(cmd)
    keep = (m.group("which"), int(m.group("n"))) if m else None
    base = m.group("cmd") if m else cmd
    words = base.split()
    if not words or words[0] != "layerwise" or any(c in base for c in "|;&><`$'\"\\"):
        raise ReadmeError(f"output region {cmd!r}: expected 'layerwise <args>' with at most a '| head -n N' or "
                          "'| tail -n N' filter (no shell runs here)")
    return words[1:], keep


def _entry_point() -> tuple[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        target = tomllib.load(f)["project"]["scripts"]["layerwise"]
    module, func = target.split(":")
    return module, func


def run_command(cmd: str, cwd: Path) -> str:
    """Run a region's command in ``cwd`` with this checkout's layerwise; returns what it printed."""
    args, keep = split_command(cmd)
    module, func = _entry_point()
    code = f"import sys; from {module} import {func} as main; sys.argv[0] = 'layerwise'; sys.exit(main())"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise ReadmeError(f"'{cmd}' exited with status {proc.returncode}:\n{proc.stdout}")
    lines = proc.stdout.splitlines(keepends=True)
    if keep is not None:
        which, n = keep
        lines = lines[:n] if which == "head" else lines[-n:] if n else []
    return "".join(lines)


def update(text: str, outputs: list[str]) -> str:
    """``text`` with each region's output replaced by the corresponding entry of ``outputs``."""
    regions = parse_regions(text)
    if len(outputs) != len(regions):
        raise ReadmeError(f"{len(outputs)} outputs for {len(regions)} regions")
    pieces, pos = [], 0
    for region, out in zip(regions, outputs):
        pieces += [text[pos:region.start], render(region.cmd, out)]
        pos = region.end
    return "".join(pieces) + text[pos:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--stdout", action="store_true", help="print the new README instead of writing it")
    args = ap.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    try:
        regions = parse_regions(text)
        outputs = []
        with tempfile.TemporaryDirectory(prefix="layerwise-readme-") as tmp:
            for region in regions:
                print(f"$ {region.cmd}", file=sys.stderr)
                outputs.append(run_command(region.cmd, Path(tmp)))
                print(outputs[-1], end="", file=sys.stderr)
        new = update(text, outputs)
    except ReadmeError as e:
        print(f"update_readme: error: {e}", file=sys.stderr)
        return 1
    if args.stdout:
        print(new, end="")
    elif new != text:
        args.readme.write_text(new, encoding="utf-8")
        print(f"update_readme: rewrote {len(regions)} region(s) of {args.readme}", file=sys.stderr)
    else:
        print(f"update_readme: {args.readme} is unchanged", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
