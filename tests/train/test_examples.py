"""The example configs in examples/ stay valid as the config schema evolves."""
from pathlib import Path

import pytest

from layerwise.config import load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def test_there_are_example_configs():
    assert EXAMPLES, "examples/*.yaml missing"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_config_validates(path):
    cfg = load_config(str(path))
    assert cfg.model.name and cfg.epochs > 0
