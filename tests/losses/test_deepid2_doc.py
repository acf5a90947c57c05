"""The DeepID2 recipe in docs/losses.md runs as written and learns identity-preserving features."""
import re
from pathlib import Path

import numpy as np

DOC = Path(__file__).resolve().parents[2] / "docs" / "losses.md"


def test_deepid2_block_runs_and_same_identity_pairs_end_up_closer(capsys):
    text = DOC.read_text()
    section = text[text.index("## DeepID2"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    ns: dict = {}
    exec(compile(code, str(DOC), "exec"), ns)                     # noqa: S102 - our own docs
    assert "'ident'" in capsys.readouterr().out
    features, x, y = ns["features"], ns["x_all"], ns["y_all"]
    features.eval()
    f = features.forward(x[:400])
    d = np.linalg.norm(f[:, None] - f[None], axis=2)
    same = y[:400, None] == y[None, :400]
    off = ~np.eye(400, dtype=bool)
    assert d[same & off].mean() < 0.5 * d[~same].mean()           # verification signal at work
    acc = (ns["head"].eval().forward(f).argmax(1) == y[:400]).mean()
    assert acc > 0.85                                             # identification signal at work
