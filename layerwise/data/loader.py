"""DataLoader: per-epoch shuffling from its own generator, batching, background prefetch, exact resume.

Where the randomness comes from, so that results never depend on timing:

* At the start of each epoch, on the caller's thread, the loader draws from its own generator
  ``rng`` (seeded with ``seed``): the permutation of the samples (when ``shuffle``) and one
  64-bit ``epoch_key``.
* Batch ``i`` of the epoch is transformed with its own generator
  ``numpy.random.default_rng([epoch_key, i])``. The prefetch thread therefore never touches
  ``rng``, and batch i's augmentation is the same with or without prefetching, and after a resume.

``state_dict()`` holds the epoch, the position in it (batches handed out so far), the
permutation, the epoch key and the generator state, so ``load_state_dict`` continues with exactly
the batches an uninterrupted run would have produced.

Sharding for data-parallel training (``rank``, ``world_size``): ``batch_size`` is the batch of ONE
rank (as in PyTorch's DDP) and a step consumes a global batch of ``batch_size * world_size``
samples. Every rank draws the same permutation and epoch key from the same seed, cuts the same
global batches, and keeps its own slice: rank r takes samples ``[r*B, (r+1)*B)`` of global batch i.
A short last global batch (``drop_last=False``) is split as evenly as possible (sizes differ by at
most one; a rank can get none when it holds fewer samples than ranks). The slices of all ranks are
disjoint and cover every global batch, so an epoch visits each sample once over all ranks.
With ``world_size > 1`` the augmentation generator of batch i on rank r is
``default_rng([epoch_key, i, r])``, so ranks draw independent crops and flips.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np

from ..io.rng import rng_state, set_rng_state
from .dataset import ArrayDataset

Batch = tuple[np.ndarray, np.ndarray]


class DataLoader:
    """Iterate over a dataset in (x, y) batches; one ``for`` loop = (the rest of) one epoch.

    Args:
        dataset: anything with ``len()`` and ``dataset[index_array] -> (x, y)``
            (an :class:`ArrayDataset`).
        batch_size: samples per batch.
        shuffle: draw a new permutation every epoch (else the stored order).
        drop_last: drop the final batch when it is smaller than ``batch_size``.
        seed: seeds the loader's own generator; the same seed gives the same batches.
        transform: ``t(x_batch, rng) -> x_batch`` applied to every batch (see
            :mod:`layerwise.data.transforms`).
        prefetch: prepare the next batch in a background thread while the caller trains.
        rank: this process's index among ``world_size`` data-parallel processes.
        world_size: the number of processes sharing each global batch of ``batch_size * world_size``
            samples (1: no sharding, the batches are the whole ``batch_size``).

    Yields:
        (xb, yb): float32 (B, ...) and int64 (B,) NumPy arrays.

    Example:
        >>> loader = DataLoader(ArrayDataset(np.zeros((10, 1, 2, 2)), np.arange(10) % 2), 4, seed=0)
        >>> [len(yb) for _, yb in loader], len(loader)
        ([4, 4, 2], 3)
    """

    def __init__(self, dataset: Any, batch_size: int, shuffle: bool = True, drop_last: bool = False,
                 seed: int = 0, transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                 prefetch: bool = True, rank: int = 0, world_size: int = 1) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if int(world_size) < 1 or not 0 <= int(rank) < int(world_size):
            raise ValueError(f"DataLoader: need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable as t(x, rng), got {transform!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle, self.drop_last, self.prefetch = bool(shuffle), bool(drop_last), bool(prefetch)
        self.seed = int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.transform = transform
        self.rng = np.random.default_rng(self.seed)
        self.epoch = 0                     # epochs completed
        self.position = 0                  # batches of the current epoch handed out
        self._perm: np.ndarray | None = None
        self._epoch_key: int | None = None

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    @property
    def global_batch_size(self) -> int:
        """Samples per step over all ranks: ``batch_size * world_size``."""
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        """Batches (steps) per epoch; the same on every rank."""
        n, b = self.num_samples, self.global_batch_size
        return n // b if self.drop_last else -(-n // b)

    def shard(self, global_indices: np.ndarray) -> np.ndarray:
        """This rank's slice of one global batch (all of it when ``world_size == 1``)."""
        if self.world_size == 1:
            return global_indices
        b, m = self.batch_size, len(global_indices)
        if m == self.global_batch_size:
            return global_indices[self.rank * b:(self.rank + 1) * b]
        q, r = divmod(m, self.world_size)  # a short last batch: the first r ranks take one more
        start = self.rank * q + min(self.rank, r)
        return global_indices[start:start + q + (1 if self.rank < r else 0)]

    # ------------------------------------------------------------------ batches
    def _start_epoch(self) -> None:
        n = self.num_samples
        self._perm = self.rng.permutation(n) if self.shuffle else np.arange(n)
        self._epoch_key = int(self.rng.integers(0, 2**63))

    def _make_batch(self, perm: np.ndarray, key: int, i: int) -> Batch:
        g = self.global_batch_size
        idx = self.shard(perm[i * g:(i + 1) * g])
        xb, yb = self.dataset[idx]
        xb = np.asarray(xb, dtype=np.float32)
        if self.transform is not None:
            seed = [key, i] if self.world_size == 1 else [key, i, self.rank]
            xb = np.asarray(self.transform(xb, np.random.default_rng(seed)), dtype=np.float32)
        return np.ascontiguousarray(xb), np.asarray(yb, dtype=np.int64)

    def __iter__(self) -> Iterator[Batch]:
        if self._perm is None:
            self._start_epoch()
        perm, key = self._perm, self._epoch_key
        assert perm is not None and key is not None
        source = (self._prefetched if self.prefetch else self._direct)(perm, key, self.position, len(self))
        try:
            for i, batch in source:
                self.position = i + 1      # counted when handed out: a checkpoint after it resumes at i+1
                yield batch
        finally:
            source.close()                 # stops the prefetch thread if the caller leaves early
        self.epoch += 1
        self.position = 0
        self._perm = self._epoch_key = None

    def _direct(self, perm: np.ndarray, key: int, start: int, stop: int) -> Generator[tuple[int, Batch]]:
        for i in range(start, stop):
            yield i, self._make_batch(perm, key, i)

    def _prefetched(self, perm: np.ndarray, key: int, start: int, stop: int) -> Generator[tuple[int, Batch]]:
        q: queue.Queue = queue.Queue(maxsize=1)
        stop_event = threading.Event()

        def work() -> None:
            for i in range(start, stop):
                try:
                    item: Any = (i, self._make_batch(perm, key, i))
                except BaseException as e:  # hand the error to the caller's thread
                    item = e
                while not stop_event.is_set():
                    try:
                        q.put(item, timeout=0.05)
                        break
                    except queue.Full:
                        continue
                if stop_event.is_set() or isinstance(item, BaseException):
                    return

        thread = threading.Thread(target=work, name="layerwise-prefetch", daemon=True)
        thread.start()
        try:
            for _ in range(start, stop):
                item = q.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop_event.set()
            thread.join()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The loader's position: JSON-able values plus ``permutation`` (an int64 array or None).

        Use :func:`layerwise.io.pack_state` to split it into checkpoint tensors and metadata.
        """
        return {
            "epoch": self.epoch, "position": self.position, "seed": self.seed,
            "num_samples": self.num_samples, "batch_size": self.batch_size,
            "shuffle": self.shuffle, "drop_last": self.drop_last, "world_size": self.world_size,
            "epoch_key": self._epoch_key, "rng": rng_state(self.rng),
            "permutation": None if self._perm is None else self._perm.astype(np.int64),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: the next iteration yields the remaining batches of its epoch.

        Raises:
            ValueError: the state belongs to a loader over a different number of samples, batch
                size, shuffle or drop_last setting, or number of data-parallel processes (the
                order could not be reproduced). Every rank loads the same state (rank 0's): the
                order and position are shared, each rank's slice follows from its rank.
        """
        if int(state.get("world_size", 1)) != self.world_size:
            raise ValueError(f"DataLoader.load_state_dict: the state was saved by {int(state.get('world_size', 1))} "
                             f"data-parallel process(es) but this loader is one of {self.world_size}; resume with "
                             f"the same number of processes (mpiexec -n {int(state.get('world_size', 1))})")
        for key in ("num_samples", "batch_size", "shuffle", "drop_last"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"DataLoader.load_state_dict: the state has {key}={state[key]!r} but this loader "
                                 f"has {getattr(self, key)!r}; resume with the same data set and batch settings")
        perm = state.get("permutation")
        if perm is not None:
            perm = np.asarray(perm, dtype=np.int64)
            if perm.shape != (self.num_samples,):
                raise ValueError(f"DataLoader.load_state_dict: permutation of length {perm.size} for "
                                 f"{self.num_samples} samples")
        position = int(state["position"])
        if not 0 <= position <= len(self) or (position and perm is None):
            raise ValueError(f"DataLoader.load_state_dict: position {position} is invalid for {len(self)} batches")
        set_rng_state(self.rng, state["rng"])
        self.epoch, self.position = int(state["epoch"]), position
        self._perm = perm
        self._epoch_key = None if state.get("epoch_key") is None else int(state["epoch_key"])
        if self._perm is not None and self._epoch_key is None:
            raise ValueError("DataLoader.load_state_dict: a permutation without its epoch_key")

    def __repr__(self) -> str:
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, transform={self.transform!r}"
                + (f", rank={self.rank}, world_size={self.world_size})" if self.world_size > 1 else ")"))


__all__ = ["DataLoader", "ArrayDataset"]
