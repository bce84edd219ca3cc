"""Torch dataset over a prepared store, with reproducible per-item randomness.

The one dataset implementation of the package (training, evaluation and the benchmarks use it):

* :class:`SkeletonDataset`: items are addressed by
  ``(position, epoch)`` pairs and the transform gets a generator seeded by
  ``(seed, epoch, store index)`` (:func:`item_rng`), so an item's augmentation does not depend on
  the worker that loads it, the worker count, the order of loading or a restart.
* :class:`EpochBatchSampler`: yields batches of ``(position, epoch)`` pairs from an order set in
  the main process before each epoch — persistent workers need no notification of the epoch.
* :func:`pad_collate`: stacks a batch, padding clips of different length by
  replaying them (as the official feeder does; ``mode="zero"`` appends zeros instead).
* :func:`make_loader`: a ``DataLoader`` wired with the three above.

>>> ds = SkeletonDataset(store, store.split("train"), transform, seed=0)    # doctest: +SKIP
>>> sampler = EpochBatchSampler(16)                                          # doctest: +SKIP
>>> loader = make_loader(ds, sampler, num_workers=2, seed=0)                 # doctest: +SKIP
>>> for epoch in range(epochs):                                              # doctest: +SKIP
...     sampler.set_order(np.random.default_rng(epoch).permutation(len(ds)), epoch)
...     for x, y, pos in loader: ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .store import SkeletonStore, open_store

#: The epoch of items addressed by a plain position (``ds[k]``) and of evaluation clips: far from
#: the epoch numbers used for training augmentation.
EVAL_EPOCH = 1_000_003

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def item_rng(seed: int, epoch: int, index: int, clip: int | None = None) -> np.random.Generator:
    """The generator the transform gets for store index ``index`` in ``epoch`` (and test clip
    ``clip`` of a multi-clip item)."""
    key = [int(seed), int(epoch), int(index)] if clip is None else [int(seed), int(epoch), int(clip), int(index)]
    return np.random.default_rng(key)


class SkeletonDataset(torch.utils.data.Dataset):
    """Items ``(x float32 tensor (C, T, V, M), label int, position int)`` of ``store`` at ``indices``.

    ``store`` is a :class:`~stgcn.data.store.SkeletonStore` (or anything with ``get``, ``labels`` and
    ``__len__``) or its directory; ``indices`` are store
    indices (all clips when None); the returned position ``k`` is the item's place in ``indices``
    (the store index is ``ds.indices[k]``). ``labels`` holds the item labels in item order and may be
    replaced (evaluation maps them into a checkpoint's class list).

    An item is addressed by ``ds[(k, epoch)]``; the transform then gets
    ``item_rng(seed, epoch, indices[k])``, a function of those three numbers only. :class:`EpochBatchSampler`
    produces such pairs, so the epoch travels with every request and persistent workers need no
    ``set_epoch``. A plain ``ds[k]`` is ``ds[(k, EVAL_EPOCH)]``.

    With ``clips`` > 1 an item is a stack of ``clips`` transformed copies ``(clips, C, T, V, M)``
    (evaluation-time augmentation), copy ``c`` drawn from ``item_rng(seed, epoch, index, c)``; copies
    of different length are padded by replay.

    The store's memmap is not pickled; every worker maps the file itself on first access.
    """

    def __init__(self, store: SkeletonStore | str | Path, indices: Sequence[int] | np.ndarray | None = None,
                 transform: Transform | None = None, seed: int = 0, *, clips: int = 1):
        self.store = open_store(store) if isinstance(store, (str, Path)) else store
        n = len(self.store)
        idx = np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"indices must be in 0..{n - 1} for a store of {n} clips")
        if int(clips) < 1:
            raise ValueError(f"clips must be >= 1, got {clips}")
        self.indices = idx
        self.transform = transform
        self.seed = int(seed)
        self.clips = int(clips)
        self.labels = np.asarray(self.store.labels, dtype=np.int64)[idx]

    def __len__(self) -> int:
        return len(self.indices)

    def _one(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.transform is not None:
            x = self.transform(x, rng)
        return np.ascontiguousarray(x, dtype=np.float32)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int, int]:
        pos, epoch = item if isinstance(item, tuple) else (item, EVAL_EPOCH)
        pos = int(pos)
        idx = int(self.indices[pos])
        raw = self.store.get(idx)  # a fresh float32 copy
        if self.clips == 1:
            x = self._one(raw, item_rng(self.seed, epoch, idx))
        else:
            xs = [self._one(raw.copy(), item_rng(self.seed, epoch, idx, c)) for c in range(self.clips)]
            x = stack_padded(xs, axis=1)
        return torch.from_numpy(x), int(self.labels[pos]), pos


#: The engine's name for the same class.


# --------------------------------------------------------------------------- padding and collation


def loop_pad(x: np.ndarray, t: int, axis: int) -> np.ndarray:
    """Pad ``x`` along ``axis`` to length ``t`` by replaying it (as the official feeder does)."""
    n = x.shape[axis]
    if n == t:
        return x
    reps = -(-t // n)
    return np.take(np.concatenate([x] * reps, axis=axis), np.arange(t), axis=axis)


def zero_pad(x: np.ndarray, t: int, axis: int) -> np.ndarray:
    """Pad ``x`` along ``axis`` to length ``t`` with zeros at the end."""
    n = x.shape[axis]
    if n == t:
        return x
    width = [(0, 0)] * x.ndim
    width[axis] = (0, t - n)
    return np.pad(x, width)


_PADS = {"loop": loop_pad, "replay": loop_pad, "zero": zero_pad}


def _pad_fn(mode: str):
    try:
        return _PADS[mode]
    except KeyError:
        raise ValueError(f"pad mode must be 'loop' (replay) or 'zero', got {mode!r}") from None


def stack_padded(xs: Sequence[np.ndarray], axis: int, mode: str = "loop") -> np.ndarray:
    """``np.stack(xs)`` after padding every array along ``axis`` to the longest (``mode`` "loop" =
    replay, or "zero")."""
    pad = _pad_fn(mode)
    t = max(x.shape[axis] for x in xs)
    return np.stack([pad(x, t, axis) for x in xs])


def pad_collate(batch: Sequence[tuple], mode: str = "loop") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack items ``(x, label, position)`` into ``(x (N, [clips,] C, T_max, V, M), labels (N,),
    positions (N,))``.

    Clips of different length (e.g. ``random_fragment`` in test mode, all-frames evaluation) are
    padded on the time axis (third from last) to the longest: by replaying the clip (``mode="loop"``,
    the default, as the official feeder does, so global average pooling sees the same statistics),
    or with zeros (``mode="zero"``; use ``functools.partial(pad_collate, mode="zero")`` as a
    ``collate_fn``). ``x`` may be a tensor or a numpy array.
    """
    _pad_fn(mode)
    xs, labels, pos = zip(*batch, strict=True)
    xs = [x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x) for x in xs]
    same = all(x.shape == xs[0].shape for x in xs)
    # the time axis is third from last: (C, T, V, M) or (clips, C, T, V, M)
    x = np.stack(xs) if same else stack_padded(xs, axis=xs[0].ndim - 3, mode=mode)
    return torch.from_numpy(x), torch.tensor(labels, dtype=torch.int64), torch.tensor(pos, dtype=torch.int64)




# --------------------------------------------------------------------------- sampling and loading


class EpochBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(position, epoch)`` items from an order set per epoch.

    The order is set in the main process before each epoch (``set_order``), so persistent workers
    need no notification; ``skip`` batches are left out when resuming mid-epoch.
    """

    def __init__(self, batch_size: int):
        self.batch_size = int(batch_size)
        self.order: list[int] = []
        self.epoch = 0
        self.skip = 0

    def set_order(self, order: Sequence[int], epoch: int, skip: int = 0) -> None:
        self.order = [int(i) for i in order]
        self.epoch = int(epoch)
        self.skip = int(skip)

    def num_batches(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __len__(self) -> int:
        return max(0, self.num_batches() - self.skip)

    def __iter__(self):
        b = self.batch_size
        for j in range(self.skip, self.num_batches()):
            yield [(i, self.epoch) for i in self.order[j * b:(j + 1) * b]]


def make_loader(dataset: SkeletonDataset, batch_sampler: EpochBatchSampler, num_workers: int, seed: int,
                persistent: bool = True, pad: str = "loop") -> torch.utils.data.DataLoader:
    """A ``DataLoader`` over ``dataset`` in the batches of ``batch_sampler``, collated by
    :func:`pad_collate` (``pad`` = its ``mode``); workers are persistent when ``persistent``."""
    # A private generator: the loader's base seed must not consume the global torch RNG, which
    # drives dropout and has to replay identically after a resume.
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    collate_fn = pad_collate if _pad_fn(pad) is loop_pad else partial(pad_collate, mode=pad)
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=batch_sampler, num_workers=num_workers, collate_fn=collate_fn,
        persistent_workers=persistent and num_workers > 0, generator=gen,
        pin_memory=torch.cuda.is_available(),
    )


__all__ = ["SkeletonDataset", "EpochBatchSampler", "pad_collate",
           "make_loader", "item_rng", "loop_pad", "zero_pad", "stack_padded", "EVAL_EPOCH"]
