"""Temporal action segments and the standard segmentation metrics, as MS-TCN reports them.

A segment is a labelled range of frames, 0-based and inclusive at both ends. Frames outside every
segment are background ("no action"); as frame labels they are :data:`BACKGROUND` (-1).

Metrics (Lea et al., CVPR 2017; Farha & Gall, MS-TCN, CVPR 2019, ``eval.py``):

* **frame-wise accuracy**: correct frames / all frames, background counted as a class of its own
  (a transition predicted as an action is an error, and so is an action predicted as background);
* **segmental edit score**: ``100 * (1 - levenshtein(P, Y) / max(|P|, |Y|))`` over the ordered
  label sequences of the action segments (background runs are not segments);
* **F1@k**: the action segments of the prediction, in time order, each take the true segment of
  the same label they overlap most; a prediction is a true positive when that IoU is >= k and the
  true segment is not taken yet, else a false positive; true segments left over are false negatives.

Over several streams, as in MS-TCN: accuracy pools the frames, the edit score is the mean per
stream, F1 comes from the true/false positives and false negatives summed over the streams.
Unlike MS-TCN's code, a segment's length is its exact frame count (MS-TCN's ends are exclusive
except for a segment that ends the video, which loses its last frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BACKGROUND = -1
"""Frame label of background ("no action")."""

F1_THRESHOLDS = (0.10, 0.25, 0.50)


@dataclass(frozen=True)
class Segment:
    """One action: ``label`` (a class name) over frames ``start..end`` (0-based, inclusive)."""

    label: str
    start: int
    end: int
    score: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"a segment needs 0 <= start <= end, found start={self.start} end={self.end}")

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def to_json(self) -> dict:
        out: dict = {"label": self.label, "start": int(self.start), "end": int(self.end)}
        if self.score is not None:
            out["score"] = round(float(self.score), 5)
        return out


def runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """``(label, start, end)`` for each maximal run of equal, non-background frame labels."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change - 1, [labels.size - 1]])
    return [(int(labels[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True) if labels[s] != BACKGROUND]


def to_frames(segments: Sequence[Segment], num_frames: int, class_names: Sequence[str]) -> np.ndarray:
    """Frame labels (T,) int64: the class index inside each segment, :data:`BACKGROUND` elsewhere.

    Segments must lie inside the stream and not overlap (``stgcn.data.streams`` checks files).
    """
    index = {name: i for i, name in enumerate(class_names)}
    out = np.full(int(num_frames), BACKGROUND, dtype=np.int64)
    for s in segments:
        if s.end >= num_frames:
            raise ValueError(f"segment {s.label} {s.start}-{s.end} runs past the stream's {num_frames} frames")
        if (out[s.start:s.end + 1] != BACKGROUND).any():
            raise ValueError(f"segment {s.label} {s.start}-{s.end} overlaps another segment")
        out[s.start:s.end + 1] = index[s.label]
    return out


def to_segments(labels: np.ndarray, class_names: Sequence[str]) -> list[Segment]:
    """The action segments of frame labels (the inverse of :func:`to_frames`)."""
    return [Segment(class_names[c], s, e) for c, s, e in runs(labels)]


def _check_pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.ndim != 1 or pred.shape != true.shape:
        raise ValueError(f"prediction and truth need the same (T,) shape, found {pred.shape} and {true.shape}")
    return pred, true


def frame_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    """Fraction of frames with the right label (background included); 0..1."""
    pred, true = _check_pair(pred, true)
    return float((pred == true).mean()) if true.size else float("nan")


def levenshtein(a: Sequence, b: Sequence) -> int:
    """Edit distance (insertions, deletions, substitutions, each costing 1) between two sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i]
        for j, y in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def edit_score(pred: np.ndarray, true: np.ndarray) -> float:
    """Segmental edit score, 0..100 (100 when neither has an action segment)."""
    pred, true = _check_pair(pred, true)
    p = [c for c, _, _ in runs(pred)]
    y = [c for c, _, _ in runs(true)]
    if not p and not y:
        return 100.0
    return 100.0 * (1.0 - levenshtein(p, y) / max(len(p), len(y)))


def matches(pred: np.ndarray, true: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """``(predicted run, true run)`` index pairs that count as true positives at IoU ``threshold``
    (MS-TCN's matching; the indices are those of :func:`runs`)."""
    pred, true = _check_pair(pred, true)
    p, y = runs(pred), runs(true)
    if not y:
        return []
    y_label, y_start, y_end = (np.array(v) for v in zip(*y, strict=True))
    taken = np.zeros(len(y), dtype=bool)
    out = []
    for i, (label, start, end) in enumerate(p):
        inter = np.clip(np.minimum(end, y_end) - np.maximum(start, y_start) + 1, 0, None)
        union = (end - start + 1) + (y_end - y_start + 1) - inter
        iou = np.where(y_label == label, inter / union, 0.0)
        best = int(iou.argmax())
        if iou[best] >= threshold and not taken[best]:
            taken[best] = True
            out.append((i, best))
    return out


def overlap_counts(pred: np.ndarray, true: np.ndarray, threshold: float) -> tuple[int, int, int]:
    """``(true positives, false positives, false negatives)`` at IoU ``threshold``."""
    tp = len(matches(pred, true, threshold))
    return tp, len(runs(pred)) - tp, len(runs(true)) - tp


def f1(tp: int, fp: int, fn: int) -> float:
    """F1 in 0..100 from counts (0 when there is no true positive)."""
    return 0.0 if tp == 0 else 100.0 * 2 * tp / (2 * tp + fp + fn)


class SegmentationScores:
    """Accumulates streams; :meth:`result` gives accuracy (%), edit, F1@{10,25,50} pooled as MS-TCN."""

    def __init__(self, thresholds: Sequence[float] = F1_THRESHOLDS) -> None:
        self.thresholds = tuple(float(t) for t in thresholds)
        self.correct = 0
        self.frames = 0
        self.edits: list[float] = []
        self.counts = np.zeros((len(self.thresholds), 3), dtype=np.int64)

    def add(self, pred: np.ndarray, true: np.ndarray) -> dict:
        """Add one stream; returns that stream's own scores."""
        pred, true = _check_pair(pred, true)
        self.correct += int((pred == true).sum())
        self.frames += int(true.size)
        edit = edit_score(pred, true)
        self.edits.append(edit)
        counts = np.array([overlap_counts(pred, true, t) for t in self.thresholds], dtype=np.int64)
        self.counts += counts
        return self._scores(int((pred == true).sum()), int(true.size), [edit], counts)

    def _scores(self, correct: int, frames: int, edits: list[float], counts: np.ndarray) -> dict:
        out = {"accuracy": 100.0 * correct / frames if frames else float("nan"),
               "edit": float(np.mean(edits)) if edits else float("nan")}
        for t, (tp, fp, fn) in zip(self.thresholds, counts, strict=True):
            out[f"f1@{round(100 * t)}"] = f1(int(tp), int(fp), int(fn))
        return out

    def result(self) -> dict:
        return self._scores(self.correct, self.frames, self.edits, self.counts)
