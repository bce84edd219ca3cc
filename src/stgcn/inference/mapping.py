"""Joint mappings between pose-estimator outputs and the layouts our models are trained on.

Each mapping is a table with one entry per destination joint, in destination order. An entry is
either a source index (copied) or a recipe for a joint the source does not have:

* ``("mean", (i, j, ...))``: the mean of source joints (a midpoint for two);
* ``("lerp", a, b, t)``: the point a fraction ``t`` of the way from recipe ``a`` to recipe ``b``.

The confidence of a derived joint is the minimum over the joints it is made of: a midpoint of a
visible and an invisible shoulder is not a visible neck.

Left and right are the subject's own in every layout here (MediaPipe, COCO, OpenPose, Kinect,
OpenNI), so a copied joint keeps its side; the tests check this for every pair.
"""

from __future__ import annotations

import numpy as np

from ..data.formats.openpose import BODY25_TO_COCO18
from ..errors import LayoutError, ShapeError
from ..graph import Layout, get_layout

Recipe = int | tuple

_MID_SHOULDER_MP = ("mean", (11, 12))
_MID_HIP_MP = ("mean", (23, 24))

# MediaPipe-33 -> OpenPose-18 (the COCO-18 order of the official st-gcn net/utils/graph.py, what its
# Kinetics model reads); neck = shoulder midpoint.
_MP_TO_OPENPOSE: list[Recipe] = [
    0, _MID_SHOULDER_MP, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7,
]
# COCO-17 -> OpenPose-18 (CO2OP).
_COCO_TO_OPENPOSE: list[Recipe] = [
    0, ("mean", (5, 6)), 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3,
]
# OpenPose BODY_25 -> COCO-18: the OpenPose reader's table (one copy of the fact).
_BODY25_TO_OPENPOSE: list[Recipe] = BODY25_TO_COCO18.tolist()

# Kinect v1 places its spine joint 0.167 of the way from hip centre to shoulder centre and its hip
# centre 0.066 m above the mid-hips (medians over UTKinect s01_e01); measured from the mid-hips that
# is 0.29 of the way up, which is what a mid-hip origin needs.
KINECT_SPINE_T = 0.29
_HEAD_MP = ("mean", (0, 7, 8))  # nose and both ears: the centre of the head, where Kinect puts it

# MediaPipe-33 -> Kinect SDK v1 (20 joints, UTKinect order).
_MP_TO_KINECT_V1: list[Recipe] = [
    _MID_HIP_MP,                                  # 0 hip_center
    ("lerp", _MID_HIP_MP, _MID_SHOULDER_MP, KINECT_SPINE_T),  # 1 spine
    _MID_SHOULDER_MP,                             # 2 shoulder_center
    _HEAD_MP,                                     # 3 head
    11, 13, 15, ("mean", (17, 19)),               # 4-7 left shoulder, elbow, wrist, hand
    12, 14, 16, ("mean", (18, 20)),               # 8-11 right shoulder, elbow, wrist, hand
    23, 25, 27, 31,                               # 12-15 left hip, knee, ankle, foot (foot index)
    24, 26, 28, 32,                               # 16-19 right hip, knee, ankle, foot
]

# MediaPipe-33 -> OpenNI-15 (Florence 3D / SBU order). Florence's torso is exactly the midpoint of
# the neck and mid-hips, and its shank is as long as its thigh (0.93), so OpenNI's "foot" is at the
# ankle and its "hand" at the palm.
_MP_TO_OPENNI15: list[Recipe] = [
    _HEAD_MP,                                     # 0 head
    _MID_SHOULDER_MP,                             # 1 neck
    ("lerp", _MID_HIP_MP, _MID_SHOULDER_MP, 0.5),  # 2 torso
    11, 13, ("mean", (17, 19)),                   # 3-5 left shoulder, elbow, hand
    12, 14, ("mean", (18, 20)),                   # 6-8 right shoulder, elbow, hand
    23, 25, 27,                                   # 9-11 left hip, knee, foot
    24, 26, 28,                                   # 12-14 right hip, knee, foot
]

# MediaPipe-33 -> NTU RGB+D (Kinect v2, 25): same conventions as Kinect v1; hand tips are the index
# finger tips' knuckle (the closest MediaPipe has), thumbs are thumbs.
_MP_TO_NTU: list[Recipe] = [
    _MID_HIP_MP,                                  # 0 spine_base
    ("lerp", _MID_HIP_MP, _MID_SHOULDER_MP, 0.5),  # 1 spine_mid
    ("lerp", _MID_SHOULDER_MP, ("mean", (0,)), 0.5),  # 2 neck: halfway up to the nose
    _HEAD_MP,                                     # 3 head
    11, 13, 15, ("mean", (17, 19)),               # 4-7 left shoulder, elbow, wrist, hand
    12, 14, 16, ("mean", (18, 20)),               # 8-11 right
    23, 25, 27, 31,                               # 12-15 left hip, knee, ankle, foot
    24, 26, 28, 32,                               # 16-19 right
    _MID_SHOULDER_MP,                             # 20 spine_shoulder
    19, 21, 20, 22,                               # 21-24 left hand tip, left thumb, right tip, thumb
]

MAPPINGS: dict[tuple[str, str], list[Recipe]] = {
    ("mediapipe", "openpose"): _MP_TO_OPENPOSE,
    ("coco", "openpose"): _COCO_TO_OPENPOSE,
    ("body25", "openpose"): _BODY25_TO_OPENPOSE,
    ("mediapipe", "kinect-v1"): _MP_TO_KINECT_V1,
    ("mediapipe", "openni-15"): _MP_TO_OPENNI15,
    ("mediapipe", "ntu-rgb+d"): _MP_TO_NTU,
}

def available_mappings(src_layout: str | Layout) -> list[str]:
    """Destination layouts reachable from ``src_layout`` (itself included)."""
    src = get_layout(src_layout)
    known = src.canonical
    return sorted({src.name} | ({d for (s, d) in MAPPINGS if s == known.name} if known else set()))


def mapping_table(src_layout: str | Layout, dst_layout: str | Layout) -> list[Recipe]:
    """The recipe list from ``src_layout`` to ``dst_layout`` (names or :class:`Layout`); the same
    table maps by identity. Raises :class:`LayoutError` when there is no mapping."""
    src, dst = get_layout(src_layout), get_layout(dst_layout)
    if src == dst:
        return list(range(src.num_joints))
    known_src, known_dst = src.canonical, dst.canonical  # the tables are defined between built-ins
    table = MAPPINGS.get((known_src.name, known_dst.name)) if known_src and known_dst else None
    if table is None:
        raise LayoutError(
            f"no joint mapping from the pose layout {src.name!r} to the model layout {dst.name!r}; from "
            f"{src.name!r} the demo can produce: {', '.join(available_mappings(src))}"
        )
    return table


def _apply(recipe: Recipe, xyz: np.ndarray, conf: np.ndarray | None):
    """Coordinates (..., C) and confidence (...) of one destination joint."""
    if isinstance(recipe, int | np.integer):
        return xyz[..., recipe, :], None if conf is None else conf[..., recipe]
    kind = recipe[0]
    if kind == "mean":
        idx = list(recipe[1])
        c = None if conf is None else conf[..., idx].min(axis=-1)
        return xyz[..., idx, :].mean(axis=-2), c
    if kind == "lerp":
        _, a, b, t = recipe
        pa, ca = _apply(a, xyz, conf)
        pb, cb = _apply(b, xyz, conf)
        c = None if conf is None else np.minimum(ca, cb)
        return pa + t * (pb - pa), c
    raise LayoutError(f"bad mapping recipe {recipe!r}")


def map_keypoints(
    kp: np.ndarray, src_layout: str | Layout, dst_layout: str | Layout, *, score_channel: bool = False
) -> np.ndarray:
    """Re-express keypoints ``kp`` (..., V_src, C) of ``src_layout`` in ``dst_layout``: (..., V_dst, C).

    With ``score_channel=True`` the last channel is a confidence: derived joints take the minimum
    of their parts, and a derived joint with confidence 0 (a part not detected) gets coordinates 0,
    as undetected joints have in OpenPose/Kinetics data.
    """
    kp = np.asarray(kp, dtype=np.float32)
    table = mapping_table(src_layout, dst_layout)
    src = get_layout(src_layout)
    if kp.ndim < 2 or kp.shape[-2] != src.num_joints:
        raise ShapeError(f"keypoints of layout {src.name!r} must have shape (..., {src.num_joints}, C), "
                         f"found {kp.shape}")
    if score_channel:
        xyz, conf = kp[..., :-1], kp[..., -1]
    else:
        xyz, conf = kp, None
    out = np.empty(kp.shape[:-2] + (len(table), kp.shape[-1]), dtype=np.float32)
    for j, recipe in enumerate(table):
        p, c = _apply(recipe, xyz, conf)
        if score_channel:
            out[..., j, :-1] = p
            out[..., j, -1] = c
        else:
            out[..., j, :] = p
    if score_channel:
        out[..., :-1][out[..., -1] <= 0] = 0.0
    return out


# MediaPipe world coordinates have their origin at the mid-hips, so that joint is exactly 0, which
# the data pipeline reads as "missing". Kinect data has the subject metres in front of the sensor:
# UTKinect's mean hip-centre depth is 2.30 m. Shifting z by that keeps every joint non-zero and puts
# the skeleton where the training data has it.
KINECT_DEPTH = 2.3


def mediapipe_world_to_kinect(world: np.ndarray, depth: float = KINECT_DEPTH) -> np.ndarray:
    """MediaPipe world landmarks (..., 3) in Kinect camera axes.

    MediaPipe: metres, origin at the mid-hips, x to the image's right, y down, z away from the
    camera. Kinect v1 / OpenNI: y up and z away from the camera, and x grows toward the subject's
    right when they face the camera (UTKinect and Florence both have the left shoulder at smaller x
    than the right one, by 0.24 m on average), which is the image's left: so x and y flip, and z is
    moved ``depth`` metres away from the camera.
    """
    out = np.array(world, dtype=np.float32, copy=True)
    out[..., 0] *= -1.0
    out[..., 1] *= -1.0
    out[..., 2] += depth
    return out
