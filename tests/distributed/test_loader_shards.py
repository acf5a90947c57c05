"""DataLoader sharding: every rank's slice of each global batch is disjoint and they cover it."""
import numpy as np
import pytest

from layerwise.data import DataLoader
from layerwise.data.dataset import ArrayDataset


def _ds(n):
    return ArrayDataset(np.arange(n, dtype=np.float32).reshape(n, 1), np.arange(n) % 3)


@pytest.mark.parametrize("n,b,world,drop_last", [(23, 4, 2, False), (23, 4, 2, True), (29, 3, 3, False),
                                                  (24, 4, 3, True), (7, 4, 2, False)])
def test_shards_are_disjoint_and_cover_each_global_batch(n, b, world, drop_last):
    ds = _ds(n)
    whole = DataLoader(ds, b * world, shuffle=True, drop_last=drop_last, seed=5, prefetch=False)
    shards = [DataLoader(ds, b, shuffle=True, drop_last=drop_last, seed=5, prefetch=False, rank=r, world_size=world)
              for r in range(world)]
    for _ in range(2):  # two epochs: the permutations stay in step
        glob = [yb for yb in (x[:, 0].astype(int) for x, _ in whole)]
        per_rank = [[x[:, 0].astype(int) for x, _ in s] for s in shards]
        assert all(len(s) == len(whole) == len(glob) for s in shards)
        for i, g in enumerate(glob):
            parts = [per_rank[r][i] for r in range(world)]
            cat = np.concatenate(parts)
            assert len(set(cat.tolist())) == len(cat)                  # disjoint
            assert np.array_equal(np.sort(cat), np.sort(g))            # cover the global batch
            assert np.array_equal(cat, g)                              # rank r holds slice r, in order
            if len(g) == b * world:
                assert all(len(p) == b for p in parts)
            else:
                assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_sharded_resume_continues_with_the_same_slices():
    ds = _ds(40)
    a = DataLoader(ds, 3, seed=1, prefetch=False, rank=1, world_size=2)
    it = iter(a)
    [next(it) for _ in range(2)]
    state = a.state_dict()
    assert state["world_size"] == 2
    rest = [x[:, 0].tolist() for x, _ in it]
    b = DataLoader(ds, 3, seed=1, prefetch=False, rank=1, world_size=2)
    b.load_state_dict(state)
    assert [x[:, 0].tolist() for x, _ in b] == rest
    one = DataLoader(ds, 3, seed=1, prefetch=False)
    with pytest.raises(ValueError, match="same number of processes"):
        one.load_state_dict(state)


def test_single_process_state_without_world_size_still_loads():
    ds = _ds(10)
    a = DataLoader(ds, 3, seed=1, prefetch=False)
    it = iter(a)
    first = next(it)[0][:, 0].tolist()
    state = a.state_dict()
    rest = [x[:, 0].tolist() for x, _ in it]
    del state["world_size"]  # a checkpoint from before sharding existed
    b = DataLoader(ds, 3, seed=1, prefetch=False)
    b.load_state_dict(state)
    assert b.world_size == 1 and len(rest) == 3
    assert [x[:, 0].tolist() for x, _ in b] == rest  # it continues the same epoch where it stopped
    assert sorted(first + sum(rest, [])) == list(range(10))  # ... and the epoch covers every sample once


def test_ranks_draw_independent_augmentations():
    ds = _ds(16)

    def t(x, rng):
        return x * 0 + rng.random((len(x), 1))

    out = [next(iter(DataLoader(ds, 4, seed=0, transform=t, prefetch=False, rank=r, world_size=2)))[0]
           for r in range(2)]
    assert not np.allclose(out[0], out[1])
    single = next(iter(DataLoader(ds, 4, seed=0, transform=t, prefetch=False)))[0]
    again = next(iter(DataLoader(ds, 4, seed=0, transform=t, prefetch=False, rank=0, world_size=1)))[0]
    assert np.array_equal(single, again)


def test_bad_rank_is_refused():
    with pytest.raises(ValueError, match="rank < world_size"):
        DataLoader(_ds(4), 2, rank=2, world_size=2)
