"""What one request computes, in a worker process: a video through the demo pipeline, or a skeleton
array through the predictor; the answer as JSON-able data plus files in the job's folder.

A video goes through :func:`stgcn.inference.demo.run_demo` (pose, tracks, sliding windows, the
overlay written as H.264), the same run as ``stgcn demo VIDEO``; its windows give each person's
labels over time and, averaged, each person's top-k, and its segmenters each person's segments. A
``.npy`` skeleton array ((T, V, C) or (M, T, V, C), in the model's layout and channels) is scored
per person and, for the timeline, on the same sliding windows as the stream uses (the contract's
clip length, stride a quarter of it); its segments come from
:func:`stgcn.inference.segmenter.segment_person`, as ``stgcn segment`` finds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..inference.predictor import Predictor

TIMELINE_PNG = "timeline.png"
OVERLAY_MP4 = "overlay.mp4"
MAX_PERSONS = 16


def run_job(predictor: Predictor, job: dict) -> dict:
    """The answer of one job ``{"kind", "path", "folder", "filename", "topk", "max_frames"}``."""
    if job["kind"] == "video":
        return video_job(predictor, job)
    return skeleton_job(predictor, job)


def _topk(pairs: list[tuple[str, float]]) -> list[dict]:
    return [{"label": label, "score": round(float(score), 5)} for label, score in pairs]


def _answer(predictor: Predictor, job: dict, people: dict, timeline: dict, scene: list, segments: dict,
            **extra: Any) -> dict:
    """The JSON answer; ``segments``: track id -> decided segments; writes the timeline picture."""
    from ..plots import plot_timeline, window_spans

    folder = Path(job["folder"])
    fps, frames = extra.get("fps"), int(extra["frames"])
    rows = []
    for key in sorted({*segments, *timeline}, key=int):
        rows.append((f"person {key} segments", [d.segment for d in segments.get(key, [])]))
        rows.append((f"person {key} windows", window_spans(timeline.get(key, []))))
    plot_timeline(rows, predictor.class_names, max(frames, 1), folder / TIMELINE_PNG, fps=fps,
                  title=f"{job['filename']}: segments and window labels")
    times = None if fps is None else np.arange(frames + 1) / fps
    return {"kind": job["kind"], "filename": job["filename"], "people": people, "scene": scene,
            "timeline": timeline,
            "segments": {key: [d.to_json(times) for d in v] for key, v in segments.items()},
            "files": {"timeline": TIMELINE_PNG, **({"video": OVERLAY_MP4} if job["kind"] == "video" else {})},
            **extra}


# -- video ---------------------------------------------------------------------------------------
def video_job(predictor: Predictor, job: dict) -> dict:
    from ..inference.demo import run_demo
    from ..inference.video import VideoReader

    with VideoReader(job["path"]) as reader:  # a file that is no readable video fails here, before the pose model
        fps, width, height = reader.fps, reader.width, reader.height
    k, n_cls = int(job["topk"]), len(predictor.class_names)
    res = run_demo(video=job["path"], checkpoint=predictor, out=Path(job["folder"]) / OVERLAY_MP4,
                   max_frames=int(job["max_frames"]), topk=n_cls, no_window=True)
    sums: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    timeline: dict[str, list[dict]] = {}
    for w in res.windows:
        for tid, top in w.people.items():
            key = str(tid)
            acc = sums.setdefault(key, dict.fromkeys(predictor.class_names, 0.0))
            for label, p in top:  # every class: the stream ran with topk = the class count
                acc[label] += p
            counts[key] = counts.get(key, 0) + 1
            timeline.setdefault(key, []).append({"start": w.start, "frame": w.frame, "label": top[0][0],
                                                 "score": round(float(top[0][1]), 5)})
    people = {key: _topk(sorted(((lbl, s / counts[key]) for lbl, s in acc.items()), key=lambda t: -t[1])[:k])
              for key, acc in sums.items()}
    last = next((w for w in reversed(res.windows) if not w.nobody), None)
    segments = {str(tid): v for tid, v in res.segments.items()}
    return _answer(predictor, job, people, timeline, _topk(last.scene[:k]) if last else [], segments,
                   frames=res.frames, fps=fps, width=width, height=height,
                   truncated=res.frames >= int(job["max_frames"]), nobody=not people)


# -- skeleton array ------------------------------------------------------------------------------
def load_skeleton(path: Path, filename: str, predictor: Predictor, max_frames: int) -> np.ndarray:
    """The array of a .npy upload as a raw clip (C, T, V, M), checked against the model's contract."""
    c = predictor.contract
    want = f"(T, V, C) or (M, T, V, C) with V = {c.layout.num_joints} ({c.layout.name}) and C = {len(c.channels)} " \
           f"({', '.join(c.channels)})"
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # damaged, truncated, or an object array (needs pickle)
        why = "an object array, which needs pickle (refused)" if "allow_pickle" in str(exc) else str(exc)
        raise ShapeError(f"{filename}: not a readable numeric .npy array: {why}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise ShapeError(f"{filename}: expected a numeric array, found dtype {getattr(arr, 'dtype', type(arr))}")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ShapeError(f"{filename}: shape {arr.shape}; expected {want}")
    m, t, v, ch = arr.shape
    if v != c.layout.num_joints or ch != len(c.channels) or t < 1 or not 1 <= m <= MAX_PERSONS:
        raise ShapeError(f"{filename}: shape {arr.shape}; expected {want}, 1 <= M <= {MAX_PERSONS}, T >= 1")
    if t > max_frames:
        raise ShapeError(f"{filename}: {t} frames, more than this server takes ({max_frames}, --max-frames)")
    bad = np.argwhere(~np.isfinite(arr))
    if len(bad):
        raise ShapeError(f"{filename}: {len(bad)} values are NaN or infinite, the first at (M, T, V, C) index "
                         f"{tuple(int(i) for i in bad[0])}")
    return np.ascontiguousarray(arr.astype(np.float32).transpose(3, 1, 2, 0))


def skeleton_job(predictor: Predictor, job: dict) -> dict:
    clip = load_skeleton(Path(job["path"]), job["filename"], predictor, int(job["max_frames"]))
    k = int(job["topk"])
    present = [i for i in range(clip.shape[3]) if np.any(clip[..., i])]
    people = {str(i): _topk(predictor(clip[..., i:i + 1], k)) for i in present}
    timeline = {str(i): window_labels(predictor, clip[..., i:i + 1]) for i in present}
    scene = _topk(predictor(clip, k)) if present else []
    segments = {str(i): person_segments(predictor, clip[..., i]) for i in present}
    return _answer(predictor, job, people, timeline, scene, segments, frames=int(clip.shape[1]), fps=None,
                   persons=int(clip.shape[3]), nobody=not present)


def person_segments(predictor: Predictor, person: np.ndarray) -> list:
    """Segments of one person's frames (C, T, V), as ``stgcn segment`` finds them: the checkpoint's
    segmenter settings, else the defaults over the stream's window."""
    from ..inference.segmenter import SegmenterConfig, WindowScorer, segment_person

    config = SegmenterConfig.for_model(predictor.meta, predictor.model, window=predictor.contract.clip_len or 64)
    return segment_person(WindowScorer(predictor, config.window), config, person.transpose(1, 2, 0),
                          predictor.class_names)


def window_labels(predictor: Predictor, clip: np.ndarray) -> list[dict]:
    """Top-1 of each sliding window over one person's clip (C, T, V, 1): the stream's window (the
    contract's clip length, else 64) every quarter window, and the last frames."""
    t = clip.shape[1]
    window = int(predictor.contract.clip_len or 64)
    stride = max(1, window // 4)
    ends = list(range(min(stride, t), t + 1, stride))
    if not ends or ends[-1] != t:
        ends.append(t)
    rows = []
    for e in ends:
        s = max(0, e - window)
        (label, score), = predictor(clip[:, s:e], 1)
        rows.append({"start": s, "frame": e - 1, "label": label, "score": round(score, 5)})
    return rows
