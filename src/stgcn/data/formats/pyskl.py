"""pyskl / mmaction2 skeleton annotation pickles (read through the restricted unpickler)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ...atomic import atomic_write_bytes
from ...errors import DataError
from ..safe_pickle import safe_load
from ..sample import Sample

# A class index is a row of the classifier and a name in the class list: far above any action
# dataset (Kinetics-700, NTU-120) and far below what a label such as 10**9 would make us allocate.
MAX_CLASSES = 100_000


def load_pyskl(path: str | Path) -> tuple[dict[str, list[str]], list[dict]]:
    """``(split, annotations)`` of a pyskl pickle, checked record by record."""
    file = str(path)
    doc = safe_load(path)
    if isinstance(doc, list):  # older mmaction2 files are a bare list of annotations
        doc = {"split": {}, "annotations": doc}
    if not isinstance(doc, dict) or "annotations" not in doc:
        raise DataError("expected a dict with 'split' and 'annotations'", file=file)
    split = doc.get("split", {})
    anns = doc["annotations"]
    if not isinstance(split, dict) or not isinstance(anns, list):
        raise DataError("'split' must be a dict and 'annotations' a list", file=file)
    names = set()
    for i, ann in enumerate(anns):
        rec = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise DataError("annotation must be a dict", file=file, record=rec)
        missing = [k for k in ("frame_dir", "keypoint") if k not in ann]
        if missing:
            raise DataError(f"annotation lacks key(s) {missing}", file=file, record=rec)
        if not isinstance(ann["frame_dir"], str):
            raise DataError("'frame_dir' must be a string", file=file, record=rec)
        _check_label(ann.get("label"), file, f"{rec} (frame_dir {ann['frame_dir']!r})")
        names.add(ann["frame_dir"])
    for key, members in split.items():
        if not isinstance(members, (list, tuple)) or not all(isinstance(m, str) for m in members):
            raise DataError("split must list frame_dir strings", file=file, record=f"split[{key!r}]")
        unknown = [m for m in members if m not in names]
        if unknown:
            raise DataError(f"split lists {len(unknown)} unknown frame_dir(s), e.g. {unknown[0]!r}",
                            file=file, record=f"split[{key!r}]")
    return {k: list(v) for k, v in split.items()}, anns


def _check_label(label, file: str, record: str) -> int | None:
    """A pyskl label as an int in 0..MAX_CLASSES-1 (None when absent), else a DataError."""
    if label is None:
        return None
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < MAX_CLASSES:
        raise DataError(f"'label' is not a class index: it must be an integer in 0..{MAX_CLASSES - 1} "
                        f"(class names go in class_names=), found {label!r}", file=file, record=record)
    return int(label)


def annotation_to_sample(ann: dict, file: str = "", record: str | None = None) -> Sample:
    """One pyskl annotation dict as a :class:`Sample`."""
    rec = record or f"frame_dir {ann.get('frame_dir')!r}"
    kp = ann.get("keypoint")
    if not isinstance(kp, np.ndarray) or kp.ndim != 4 or kp.shape[-1] not in (2, 3):
        shape = getattr(kp, "shape", type(kp).__name__)
        raise DataError(f"'keypoint' must be an array (M, T, V, C) with C in 2, 3; found {shape}",
                        file=file, record=rec)
    if not np.issubdtype(kp.dtype, np.number):
        raise DataError(f"'keypoint' has non-numeric dtype {kp.dtype}", file=file, record=rec)
    score = ann.get("keypoint_score")
    if score is not None and (not isinstance(score, np.ndarray) or score.shape != kp.shape[:3]):
        raise DataError(f"'keypoint_score' shape {getattr(score, 'shape', None)} does not match keypoint "
                        f"{kp.shape[:3]}", file=file, record=rec)
    label = _check_label(ann.get("label"), file, rec)
    total = ann.get("total_frames")
    if total is not None and int(total) != kp.shape[1]:
        raise DataError(f"total_frames {total} but keypoint has {kp.shape[1]} frames", file=file, record=rec)
    meta = {k: _jsonable(ann[k]) for k in ("img_shape", "original_shape", "total_frames") if k in ann}
    try:
        return Sample(keypoint=kp, score=score, label=label, name=ann["frame_dir"], meta=meta)
    except DataError as exc:
        raise DataError(exc.reason, file=file, record=rec) from None


def _jsonable(v):
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_pyskl(path: str | Path, name: str | None = None) -> Sample:
    """One clip of a pyskl pickle: the annotation whose ``frame_dir`` is ``name`` (default: the first)."""
    _split, anns = load_pyskl(path)
    if not anns:
        raise DataError("pickle holds no annotation", file=str(path))
    if name is None:
        return annotation_to_sample(anns[0], str(path), "annotations[0]")
    for i, ann in enumerate(anns):
        if ann["frame_dir"] == name:
            return annotation_to_sample(ann, str(path), f"annotations[{i}]")
    raise DataError(f"no annotation with frame_dir {name!r}", file=str(path))


def write_pyskl(path: str | Path, annotations: list[dict], split: dict[str, list[str]]) -> None:
    """Write a pyskl pickle atomically (a crash never leaves a half-written file behind)."""
    path = Path(path)
    payload = pickle.dumps({"split": split, "annotations": annotations}, protocol=4)
    atomic_write_bytes(path, payload)
