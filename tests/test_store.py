"""The prepared store: files, reading, refusal of incomplete or foreign directories."""

from __future__ import annotations

import json
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from faults import Evil, npy_with_damaged_header
from stgcn.data.prepare import prepare_source
from stgcn.data.store import FILES, MARKER, open_store
from stgcn.errors import DataError
from test_prepare import FakeSource, fake_load, fake_sample


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "s"
    prepare_source(FakeSource(16, bad_every=0), out, workers=1, loader=fake_load, progress=False)
    return out


def test_files_dtypes_and_axes(store_dir):
    assert sorted(p.name for p in store_dir.iterdir()) == sorted([*FILES, MARKER])
    data = np.load(store_dir / "data.npy", mmap_mode="r")
    offsets = np.load(store_dir / "offsets.npy")
    labels = np.load(store_dir / "labels.npy")
    meta = json.loads((store_dir / "meta.json").read_text())
    assert data.dtype == np.float32 and data.shape[1:] == (2, 25, 3)  # (frames, M, V, C)
    assert offsets.dtype == np.int64 and offsets[0] == 0 and offsets[-1] == data.shape[0]
    assert labels.dtype == np.int64 and len(labels) == len(offsets) - 1 == 16
    assert meta["format"] == "stgcn-store" and meta["version"] == 1
    assert meta["axes"] == ["frame", "person", "joint", "channel"]
    assert meta["counts"]["clips"] == 16 and meta["counts"]["frames"] == data.shape[0]
    # clip i is rows offsets[i]:offsets[i+1], (T, M, V, C)
    ref = fake_sample("clip5").to_array()
    np.testing.assert_array_equal(data[offsets[5]:offsets[6], :ref.shape[3]].transpose(3, 0, 2, 1), ref)


def test_get_returns_writable_copy(store_dir):
    s = open_store(store_dir)
    x = s.get(3)
    assert x.flags.writeable and x.flags.c_contiguous and x.shape == (3, s.lengths[3], 25, 2)
    x[:] = 1
    assert not np.all(s.get(3) == 1)
    np.testing.assert_array_equal(s.get(-1), s.get(len(s) - 1))
    with pytest.raises(IndexError):
        s.get(len(s))


def test_splits_and_unknown_split_lists_names(store_dir):
    s = open_store(store_dir)
    assert set(s.splits) == {"train", "val"}
    assert s.split("val").dtype == np.int64
    with pytest.raises(DataError, match=r"no split 'test'; available: \['train', 'val'\]"):
        s.split("test")


def test_pickle_reopens_the_memmap_instead_of_copying_it(store_dir):
    # a DataLoader worker gets the store pickled: it must map data.npy itself, not receive a copy
    s = open_store(store_dir)
    s.get(0)
    s2 = pickle.loads(pickle.dumps(s))
    assert isinstance(s2.data, np.memmap)
    assert Path(s2.data.filename).resolve() == (Path(store_dir) / "data.npy").resolve()
    assert len(pickle.dumps(s)) < s.data.nbytes
    np.testing.assert_array_equal(s2.get(2), s.get(2))


def test_incomplete_store_is_refused_with_resume_hint(tmp_path, store_dir):
    d = tmp_path / "inc"
    d.mkdir()
    for f in FILES:
        (d / f).write_bytes((store_dir / f).read_bytes())
    (d / ".partial").mkdir()
    with pytest.raises(DataError, match="incomplete|not a complete") as info:
        open_store(d)
    assert "run the same `stgcn prepare ... --out` command again to resume" in str(info.value)
    (d / ".partial").rmdir()
    with pytest.raises(DataError, match="stgcn prepare FORMAT SOURCE --out DIR"):
        open_store(d)


def test_wrong_version_is_refused(tmp_path, store_dir):
    d = tmp_path / "old"
    d.mkdir()
    for f in [*FILES, MARKER]:
        (d / f).write_bytes((store_dir / f).read_bytes())
    meta = json.loads((d / "meta.json").read_text())
    meta["version"] = 99
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="version 99"):
        open_store(d)


def test_opening_a_large_index_is_fast(tmp_path):
    # 60k clips: open reads only the index files; no per-clip objects besides names.
    d = tmp_path / "big"
    d.mkdir()
    n = 60_000
    np.save(d / "data.npy", np.zeros((n, 1, 2, 3), np.float32))
    np.save(d / "offsets.npy", np.arange(n + 1, dtype=np.int64))
    np.save(d / "labels.npy", np.zeros(n, np.int64))
    (d / "names.json").write_text(json.dumps([f"S001C001P001R001A{i:06d}" for i in range(n)]))
    (d / "splits.json").write_text(json.dumps({"xsub_train": list(range(0, n, 2)), "xsub_val": list(range(1, n, 2))}))
    (d / "meta.json").write_text(json.dumps({"format": "stgcn-store", "version": 1, "layout": "x"}))
    (d / "rejects.csv").write_text("file,record,reason\n")
    (d / MARKER).write_text("{}")
    t0 = time.perf_counter()
    s = open_store(d)
    assert len(s) == n and s.get(n - 1).shape == (3, 1, 2, 1)
    assert time.perf_counter() - t0 < 5.0  # generous: the machine is shared


def test_store_keeps_the_layout_table(store_dir):
    from stgcn.graph import get_layout

    s = open_store(store_dir)
    assert s.meta["layout_table"]["joints"] == list(get_layout(s.layout).joint_names)
    assert s.joint_layout() == get_layout(s.layout)


@pytest.fixture
def store_copy(store_dir, tmp_path) -> Path:
    d = tmp_path / "store"
    shutil.copytree(store_dir, d)
    return d


def test_store_with_truncated_data_npy_is_refused(store_copy):
    data = store_copy / "data.npy"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    s = open_store(store_copy)  # the index is fine; the frames are mapped lazily
    with pytest.raises(DataError, match="data.npy") as info:
        s.get(0)
    assert str(store_copy) in str(info.value)


def test_store_whose_offsets_overrun_data_is_refused(store_copy):
    offsets = np.load(store_copy / "offsets.npy")
    offsets[-1] += 5
    np.save(store_copy / "offsets.npy", offsets)
    with pytest.raises(DataError, match=r"data\.npy has \d+ frames, offsets say \d+"):
        open_store(store_copy).get(0)


@pytest.mark.parametrize("name, content", [
    ("meta.json", b'{"format": "stgcn-store", '),
    ("names.json", b"\x00\xff"),
    ("labels.npy", b"not an npy file"),
])
def test_store_with_corrupt_index_file_is_refused(store_copy, name, content):
    (store_copy / name).write_bytes(content)
    with pytest.raises(DataError, match="cannot read the store's index files") as info:
        open_store(store_copy)
    assert str(store_copy) in str(info.value)


def test_store_with_missing_index_file_is_refused(store_copy):
    (store_copy / "names.json").unlink()
    with pytest.raises(DataError, match="names.json"):
        open_store(store_copy)


def test_store_with_damaged_npy_header_is_refused(store_copy):
    (store_copy / "offsets.npy").write_bytes(npy_with_damaged_header(np.load(store_copy / "offsets.npy")))
    with pytest.raises(DataError):
        open_store(store_copy)


def test_store_index_with_pickled_objects_is_refused(store_copy, tmp_path):
    marker = tmp_path / "pwned"
    n = len(np.load(store_copy / "labels.npy"))
    np.save(store_copy / "labels.npy", np.array([Evil(marker)] * n, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="cannot read the store's index files"):
        open_store(store_copy)
    assert not marker.exists()
