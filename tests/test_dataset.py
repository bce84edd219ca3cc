"""SkeletonDataset: items, per-(seed, epoch, index) randomness independent of workers, collate."""

from __future__ import annotations

import functools
import pickle

import numpy as np
import pytest
import torch

from stgcn.data.dataset import (
    EVAL_EPOCH,
    EpochBatchSampler,
    SkeletonDataset,
    item_rng,
    make_loader,
    pad_collate,
)
from stgcn.data.prepare import prepare_source
from stgcn.data.store import open_store
from stgcn.data.transforms import build_pipeline
from test_prepare import FakeSource, fake_load


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "s"
    prepare_source(FakeSource(12, bad_every=0), out, workers=1, loader=fake_load, progress=False)
    return open_store(out)


PIPE = [{"name": "random_choose", "size": 6}, {"name": "random_move"}]


def test_training_and_evaluation_use_the_one_dataset():
    import importlib

    for name in ("stgcn.engine.training", "stgcn.engine.evaluate"):
        mod = importlib.import_module(name)
        datasets = {v for v in vars(mod).values()
                    if isinstance(v, type) and issubclass(v, torch.utils.data.Dataset)}
        assert datasets == {SkeletonDataset}, name


def test_items(store):
    ds = SkeletonDataset(store, store.split("train"))
    x, y, k = ds[1]
    i = int(store.split("train")[1])
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32
    assert k == 1 and int(ds.indices[k]) == i and y == int(store.labels[i])
    np.testing.assert_array_equal(x.numpy(), store.get(i))
    assert len(ds) == len(store.split("train"))
    np.testing.assert_array_equal(ds.labels, store.labels[store.split("train")])
    assert len(SkeletonDataset(store.path)) == len(store)
    with pytest.raises(IndexError):
        SkeletonDataset(store, [0, 99])


def test_randomness_depends_on_seed_epoch_index_only(store):
    ds = SkeletonDataset(store.path, transform=build_pipeline(PIPE), seed=3)
    a = [ds[(k, 0)][0] for k in range(len(ds))]
    b = [ds[(k, 0)][0] for k in reversed(range(len(ds)))][::-1]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(ds[(0, 1)][0], a[0])
    assert torch.equal(ds[(0, 0)][0], a[0])
    # the generator is item_rng(seed, epoch, store index); a plain position means EVAL_EPOCH
    np.testing.assert_array_equal(a[4].numpy(), build_pipeline(PIPE)(store.get(4), item_rng(3, 0, 4)))
    assert torch.equal(ds[2][0], ds[(2, EVAL_EPOCH)][0])
    # a subset sees the same item the same way
    sub = SkeletonDataset(store, [5], transform=build_pipeline(PIPE), seed=3)
    assert torch.equal(sub[(0, 0)][0], a[5])
    assert not torch.equal(SkeletonDataset(store, [5], transform=build_pipeline(PIPE), seed=4)[(0, 0)][0], a[5])


def test_multi_clip_items(store):
    pipe = [{"name": "random_fragment", "length": 4}, {"name": "random_move"}]
    ds = SkeletonDataset(store, [2, 7], transform=build_pipeline(pipe), seed=5, clips=3)
    x, y, k = ds[(1, 9)]
    assert x.shape[0] == 3 and x.shape[-3:] == (4, 25, 2) and k == 1 and y == int(store.labels[7])
    for c in range(3):
        np.testing.assert_array_equal(x[c].numpy(), build_pipeline(pipe)(store.get(7), item_rng(5, 9, 7, c)))
    assert not torch.equal(x[0], x[1])


def test_loader_workers_do_not_change_results(store):
    ds = SkeletonDataset(store, transform=build_pipeline(PIPE), seed=1)
    store.get(0)  # the parent has the memmap open; workers must not rely on it being pickled
    pickled = pickle.loads(pickle.dumps(ds))
    assert pickled.store._data is None
    orders = [np.random.default_rng(e).permutation(len(ds)) for e in range(3)]

    def run(workers):
        sampler = EpochBatchSampler(4)
        loader = make_loader(ds, sampler, workers, seed=0)  # persistent workers when workers > 0
        epochs = []
        for epoch, order in enumerate(orders):
            sampler.set_order(order, epoch + 2)
            epochs.append(list(loader))
        return epochs

    one, two = run(0), run(2)
    for e1, e2 in zip(one, two, strict=True):
        for (x1, y1, k1), (x2, y2, k2) in zip(e1, e2, strict=True):
            assert torch.equal(x1, x2) and torch.equal(y1, y2) and torch.equal(k1, k2)
    assert one[0][0][0].shape == (4, 3, 6, 25, 2)
    # persistent workers see every new epoch: each batch is the items of that epoch
    for epoch, (order, batches) in enumerate(zip(orders, two, strict=True)):
        assert torch.cat([k for _, _, k in batches]).tolist() == order.tolist()
        x0, _, k0 = batches[0]
        assert torch.equal(x0[0], ds[(int(k0[0]), epoch + 2)][0])


def test_sampler_skips_batches_on_resume():
    s = EpochBatchSampler(3)
    s.set_order(range(8), epoch=4, skip=1)
    assert len(s) == 2 and s.num_batches() == 3
    assert list(s) == [[(3, 4), (4, 4), (5, 4)], [(6, 4), (7, 4)]]


def test_pad_collate_replays_by_default():
    a, b = torch.arange(4.0).reshape(1, 4, 1, 1).expand(3, 4, 2, 1), torch.full((3, 7, 2, 1), 2.0)
    x, y, i = pad_collate([(a, 1, 10), (b, 0, 11)])
    assert x.shape == (2, 3, 7, 2, 1) and y.tolist() == [1, 0] and i.tolist() == [10, 11]
    assert torch.equal(x[0, :, :4], a) and torch.equal(x[0, :, 4:], a[:, :3]) and torch.equal(x[1], b)
    # multi-clip items (N, clips, C, T, V, M), numpy items too
    x, _, _ = pad_collate([(np.ones((2, 3, 4, 2, 1), np.float32), 0, 0), (torch.ones(2, 3, 6, 2, 1), 0, 1)])
    assert x.shape == (2, 2, 3, 6, 2, 1) and bool((x == 1).all())


def test_pad_collate_zero_mode():
    a, b = torch.ones(3, 4, 2, 1), torch.full((3, 7, 2, 1), 2.0)
    x, _, _ = pad_collate([(a, 1, 10), (b, 0, 11)], mode="zero")
    assert torch.equal(x[0, :, :4], a) and not x[0, :, 4:].any() and torch.equal(x[1], b)
    x2, _, _ = functools.partial(pad_collate, mode="zero")([(a, 1, 10), (b, 0, 11)])
    assert torch.equal(x, x2)
    with pytest.raises(ValueError, match="pad mode"):
        pad_collate([(a, 1, 10)], mode="edge")
