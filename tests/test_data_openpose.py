import json
import time

import numpy as np
import pytest

from faults import bounded
from stgcn.data import load_item, load_sample, open_source
from stgcn.data.formats.openpose import BODY25_TO_COCO18, read_openpose
from stgcn.errors import DataError


def _write(folder, frames, v=25, people=1, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for t in range(start, start + frames):
        ppl = [{"person_id": [-1], "pose_keypoints_2d": (rng.uniform(1, 300, (v, 3)) * [1, 1, 0.003]).ravel().tolist()}
               for _ in range(people)]
        (folder / f"vid_{t:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": ppl}))
    return folder


def test_body25_and_conversion(tmp_path):
    d = _write(tmp_path / "clip", 4, v=25, people=2, start=3)
    s = read_openpose(d)
    assert s.keypoint.shape == (2, 4, 25, 2) and s.meta["layout"] == "body25" and s.meta["first_frame"] == 3
    c = read_openpose(d, to_coco18=True, image_size=(340, 256))
    assert c.keypoint.shape == (2, 4, 18, 2)
    assert np.allclose(c.keypoint[..., 8, 0] * 340, s.keypoint[..., 9, 0], atol=1e-3)  # r-hip <- 9
    assert list(BODY25_TO_COCO18[8:11]) == [9, 10, 11]
    assert load_sample(d).keypoint.shape == (2, 4, 25, 2)


def test_coco18_detected_and_gaps(tmp_path):
    d = _write(tmp_path / "c", 2, v=18)
    (d / "vid_000000000005_keypoints.json").write_text(json.dumps({"people": []}))
    s = read_openpose(d)
    assert s.keypoint.shape == (1, 6, 18, 2) and not s.keypoint[:, 2:5].any()


@pytest.mark.parametrize("doc, match", [
    ({"people": [{"pose_keypoints_2d": [1, 2, 3]}]}, "expected 54"),
    ({"nobody": []}, "people"),
    ({"people": [{"x": 1}]}, "pose_keypoints_2d"),
])
def test_bad_frames(tmp_path, doc, match):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "v_000000000000_keypoints.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=match):
        read_openpose(d)


def test_source(tmp_path):
    _write(tmp_path / "a", 3)
    _write(tmp_path / "b", 3)
    (tmp_path / "labels.csv").write_text("name,label,split\na,wave,train\nb,clap,val\nc,clap,val\n")
    src = open_source("openpose", str(tmp_path))
    assert src.class_names == ["clap", "wave"] and len(src.items) == 2 and len(src.rejects) == 1
    s = load_item(src.items[0])
    assert s.keypoint.shape == (1, 3, 18, 2) and s.label == 1 and src.layout == "openpose"


def test_frame_numbers_are_bounded_before_allocating(tmp_path):
    from stgcn.data.formats.openpose import frame_files

    d = _write(tmp_path / "clip", 1)
    _write(d, 1, start=999999999999)
    for read in (read_openpose, frame_files):
        with pytest.raises(DataError, match="span more than") as info:
            read(d)
        assert "999999999999" in str(info.value)


def test_huge_integer_is_a_named_error(tmp_path):
    d = _write(tmp_path / "clip", 2)
    f = d / "vid_000000000001_keypoints.json"
    doc = json.loads(f.read_text())
    doc["people"][0]["pose_keypoints_2d"][0] = 10 ** 400
    f.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="integer of 401 digits") as info:
        read_openpose(d)
    assert f.name in str(info.value)


def test_labels_csv_missing_is_named(tmp_path):
    with pytest.raises(DataError, match="labels CSV not found") as info:
        open_source("openpose", str(tmp_path))
    assert info.value.file == str(tmp_path / "labels.csv")


def test_openpose_frame_numbers_beyond_bound_are_rejected_before_allocating(tmp_path):
    for f in (0, 10**9):
        (tmp_path / f"v_{f:012d}_keypoints.json").write_text('{"people": []}')
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="span more than"):
        read_openpose(tmp_path)
    assert time.perf_counter() - t0 < 1.0


def test_openpose_people_times_frame_span_is_bounded(tmp_path):
    people = json.dumps({"people": [{"pose_keypoints_2d": [0] * 54}] * 100})
    for f in (0, 999_999):
        (tmp_path / f"v_{f:012d}_keypoints.json").write_text(people)
    assert bounded("read_openpose(p)", tmp_path).startswith("RESULT StgcnError")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_numbers_are_rejected_with_their_record(tmp_path, literal):
    d = tmp_path / "op"
    d.mkdir()
    (d / "v_000000000000_keypoints.json").write_text(
        '{"people": [{"pose_keypoints_2d": [' + ", ".join(["1"] * 53 + [literal]) + ']}]}')
    with pytest.raises(DataError, match="NaN or infinite") as info:
        read_openpose(d)
    assert info.value.record == "frame 0, people[0]"
