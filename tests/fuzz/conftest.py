"""Hypothesis settings for the fuzz tests: few examples and a fixed seed in CI; long runs on request.

    pytest tests/fuzz                                   # CI: 30 derandomized examples per test
    LAYERWISE_FUZZ_EXAMPLES=20000 pytest tests/fuzz     # long: random examples, as many as asked
"""
import os
from datetime import timedelta

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, settings  # noqa: E402

_long = int(os.environ.get("LAYERWISE_FUZZ_EXAMPLES", "0") or 0)
settings.register_profile("layerwise-ci", max_examples=30, derandomize=True, database=None,
                          deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("layerwise-long", max_examples=max(_long, 1), derandomize=False, database=None,
                          deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("layerwise-long" if _long else "layerwise-ci")
