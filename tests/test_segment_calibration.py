"""Scoring and calibrating the segmenter on labelled streams (synthetic window probabilities)."""

from __future__ import annotations

import numpy as np
import pytest

from stgcn.data.sample import Sample
from stgcn.data.streams import LabelledStream
from stgcn.inference.segment_calibration import calibrate, evaluate, objective, run
from stgcn.inference.segmenter import SegmenterConfig
from stgcn.segmentation import BACKGROUND, Segment

NAMES = ["A", "B", "none"]


def _stream(segments, t=60, name="s") -> LabelledStream:
    return LabelledStream(name, Sample(keypoint=np.ones((1, t, 20, 3), np.float32)), segments, NAMES[:2])


def _probs(stream: LabelledStream, shift: int = 0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Window probabilities that see frame f at window end f + shift (background -> 'none')."""
    true = stream.frame_labels()
    lab = np.where(true == BACKGROUND, 2, true)
    p = np.eye(3)[lab] * 0.8 + 0.1
    p = np.concatenate([np.repeat(p[:1], shift, axis=0), p])[:len(true)]
    if noise:
        p = p + np.random.default_rng(seed).uniform(0, noise, p.shape)
    return p / p.sum(axis=1, keepdims=True)


PERFECT = SegmenterConfig(window=8, lookahead=0, smoothing=1, threshold=0.0, hysteresis=1, min_length=1,
                          background="none")


def test_perfect_probabilities_score_100_with_one_frame_of_delay():
    st = _stream([Segment("A", 5, 14), Segment("B", 30, 44)])
    m, per = evaluate(PERFECT, [st], [_probs(st)], NAMES, fps=10.0)
    assert (m["accuracy"], m["edit"], m["f1@10"], m["f1@50"]) == (100.0, 100.0, 100.0, 100.0)
    # each segment is decided when the frame after it is: 1 frame = 0.1 s
    assert per[0].delays_s == pytest.approx([0.1, 0.1]) and m["delay_s"] == pytest.approx(0.1)
    assert m["delay_after_truth_s"] == pytest.approx(0.1)
    assert [d.segment for d in per[0].decided] == [Segment("A", 5, 14, pytest.approx(0.9 / 1.1)),
                                                   Segment("B", 30, 44, pytest.approx(0.9 / 1.1))]


def test_a_late_model_needs_the_matching_lookahead():
    st = _stream([Segment("A", 5, 14), Segment("B", 30, 44)])
    probs = _probs(st, shift=3)                       # the window ending at f + 3 knows frame f
    late, _ = evaluate(PERFECT, [st], [probs], NAMES)
    right, per = evaluate(PERFECT.replace(lookahead=3), [st], [probs], NAMES)
    assert late["accuracy"] < 100.0 and right["accuracy"] == 100.0
    assert [d.decided_at - d.segment.end for d in per[0].decided] == [4, 4]


def test_run_follows_the_stride():
    st = _stream([Segment("A", 0, 59)])
    decided = run(PERFECT.replace(stride=4), NAMES, _probs(st))
    assert [(d.segment.start, d.segment.end) for d in decided] == [(0, 59)]


def test_calibrate_finds_the_lookahead_and_respects_the_delay_budget():
    streams = [_stream([Segment("A", 5, 14), Segment("B", 30, 44)], name="a"),
               _stream([Segment("B", 2, 20), Segment("A", 40, 55)], name="b")]
    probs = [_probs(s, shift=3, noise=0.3, seed=i) for i, s in enumerate(streams)]
    grid = {"lookahead": (0, 1, 2, 3, 4), "smoothing": (1, 3), "hysteresis": (1, 2), "min_length": (1, 3)}
    start = PERFECT.replace(fps=None)
    cfg, best, trials = calibrate(streams, lambda w: probs, NAMES, start=start, grid=grid, fps=10.0, max_delay_s=5)
    assert cfg.lookahead == 3 and best["accuracy"] == 100.0
    assert objective(best) == max(t["objective"] for t in trials)
    tight, m, _ = calibrate(streams, lambda w: probs, NAMES, start=start, grid=grid, fps=10.0, max_delay_s=0.25)
    assert m["delay_s"] <= 0.25 and tight.lookahead + tight.hysteresis <= 3


def test_calibrate_ends_in_a_local_optimum_and_keeps_the_best_start():
    """Run to convergence, no single setting changed alone scores better within the budget (checked
    by evaluating every neighbour afresh); from several starts, the better of the separate runs."""
    streams = [_stream([Segment("A", 5, 14), Segment("B", 30, 44)], name="a"),
               _stream([Segment("B", 2, 20), Segment("A", 40, 55)], name="b")]
    probs = [_probs(s, shift=2, noise=1.2, seed=10 + i) for i, s in enumerate(streams)]
    grid = {"lookahead": (0, 1, 2, 3), "smoothing": (1, 3, 5), "threshold": (0.0, 0.3, 0.5),
            "hysteresis": (1, 2, 4), "min_length": (1, 3, 8)}
    kw = {"grid": grid, "fps": 10.0, "max_delay_s": 0.6}
    starts = [PERFECT.replace(fps=None, lookahead=0, hysteresis=4, min_length=8),
              PERFECT.replace(fps=None, smoothing=5, threshold=0.5)]
    ends = [calibrate(streams, lambda w: probs, NAMES, start=c, **kw) for c in starts]
    for cfg, best, _ in ends:
        assert best["delay_s"] <= 0.6
        for key, values in grid.items():
            for v in values:
                m, _ = evaluate(cfg.replace(**{key: v}), streams, probs, NAMES, fps=10.0)
                assert m["delay_s"] > 0.6 or objective(m) <= objective(best) + 1e-9
    assert objective(ends[1][1]) > objective(ends[0][1])        # the starts end apart, the second higher
    _, one_round, _ = calibrate(streams, lambda w: probs, NAMES, start=starts[1], rounds=1, **kw)
    assert objective(one_round) < objective(ends[1][1])         # ... after more than one round
    cfg, best, trials = calibrate(streams, lambda w: probs, NAMES, start=starts, **kw)
    assert objective(best) == max(objective(b) for _, b, _ in ends)
    assert cfg in [c for c, b, _ in ends if objective(b) == objective(best)]
    assert len(trials) == len({tuple(sorted(t.items())) for t in trials})   # each config scored once


def test_error_kinds_split_the_wrong_frames():
    from stgcn.inference.segment_calibration import error_kinds

    true = np.array([-1, -1, 0, 0, 1, 1, -1])
    pred = np.array([-1, 0, -1, 0, 0, 1, 1])
    # missed (action -> none): frame 2; false (none -> action): frames 1, 6; wrong action: frame 4
    assert error_kinds(pred, true).tolist() == [1, 2, 1]
    m, _ = evaluate(PERFECT, [_stream([Segment("A", 5, 14)], t=20)],
                    [_probs(_stream([Segment("A", 5, 14)], t=20))], NAMES)
    assert m["missed_action_frames"] == m["false_action_frames"] == m["wrong_action_frames"] == 0.0
