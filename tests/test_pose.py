"""Pose sources that need no model: OpenPose output folders and their JSON frames."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stgcn.errors import DataError
from stgcn.inference.pose import OpenPoseFolderSource, read_openpose_frame


def _frame(path, v=18, value=None):
    kp = np.concatenate([np.random.default_rng(0).uniform(50, 300, (v, 2)), np.full((v, 1), 0.8)], 1)
    flat = kp.ravel().tolist()
    if value is not None:
        flat[0] = value
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))


def test_frame_span_is_bounded_before_the_frame_list(tmp_path):
    for n in (0, 999999999999):
        _frame(tmp_path / f"v_{n:012d}_keypoints.json")
    with pytest.raises(DataError, match="span more than"):
        OpenPoseFolderSource(tmp_path)  # used to build a list of 10**12 entries


def test_huge_integer_in_a_frame_is_a_named_error(tmp_path):
    f = tmp_path / "v_000000000000_keypoints.json"
    _frame(f, value=10 ** 400)
    with pytest.raises(DataError, match="integer of 401 digits") as info:
        read_openpose_frame(f)
    assert f.name in str(info.value)


def test_layout_from_the_keypoint_count(tmp_path):
    _frame(tmp_path / "v_000000000000_keypoints.json", v=25)
    src = OpenPoseFolderSource(tmp_path)
    assert src.layout == "body25" and [len(f) for f in src] == [1]
