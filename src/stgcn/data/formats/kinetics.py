"""Kinetics-skeleton JSON (released with ST-GCN): one file per clip, OpenPose COCO-18, 2D + score.

Coordinates are kept as stored (already divided by the frame width and height); centring (-0.5) and
zeroing of undetected joints belong to the transforms, not the reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from ..sample import Sample
from . import jsontext

NUM_JOINTS = 18
MAX_FRAMES = 100_000  # default bound on frame_index before allocating (Kinetics clips are <= 300 frames)
MAX_PEOPLE = 100  # default bound on the people listed in one frame


def _load_json(path: Path):
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror or exc}", file=str(path)) from None
    if not text.strip():
        raise DataError("empty file", file=str(path))
    return jsontext.loads(text, str(path))


PERSON_SELECTIONS = ("clip", "frame")  # reader options, checked by the dataset source before any file is read
PAD_MODES = ("loop", "zero")


def _slot_order(rows: dict[int, list], num_p: int, num_t: int, max_persons: int, mode: str, file: str):
    """Which person slots to keep, computed from the people the file lists (``rows``: frame ->
    [(pose, score)] by slot), never from a (P, T, ...) array: that would be sized by numbers in the
    file. Returns ``order(t) -> [slot, ...]`` (at most ``max_persons`` slots, -1 = an empty slot).

    ``clip``: the people with the highest mean confidence over the clip keep their identity (slot)
    for the whole clip. ``frame`` (official feeder): at each frame the slots are re-ranked by summed
    score, so a slot may switch person between frames. Slots no frame fills have score 0.
    """
    if mode not in PERSON_SELECTIONS:
        raise DataError(f"unknown person_selection {mode!r}; expected 'clip' or 'frame'", file=file)
    if num_p <= max_persons:
        ident = list(range(num_p))
        return lambda t: ident
    if mode == "clip":
        # One slot's (T, V) scores at a time, summed as a (P, T, V) array would be (the same float32
        # rounding, so ties break as they always did): memory T x V, not P x T x V.
        total = np.zeros(num_p, dtype=np.float32)
        detected = np.zeros(num_p, dtype=np.int64)
        buf = np.zeros((num_t, NUM_JOINTS), dtype=np.float32)
        for m in range(num_p):
            filled = [t for t, row in rows.items() if m < len(row)]
            for t in filled:
                buf[t] = rows[t][m][1]
            total[m] = buf.sum()
            detected[m] = int((buf[filled] > 0).any(axis=1).sum())
            buf[filled] = 0
        mean = total / np.maximum(detected, 1)
        order = np.argsort(-mean, kind="stable")[:max_persons].tolist()
        return lambda t: order
    empty = list(range(max_persons))  # a frame with nobody: slots 0.. keep their (zero) place

    def per_frame(t):
        row = rows.get(t)
        if not row:
            return empty
        # the frame's people, then enough empty (score 0) slots to fill max_persons places
        sums = [float(sc.sum()) for _pose, sc in row] + [0.0] * min(max_persons, num_p - len(row))
        return np.argsort(-np.asarray(sums, dtype=np.float32), kind="stable")[:max_persons].tolist()
    return per_frame


def pad_frames(kp: np.ndarray, score: np.ndarray | None, pad_to: int | None, mode: str, file: str = ""):
    """Pad (M, T, ...) arrays along T to ``pad_to``: ``loop`` replays the clip (paper), ``zero`` fills
    with zeros (official feeder). Longer clips are kept whole (cropping is a transform's job)."""
    t = kp.shape[1]
    if pad_to is None or t >= pad_to:
        return kp, score
    if mode == "loop":
        idx = np.arange(pad_to) % t
        return kp[:, idx], None if score is None else score[:, idx]
    if mode == "zero":
        kp2 = np.zeros((kp.shape[0], pad_to) + kp.shape[2:], dtype=kp.dtype)
        kp2[:, :t] = kp
        if score is None:
            return kp2, None
        sc2 = np.zeros((score.shape[0], pad_to) + score.shape[2:], dtype=score.dtype)
        sc2[:, :t] = score
        return kp2, sc2
    raise DataError(f"unknown pad_mode {mode!r}; expected 'loop' or 'zero'", file=file)


def _frame_count(frames: list, file: str, max_frames: int, max_people: int) -> int:
    """First pass: validate each frame entry (not its people) and return T, the largest frame_index."""
    num_t = 0
    for i, fr in enumerate(frames):
        rec = f"data[{i}]"
        if not isinstance(fr, dict) or "frame_index" not in fr or "skeleton" not in fr:
            raise DataError("frame entry needs 'frame_index' and 'skeleton'", file=file, record=rec)
        fi = fr["frame_index"]
        if isinstance(fi, bool) or not isinstance(fi, int) or not 1 <= fi <= max_frames:
            raise DataError(f"frame_index must be an integer in 1..{max_frames}, found {fi!r}",
                            file=file, record=rec)
        if not isinstance(fr["skeleton"], list):
            raise DataError("'skeleton' must be a list of people", file=file, record=rec)
        if len(fr["skeleton"]) > max_people:
            raise DataError(f"{len(fr['skeleton'])} people in one frame, more than max_people={max_people}",
                            file=file, record=rec)
        num_t = max(num_t, fi)
    if num_t == 0:
        raise DataError("clip has no frame", file=file, record="data")
    return num_t


def _person(person, file: str, rec: str) -> tuple[np.ndarray, np.ndarray]:
    """One ``skeleton`` entry -> ((18, 2) pose, (18,) score), validated."""
    if not isinstance(person, dict) or "pose" not in person or "score" not in person:
        raise DataError("person entry needs 'pose' and 'score'", file=file, record=rec)
    try:
        pose = np.asarray(person["pose"], dtype=np.float32)
        sc = np.asarray(person["score"], dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError("'pose' and 'score' must be lists of numbers", file=file, record=rec) from None
    if pose.shape != (2 * NUM_JOINTS,) or sc.shape != (NUM_JOINTS,):
        raise DataError(f"expected {2 * NUM_JOINTS} pose and {NUM_JOINTS} score values, found "
                        f"shapes {pose.shape} and {sc.shape}", file=file, record=rec)
    if not (np.isfinite(pose).all() and np.isfinite(sc).all()):
        raise DataError("NaN or infinite value", file=file, record=rec)
    return pose.reshape(NUM_JOINTS, 2), sc


def _people_by_frame(frames: list, file: str) -> dict[int, list]:
    """Second pass: the validated people, kept per frame (0-based) by slot. A later entry for the
    same frame_index replaces the slots it lists: memory in proportion to the file."""
    rows: dict[int, list] = {}
    for i, fr in enumerate(frames):
        t = fr["frame_index"] - 1
        row = rows.setdefault(t, [])
        for m, person in enumerate(fr["skeleton"]):
            cell = _person(person, file, f"data[{i}].skeleton[{m}] (frame_index {t + 1})")
            if m < len(row):
                row[m] = cell
            else:
                row.append(cell)
    return rows


def _assemble(rows: dict[int, list], num_t: int, max_persons: int, person_selection: str,
              file: str) -> tuple[np.ndarray, np.ndarray]:
    """The kept people as (M, T, 18, 2) keypoints and (M, T, 18) scores (absent frames stay zero)."""
    num_p = max(1, max((len(row) for row in rows.values()), default=0))
    order = _slot_order(rows, num_p, num_t, max_persons, person_selection, file)
    num_m = min(num_p, max_persons)
    kp = np.zeros((num_m, num_t, NUM_JOINTS, 2), dtype=np.float32)
    score = np.zeros((num_m, num_t, NUM_JOINTS), dtype=np.float32)
    for t, row in rows.items():
        for j, m in enumerate(order(t)):
            if m < len(row):
                kp[j, t], score[j, t] = row[m]
    return kp, score


def _clip_label(doc: dict, label: int | None, class_names: list[str] | None, file: str) -> int | None:
    """``label`` if given, else the file's ``label`` (by ``class_names``) or ``label_index``."""
    if label is None:
        if class_names is not None and "label" in doc:
            if doc["label"] not in class_names:
                raise DataError(f"label {doc['label']!r} is not in the class list", file=file, record="label")
            label = class_names.index(doc["label"])
        elif "label_index" in doc:
            li = doc["label_index"]
            if isinstance(li, bool) or not isinstance(li, int) or li < -1:
                raise DataError(f"label_index must be an integer, found {li!r}", file=file, record="label_index")
            label = None if li == -1 else li  # -1 = unlabeled (the test set release)
    if label is not None and class_names is not None and not 0 <= label < len(class_names):
        raise DataError(f"label {label} outside the {len(class_names)} classes", file=file, record="label_index")
    return label


def read_kinetics(path: str | Path, *, max_persons: int = 2, person_selection: str = "clip",
                  pad_to: int | None = None, pad_mode: str = "loop", label: int | None = None,
                  class_names: list[str] | None = None, max_frames: int = MAX_FRAMES,
                  max_people: int = MAX_PEOPLE) -> Sample:
    """Read one Kinetics-skeleton clip JSON.

    ``label`` overrides the file's ``label_index``; with ``class_names`` the file's ``label`` must be
    one of them and its index is used. Frames are placed at ``frame_index`` (1-based; absent frames
    stay zero), so T = the largest frame index.

    Limits (DataError naming the file and the frame when exceeded): ``frame_index`` at most
    ``max_frames`` (default 100 000; Kinetics clips have 300), at most ``max_people`` people listed in
    one frame (default 100). The people are validated and the ``max_persons`` kept before any
    (M, T, ...) array exists, so memory is at most ``max_persons`` x T x 18 x 3 floats besides what the
    file itself holds.
    """
    path = Path(path)
    file = str(path)
    doc = _load_json(path)
    if not isinstance(doc, dict) or "data" not in doc:
        raise DataError("missing key 'data' (not a Kinetics-skeleton clip)", file=file)
    frames = doc["data"]
    if not isinstance(frames, list):
        raise DataError("'data' must be a list of frames", file=file, record="data")
    if max_persons < 1:
        raise DataError(f"max_persons must be >= 1, found {max_persons}", file=file)
    num_t = _frame_count(frames, file, max_frames, max_people)
    rows = _people_by_frame(frames, file)
    kp, score = _assemble(rows, num_t, max_persons, person_selection, file)
    kp, score = pad_frames(kp, score, pad_to, pad_mode, file)
    label = _clip_label(doc, label, class_names, file)
    meta = {"layout": "openpose", "frames_in_file": len(frames), "person_selection": person_selection,
            "pad_mode": pad_mode, "pad_to": pad_to, "label_name": doc.get("label")}
    return Sample(keypoint=kp, score=score, label=label, name=path.stem, meta=meta)


def read_kinetics_labels(path: str | Path, class_names: list[str] | None = None) -> dict[str, dict]:
    """A split's label file: clip id -> {"has_skeleton": bool, "label": str, "label_index": int}."""
    path = Path(path)
    doc = _load_json(path)
    if not isinstance(doc, dict):
        raise DataError("label file must map clip ids to entries", file=str(path))
    for key, entry in doc.items():
        if not isinstance(entry, dict) or not {"has_skeleton", "label_index"} <= entry.keys():
            raise DataError("entry needs 'has_skeleton' and 'label_index'", file=str(path), record=key)
        li = entry["label_index"]
        if isinstance(li, bool) or not isinstance(li, int):
            raise DataError(f"label_index must be an integer, found {li!r}", file=str(path), record=key)
        if class_names is not None:
            if not 0 <= li < len(class_names):
                raise DataError(f"label_index {li} outside the {len(class_names)} classes",
                                file=str(path), record=key)
            if "label" in entry and entry["label"] != class_names[li]:
                raise DataError(f"label {entry['label']!r} does not match class {li} "
                                f"({class_names[li]!r})", file=str(path), record=key)
    return doc
