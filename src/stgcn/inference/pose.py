"""Pose estimation: frames in, people with keypoints out.

A backend is any callable ``backend(frame) -> list[Person]`` with a ``layout`` attribute (the joint
order of ``Person.keypoints``) and a ``close()``; frames are (H, W, 3) uint8 RGB. Two sources ship:

* :class:`MediaPipePose`: MediaPipe Pose 0.10.21 (legacy ``mp.solutions.pose``), the only pose model
  with weights inside a pip wheel (Apache-2.0), so it runs offline. Multi-person on top of a
  single-person model, see the class docstring.
* :class:`OpenPoseFolderSource`: reads the per-frame ``*_keypoints.json`` files OpenPose writes, for
  users who already run OpenPose (COCO-18 or BODY_25).

mediapipe is imported lazily: ``import stgcn`` never pulls it in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..data.formats import jsontext
from ..errors import DataError, require


@dataclass
class Person:
    """One detected person in one frame.

    Attributes:
        keypoints: float32 (V, 3): x, y in pixels and a confidence in 0..1 (0 = not detected).
        box: float32 (4,) x1, y1, x2, y2 in pixels.
        score: the person's confidence (mean keypoint confidence).
        world: float32 (V, 3) metric coordinates (MediaPipe world landmarks: metres, origin at the
            mid-hips, x right, y down, z away from the camera) or None when the source has none.
        layout: joint order of ``keypoints`` and ``world``.
    """

    keypoints: np.ndarray
    box: np.ndarray
    score: float
    world: np.ndarray | None = None
    layout: str = "mediapipe"
    meta: dict = field(default_factory=dict)


class PoseBackend(Protocol):
    layout: str

    def __call__(self, frame: np.ndarray) -> list[Person]: ...

    def close(self) -> None: ...


def box_from_keypoints(kp: np.ndarray, width: int, height: int, min_conf: float = 0.3) -> np.ndarray:
    """Tight box around the confident keypoints, clipped to the frame."""
    ok = kp[:, 2] >= min_conf
    pts = kp[ok, :2] if ok.sum() >= 2 else kp[:, :2]
    x1, y1 = pts.min(axis=0)
    x2, y2 = pts.max(axis=0)
    return np.array([max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)], np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def grey_out(frame: np.ndarray, boxes: list[np.ndarray], margin: float) -> np.ndarray:
    """A copy of ``frame`` with each box (grown by ``margin`` px plus 10 %) filled with grey.

    MediaPipe finds the most salient person; hiding the ones already found makes it find the next.
    """
    out = frame.copy()
    h, w = frame.shape[:2]
    for b in boxes:
        mx = margin + 0.1 * (b[2] - b[0])
        my = margin + 0.1 * (b[3] - b[1])
        x1, y1 = int(max(0, b[0] - mx)), int(max(0, b[1] - my))
        x2, y2 = int(min(w, b[2] + mx + 1)), int(min(h, b[3] + my + 1))
        out[y1:y2, x1:x2] = 128
    return out


class _Slot:
    """One tracking-mode MediaPipe instance that follows one person."""

    def __init__(self, pose) -> None:
        self.pose = pose
        self.box: np.ndarray | None = None


class MediaPipePose:
    """MediaPipe Pose (33 landmarks), several people.

    MediaPipe's legacy Pose follows one person. For more, each person gets their own tracking-mode
    instance (cheap: it reuses the previous frame's region instead of running the detector) that
    sees the frame with everybody else's last box greyed out. Every ``detect_every`` frames, or when
    asked, a discovery pass greys out all followed people and runs the detector again to find a new
    one, up to ``max_people``. With one person this is exactly MediaPipe's own tracking mode.

    Only ``model_complexity=1`` is used: it is the only model in the wheel; the others are
    downloaded at run time, which fails offline.
    """

    layout = "mediapipe"

    def __init__(self, max_people: int = 2, detect_every: int = 15, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, mask_margin: float = 15.0) -> None:
        # MediaPipe's C++ logging floods stderr with INFO lines per graph; keep warnings and errors.
        os.environ.setdefault("GLOG_minloglevel", "2")
        mp = require("mediapipe", "video")
        self._mp_pose = mp.solutions.pose
        self.max_people = max(1, int(max_people))
        self.detect_every = max(1, int(detect_every))
        self._kw = dict(static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                        min_detection_confidence=min_detection_confidence,
                        min_tracking_confidence=min_tracking_confidence)
        self.mask_margin = mask_margin
        self._slots: list[_Slot] = [_Slot(self._new())]
        self._finder = None  # an idle tracking instance that has found nobody yet: reused
        self._frame = 0

    def _new(self):
        return self._mp_pose.Pose(**self._kw)

    def _run(self, slot: _Slot, image: np.ndarray, w: int, h: int) -> Person | None:
        res = slot.pose.process(image)
        if res.pose_landmarks is None:
            slot.box = None
            return None
        kp = np.array([[p.x * w, p.y * h, p.visibility] for p in res.pose_landmarks.landmark], np.float32)
        world = None
        if res.pose_world_landmarks is not None:
            world = np.array([[p.x, p.y, p.z] for p in res.pose_world_landmarks.landmark], np.float32)
        box = box_from_keypoints(kp, w, h)
        slot.box = box
        return Person(keypoints=kp, box=box, score=float(kp[:, 2].mean()), world=world, layout=self.layout)

    def __call__(self, frame: np.ndarray, detect: bool = False) -> list[Person]:
        """People in ``frame`` (H, W, 3) uint8 RGB; ``detect=True`` forces a discovery pass."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise DataError(f"expected an (H, W, 3) uint8 RGB frame, found {frame.shape} {frame.dtype}")
        h, w = frame.shape[:2]
        people: list[Person] = []
        kept: list[_Slot] = []
        for i, slot in enumerate(self._slots):
            if i == 0:
                image = frame  # the first person is MediaPipe's own choice, on the untouched frame
            else:
                others = [p.box for p in people] + [s.box for s in self._slots[i + 1:] if s.box is not None]
                image = grey_out(frame, others, self.mask_margin)
            person = self._run(slot, image, w, h)
            if person is not None and any(box_iou(person.box, p.box) > 0.6 for p in people):
                person = None  # drifted onto someone another slot already follows
            if person is None and i > 0:
                slot.pose.close()
                continue
            kept.append(slot)
            if person is not None:
                people.append(person)
        self._slots = kept
        due = detect or self._frame % self.detect_every == 0
        while due and self.max_people > 1 and len(self._slots) < self.max_people and people:
            if self._finder is None:
                self._finder = _Slot(self._new())
            image = grey_out(frame, [p.box for p in people], self.mask_margin)
            person = self._run(self._finder, image, w, h)
            if person is None or any(box_iou(person.box, p.box) > 0.3 for p in people):
                break
            self._slots.append(self._finder)
            self._finder = None
            people.append(person)
        self._frame += 1
        return people

    def close(self) -> None:
        for s in self._slots:
            s.pose.close()
        if self._finder is not None:
            self._finder.pose.close()
        self._slots, self._finder = [], None

    def __enter__(self) -> MediaPipePose:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_openpose_frame(path: str | Path) -> list[np.ndarray]:
    """The (V, 3) keypoint arrays (x, y, confidence; pixels) of one OpenPose ``*_keypoints.json``."""
    path = Path(path)
    try:
        doc = jsontext.loads(path.read_bytes(), str(path))
    except OSError as exc:
        raise DataError(f"not a readable OpenPose JSON file ({exc})", file=str(path)) from None
    people = doc.get("people") if isinstance(doc, dict) else None
    if not isinstance(people, list):
        raise DataError("no 'people' list (is this an OpenPose *_keypoints.json file?)", file=str(path))
    out = []
    for i, p in enumerate(people):
        flat = p.get("pose_keypoints_2d") if isinstance(p, dict) else None
        if not flat:
            continue  # OpenPose writes an empty list for a person seen only by the face/hand models
        try:
            kp = np.asarray(flat, dtype=np.float32).reshape(-1, 3)
        except (ValueError, TypeError):
            raise DataError(f"pose_keypoints_2d has {len(flat)} values, expected 3 per keypoint",
                            file=str(path), record=f"people[{i}]") from None
        if kp.shape[0] not in (18, 25):
            raise DataError(f"{kp.shape[0]} keypoints per person; OpenPose COCO has 18, BODY_25 has 25",
                            file=str(path), record=f"people[{i}]")
        if not np.isfinite(kp).all():
            raise DataError("non-finite keypoint value", file=str(path), record=f"people[{i}]")
        out.append(kp)
    return out


class OpenPoseFolderSource:
    """The people of every frame in an OpenPose output folder (``--write_json``), in frame order.

    Frames are sorted by the frame number in ``<video>_<frame:012d>_keypoints.json`` (missing numbers
    are frames without people; the numbers may span at most ``max_frames`` frames, as for the data
    reader). The layout is
    ``openpose`` (COCO-18) or ``body25`` as the files say; map it with
    :func:`stgcn.inference.mapping.map_keypoints`. OpenPose JSON does not record the image size:
    pass ``image_size=(width, height)`` when the model normalises by it (Kinetics).
    """

    def __init__(self, folder: str | Path, image_size: tuple[int, int] | None = None,
                 max_frames: int | None = None) -> None:
        self.folder = Path(folder)
        from ..data.formats.openpose import MAX_FRAMES, frame_files

        # the data reader's listing: frame numbers parsed and checked (no duplicates, bounded span)
        numbered = frame_files(self.folder, MAX_FRAMES if max_frames is None else max_frames)
        first = numbered[0][0]
        by_number = dict(numbered)
        # frames OpenPose skipped are empty frames, so time stays uniform
        self.files: list[Path | None] = [by_number.get(n) for n in range(first, numbered[-1][0] + 1)]
        self.image_size = image_size
        self.layout = self._detect_layout()

    def _detect_layout(self) -> str:
        for f in self.files:
            people = read_openpose_frame(f) if f is not None else []
            if people:
                return "openpose" if people[0].shape[0] == 18 else "body25"
        raise DataError("no person in any frame", file=str(self.folder))

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[list[Person]]:
        from ..graph import get_layout

        w, h = self.image_size or (None, None)
        expected = get_layout(self.layout).num_joints
        for f in self.files:
            frame = []
            for kp in read_openpose_frame(f) if f is not None else []:
                if kp.shape[0] != expected:
                    raise DataError(f"{kp.shape[0]} keypoints where the folder's first frames have {expected}",
                                    file=str(f))
                ok = kp[:, 2] > 0
                if not ok.any():
                    continue
                pts = kp[ok, :2]
                box = np.concatenate([pts.min(0), pts.max(0)]).astype(np.float32)
                frame.append(Person(keypoints=kp, box=box, score=float(kp[:, 2].mean()), layout=self.layout,
                                    meta={"image_size": (w, h)} if w else {}))
            yield frame

    def close(self) -> None:
        pass
