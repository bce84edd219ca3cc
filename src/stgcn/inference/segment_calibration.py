"""Scoring and calibrating the online segmenter on labelled streams.

:func:`window_probabilities` scores every window of every stream once (per window length);
:func:`evaluate` runs :class:`~stgcn.inference.segmenter.TrackSegmenter` over those probabilities
exactly as the live path does and reports the segmentation metrics and the delays;
:func:`calibrate` picks the settings (window, look-ahead, smoothing, no-action threshold,
hysteresis, minimum length) that score best on the given streams under a mean-delay budget, by
coordinate ascent over a grid, run to convergence from one or several starts. Calibrate on
training streams only (out-of-fold probabilities, so that the confidences are those of unseen
data), never on the streams you report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..data.streams import LabelledStream
from ..segmentation import BACKGROUND, F1_THRESHOLDS, SegmentationScores, matches, to_frames
from .segmenter import Decided, SegmenterConfig, TrackSegmenter, WindowScorer

GRID: dict[str, tuple] = {
    "window": (8, 12, 16, 24, 32),
    "lookahead": (0, 1, 2, 3, 4, 6, 8),
    "smoothing": (1, 2, 3, 5, 8),
    "threshold": tuple(round(0.05 * i, 2) for i in range(2, 20)),
    "hysteresis": (1, 2, 3, 4, 6),
    "min_length": (1, 2, 3, 5, 8, 12, 16),
    "background_weight": (0.25, 0.4, 0.6, 0.8, 1.0, 1.25),
    "min_fraction": (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75),
}
"""Values tried per setting (lengths in frames of the stream)."""


def class_lengths(streams: Sequence[LabelledStream], class_names: Sequence[str]) -> tuple[int, ...]:
    """Per class of ``class_names``: the median length (frames) of its segments in ``streams``
    (0 for a class without any, e.g. the no-action class)."""
    lengths: dict[str, list[int]] = {}
    for st in streams:
        for seg in st.segments:
            lengths.setdefault(seg.label, []).append(seg.length)
    return tuple(int(np.median(lengths[n])) if n in lengths else 0 for n in class_names)


def stream_times(stream: LabelledStream, fps: float) -> np.ndarray:
    """Seconds of each frame: the stream's own times, else frame / ``fps``."""
    return stream.times if stream.times is not None else np.arange(stream.num_frames) / float(fps)


def window_probabilities(predictor, streams: Sequence[LabelledStream], window: int,
                         person: int = 0) -> list[np.ndarray]:
    """Per stream, (T, classes): the probabilities of the window ending at each frame."""
    scorer = WindowScorer(predictor, window)
    return [scorer.probabilities(s.sample.keypoint[person], range(s.num_frames)) for s in streams]


def run(config: SegmenterConfig, class_names: Sequence[str], probs: np.ndarray) -> list[Decided]:
    """The segmenter over one person present in every frame, fed the windows at ``stride``."""
    seg = TrackSegmenter(config, class_names)
    for t in range(0, len(probs), config.stride):
        seg.push(t, probs[t])
    seg.finish(len(probs) - 1)
    return seg.decided


def decided_frames(decided: Sequence[Decided], num_frames: int, class_names: Sequence[str]) -> np.ndarray:
    return to_frames([d.segment for d in decided], num_frames, class_names)


@dataclass
class StreamResult:
    name: str
    decided: list[Decided]
    scores: dict
    delays_s: list[float]
    """Per predicted segment: time of the deciding frame minus time of its last frame."""
    delays_after_truth_s: list[float]
    """Per true segment matched at IoU >= 0.5: decision time minus the true segment's last frame."""


def evaluate(config: SegmenterConfig, streams: Sequence[LabelledStream], probs: Sequence[np.ndarray],
             class_names: Sequence[str], fps: float = 30.0) -> tuple[dict, list[StreamResult]]:
    """Segment each stream from its window probabilities; pooled metrics and per-stream results."""
    acc = SegmentationScores(F1_THRESHOLDS)
    results = []
    errors = np.zeros(3, dtype=np.int64)  # missed, false and wrong action frames
    for stream, p in zip(streams, probs, strict=True):
        decided = run(config, class_names, p)
        pred = decided_frames(decided, stream.num_frames, class_names)
        true = stream.frame_labels()
        if stream.class_names != list(class_names):
            true = _relabel(true, stream.class_names, class_names)
        scores = acc.add(pred, true)
        errors += error_kinds(pred, true)
        times = stream_times(stream, fps)
        delays = [float(times[d.decided_at] - times[d.segment.end]) for d in decided]
        truth_runs = [(s.start, s.end) for s in stream.segments]
        after = [float(times[decided[i].decided_at] - times[truth_runs[j][1]]) for i, j in matches(pred, true, 0.5)]
        results.append(StreamResult(stream.name, decided, scores, delays, after))
    out = acc.result()
    out["delay_s"] = _mean([d for r in results for d in r.delays_s])
    out["delay_after_truth_s"] = _mean([d for r in results for d in r.delays_after_truth_s])
    out["segments"] = sum(len(r.decided) for r in results)
    frames = max(acc.frames, 1)
    for key, n in zip(("missed_action_frames", "false_action_frames", "wrong_action_frames"), errors, strict=True):
        out[key] = 100.0 * float(n) / frames
    return out, results


def error_kinds(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Frame errors by kind: (missed: an action frame predicted as no action; false: a no-action
    frame predicted as an action; wrong: an action frame predicted as another action)."""
    bg_p, bg_t = pred == BACKGROUND, true == BACKGROUND
    return np.array([(bg_p & ~bg_t).sum(), (~bg_p & bg_t).sum(), (~bg_p & ~bg_t & (pred != true)).sum()])


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _relabel(true: np.ndarray, names: Sequence[str], target: Sequence[str]) -> np.ndarray:
    table = np.array([list(target).index(n) for n in names], dtype=np.int64)
    return np.where(true == BACKGROUND, BACKGROUND, table[np.maximum(true, 0)])


def objective(metrics: dict) -> float:
    """What calibration maximises: the mean of frame-wise accuracy, edit score and F1@{10,25,50}."""
    return float(np.mean([metrics["accuracy"], metrics["edit"], metrics["f1@10"], metrics["f1@25"],
                          metrics["f1@50"]]))


def calibrate(streams: Sequence[LabelledStream], probs_for: Callable[[int], Sequence[np.ndarray]],
              class_names: Sequence[str], *, start: SegmenterConfig | Sequence[SegmenterConfig] | None = None,
              max_delay_s: float = 1.0, fps: float = 30.0, grid: dict[str, tuple] | None = None, rounds: int = 10,
              log: Callable[[str], None] | None = None) -> tuple[SegmenterConfig, dict, list[dict]]:
    """Coordinate ascent over ``grid``: each round tries every value of each setting with the others
    fixed and keeps the best whose mean decision delay is within ``max_delay_s``, until a round
    changes nothing (at most ``rounds``).

    ``start`` may be several configs: the ascent runs from each (it ends in a local optimum, which
    depends on where it starts) and the best end is kept (the first on ties).
    ``probs_for(window)`` gives the streams' window probabilities for a window length (cache them:
    it is called once per window value). Returns ``(config, its metrics, every trial)``.
    """
    starts = [start] if start is None or isinstance(start, SegmenterConfig) else list(start)
    trials: list[dict] = []
    seen: dict[SegmenterConfig, dict] = {}

    def score(c: SegmenterConfig) -> dict:
        if c not in seen:
            m, _ = evaluate(c, streams, probs_for(c.window), class_names, fps)
            seen[c] = m
            trials.append({**c.to_json(), **m, "objective": objective(m)})
        return seen[c]

    def better(m: dict, than: dict) -> bool:
        """Within the budget and above ``than`` (or ``than`` is not); NaN delay (no segment at all)
        counts as within it, and scores 0."""
        return not m["delay_s"] > max_delay_s and (than["delay_s"] > max_delay_s or objective(m) > objective(than))

    ends = [_ascend(c or SegmenterConfig(), dict(GRID if grid is None else grid), score, better, rounds, log)
            for c in starts]
    best = ends[0]
    for end in ends[1:]:
        if better(end[1], best[1]):
            best = end
    return best[0], best[1], trials


def _ascend(cfg: SegmenterConfig, grid: dict[str, tuple], score, better, rounds: int,
            log: Callable[[str], None] | None) -> tuple[SegmenterConfig, dict]:
    """One coordinate ascent from ``cfg``."""
    if cfg.window not in grid.get("window", (cfg.window,)):
        grid["window"] = tuple(sorted({*grid.get("window", ()), cfg.window}))
    best = score(cfg)
    for r in range(rounds):
        any_change = False
        for key in grid:
            changed = False
            for value in grid[key]:
                try:
                    cand = cfg.replace(**{key: value})
                except Exception:  # noqa: BLE001 - e.g. a look-ahead not shorter than the window
                    continue
                m = score(cand)
                if better(m, best):
                    cfg, best, changed = cand, m, True
            if log is not None and changed:
                log(f"round {r + 1} {key}={getattr(cfg, key)}: objective {objective(best):.1f} "
                    f"(acc {best['accuracy']:.1f}, edit {best['edit']:.1f}, F1@50 {best['f1@50']:.1f}, "
                    f"delay {best['delay_s']:.2f} s)")
            any_change |= changed
        if not any_change:
            break
    return cfg, best
