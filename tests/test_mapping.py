"""Joint mappings: every destination joint against the tables, midpoints, scores and left/right."""

from __future__ import annotations

import numpy as np
import pytest

from stgcn.errors import LayoutError, ShapeError
from stgcn.graph import get_layout
from stgcn.inference.mapping import (
    KINECT_DEPTH,
    KINECT_SPINE_T,
    MAPPINGS,
    available_mappings,
    map_keypoints,
    mediapipe_world_to_kinect,
)

# MediaPipe-33 and COCO-17 -> OpenPose-18 (None = shoulder midpoint), written out independently of the module;
# test_names_agree_after_mapping checks them joint name by joint name.
MP2OP = [0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7]
CO2OP = [0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
MP_NAMES = get_layout("mediapipe").joint_names
COCO_NAMES = get_layout("coco").joint_names
BODY25_NAMES = ["nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
                "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
                "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe",
                "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel"]


def _coded(v: int, c: int = 2) -> np.ndarray:
    """Keypoints whose coordinates encode the joint index, so a mapped value names its source."""
    kp = np.zeros((v, c), np.float32)
    kp[:, 0] = np.arange(v)
    kp[:, 1] = 100 + np.arange(v)
    if c == 3:
        kp[:, 2] = 0.5 + np.arange(v) / (2 * v)
    return kp


@pytest.mark.parametrize("src,table,v", [("mediapipe", MP2OP, 33), ("coco", CO2OP, 17)])
def test_to_openpose_matches_table(src, table, v):
    kp = _coded(v, 3)
    out = map_keypoints(kp, src, "openpose", score_channel=True)
    assert out.shape == (18, 3)
    for j, s in enumerate(table):
        if s is None:
            ls, rs = (11, 12) if src == "mediapipe" else (5, 6)
            np.testing.assert_allclose(out[j, :2], (kp[ls, :2] + kp[rs, :2]) / 2)
            assert out[j, 2] == pytest.approx(min(kp[ls, 2], kp[rs, 2]))
        else:
            np.testing.assert_array_equal(out[j], kp[s])


def test_names_agree_after_mapping():
    op = get_layout("openpose").joint_names
    for src, names, table in (("mediapipe", MP_NAMES, MP2OP), ("coco", COCO_NAMES, CO2OP)):
        for j, s in enumerate(table):
            if s is not None:
                assert names[s] == op[j], (src, j)
    for j, s in enumerate(MAPPINGS[("body25", "openpose")]):
        assert BODY25_NAMES[s] == op[j]


def test_body25_drops_midhip_and_feet():
    kp = _coded(25, 3)
    out = map_keypoints(kp, "body25", "openpose", score_channel=True)
    assert 8 not in out[:, 0] and not (out[:, 0] >= 19).any()
    assert out[8, 0] == 9  # right hip


def test_neck_score_is_min_and_undetected_is_zero():
    kp = _coded(33, 3)
    kp[11, 2] = 0.0
    out = map_keypoints(kp, "mediapipe", "openpose", score_channel=True)
    np.testing.assert_array_equal(out[1], [0, 0, 0])
    np.testing.assert_array_equal(out[5], [0, 0, 0])  # undetected copied joint: zeros, as in Kinetics data
    np.testing.assert_array_equal(out[2], kp[12])


def _by_name(src_names, dst_layout, dst_out, kp):
    # copied joints: same name in source and destination
    dst = get_layout(dst_layout).joint_names
    hits = 0
    for j, n in enumerate(dst):
        if n in src_names:
            np.testing.assert_array_equal(dst_out[j], kp[src_names.index(n)], err_msg=n)
            hits += 1
    return hits


def test_mediapipe_to_kinect_v1():
    kp = _coded(33, 3)
    out = map_keypoints(kp, "mediapipe", "kinect-v1")
    assert out.shape == (20, 3)
    assert _by_name(MP_NAMES, "kinect-v1", out, kp) == 12  # shoulders, elbows, wrists, hips, knees, ankles
    mid_hip = (kp[23] + kp[24]) / 2
    mid_sh = (kp[11] + kp[12]) / 2
    np.testing.assert_allclose(out[0], mid_hip)
    np.testing.assert_allclose(out[2], mid_sh)
    np.testing.assert_allclose(out[1], mid_hip + KINECT_SPINE_T * (mid_sh - mid_hip), rtol=1e-6)
    np.testing.assert_allclose(out[3], (kp[0] + kp[7] + kp[8]) / 3)
    np.testing.assert_allclose(out[7], (kp[17] + kp[19]) / 2)  # left hand: left pinky/index
    np.testing.assert_allclose(out[11], (kp[18] + kp[20]) / 2)
    np.testing.assert_array_equal(out[15], kp[31])  # left foot = left foot index
    np.testing.assert_array_equal(out[19], kp[32])


def test_mediapipe_to_openni15():
    kp = _coded(33, 3)
    out = map_keypoints(kp, "mediapipe", "openni-15")
    assert out.shape == (15, 3)
    np.testing.assert_allclose(out[1], (kp[11] + kp[12]) / 2)
    np.testing.assert_allclose(out[2], ((kp[23] + kp[24]) / 2 + (kp[11] + kp[12]) / 2) / 2)
    np.testing.assert_allclose(out[5], (kp[17] + kp[19]) / 2)
    np.testing.assert_array_equal(out[11], kp[27])  # OpenNI foot sits at the ankle
    np.testing.assert_array_equal(out[14], kp[28])


def test_mediapipe_to_ntu_hand_joints():
    kp = _coded(33, 3)
    out = map_keypoints(kp, "mediapipe", "ntu-rgb+d")
    assert out.shape == (25, 3)
    names = get_layout("ntu-rgb+d").joint_names
    np.testing.assert_array_equal(out[names.index("left_thumb")], kp[21])
    np.testing.assert_array_equal(out[names.index("right_hand_tip")], kp[20])


@pytest.mark.parametrize("src,dst", sorted(MAPPINGS))
def test_left_right_never_swapped(src, dst):
    """Every destination joint named left/right is built only from source joints of the same side."""
    from stgcn.inference.mapping import mapping_table

    src_names = {"mediapipe": MP_NAMES, "coco": COCO_NAMES, "body25": BODY25_NAMES}[src]
    dst_names = get_layout(dst).joint_names

    def sources(r):
        if isinstance(r, int):
            return [r]
        if r[0] == "mean":
            return list(r[1])
        return sources(r[1]) + sources(r[2])

    for j, r in enumerate(mapping_table(src, dst)):
        side = "left" if "left" in dst_names[j] else "right" if "right" in dst_names[j] else None
        if side is None:
            continue
        other = "right" if side == "left" else "left"
        for s in sources(r):
            assert other not in src_names[s], (dst_names[j], src_names[s])
            assert side in src_names[s], (dst_names[j], src_names[s])


def test_batched_shapes_and_errors():
    kp = np.random.default_rng(0).random((4, 7, 33, 3)).astype(np.float32)
    assert map_keypoints(kp, "mediapipe", "openpose", score_channel=True).shape == (4, 7, 18, 3)
    with pytest.raises(ShapeError):
        map_keypoints(kp[..., :20, :], "mediapipe", "openpose")
    with pytest.raises(LayoutError, match="kinect-v1"):
        map_keypoints(np.zeros((17, 3)), "coco", "kinect-v1")
    assert "kinect-v1" in available_mappings("mediapipe")
    np.testing.assert_array_equal(map_keypoints(kp, "mediapipe", "mediapipe"), kp)


def test_world_axes_follow_kinect():
    """A subject facing the camera: MediaPipe has the left shoulder at the image right (x > 0) and
    the head above the hips (y < 0). Kinect (as UTKinect records it) has the left shoulder at smaller
    x than the right one, the head at larger y, and z moved away from the camera."""
    world = np.zeros((33, 3), np.float32)
    world[11] = [0.2, -0.5, 0.1]   # left shoulder
    world[12] = [-0.2, -0.5, 0.0]  # right shoulder
    world[0] = [0.0, -0.7, -0.1]   # nose
    k = map_keypoints(mediapipe_world_to_kinect(world), "mediapipe", "kinect-v1")
    assert k[4, 0] < k[8, 0]
    assert k[3, 1] > k[0, 1]
    assert k[4, 2] == pytest.approx(0.1 + KINECT_DEPTH)
    assert (np.abs(k).sum(-1) > 0).all()  # no joint reads as missing, not even the hip centre


def test_body25_table_agrees_with_the_openpose_reader():
    from stgcn.data.formats.openpose import BODY25_TO_COCO18

    assert list(MAPPINGS[("body25", "openpose")]) == BODY25_TO_COCO18.tolist()


def test_mapping_follows_layout_identity():
    from stgcn.inference.mapping import mapping_table

    kinect = get_layout("kinect-v1")
    copy = get_layout({**kinect.to_dict(), "name": "my-kinect"})
    assert mapping_table("kinect-v1", copy) == list(range(20))  # the same table: identity
    assert mapping_table("mediapipe", copy) == mapping_table("mediapipe", "kinect-v1")  # found by table
    with pytest.raises(LayoutError, match="msr-action3d"):
        mapping_table("kinect-v1", "msr-action3d")  # 20 joints each, another order
    toy = get_layout({"name": "toy", "joints": ["a", "b"], "edges": [[0, 1]], "center": 0})
    with pytest.raises(LayoutError, match="toy"):
        mapping_table("mediapipe", toy)


def test_body25_is_a_layout_with_the_openpose_names():
    lay = get_layout("body25")
    assert list(lay.joint_names) == BODY25_NAMES and lay.dims == 2
    assert get_layout("openpose25") is lay
