"""The real datasets of shared/data, read through the sources with their standard protocols."""

import collections
from pathlib import Path

import numpy as np
import pytest

from stgcn.data import load_item, open_source
from stgcn.data.formats.kinect import read_utkinect
from stgcn.errors import DataError

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared datasets not present at {SHARED}")


def _split_counts(src):
    return collections.Counter(s for it in src.items for s in it.splits)


@needs_shared
def test_msr_action3d():
    src = open_source("msr-action3d")
    assert len(src.items) == 557 and len(src.rejects) == 10 and src.layout == "msr-action3d"
    counts = _split_counts(src)
    assert (counts["xsub_train"], counts["xsub_test"]) == (284, 273)
    assert set(counts) == {"xsub_train", "xsub_test"} | {f"xsubval_s{s:02d}_{p}" for s in (1, 3, 5, 7, 9)
                                                         for p in ("train", "test")}
    assert all("files_used_in_cvpr12_paper" in r for _, r in src.rejects)
    lens = [load_item(it).num_frames for it in src.items]
    raw = {it.name: it for it in src.items}
    s = load_item(raw["a13_s01_e01"])
    assert s.keypoint.shape[2:] == (20, 3) and s.score.shape == s.keypoint.shape[:3]
    assert max(lens) <= 76 and "licence" in src.meta and "citation" in src.meta


@needs_shared
def test_msr_zero_frames_counted():
    src = open_source("msr-action3d", zero_frames="keep")
    zero = [s for s in map(load_item, src.items) if s.meta["zero_frames"]]
    # PROVENANCE.md says 12, but counting with its own check.py criterion gives 13 of the 557 used clips
    # (20 of all 567 files, as it states): the prose is off by one, the files are what they are.
    assert len(zero) == 13
    assert sum(s.meta["zero_frames"] for s in zero) == 252


@needs_shared
def test_utkinect_both_label_files():
    src = open_source("utkinect")
    assert len(src.items) == 199 and src.layout == "kinect-v1" and len(src.class_names) == 10
    assert len(src.rejects) == 1 and "s10_e02:carry" in src.rejects[0][0]
    official = open_source("utkinect", labels="official")
    lens = sorted(load_item(it).meta["frame_ids"].__len__() + load_item(it).meta["repeated_frame_ids"]
                  for it in official.items)
    assert (lens[0], lens[len(lens) // 2], lens[-1]) == (5, 29, 174)  # PROVENANCE, rows incl. repeats
    s = load_item(src.items[0])
    assert s.keypoint.shape[2:] == (20, 3) and len(set(s.meta["frame_ids"])) == s.num_frames
    with pytest.raises(DataError, match="missing"):
        read_utkinect(src.meta["root"] + "/joints_s10_e02.txt", float("nan"), float("nan"))


def test_utkinect_bundled_copy():
    bundled = Path(__file__).resolve().parents[1] / "src" / "stgcn" / "resources" / "datasets" / "utkinect"
    src = open_source("utkinect", path=str(bundled))
    assert len(src.items) == 199
    s = load_item(src.items[5])
    assert np.isfinite(s.keypoint).all() and (bundled / "PROVENANCE.md").exists()


@needs_shared
def test_kard():
    src = open_source("kard")
    counts = _split_counts(src)
    assert len(src.items) == 540 and (counts["xsub_train"], counts["xsub_test"]) == (270, 270)
    assert counts["xsubval_s01_test"] == 54 and counts["xsubval_s01_train"] == 216
    s = load_item(src.items[0])
    assert s.keypoint.shape[2:] == (15, 3) and np.abs(s.keypoint).max() < 10  # metres, not mm


@needs_shared
def test_florence():
    src = open_source("florence3d")
    assert len(src.items) == 215 and len(src.split_names) == 20 and src.layout == "openni-15"
    counts = _split_counts(src)
    assert sum(counts[f"fold{k}_test"] for k in range(1, 11)) == 215
    assert all(counts[f"fold{k}_test"] + counts[f"fold{k}_train"] == 215 for k in range(1, 11))
    assert np.abs(load_item(src.items[0]).keypoint).max() < 10


@needs_shared
def test_sbu():
    src = open_source("sbu")
    assert len(src.items) == 282 and src.layout == "openni-15"
    counts = _split_counts(src)
    assert [counts[f"fold{k}_test"] for k in range(1, 6)] == [55, 52, 56, 54, 65]
    s = load_item(src.items[0])
    assert s.keypoint.shape[0] == 2 and s.keypoint.shape[2:] == (15, 3)


def test_unknown_source():
    with pytest.raises(DataError, match="unknown source"):
        open_source("nope")


def test_gzip_bomb_is_refused_before_exhausting_memory(tmp_path):
    import gzip

    from stgcn.data.formats.kinect import read_text

    bomb = tmp_path / "a01_s01_e01_realworld.txt.gz"
    with gzip.open(bomb, "wb") as f:
        f.write(b"0" * (4 * 1024 * 1024))  # 4 MiB of text in a few KB
    assert bomb.stat().st_size < 64 * 1024
    with pytest.raises(DataError, match="decompresses to more than"):
        read_text(bomb, max_bytes=1024 * 1024)
    assert read_text(bomb, max_bytes=8 * 1024 * 1024).startswith("000")
