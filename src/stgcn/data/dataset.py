"""Torch dataset over a prepared store, with reproducible per-item randomness."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .store import SkeletonStore, open_store


class SkeletonDataset(torch.utils.data.Dataset):
    """Items ``(x float32 tensor (C, T, V, M), label int, index int)`` of ``store`` at ``indices``.

    The transform gets a generator seeded by ``(seed, epoch, index)``: an item's augmentation
    depends only on those, not on the worker that loads it or the order of loading, so runs are
    reproducible whatever ``num_workers`` is. Call :meth:`set_epoch` before each epoch for fresh
    augmentation (with ``persistent_workers=True`` the workers keep the epoch they started with;
    use non-persistent workers, the default, or the same draws repeat every epoch).

    The store's memmap is not pickled; every worker maps the file itself on first access.
    """

    def __init__(self, store: SkeletonStore | str | Path, indices: Sequence[int] | np.ndarray | None = None,
                 transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                 seed: int = 0):
        self.store = store if isinstance(store, SkeletonStore) else open_store(store)
        n = len(self.store)
        idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"indices must be in 0..{n - 1} for a store of {n} clips")
        self.indices = idx
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def labels(self) -> np.ndarray:
        """Labels of the items, in item order (for samplers and class counts)."""
        return self.store.labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def rng(self, index: int) -> np.random.Generator:
        """The generator item ``index`` (a store index) gets in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int, int]:
        i = int(self.indices[k])
        x = self.store.get(i)
        if self.transform is not None:
            x = self.transform(x, self.rng(i))
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), int(self.store.labels[i]), i


def pad_collate(batch: Sequence[tuple[torch.Tensor, int, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack items into (x (N, ..., C, T_max, V, M), labels (N,), indices (N,)), zero-padding the
    time axis (third from last) to the longest clip. Pipelines that fix T (pad_to, random_choose,
    uniform_sample) never need the padding; ``random_fragment`` in test mode does."""
    xs, labels, idx = zip(*batch, strict=True)
    t_max = max(x.shape[-3] for x in xs)
    if any(x.shape[-3] != t_max for x in xs):
        padded = []
        for x in xs:
            pad = t_max - x.shape[-3]
            # F.pad pads from the last axis backwards: (M), (V), then (T) at the end.
            padded.append(torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad)) if pad else x)
        xs = padded
    return torch.stack(xs), torch.as_tensor(labels, dtype=torch.int64), torch.as_tensor(idx, dtype=torch.int64)


collate = pad_collate
