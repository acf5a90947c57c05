"""DataLoader: batching, per-epoch shuffle, prefetch equals no prefetch, exact resume."""
import json
import threading

import numpy as np
import pytest

from layerwise.data import ArrayDataset, Compose, DataLoader, RandomCrop, RandomHorizontalFlip
from layerwise.io import load_checkpoint, pack_state, save_checkpoint, unpack_state


def _ds(n=23):
    x = np.arange(n * 2 * 4 * 4, dtype=np.float32).reshape(n, 2, 4, 4)
    return ArrayDataset(x, np.arange(n) % 5)


AUG = Compose([RandomCrop(4, padding=1), RandomHorizontalFlip()])


def _epochs(loader, k):
    return [[(xb.copy(), yb.copy()) for xb, yb in loader] for _ in range(k)]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x1, x2) and np.array_equal(y1, y2)
                                    for (x1, y1), (x2, y2) in zip(a, b))


@pytest.mark.parametrize("drop_last,expect", [(False, [5, 5, 5, 5, 3]), (True, [5, 5, 5, 5])])
def test_batches_cover_each_sample_once(drop_last, expect):
    ds = _ds()
    loader = DataLoader(ds, 5, drop_last=drop_last, seed=1)
    assert len(loader) == len(expect)
    batches = list(loader)
    assert [len(yb) for _, yb in batches] == expect
    xb, yb = batches[0]
    assert xb.dtype == np.float32 and yb.dtype == np.int64 and xb.shape == (5, 2, 4, 4)
    ids = np.concatenate([xb[:, 0, 0, 0] for xb, _ in batches]) / 32
    if not drop_last:
        assert sorted(ids.astype(int).tolist()) == list(range(23))
    assert loader.epoch == 1 and loader.position == 0


def test_shuffle_changes_per_epoch_and_seed_reproduces():
    a = _epochs(DataLoader(_ds(), 4, seed=3), 2)
    b = _epochs(DataLoader(_ds(), 4, seed=3), 2)
    c = _epochs(DataLoader(_ds(), 4, seed=4), 1)
    assert _same(a[0], b[0]) and _same(a[1], b[1])
    assert not _same(a[0], a[1]) and not _same(a[0], c[0])
    ordered = _epochs(DataLoader(_ds(), 4, shuffle=False), 1)[0]
    np.testing.assert_array_equal(np.concatenate([y for _, y in ordered]), np.arange(23) % 5)


def test_prefetch_gives_identical_batches_with_augmentation():
    a = _epochs(DataLoader(_ds(), 4, seed=0, transform=AUG, prefetch=True), 3)
    b = _epochs(DataLoader(_ds(), 4, seed=0, transform=AUG, prefetch=False), 3)
    for ea, eb in zip(a, b):
        assert _same(ea, eb)
    assert not _same(a[0], a[1])


@pytest.mark.parametrize("stop_at", [0, 3, 6])              # 6 = every batch handed out, epoch not closed
@pytest.mark.parametrize("prefetch", [True, False])
def test_resume_mid_epoch_through_a_checkpoint_equals_uninterrupted(tmp_path, stop_at, prefetch):
    ref = _epochs(DataLoader(_ds(), 4, seed=5, transform=AUG, prefetch=prefetch), 3)
    flat_ref = [b for e in ref for b in e]

    first = DataLoader(_ds(), 4, seed=5, transform=AUG, prefetch=prefetch)
    list(first)                                            # epoch 0 complete
    it = iter(first)                                       # epoch 1, interrupted after stop_at batches
    seen = [tuple(a.copy() for a in next(it)) for _ in range(stop_at)]
    tensors, meta = pack_state({"loader": first.state_dict()})
    it.close()
    path = save_checkpoint(tmp_path / "c.safetensors", tensors, json.loads(json.dumps(meta)))
    del first

    t2, m2 = load_checkpoint(path)
    second = DataLoader(_ds(), 4, seed=999, transform=AUG, prefetch=not prefetch)   # seed comes from the state
    second.load_state_dict(unpack_state(m2, t2)["loader"])
    assert second.epoch == 1 and second.position == stop_at
    rest = _epochs(second, 2)
    assert _same(seen + rest[0] + rest[1], flat_ref[len(ref[0]):])


def test_state_at_epoch_boundary_resumes_next_epoch():
    a = DataLoader(_ds(), 6, seed=2, transform=AUG)
    list(a)
    state = a.state_dict()
    assert state["permutation"] is None and state["position"] == 0 and state["epoch"] == 1
    expected = list(a)
    b = DataLoader(_ds(), 6, seed=2, transform=AUG)
    b.load_state_dict(state)
    assert _same(list(b), expected)


def test_breaking_out_stops_the_prefetch_thread():
    before = threading.active_count()
    loader = DataLoader(_ds(), 2, seed=0)
    for i, _ in enumerate(loader):
        if i == 1:
            break
    assert threading.active_count() == before
    assert loader.position == 2


def test_transform_error_reaches_the_caller():
    def bad(x, rng):
        raise RuntimeError("boom in transform")

    with pytest.raises(RuntimeError, match="boom in transform"):
        list(DataLoader(_ds(), 4, transform=bad, prefetch=True))


def test_load_state_dict_rejects_a_different_setup():
    a = DataLoader(_ds(), 4)
    next(iter(a))
    with pytest.raises(ValueError, match="batch_size=4 but this loader has 5"):
        DataLoader(_ds(), 5).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="num_samples=23 but this loader has 10"):
        DataLoader(_ds(10), 4).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DataLoader(_ds(), 0)
