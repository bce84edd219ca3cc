"""SkeletonDataset: items, per-(seed, epoch, index) randomness independent of workers, collate."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from stgcn.data.dataset import SkeletonDataset, pad_collate
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


def test_items(store):
    ds = SkeletonDataset(store, store.split("train"))
    x, y, i = ds[1]
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32
    assert i == int(store.split("train")[1]) and y == int(store.labels[i])
    np.testing.assert_array_equal(x.numpy(), store.get(i))
    assert len(ds) == len(store.split("train"))
    np.testing.assert_array_equal(ds.labels, store.labels[store.split("train")])
    with pytest.raises(IndexError):
        SkeletonDataset(store, [0, 99])


def test_randomness_depends_on_seed_epoch_index_only(store):
    ds = SkeletonDataset(store.path, transform=build_pipeline(PIPE), seed=3)
    a = [ds[k][0] for k in range(len(ds))]
    b = [ds[k][0] for k in reversed(range(len(ds)))][::-1]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0], a[0])
    ds.set_epoch(0)
    assert torch.equal(ds[0][0], a[0])
    # a subset sees the same item the same way
    sub = SkeletonDataset(store, [5], transform=build_pipeline(PIPE), seed=3)
    assert torch.equal(sub[0][0], a[5])


def test_loader_workers_do_not_change_results(store):
    ds = SkeletonDataset(store, transform=build_pipeline(PIPE), seed=1)
    ds.set_epoch(2)
    store.get(0)  # the parent has the memmap open; workers must not rely on it being pickled
    pickled = pickle.loads(pickle.dumps(ds))
    assert pickled.store._data is None

    def run(workers):
        dl = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=pad_collate)
        return [b for b in dl]

    one, two = run(0), run(2)
    for (x1, y1, i1), (x2, y2, i2) in zip(one, two, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2) and torch.equal(i1, i2)
    assert one[0][0].shape == (4, 3, 6, 25, 2)


def test_pad_collate_pads_time():
    a, b = torch.ones(3, 4, 2, 1), torch.full((3, 7, 2, 1), 2.0)
    x, y, i = pad_collate([(a, 1, 10), (b, 0, 11)])
    assert x.shape == (2, 3, 7, 2, 1) and y.tolist() == [1, 0] and i.tolist() == [10, 11]
    assert torch.equal(x[0, :, :4], a) and not x[0, :, 4:].any() and torch.equal(x[1], b)
    x, _, _ = pad_collate([(torch.ones(2, 3, 4, 2, 1), 0, 0), (torch.ones(2, 3, 6, 2, 1), 0, 1)])
    assert x.shape == (2, 2, 3, 6, 2, 1)
