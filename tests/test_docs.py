"""Every ```python block of README.md, CONTRIBUTING.md and docs/*.md runs, as shown.

The convention (CONTRIBUTING.md, "Examples in the docs"):

* A fence always names its language. ```python blocks are run by this file; shell sessions,
  command output, formulas and pseudo-code use ```console, ```text, ```yaml (never run).
* Each python block runs on its own: a fresh namespace, a fresh temporary working directory
  (files the example writes land there), ``MPLBACKEND=Agg``.
* A python block whose fence is preceded by the line ``<!-- setup -->`` is the page's setup: it is
  shown to the reader like any block, runs as a test of its own, and runs before every later block
  of its page (the data the examples use, a model file to load). Setup blocks stay cheap.

A failing block's traceback names the Markdown file and its line (the code is compiled with the
file's name and its line numbers).
"""
from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
SETUP_MARK = "<!-- setup -->"
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int          # line of the opening fence (1-based)
    lang: str
    code: str
    setup: bool

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def parse_blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, in order; an unclosed fence is an error."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.groups()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                      and lines[i].strip().strip(fence[0]) == ""):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{page.relative_to(ROOT)}:{start + 1}: the fence {fence} is never closed")
        prev = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        blocks.append(Block(page, start + 1, info.strip(), "\n".join(body) + "\n", prev == SETUP_MARK))
        i += 1
    return blocks


ALL_BLOCKS = [b for page in PAGES for b in parse_blocks(page)]
PYTHON_BLOCKS = [b for b in ALL_BLOCKS if b.lang == "python"]


def _needs_torch(blocks: list[Block]) -> bool:
    return any(re.search(r"^\s*(import torch|from torch)", b.code, re.M) for b in blocks)


def _marks(block: Block, setups: list[Block]) -> list[pytest.MarkDecorator]:
    return [pytest.mark.torch] if _needs_torch([*setups, block]) else []


def _cases():
    cases = []
    for block in PYTHON_BLOCKS:
        setups = [b for b in PYTHON_BLOCKS if b.page == block.page and b.setup and b.line < block.line]
        cases.append(pytest.param(block, setups, id=block.id, marks=_marks(block, setups)))
    return cases


def _run(block: Block, namespace: dict) -> None:
    # padded so that tracebacks give the Markdown file's own line numbers
    source = "\n" * block.line + block.code
    exec(compile(source, str(block.page), "exec"), namespace)


@pytest.fixture
def doc_registrations():
    """A block may register a layer (CONTRIBUTING.md's example): what the block's own code (module
    ``__main__``) registered is removed afterwards, so that no other test sees it."""
    from layerwise.core import registry

    yield
    for table in registry._REGISTRIES.values():
        for key in [k for k, obj in table.items() if getattr(obj, "__module__", None) == "__main__"]:
            del table[key]


def test_the_pages_have_python_blocks():
    assert len(PYTHON_BLOCKS) >= 10, [b.id for b in PYTHON_BLOCKS]
    assert any(b.page.name == "README.md" for b in PYTHON_BLOCKS)


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.id)
def test_every_fence_names_its_language(block):
    allowed = {"python", "console", "text", "yaml"}
    if block.lang not in allowed:
        pytest.fail(f"{block.id}: a fence must name its language, one of {sorted(allowed)} (python blocks are run "
                    f"by tests/test_docs.py; shell sessions are console, output and pseudo-code text); got "
                    f"{block.lang!r}", pytrace=False)
    if block.setup and block.lang != "python":
        pytest.fail(f"{block.id}: {SETUP_MARK} marks a python block, not a {block.lang} one", pytrace=False)


@pytest.mark.parametrize("block, setups", _cases())
def test_python_block_runs(block, setups, tmp_path, monkeypatch, doc_registrations):
    if _needs_torch([*setups, block]):
        from layerwise.testing.oracle import require_torch

        require_torch()   # skips with the reason when PyTorch (a test dependency) is absent
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__main__"}
    for setup in setups:
        _run(setup, namespace)
    _run(block, namespace)
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a runtime dependency
        return
    plt.close("all")


# ------------------------------------------------------------ README output regions (scripts/update_readme.py)
def _update_readme():
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("update_readme", module)  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def readme_regions():
    script = _update_readme()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    regions = script.parse_regions(text)   # raises on a region not in the script's format
    return script, text, {r.cmd.split()[1]: r for r in regions}


def test_readme_output_regions_are_the_scripts_format(readme_regions):
    script, text, regions = readme_regions
    assert set(regions) == {"train", "test", "summary"}, sorted(regions)
    for r in regions.values():
        rerun = f"README.md:{r.line}: run scripts/update_readme.py"
        assert text[r.start:r.end] == script.render(r.cmd, r.output), rerun
        assert r.output.strip(), f"{rerun} (the region of {r.cmd!r} shows no output)"
        script.split_command(r.cmd)        # a command the script can run
    # the update is a fixed point: rewriting every region with the output it shows changes nothing
    assert script.update(text, [r.output for r in sorted(regions.values(), key=lambda r: r.start)]) == text


def test_readme_shown_training_and_test_agree(readme_regions):
    """The shown test of the shown checkpoint reports the last epoch's validation numbers."""
    _, _, regions = readme_regions
    train, test = regions["train"].output, regions["test"].output
    epochs = re.findall(r"^epoch +(\d+)/(\d+) .*val loss ([\d.]+) top-1 +([\d.]+)% top-5 +([\d.]+)%", train, re.M)
    assert epochs, f"no epoch lines in the README's training output:\n{train}"
    last = epochs[-1]
    assert last[0] == last[1], "the README's training output must show the run to its last epoch"
    shown = re.search(r"loss ([\d.]+), top-1 ([\d.]+)%, top-5 ([\d.]+)%", test)
    assert shown, f"no loss/top-1/top-5 line in the README's test output:\n{test}"
    assert shown.groups() == last[2:], (f"README: `layerwise test` shows {shown.groups()}, the training's last epoch "
                                        f"{last[2:]}; run scripts/update_readme.py")
    checkpoint = regions["test"].cmd.split()[2]
    assert f"checkpoint: {checkpoint}" in train, f"the test region reads {checkpoint}, which the training did not write"


def test_readme_summary_totals_match_a_real_run(readme_regions, tmp_path):
    """`summary` needs no training: its shown totals are compared with what the command prints today."""
    script, _, regions = readme_regions
    region = regions["summary"]
    assert "total params" in region.output
    assert script.run_command(region.cmd, tmp_path) == region.output, (
        f"README.md:{region.line}: `{region.cmd}` prints something else today; run scripts/update_readme.py")
