"""Labelled streams: an untrimmed skeleton sequence plus its ground-truth action segments.

A user's stream is two files:

* the sequence: a ``.npy`` array (T, V, C) or (M, T, V, C), or any file ``stgcn.load_sample``
  reads;
* a CSV of ``label,start,end`` rows, one per action: the class name and the first and last frame
  (0-based, inclusive). A header line ``label,start,end`` is optional; frames outside every
  segment are "no action" (background). Segments must not overlap and must lie in the sequence.

UTKinect-Action3D's 20 recordings are streams too (:func:`utkinect_streams`): the label file gives
camera frame ids, converted here to row indices of the de-duplicated skeleton rows.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..segmentation import Segment, to_frames
from .sample import Sample

CSV_HEADER = ("label", "start", "end")


@dataclass
class LabelledStream:
    """One untrimmed sequence with its true segments (sorted by start, not overlapping)."""

    name: str
    sample: Sample
    segments: list[Segment]
    class_names: list[str]
    times: np.ndarray | None = None
    """Seconds of each frame (T,) when the source records them (UTKinect), else None."""
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return self.sample.num_frames

    def frame_labels(self) -> np.ndarray:
        """(T,) class index per frame, ``stgcn.segmentation.BACKGROUND`` between segments."""
        return to_frames(self.segments, self.num_frames, self.class_names)


def _parse_row(row: list[str], line: int, file: str, known: dict[str, int]) -> Segment:
    if len(row) != 3:
        raise DataError(f"expected 3 fields label,start,end, found {len(row)}", file=file, record=f"line {line}")
    label, start, end = (v.strip() for v in row)
    if label not in known:
        names = ", ".join(list(known)[:12]) + (" ..." if len(known) > 12 else "")
        raise DataError(f"unknown label {label!r}; the classes are: {names}", file=file, record=f"line {line}")
    try:
        s, e = int(start), int(end)
    except ValueError:
        raise DataError(f"start and end must be integer frame indices, found {start!r}, {end!r}",
                        file=file, record=f"line {line}") from None
    if s < 0 or e < s:
        raise DataError(f"need 0 <= start <= end, found start={s} end={e}", file=file, record=f"line {line}")
    return Segment(label, s, e)


def read_segments_csv(path: str | Path, class_names: Sequence[str], num_frames: int) -> list[Segment]:
    """The segments of a ``label,start,end`` CSV, checked against the classes and the stream length."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the label CSV: {exc}", file=file) from None
    known = {name: i for i, name in enumerate(class_names)}
    rows = [(n, r) for n, r in enumerate(csv.reader(io.StringIO(text)), start=1) if r and any(v.strip() for v in r)]
    if rows and tuple(v.strip().lower() for v in rows[0][1]) == CSV_HEADER:
        rows = rows[1:]
    parsed = [(n, _parse_row(r, n, file, known)) for n, r in rows]
    for n, seg in parsed:
        if seg.end >= num_frames:
            raise DataError(f"segment {seg.label} {seg.start}-{seg.end} runs past the sequence, which has "
                            f"{num_frames} frames (0..{num_frames - 1})", file=file, record=f"line {n}")
    parsed.sort(key=lambda p: (p[1].start, p[1].end))
    for (n0, a), (n1, b) in zip(parsed, parsed[1:], strict=False):
        if b.start <= a.end:
            raise DataError(f"segment {b.label} {b.start}-{b.end} overlaps segment {a.label} {a.start}-{a.end} "
                            f"of line {n0}", file=file, record=f"line {n1}")
    return [seg for _, seg in parsed]


def write_segments_csv(path: str | Path, segments: Sequence[Segment]) -> None:
    """Write segments as a ``label,start,end`` CSV (with the header), atomically."""
    from ..atomic import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for s in segments:
        w.writerow([s.label, s.start, s.end])
    atomic_write_text(path, buf.getvalue())


def load_sequence(path: str | Path, format: str | None = None) -> Sample:
    """An untrimmed skeleton sequence: a ``.npy`` (T, V, C) / (M, T, V, C) or any ``load_sample`` file."""
    from . import load_sample

    return load_sample(path, format=format)


def load_stream(sequence: str | Path, labels: str | Path, class_names: Sequence[str],
                format: str | None = None) -> LabelledStream:
    """A user's labelled stream: a sequence file and its ``label,start,end`` CSV."""
    sample = load_sequence(sequence, format)
    segments = read_segments_csv(labels, class_names, sample.num_frames)
    return LabelledStream(Path(sequence).name, sample, segments, list(class_names),
                          meta={"sequence": str(sequence), "labels": str(labels)})


# ------------------------------------------------------------------------------------------ UTKinect


def _rows_of(ids: np.ndarray, start: float, end: float) -> tuple[int, int] | None:
    """First and last row whose frame id lies in [start, end], or None when no row does."""
    inside = np.flatnonzero((ids >= start) & (ids <= end))
    return (int(inside[0]), int(inside[-1])) if inside.size else None


def utkinect_segments(ids: np.ndarray, actions: dict[str, tuple[float, float]]) -> tuple[list[Segment], list[str]]:
    """Row segments of one UTKinect sequence from its label-file entries (frame ids).

    Touching segments of the label file share a frame id in seven places (e.g. s01_e01 pull ends at
    1686 where push starts): the shared row goes to the earlier action. Returns the segments and
    notes on what was adjusted or missing.
    """
    notes, segs = [], []
    for act, (start, end) in actions.items():
        if math.isnan(start) or math.isnan(end):
            notes.append(f"{act}: missing in the label file (NaN)")
            continue
        rows = _rows_of(ids, start, end)
        if rows is None:
            notes.append(f"{act}: no skeleton row with frame id in [{start:g}, {end:g}]")
            continue
        segs.append(Segment(act, *rows))
    segs.sort(key=lambda s: (s.start, s.end))
    out: list[Segment] = []
    for s in segs:
        if out and s.start <= out[-1].end:
            if s.end <= out[-1].end:
                notes.append(f"{s.label}: inside {out[-1].label}, dropped")
                continue
            notes.append(f"{s.label}: starts on {out[-1].label}'s last row, moved one row later")
            s = Segment(s.label, out[-1].end + 1, s.end)
        out.append(s)
    return out, notes


def utkinect_streams(path: str | Path | None = None, labels: str = "modified",
                     subjects: Sequence[int] | None = None) -> list[LabelledStream]:
    """UTKinect-Action3D's untrimmed recordings with their true segments (row indices).

    ``path``: the dataset folder (default: ``../shared/data/utkinect_action3d`` beside the
    repository, else the bundled copy); ``labels``: ``modified`` (corrected) or ``official``;
    ``subjects``: keep only these (cross-subject: odd subjects train, even ones test).
    ``stream.times`` are the rows' frame ids / 30 fps; ``meta`` holds subject and notes.
    """
    from .formats import kinect
    from .sources import open_source

    src = open_source("utkinect", None if path is None else str(path), labels=labels)
    root = Path(src.meta["root"])
    table = kinect.read_utkinect_labels(root / src.meta["preprocessing"]["labels"])
    streams = []
    for seq, actions in sorted(table.items()):
        subject = int(seq[1:3])
        if subjects is not None and subject not in subjects:
            continue
        joints = root / f"joints_{seq}.txt"
        sample = kinect.read_utkinect_sequence(joints)
        ids = np.asarray(sample.meta["frame_ids"], dtype=np.float64)
        segments, notes = utkinect_segments(ids, actions)
        streams.append(LabelledStream(seq, sample, segments, list(kinect.UTK_CLASSES), times=ids / kinect.UTK_FPS,
                                      meta={"subject": subject, "notes": notes, "file": str(joints)}))
    return streams
