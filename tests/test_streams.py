"""Labelled streams: the label,start,end CSV, its bad inputs, and UTKinect's untrimmed recordings."""

from __future__ import annotations

import numpy as np
import pytest

from stgcn.data.formats import kinect
from stgcn.data.streams import (
    LabelledStream,
    load_stream,
    read_segments_csv,
    utkinect_segments,
    utkinect_streams,
    write_segments_csv,
)
from stgcn.errors import DataError
from stgcn.segmentation import BACKGROUND, Segment

CLASSES = ["walk", "sitDown", "standUp"]


def _csv(tmp_path, text: str):
    p = tmp_path / "gt.csv"
    p.write_text(text)
    return p


def test_csv_with_and_without_header_sorted(tmp_path):
    want = [Segment("walk", 0, 4), Segment("standUp", 10, 12)]
    for text in ("label,start,end\nstandUp,10,12\nwalk,0,4\n", "standUp, 10, 12\n\nwalk,0,4\n"):
        assert read_segments_csv(_csv(tmp_path, text), CLASSES, 20) == want


def test_csv_round_trip(tmp_path):
    segs = [Segment("walk", 0, 4), Segment("sitDown", 5, 9)]
    write_segments_csv(tmp_path / "out.csv", segs)
    assert read_segments_csv(tmp_path / "out.csv", CLASSES, 10) == segs


def test_empty_csv_is_all_background(tmp_path):
    assert read_segments_csv(_csv(tmp_path, "label,start,end\n"), CLASSES, 5) == []


@pytest.mark.parametrize("text, message, record", [
    ("walk,0,4\nsitDown,4,8\n", "sitDown 4-8 overlaps segment walk 0-4 of line 1", "line 2"),
    ("walk,0,4\nsitDown,5,20\n", "runs past the sequence, which has 20 frames", "line 2"),
    ("walk,0,4\njump,5,8\n", "unknown label 'jump'; the classes are: walk, sitDown, standUp", "line 2"),
    ("walk,5,4\n", "need 0 <= start <= end", "line 1"),
    ("walk,-1,4\n", "need 0 <= start <= end", "line 1"),
    ("walk,0,4.5\n", "integer frame indices", "line 1"),
    ("walk,0\n", "expected 3 fields", "line 1"),
])
def test_bad_csv_names_file_line_and_problem(tmp_path, text, message, record):
    path = _csv(tmp_path, text)
    with pytest.raises(DataError) as exc:
        read_segments_csv(path, CLASSES, 20)
    assert message in str(exc.value)
    assert exc.value.record == record and exc.value.file == str(path)


def test_load_stream_from_npy(tmp_path):
    seq = np.random.default_rng(0).normal(size=(30, 20, 3)).astype(np.float32)
    np.save(tmp_path / "seq.npy", seq)
    s = load_stream(tmp_path / "seq.npy", _csv(tmp_path, "walk,2,9\nsitDown,20,29\n"), CLASSES)
    assert isinstance(s, LabelledStream) and s.num_frames == 30 and s.sample.keypoint.shape == (1, 30, 20, 3)
    frames = s.frame_labels()
    assert (frames[2:10] == 0).all() and (frames[20:] == 1).all() and (frames[10:20] == BACKGROUND).all()


def test_two_person_npy_and_empty_stream(tmp_path):
    np.save(tmp_path / "two.npy", np.ones((2, 8, 20, 3), np.float32))
    assert load_stream(tmp_path / "two.npy", _csv(tmp_path, ""), CLASSES).sample.num_persons == 2
    np.save(tmp_path / "empty.npy", np.zeros((0, 20, 3), np.float32))
    with pytest.raises(DataError, match="no person or no frame"):
        load_stream(tmp_path / "empty.npy", _csv(tmp_path, ""), CLASSES)


def test_utkinect_touching_segments_give_the_shared_row_to_the_earlier():
    ids = np.array([10, 12, 14, 16, 18, 20, 22], np.float64)
    segs, notes = utkinect_segments(ids, {"push": (16, 22), "pull": (10, 16), "walk": (float("nan"), float("nan"))})
    assert segs == [Segment("pull", 0, 3), Segment("push", 4, 6)]
    assert any("moved one row later" in n for n in notes) and any("missing" in n for n in notes)


def test_utkinect_streams_are_the_recordings_with_their_segments():
    streams = utkinect_streams()
    assert len(streams) == 20 and sum(len(s.segments) for s in streams) == 199
    assert sorted({s.meta["subject"] for s in streams}) == list(range(1, 11))
    for s in streams:
        t = s.frame_labels()                     # raises if segments overlap or run past the end
        assert t.shape == (s.num_frames,) and np.all(np.diff(s.times) > 0)
    # Cross-check one recording against the clip reader of the trimmed segments (frame-id ranges).
    s01 = streams[0]
    table = kinect.read_utkinect_labels(kinect.Path(s01.meta["file"]).parent / "actionLabel_modified.txt")
    for seg in s01.segments:
        clip = kinect.read_utkinect(s01.meta["file"], *table["s01_e01"][seg.label])
        rows = s01.sample.keypoint[0, seg.start:seg.end + 1]
        # the clip reader keeps a row shared with the previous segment; the stream gives it away
        np.testing.assert_array_equal(rows, clip.keypoint[0, -len(rows):])
        assert len(rows) in (clip.num_frames, clip.num_frames - 1)
    assert utkinect_streams(subjects=[2, 4])[0].name == "s02_e01"
