"""Generator states survive JSON exactly."""
import json

import numpy as np
import pytest

from layerwise.io import rng_state, set_rng_state


@pytest.mark.parametrize("bitgen", [np.random.PCG64, np.random.MT19937, np.random.Philox, np.random.SFC64,
                                    np.random.PCG64DXSM])
def test_state_roundtrips_through_json(bitgen):
    g = np.random.Generator(bitgen(1234))
    g.random(7)
    g.integers(0, 10, 3)                                     # leaves buffered uint32 state for some generators
    state = json.loads(json.dumps(rng_state(g)))
    expected = g.standard_normal(50)
    fresh = np.random.Generator(bitgen(0))
    set_rng_state(fresh, state)
    np.testing.assert_array_equal(fresh.standard_normal(50), expected)


def test_state_is_a_snapshot_and_pcg_ints_are_big():
    g = np.random.default_rng(0)
    s = rng_state(g)
    g.random(10)
    assert s != rng_state(g)
    assert s["state"]["state"] > 2**64                       # 128-bit int, kept exact by JSON


def test_mismatched_and_malformed_states():
    with pytest.raises(ValueError, match="state is for 'MT19937' but the generator uses PCG64"):
        set_rng_state(np.random.default_rng(), rng_state(np.random.Generator(np.random.MT19937(0))))
    with pytest.raises(ValueError, match="malformed PCG64 state"):
        set_rng_state(np.random.default_rng(), {"bit_generator": "PCG64", "state": {}})
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        rng_state(np.random.RandomState(0))
