"""examples/densenet_vs_resnet.py: the machinery on a tiny grid (the real grid runs for minutes)."""
import importlib.util
import json
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "examples" / "densenet_vs_resnet.py"


@pytest.fixture(scope="module")
def ex():
    spec = importlib.util.spec_from_file_location("densenet_vs_resnet", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sizes_are_the_summary_tools_counts(ex):
    from layerwise.models import build_model
    p, m = ex.size("densenet_bc", {"depth": 10, "growth_rate": 6})
    net = build_model("densenet_bc", depth=10, growth_rate=6, num_classes=10)
    net.setup((1, 1, 8, 8))
    assert p == net.num_params() == 5367
    # ResNet-8 width 8 on 8x8: stem 1*8*9*64, 3 stages of 2 convs (+ 1x1 nothing: option A), fc 64*10
    p8, m8 = ex.size("resnet", {"depth": 8, "width": 8})
    convs = 9 * (1 * 8 * 64 + 8 * 8 * 64 * 2 + (8 * 16 * 16 + 16 * 16 * 16) + (16 * 32 * 4 + 32 * 32 * 4))
    assert m8 == convs + 32 * 10
    assert m > 0 and p8 > p


def test_tiny_grid_trains_tables_and_plots(ex, tmp_path):
    grid = [("DenseNet-BC", "densenet_bc", {"depth": 10, "growth_rate": 4}),
            ("ResNet", "resnet", {"depth": 8, "width": 4})]
    rows = ex.run_grid(grid, epochs=1, seeds=(0,), print_fn=lambda s: None)
    assert [r["family"] for r in rows] == ["DenseNet-BC", "ResNet"]
    for r in rows:
        assert 0.0 <= r["error"] < 90.0                       # one epoch already beats chance (90%)
        assert r["params"] > 0 and r["macs"] > 0 and r["epochs"] == 1
    table = ex.markdown_table(rows)
    assert "| DenseNet-BC L=10 k=4 |" in table and f"{rows[1]['params']:,}" in table
    out = tmp_path / "f.png"
    ex.plot(rows, out, dpi=30)
    assert out.read_bytes()[:4] == b"\x89PNG"
    saved = tmp_path / "rows.json"
    saved.write_text(json.dumps(rows))
    md = tmp_path / "t.md"
    assert ex.main(["--replot", str(saved), "--out", str(tmp_path / "g.png"), "--table", str(md)]) == 0
    assert md.read_text().strip() == table                    # redrawn from saved rows, no training
