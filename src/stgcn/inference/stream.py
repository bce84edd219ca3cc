"""Live recognition: a sliding window over the tracked people, one prediction every ``stride`` frames.

A track counts in a window when its person was seen in at least the contract's ``min_frames`` of
its frames; with none, the window's answer is "nobody there" (:attr:`WindowResult.nobody`). Per
window the model sees, in one batch, inputs built by the checkpoint's data contract (M person
slots, the test pipeline, as :meth:`Predictor.prepare` builds every input):

* one input per track seen in the window's last frame (that person alone in the first person slot):
  the per-person label and the per-joint attention drawn on them;
* one "scene" input from the M most confident tracks of the window, which is how the models were
  trained (the people with the largest summed score; for M = 1 that is the per-person input).

Probabilities are smoothed over windows per track (exponential moving average or the running mean),
and every window's latency (input building + forward) is measured.

With a ``segmenter`` (:class:`~stgcn.inference.segmenter.SegmenterConfig`), each track's raw window
probabilities also go to its own :class:`~stgcn.inference.segmenter.TrackSegmenter`: the window
result lists the segments decided at it, :meth:`StreamRecognizer.current_segment` gives a person's
open one (for the overlay). A track not seen at a window's last frame has left: its open segment
ends at the last window that saw it; when the tracker gives the id back, new segments follow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..segmentation import Segment
from .pose import Person
from .predictor import Predictor, joint_attention
from .segmenter import Decided, SegmenterConfig, TrackSegmenter, load_head
from .tracker import Tracker


@dataclass
class WindowResult:
    """The predictions of one window."""

    frame: int                                 # last frame of the window (0-based)
    start: int                                 # first frame of the window
    latency_ms: float
    scene: list[tuple[str, float]]             # top-k of the M most confident tracks; empty: nobody there
    people: dict[int, list[tuple[str, float]]]  # track id -> smoothed top-k
    attention: dict[int, np.ndarray] = field(default_factory=dict)  # track id -> (V,) in 0..1
    decided: list[tuple[int, Decided]] = field(default_factory=list)  # segments decided at this window

    @property
    def nobody(self) -> bool:
        """No person seen in enough frames of the window: no label, which is the answer."""
        return not self.scene

    def to_json(self) -> dict:
        return {"frame": self.frame, "start": self.start, "latency_ms": round(self.latency_ms, 3),
                "nobody": self.nobody,
                "scene": [{"label": l, "score": round(s, 5)} for l, s in self.scene],
                "people": {str(k): [{"label": l, "score": round(s, 5)} for l, s in v] for k, v in self.people.items()}}


class Smoother:
    """Per-key smoothing of probability vectors: ``ema`` (weight ``alpha`` on the newest) or ``mean``."""

    def __init__(self, mode: str = "ema", alpha: float = 0.5) -> None:
        if mode not in ("ema", "mean", "none"):
            raise ValueError(f"smoothing must be 'ema', 'mean' or 'none', not {mode!r}")
        self.mode, self.alpha = mode, alpha
        self._state: dict[int, tuple[np.ndarray, int]] = {}

    def __call__(self, key: int, probs: np.ndarray) -> np.ndarray:
        if self.mode == "none" or key not in self._state:
            self._state[key] = (probs, 1)
            return probs
        prev, n = self._state[key]
        new = prev + (probs - prev) / (n + 1) if self.mode == "mean" else (1 - self.alpha) * prev + self.alpha * probs
        self._state[key] = (new, n + 1)
        return new


class StreamRecognizer:
    """Feed people frame by frame; get a :class:`WindowResult` every ``stride`` frames.

    Args:
        predictor: the model and its data contract.
        src_layout: the pose source's joint layout (checked against the model's now, not mid-video).
        window: frames per window (default: the contract's ``clip_len``, else 64).
        stride: frames between predictions (default: window // 4).
        min_frames: frames needed before the first prediction (default: stride).
        segmenter: settings of the per-track segmenters (None: no segments).
    """

    def __init__(self, predictor: Predictor, src_layout: str, window: int | None = None, stride: int | None = None,
                 smoothing: str = "ema", alpha: float = 0.5, topk: int = 5, tracker: Tracker | None = None,
                 min_frames: int | None = None, image_size: tuple[int, int] | None = None,
                 segmenter: SegmenterConfig | None = None) -> None:
        predictor.check_source(src_layout)
        self.predictor = predictor
        self.src_layout = src_layout
        self.window = int(window or predictor.contract.clip_len or 64)
        self.stride = int(stride or max(1, self.window // 4))
        self.min_frames = int(min_frames or self.stride)
        self.topk = topk
        self.tracker = tracker or Tracker(history=self.window)
        if self.tracker.history < self.window:
            raise ValueError(f"tracker history ({self.tracker.history}) is shorter than the window ({self.window})")
        self.smoother = Smoother(smoothing, alpha)
        self.image_size = image_size
        self.frame = -1
        self.latencies_ms: list[float] = []
        self.last: WindowResult | None = None
        self.segmenter = segmenter
        self.segmenter_head = None if segmenter is None else load_head(predictor.meta, segmenter)
        self.segmenters: dict[int, TrackSegmenter] = {}
        self._last_pushed: dict[int, int] = {}

    def _slot(self, track, start: int) -> list[Person | None]:
        by_frame = {f: p for f, p in track.history if f >= start}
        return [by_frame.get(f) for f in range(start, self.frame + 1)]

    def update(self, people: list[Person]) -> tuple[list[tuple[int, Person]], WindowResult | None]:
        """Track this frame's people; returns ``([(track id, person)], window result or None)``."""
        self.frame += 1
        pairs = [(t.id, p) for t, p in self.tracker.update(people)]
        seen = self.frame + 1
        due = seen >= self.min_frames and (seen - self.min_frames) % self.stride == 0
        result = self.predict_now() if due else None
        return pairs, result

    def predict_now(self) -> WindowResult:
        """Predict on the last ``window`` frames now (also used at the end of a short video)."""
        t0 = time.perf_counter()
        start = max(0, self.frame - self.window + 1)
        need = min(self.predictor.contract.min_frames, self.window)
        active = [t for t in self.tracker.tracks
                  if sum(p is not None and f >= start for f, p in t.history) >= need]
        if not active:
            self.last = WindowResult(frame=self.frame, start=start, latency_ms=0.0, scene=[], people={},
                                     decided=self._segment_step({}))
            return self.last
        live = [t for t in active if t.seen_at(self.frame)] or active
        ids = {t.id for t in active}
        ranked = self.tracker.most_confident(len(self.tracker.tracks), since=start - 1)
        top = [t for t in ranked if t.id in ids][:self.predictor.contract.num_persons]
        clips = [self.predictor.people_clip([self._slot(t, start)], self.src_layout) for t in live]
        one = len(top) == 1 and [t.id for t in live] == [top[0].id]  # the scene is that person's input
        if not one:
            clips.append(self.predictor.people_clip([self._slot(t, start) for t in top], self.src_layout))
        probs, feat = self.predictor.run_prepared([self.predictor.prepare(c, image_size=self.image_size)
                                                   for c in clips])
        if one:
            probs, feat = np.concatenate([probs, probs]), np.concatenate([feat, feat])
        att = joint_attention(feat)
        people, attention = {}, {}
        for i, t in enumerate(live):
            people[t.id] = self.predictor.topk(self.smoother(t.id, probs[i]), self.topk)
            attention[t.id] = att[i, :, 0]
        scene = self.predictor.topk(self.smoother(-1, probs[-1]), self.topk)
        decided = self._segment_step({t.id: probs[i] for i, t in enumerate(live) if t.seen_at(self.frame)})
        latency = (time.perf_counter() - t0) * 1000.0
        self.latencies_ms.append(latency)
        self.last = WindowResult(frame=self.frame, start=start, latency_ms=latency, scene=scene, people=people,
                                 attention=attention, decided=decided)
        return self.last

    # -- segments ----------------------------------------------------------------------------------
    def _segment_step(self, probs: dict[int, np.ndarray]) -> list[tuple[int, Decided]]:
        """Feed this window's raw probabilities of the tracks seen now; close those that left."""
        if self.segmenter is None:
            return []
        out = []
        for tid, seg in self.segmenters.items():
            if tid not in probs and seg.active:
                out.extend((tid, d) for d in seg.finish(self._last_pushed[tid]))
        for tid, p in probs.items():
            if tid not in self.segmenters:
                self.segmenters[tid] = TrackSegmenter(self.segmenter, self.predictor.class_names, self.segmenter_head)
            seg = self.segmenters[tid]
            self._last_pushed[tid] = self.frame
            out.extend((tid, d) for d in seg.push(self.frame, p))
        return out

    def finish(self) -> list[tuple[int, Decided]]:
        """The stream ended: close every open segment (at the last window that saw its person)."""
        return [(tid, d) for tid, seg in self.segmenters.items() if seg.active
                for d in seg.finish(self._last_pushed[tid])]

    def current_segment(self, track_id: int) -> Segment | None:
        seg = self.segmenters.get(track_id)
        return seg.current() if seg is not None else None

    def segments(self) -> dict[int, list[Decided]]:
        """Every track's final segments so far."""
        return {tid: list(seg.decided) for tid, seg in self.segmenters.items()}
