"""Online action segmentation: per tracked person, segments ``{label, start, end, score}`` with
"no action" between them, each decided as soon as the stream allows.

The model classifies a sliding window (the last ``window`` frames of one person, every ``stride``
frames). :class:`TrackSegmenter` turns those window probabilities into segments:

1. **look-ahead**: frame ``f`` is decided by the window ending at ``f + lookahead``, so a window
   covers frames on both sides of the one it labels (0 = causal: the window ends at ``f``);
   with ``head``, the window probabilities first go through the checkpoint's causal temporal head
   (:mod:`stgcn.models.temporal_head`, ``meta["segmenter_head"]``), trained on the training
   streams' frame labels to give the probabilities of that same frame from all the windows so far;
2. **smoothing**: the mean of the last ``smoothing`` window probability vectors;
3. **no action**: a frame is background when the smoothed top probability is below ``threshold``
   or the top class is the model's background class (``background``, a model trained with one,
   its probability weighted by ``background_weight`` first);
4. **hysteresis**: the label changes only after a new decision held for ``hysteresis`` frames (the
   change is then dated back to the first of them); action segments shorter than ``min_length``
   frames, or than ``min_fraction`` of their class's typical length (``class_lengths``, the median
   of its training segments), become "no action".

A segment is final when the label changes after it: it comes back from :meth:`TrackSegmenter.push`
then, with the frame at which it was decided (``decided_at``). Its delay is the time from its last
frame to that frame: at most ``lookahead + hysteresis`` frames plus the stride.

The settings live in :class:`SegmenterConfig`, calibrated on training data
(``stgcn.inference.segment_calibration``) and stored in the checkpoint meta (``meta["segmenter"]``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..errors import ConfigError, ShapeError
from ..segmentation import BACKGROUND, Segment


@dataclass(frozen=True)
class SegmenterConfig:
    """Window and decision settings (all lengths in frames of the stream)."""

    window: int = 16
    stride: int = 1
    lookahead: int = 4
    smoothing: int = 3
    threshold: float = 0.5
    hysteresis: int = 2
    min_length: int = 3
    background: str | None = None
    """Class name of the model's "no action" class, when it was trained with one."""
    background_weight: float = 1.0
    """The "no action" probability is multiplied by this before the decision (< 1: an action wins
    the close calls); calibrated with the other settings."""
    min_fraction: float = 0.0
    """Action segments shorter than this fraction of their class's ``class_lengths`` are dropped."""
    class_lengths: tuple[int, ...] | None = None
    """Per class, in the model's order: the median length of its training segments (frames)."""
    head: bool = False
    """Refine the window probabilities with the checkpoint's temporal head (one step per window)."""
    fps: float | None = None
    """Frame rate the settings were calibrated at (informative; lengths stay in frames)."""

    def __post_init__(self) -> None:
        if self.class_lengths is not None:  # a JSON list
            object.__setattr__(self, "class_lengths", tuple(int(n) for n in self.class_lengths))
        for key in ("window", "stride", "smoothing", "hysteresis", "min_length"):
            if getattr(self, key) < 1:
                raise ConfigError(f"segmenter: {key} must be >= 1, found {getattr(self, key)}")
        if not 0 <= self.lookahead < self.window:
            raise ConfigError(f"segmenter: lookahead must be in [0, window), found {self.lookahead} "
                              f"(window {self.window})")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"segmenter: threshold must be in [0, 1], found {self.threshold}")
        if not 0.0 <= self.min_fraction <= 1.0:
            raise ConfigError(f"segmenter: min_fraction must be in [0, 1], found {self.min_fraction}")
        if self.min_fraction > 0 and self.class_lengths is None:
            raise ConfigError("segmenter: min_fraction needs class_lengths (each class's typical length)")
        if not self.background_weight > 0.0:
            raise ConfigError(f"segmenter: background_weight must be > 0, found {self.background_weight}")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict, where: str = "segmenter") -> SegmenterConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown settings {unknown}; known: {sorted(known)}")
        return cls(**doc)

    def replace(self, **changes) -> SegmenterConfig:
        return SegmenterConfig(**{**asdict(self), **changes})

    @property
    def lookahead_s(self) -> float | None:
        """The look-ahead in seconds (None when the rate is not known)."""
        return self.lookahead / self.fps if self.fps else None

    def describe_lookahead(self) -> str:
        sec = f" = {self.lookahead_s:.2f} s at {self.fps:g} fps" if self.fps else ""
        return (f"look-ahead {self.lookahead} frames{sec}" + (" (causal)" if self.lookahead == 0 else "")
                + (", causal temporal head" if self.head else ""))

    def at_rate(self, fps: float) -> SegmenterConfig:
        """These settings for a stream of ``fps`` frames per second: the lengths calibrated at
        ``self.fps`` (window, stride, look-ahead, hysteresis, minimum lengths) scaled to it;
        ``smoothing`` counts windows, which come at the scaled stride, and stays. Without a
        calibration rate only ``fps`` is recorded."""
        if not self.fps or not fps:
            return self.replace(fps=fps or self.fps)
        r = float(fps) / self.fps

        def scaled(n: int) -> int:
            return max(1, round(n * r))

        window = scaled(self.window)
        lengths = None if self.class_lengths is None else tuple(round(n * r) for n in self.class_lengths)
        return self.replace(window=window, stride=scaled(self.stride),
                            lookahead=min(round(self.lookahead * r), window - 1),
                            hysteresis=scaled(self.hysteresis), min_length=scaled(self.min_length),
                            class_lengths=lengths, fps=float(fps))

    @classmethod
    def for_model(cls, meta: dict, model, window: int | None = None) -> SegmenterConfig:
        """The checkpoint's calibrated settings (``meta["segmenter"]``), else the defaults over
        ``window`` frames labelling the window's centre (its last frame for a causal model)."""
        if meta.get("segmenter"):
            return cls.from_json(dict(meta["segmenter"]), where="checkpoint meta 'segmenter'")
        window = int(window or cls.window)
        return cls(window=window, lookahead=0 if is_causal(model) else window // 2)


def load_head(meta: dict, config: SegmenterConfig):
    """The checkpoint's temporal head when ``config.head`` (else None)."""
    if not config.head:
        return None
    if not meta.get("segmenter_head"):
        raise ConfigError("segmenter: head is set but the checkpoint carries no temporal head "
                          "(meta['segmenter_head']); set head=false or use a benchmark's segmenter.pt")
    from ..models.temporal_head import TemporalHead

    return TemporalHead.from_meta(meta["segmenter_head"])


def is_causal(model) -> bool:
    """Whether the model's temporal convolutions see only past frames (``STGCNConfig.causal``)."""
    return bool(getattr(getattr(model, "cfg", None), "causal", False))


@dataclass(frozen=True)
class Decided:
    """A final segment and the frame whose window decided it."""

    segment: Segment
    decided_at: int

    def to_json(self, times: Sequence[float] | None = None) -> dict:
        """``{label, start, end, score, decided_at}`` plus ``delay_s`` (from the segment's last frame
        to the deciding one) when the frames' ``times`` in seconds are given."""
        out = {**self.segment.to_json(), "decided_at": int(self.decided_at)}
        if times is not None:
            out["delay_s"] = round(float(times[self.decided_at] - times[self.segment.end]), 3)
        return out


class TrackSegmenter:
    """The online segmenter of one person: window probabilities in, final segments out.

    ``head`` (:func:`load_head`) is needed when ``config.head``: each pushed window's probabilities
    go through it, one step per push, and it starts afresh when the person leaves."""

    def __init__(self, config: SegmenterConfig, class_names: Sequence[str], head=None) -> None:
        from ..models.temporal_head import HeadStream

        self.config = config
        self.class_names = list(class_names)
        if config.head and head is None:
            raise ConfigError("segmenter: head is set but no temporal head was given (stgcn.inference.segmenter."
                              "load_head reads the checkpoint's)")
        self._head = HeadStream(head) if config.head else None
        if self._head is not None and self._head.num_classes != len(self.class_names):
            raise ConfigError(f"segmenter: the temporal head has {self._head.num_classes} classes, the model "
                              f"{len(self.class_names)}")
        self.bg_index = None
        if config.background is not None:
            if config.background not in self.class_names:
                raise ConfigError(f"segmenter: background class {config.background!r} is not one of the "
                                  f"model's classes {self.class_names}")
            self.bg_index = self.class_names.index(config.background)
        if config.class_lengths is not None and len(config.class_lengths) != len(self.class_names):
            raise ConfigError(f"segmenter: class_lengths has {len(config.class_lengths)} entries, the model "
                              f"{len(self.class_names)} classes")
        self._recent: deque[np.ndarray] = deque(maxlen=config.smoothing)
        self._smoothed: np.ndarray | None = None
        self.next_frame = 0          # first frame not decided yet
        self.label = BACKGROUND      # label of the open run, which starts at frame ``start``
        self.start = 0
        self._run: list[np.ndarray] = []      # smoothed probabilities of the open action run's frames
        self._pending: list[np.ndarray] = []  # frames decided for another label, not yet held long enough
        self._pending_label: int | None = None
        self._pending_start = 0
        self.decided: list[Decided] = []

    def _decide(self, probs: np.ndarray) -> int:
        if self.bg_index is not None and self.config.background_weight != 1.0:
            probs = probs.copy()
            probs[self.bg_index] *= self.config.background_weight
        top = int(probs.argmax())
        if top == self.bg_index or probs[top] < self.config.threshold:
            return BACKGROUND
        return top

    def _absorb_pending(self) -> None:
        """A change that did not hold: its frames stay with the open run."""
        if self.label != BACKGROUND:
            self._run.extend(self._pending)
        self._pending, self._pending_label = [], None

    def _min_length(self, label: int) -> int:
        c = self.config
        if c.min_fraction == 0 or c.class_lengths is None:
            return c.min_length
        return max(c.min_length, int(np.ceil(c.min_fraction * c.class_lengths[label])))

    def _close(self, end: int, at: int) -> Decided | None:
        """End the open run at ``end``; an action run long enough becomes a final segment."""
        if self.label == BACKGROUND or end - self.start + 1 < self._min_length(self.label):
            return None
        score = float(np.mean([p[self.label] for p in self._run[:end - self.start + 1]]))
        d = Decided(Segment(self.class_names[self.label], self.start, end, score), at)
        self.decided.append(d)
        return d

    def _step(self, frame: int, label: int, probs: np.ndarray, at: int) -> Decided | None:
        """Frame ``frame`` was decided ``label``; the run switches after ``hysteresis`` agreeing frames."""
        if label == self.label:
            self._absorb_pending()
            if label != BACKGROUND:
                self._run.append(probs)
            return None
        if label != self._pending_label:
            self._absorb_pending()
            self._pending_label, self._pending_start = label, frame
        self._pending.append(probs)
        if len(self._pending) < self.config.hysteresis:
            return None
        out = self._close(self._pending_start - 1, at)
        self.label, self.start = self._pending_label, self._pending_start
        self._run = self._pending if self.label != BACKGROUND else []
        self._pending, self._pending_label = [], None
        return out

    def _decide_until(self, last: int, at: int) -> list[Decided]:
        label = self._decide(self._smoothed)
        out = [d for f in range(self.next_frame, last + 1) if (d := self._step(f, label, self._smoothed, at))]
        self.next_frame = max(self.next_frame, last + 1)
        return out

    def push(self, frame: int, probs: np.ndarray) -> list[Decided]:
        """Probabilities of the window ending at ``frame``; returns the segments this decides."""
        probs = np.asarray(probs, dtype=np.float64)
        if probs.shape != (len(self.class_names),):
            raise ShapeError(f"expected {len(self.class_names)} class probabilities, found shape {probs.shape}")
        if self._smoothed is None:  # the person appears (or is back): the frames before are nobody's
            self.next_frame = max(self.next_frame, frame)
        if self._head is not None:
            probs = self._head.step(probs)
        self._recent.append(probs)
        self._smoothed = np.mean(self._recent, axis=0)
        return self._decide_until(frame - self.config.lookahead, frame)

    def finish(self, last_frame: int) -> list[Decided]:
        """The stream ended (or the person left) after ``last_frame``: decide the frames still open
        with the last window and close the open segment."""
        out = self._decide_until(last_frame, last_frame) if self._smoothed is not None else []
        self._absorb_pending()
        self.next_frame = max(self.next_frame, last_frame + 1)
        d = self._close(last_frame, last_frame)
        if d is not None:
            out.append(d)
        self.label, self.start, self._run = BACKGROUND, last_frame + 1, []
        self._recent.clear()
        self._smoothed = None
        if self._head is not None:
            self._head.reset()
        return out

    @property
    def active(self) -> bool:
        """Whether the person is in the stream (pushed since the last :meth:`finish`)."""
        return self._smoothed is not None

    def current(self) -> Segment | None:
        """The open action segment so far (for an overlay), or None during "no action"."""
        if self.label == BACKGROUND or not self._run:
            return None
        score = float(np.mean([p[self.label] for p in self._run]))
        return Segment(self.class_names[self.label], self.start, self.start + len(self._run) - 1, score)

    @property
    def segments(self) -> list[Segment]:
        return [d.segment for d in self.decided]


# ---------------------------------------------------------------------------------------- windows


class WindowScorer:
    """Window probabilities for one person's frames through a :class:`Predictor` and its contract.

    ``person`` is (T, V, C) keypoints in the model's layout; the window ending at
    frame ``t`` covers frames ``max(0, t - window + 1) .. t``, with that person alone in the first
    person slot (as in ``stgcn.inference.stream``).
    """

    def __init__(self, predictor, window: int) -> None:
        self.predictor = predictor
        self.window = int(window)
        self.num_persons = predictor.contract.num_persons

    def window_input(self, person: np.ndarray, t: int) -> np.ndarray:
        """Model input (C, T', V, M) of the window ending at frame ``t`` of ``person`` (T, V, C)."""
        clip = person[max(0, t - self.window + 1):t + 1]
        arr = np.zeros((clip.shape[2], clip.shape[0], clip.shape[1], self.num_persons), np.float32)
        arr[..., 0] = clip.transpose(2, 0, 1)
        return self.predictor.prepare(arr, what=f"the window ending at frame {t}")  # (clips, C, T, V, M)

    def batch_probabilities(self, inputs: Iterable[np.ndarray], batch: int = 64) -> np.ndarray:
        """(len(inputs), classes) probabilities of window inputs, in batches of equal shapes (under a
        contract without a fixed length the first windows of a person are shorter)."""
        out, xs = [], []
        for x in inputs:
            if xs and (len(xs) == batch or x.shape != xs[0].shape):
                out.append(self._probabilities(xs))
                xs = []
            xs.append(x)
        if xs:
            out.append(self._probabilities(xs))
        return np.concatenate(out) if out else np.zeros((0, len(self.predictor.class_names)), np.float32)

    def _probabilities(self, xs: list[np.ndarray]) -> np.ndarray:
        """Probabilities (n, classes) of n prepared windows, logits averaged over each one's test
        clips before the softmax, as ``stgcn eval`` scores."""
        clips = xs[0].shape[0]
        logits = self.predictor.logits_prepared(np.concatenate(xs)).reshape(len(xs), clips, -1).mean(axis=1)
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)

    def probabilities(self, person: np.ndarray, ends: Sequence[int], batch: int = 64) -> np.ndarray:
        """(len(ends), classes) probabilities of the windows of ``person`` ending at ``ends``."""
        return self.batch_probabilities((self.window_input(person, int(t)) for t in ends), batch)


def present_frames(person: np.ndarray) -> np.ndarray:
    """(T,) bool: frames where the person has a joint (all-zero frames mean nobody there)."""
    return np.abs(person).reshape(person.shape[0], -1).any(axis=1)


def _present_runs(present: np.ndarray) -> Iterator[tuple[int, int]]:
    idx = np.flatnonzero(np.diff(np.concatenate([[0], present.astype(np.int8), [0]])))
    yield from zip(idx[::2], idx[1::2] - 1, strict=True)


def segment_person(scorer: WindowScorer, config: SegmenterConfig, person: np.ndarray,
                   class_names: Sequence[str]) -> list[Decided]:
    """Segment one person's (T, V, C) frames offline, exactly as :class:`OnlineSegmenter` would.

    The windows are scored in batches; the segmenter then sees them one by one. A person who is
    absent (all-zero frames) ends the open segment; their return starts new ones.
    """
    seg = TrackSegmenter(config, class_names, load_head(scorer.predictor.meta, config))
    for first, last in _present_runs(present_frames(person)):
        ends = list(range(int(first), int(last) + 1, config.stride))
        # windows never reach back past the person's return
        probs = scorer.probabilities(person[first:last + 1], [t - first for t in ends])
        for t, p in zip(ends, probs, strict=True):
            seg.push(t, p)
        seg.finish(int(last))
    return seg.decided


class OnlineSegmenter:
    """The live path: one :class:`TrackSegmenter` per track id, fed one frame at a time.

    ``update(frame, people)`` takes ``{track id: (V, C) keypoints}`` of the people seen at this
    frame; it scores each person's window every ``stride`` frames and returns the segments decided
    now as ``[(track id, Decided)]``. A track missing from ``people`` has left: its open segment
    is closed. ``latencies_ms`` holds the time of every update that scored windows (window
    inputs, one model call for all the people due, decisions).
    """

    def __init__(self, predictor, config: SegmenterConfig) -> None:
        self.config = config
        self.scorer = WindowScorer(predictor, config.window)
        self.class_names = list(predictor.class_names)
        self.head = load_head(predictor.meta, config)
        self.tracks: dict[str, TrackSegmenter] = {}
        self._buffers: dict[str, deque[np.ndarray]] = {}
        self._since: dict[str, int] = {}
        self._last_frame = -1
        self.latencies_ms: list[float] = []

    def update(self, frame: int, people: dict[str, np.ndarray]) -> list[tuple[str, Decided]]:
        t0 = time.perf_counter()
        out: list[tuple[str, Decided]] = []
        for key in [k for k in self._buffers if k not in people]:  # left
            out.extend((key, d) for d in self.tracks[key].finish(self._last_frame))
            del self._buffers[key], self._since[key]
        due = []
        for key, kp in people.items():
            if key not in self._buffers:
                self._buffers[key] = deque(maxlen=self.config.window)
                self._since[key] = frame
                self.tracks.setdefault(key, TrackSegmenter(self.config, self.class_names, self.head))
            buf = self._buffers[key]
            buf.append(np.asarray(kp, dtype=np.float32))
            if (frame - self._since[key]) % self.config.stride == 0:
                due.append((key, self.scorer.window_input(np.stack(buf), len(buf) - 1)))
        if due:
            probs = self.scorer.batch_probabilities([x for _, x in due])
            for (key, _), p in zip(due, probs, strict=True):
                out.extend((key, d) for d in self.tracks[key].push(frame, p))
        self._last_frame = frame
        if due:
            self.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        return out

    def finish(self) -> list[tuple[str, Decided]]:
        """End of the stream: close every open segment."""
        out = []
        for key in list(self._buffers):
            out.extend((key, d) for d in self.tracks[key].finish(self._last_frame))
        self._buffers.clear()
        self._since.clear()
        return out

    def segments(self) -> dict[str, list[Segment]]:
        return {k: t.segments for k, t in self.tracks.items()}
