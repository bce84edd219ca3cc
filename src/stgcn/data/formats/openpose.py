"""OpenPose output: a folder of per-frame ``<video>_<frame:012d>_keypoints.json`` files.

BODY_25 or COCO-18 is detected from the keypoint count. Coordinates are pixels unless the image
size is given, in which case they are divided by width and height (the Kinetics-skeleton
convention).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..sample import Sample
from . import jsontext

# openpose-18 (the COCO-18 order of the official st-gcn net/utils/graph.py) joint j is BODY_25
# keypoint BODY25_TO_COCO18[j]:
#   0 nose<-0, 1 neck<-1, 2 r-shoulder<-2, 3 r-elbow<-3, 4 r-wrist<-4, 5 l-shoulder<-5,
#   6 l-elbow<-6, 7 l-wrist<-7, 8 r-hip<-9, 9 r-knee<-10, 10 r-ankle<-11, 11 l-hip<-12,
#   12 l-knee<-13, 13 l-ankle<-14, 14 r-eye<-15, 15 l-eye<-16, 16 r-ear<-17, 17 l-ear<-18.
# BODY_25 keypoints 8 (mid-hip) and 19-24 (feet) have no COCO-18 counterpart and are dropped.
BODY25_TO_COCO18 = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18])
_FRAME_RE = re.compile(r"_(\d+)_keypoints\.json$")
MAX_FRAMES = 10_000  # default bound on the span of frame numbers (max_frames)
MAX_PEOPLE = 100  # default bound on the people listed in one frame (max_people)


def frame_files(folder: str | Path, max_frames: int = MAX_FRAMES) -> list[tuple[int, Path]]:
    """The ``*_keypoints.json`` files of a folder with their frame numbers, in frame order.

    The frame numbers may span at most ``max_frames`` frames (a DataError naming the last file
    otherwise), so that nothing later is sized by a number in a file name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("not a folder of OpenPose *_keypoints.json files", file=str(folder))
    out = []
    for p in folder.glob("*_keypoints.json"):
        m = _FRAME_RE.search(p.name)
        if m is None:
            raise DataError("file name has no frame number (expected <video>_<frame>_keypoints.json)",
                            file=str(p))
        out.append((int(m.group(1)), p))
    if not out:
        raise DataError("no *_keypoints.json file in folder", file=str(folder))
    out.sort()
    for (a, pa), (b, _pb) in zip(out, out[1:], strict=False):
        if a == b:
            raise DataError(f"two files for frame {a}", file=str(pa))
    if out[-1][0] - out[0][0] + 1 > max_frames:
        raise DataError(f"frame numbers {out[0][0]}..{out[-1][0]} span more than {max_frames} frames "
                        "(max_frames)", file=str(out[-1][1]))
    return out


def _person_keypoints(person, num_kp: int | None, file: str, rec: str) -> np.ndarray:
    """One ``people`` entry -> (V, 3) float64 x, y, score, validated; V must be ``num_kp`` when given."""
    if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
        raise DataError("person entry needs 'pose_keypoints_2d'", file=file, record=rec)
    try:
        arr = np.asarray(person["pose_keypoints_2d"], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("'pose_keypoints_2d' must be a list of numbers", file=file, record=rec) from None
    if arr.ndim != 1 or arr.size not in (54, 75):
        raise DataError(f"expected 54 (COCO-18) or 75 (BODY_25) values, found shape {arr.shape}",
                        file=file, record=rec)
    if num_kp is not None and arr.size // 3 != num_kp:
        raise DataError(f"{arr.size // 3} keypoints where earlier frames had {num_kp}", file=file, record=rec)
    if not np.isfinite(arr).all():
        raise DataError("NaN or infinite value", file=file, record=rec)
    return arr.reshape(-1, 3)


def _read_frames(files: list[tuple[int, Path]], max_people: int) -> tuple[list[list[np.ndarray]], int | None]:
    """Every frame file's people as (V, 3) arrays, in listed order, and V (None: nobody in any frame)."""
    people_per_frame: list[list[np.ndarray]] = []
    num_kp: int | None = None
    for fidx, p in files:
        try:
            doc = jsontext.loads(p.read_bytes(), str(p))
        except OSError as exc:
            raise DataError(f"cannot read file: {exc.strerror or exc}", file=str(p)) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("people"), list):
            raise DataError("missing list 'people'", file=str(p), record=f"frame {fidx}")
        if len(doc["people"]) > max_people:
            raise DataError(f"{len(doc['people'])} people in one frame, more than max_people={max_people}",
                            file=str(p), record=f"frame {fidx}")
        persons = []
        for k, person in enumerate(doc["people"]):
            persons.append(_person_keypoints(person, num_kp, str(p), f"frame {fidx}, people[{k}]"))
            num_kp = persons[-1].shape[0]
        people_per_frame.append(persons)
    return people_per_frame, num_kp


def _rank_by_mean_score(frame_numbers: list[int], people_per_frame: list[list[np.ndarray]], num_p: int,
                        t_total: int, v: int, joints, max_persons: int) -> list[int]:
    """The ``max_persons`` slots with the highest mean score over the clip (over the kept ``joints``).

    One slot at a time through the same operations a (P, T, V, 3) float64 array went through (so the
    sums round, and ties break, as they always did), in 2 x T x V x 3 memory. Two slots, the second
    left empty: with one, numpy would sum a BODY25_TO_COCO18-indexed array in another order than with
    several. ``frame_numbers`` are 0-based frame positions, one per entry of ``people_per_frame``.
    """
    buf = np.zeros((2, t_total, v, 3), dtype=np.float64)
    mean = np.zeros(num_p, dtype=np.float64)
    for m in range(num_p):
        filled = [(t, ps[m]) for t, ps in zip(frame_numbers, people_per_frame, strict=True) if m < len(ps)]
        for t, arr in filled:
            buf[0, t] = arr
        mean[m] = buf[:, :, joints][..., 2].mean(axis=(1, 2))[0]
        for t, _arr in filled:
            buf[0, t] = 0
    return np.argsort(-mean, kind="stable")[:max_persons].tolist()


def read_openpose(folder: str | Path, *, to_coco18: bool = False, image_size: tuple[int, int] | None = None,
                  max_persons: int | None = None, label: int | None = None, name: str | None = None,
                  max_frames: int = MAX_FRAMES, max_people: int = MAX_PEOPLE) -> Sample:
    """Read an OpenPose output folder as one clip (M = most people in a frame, in listed order).

    ``image_size = (width, height)`` normalises pixels to [0, 1]; ``to_coco18`` maps BODY_25 to the
    18-joint ``openpose`` layout; ``max_persons`` keeps the people with the highest mean score.

    Limits (DataError naming the file when exceeded): the frame numbers may span at most
    ``max_frames`` frames (default 10 000, 5.5 minutes at 30 fps) and a frame may list at most
    ``max_people`` people (default 100). Nothing is sized by the frame numbers before both are
    checked; the clip then takes M x T x V x 3 float32 values (M <= ``max_persons`` when given).
    """
    files = frame_files(folder, max_frames)
    first = files[0][0]
    people_per_frame, num_kp = _read_frames(files, max_people)
    num_p = max(1, max(len(ps) for ps in people_per_frame))
    v = num_kp or 18
    t_total = files[-1][0] - first + 1
    frame_numbers = [fidx - first for fidx, _p in files]
    layout = "body25" if v == 25 else "openpose"
    joints = slice(None)
    if to_coco18 and v == 25:
        joints = BODY25_TO_COCO18
        layout = "openpose"
    scale = None
    if image_size is not None:
        w, h = image_size
        if w <= 0 or h <= 0:
            raise DataError(f"image_size must be positive, found {image_size}", file=str(folder))
        scale = np.array([w, h], dtype=np.float64)
    slots = list(range(num_p))
    if max_persons is not None and num_p > max_persons:
        slots = _rank_by_mean_score(frame_numbers, people_per_frame, num_p, t_total, v, joints,
                                    max_persons)
    # Built in float32 (what Sample keeps) from float64 values: the same numbers as before.
    xy = np.zeros((len(slots), t_total, len(BODY25_TO_COCO18) if to_coco18 and v == 25 else v, 2),
                  dtype=np.float32)
    score = np.zeros(xy.shape[:3], dtype=np.float32)
    for t, persons in zip(frame_numbers, people_per_frame, strict=True):
        for j, m in enumerate(slots):
            if m < len(persons):
                arr = persons[m][joints]
                xy[j, t] = arr[:, :2] if scale is None else arr[:, :2] / scale
                score[j, t] = arr[:, 2]
    meta = {"layout": layout, "first_frame": first, "frames_in_folder": len(files),
            "normalised": image_size is not None}
    return Sample(keypoint=xy, score=score, label=label, name=name or Path(folder).name, meta=meta)
