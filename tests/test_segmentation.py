"""Segmentation metrics against hand-computed cases and independent formulations."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stgcn.segmentation import (
    BACKGROUND,
    Segment,
    SegmentationScores,
    edit_score,
    frame_accuracy,
    levenshtein,
    matches,
    overlap_counts,
    runs,
    to_frames,
    to_segments,
)

_ = BACKGROUND


def lab(text: str) -> np.ndarray:
    """'AAA__BB' -> frame labels (A=0, B=1, ..., '_' = background)."""
    return np.array([BACKGROUND if c == "_" else ord(c) - ord("A") for c in text])


# ------------------------------------------------------------------- hand-computed cases


def test_boundary_shift_case():
    true, pred = lab("AAAA__BBBB"), lab("AAA__BBBBB")
    # frame 3 (A predicted as background) and frame 5 (background predicted as B) are wrong
    assert frame_accuracy(pred, true) == pytest.approx(0.8)
    assert edit_score(pred, true) == 100.0
    # IoU A = 3/4, B = 4/5
    assert overlap_counts(pred, true, 0.5) == (2, 0, 0)
    assert overlap_counts(pred, true, 0.8) == (1, 1, 1)
    assert overlap_counts(pred, true, 0.81) == (0, 2, 2)


def test_oversegmentation_case():
    true, pred = lab("AAAAAAAAAA"), lab("AAAABBAAAA")
    assert frame_accuracy(pred, true) == pytest.approx(0.8)
    # [A, B, A] vs [A]: two deletions
    assert edit_score(pred, true) == pytest.approx(100 * (1 - 2 / 3))
    # each A piece has IoU 0.4 with the one true A; the second finds it taken
    assert overlap_counts(pred, true, 0.10) == (1, 2, 0)
    assert overlap_counts(pred, true, 0.25) == (1, 2, 0)
    assert overlap_counts(pred, true, 0.50) == (0, 3, 1)
    scores = SegmentationScores()
    s = scores.add(pred, true)
    assert s["f1@10"] == pytest.approx(100 * 2 / (2 + 2 + 0))
    assert s["f1@50"] == 0.0


def test_nothing_predicted_and_nothing_true():
    true = lab("__AA__BB")
    none = lab("________")
    assert edit_score(none, true) == 0.0
    assert overlap_counts(none, true, 0.1) == (0, 0, 2)
    assert edit_score(none, none) == 100.0
    assert overlap_counts(none, none, 0.5) == (0, 0, 0)
    assert frame_accuracy(none, true) == pytest.approx(0.5)


def test_wrong_label_never_matches():
    true, pred = lab("AAAA"), lab("BBBB")
    assert overlap_counts(pred, true, 0.1) == (0, 1, 1)
    assert edit_score(pred, true) == 0.0  # one substitution over one segment


def test_pooled_over_streams_as_ms_tcn():
    pairs = [(lab("AAA__BBBBB"), lab("AAAA__BBBB")), (lab("AAAABBAAAA"), lab("AAAAAAAAAA"))]
    scores = SegmentationScores()
    for p, t in pairs:
        scores.add(p, t)
    r = scores.result()
    assert r["accuracy"] == pytest.approx(100 * 16 / 20)          # frames pooled
    assert r["edit"] == pytest.approx((100 + 100 / 3) / 2)        # mean per stream
    # F1@50: counts summed: (2, 0, 0) + (0, 3, 1) -> 2 * 2 / (4 + 3 + 1)
    assert r["f1@50"] == pytest.approx(100 * 4 / 8)
    assert r["f1@10"] == pytest.approx(100 * 2 * 3 / (2 * 3 + 2 + 0))


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="same"):
        frame_accuracy(lab("AA"), lab("AAA"))


def test_segments_and_frames_round_trip():
    names = ["walk", "sit"]
    segs = [Segment("walk", 1, 3), Segment("sit", 4, 4), Segment("walk", 7, 9)]
    frames = to_frames(segs, 10, names)
    assert frames.tolist() == [_, 0, 0, 0, 1, _, _, 0, 0, 0]
    assert to_segments(frames, names) == segs
    with pytest.raises(ValueError, match="overlaps"):
        to_frames([Segment("walk", 0, 3), Segment("sit", 3, 4)], 10, names)
    with pytest.raises(ValueError, match="runs past"):
        to_frames([Segment("walk", 5, 10)], 10, names)
    with pytest.raises(ValueError, match="start <= end"):
        Segment("walk", 4, 3)


# ------------------------------------------------------------------- independent formulations

labels_strategy = st.lists(st.integers(min_value=-1, max_value=2), min_size=1, max_size=40)


@settings(deadline=None)
@given(labels_strategy)
def test_runs_equal_groupby(seq):
    expected, i = [], 0
    for key, group in itertools.groupby(seq):
        n = len(list(group))
        if key != BACKGROUND:
            expected.append((key, i, i + n - 1))
        i += n
    assert runs(np.array(seq)) == expected


def _lev_recursive(a: tuple, b: tuple) -> int:
    @functools.cache
    def d(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))
    return d(len(a), len(b))


@settings(deadline=None)
@given(st.lists(st.integers(0, 3), max_size=9), st.lists(st.integers(0, 3), max_size=9))
def test_levenshtein_equals_recursive_definition(a, b):
    assert levenshtein(a, b) == _lev_recursive(tuple(a), tuple(b))


def _iou_sets(a: tuple[int, int], b: tuple[int, int]) -> float:
    sa, sb = set(range(a[0], a[1] + 1)), set(range(b[0], b[1] + 1))
    return len(sa & sb) / len(sa | sb)


def _max_matching(pred: np.ndarray, true: np.ndarray, threshold: float) -> int:
    """The largest one-to-one matching of same-label segments with IoU >= threshold (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    p, y = runs(pred), runs(true)
    if not p or not y:
        return 0
    ok = np.array([[float(pl == yl and _iou_sets((ps, pe), (ys, ye)) >= threshold) for yl, ys, ye in y]
                   for pl, ps, pe in p])
    r, c = linear_sum_assignment(-ok)
    return int(ok[r, c].sum())


def _label_pair(data, min_len: int, max_len: int, top: int) -> tuple[np.ndarray, np.ndarray]:
    """A predicted and a true frame-label sequence of the same drawn length, labels -1 (background)..top."""
    n = data.draw(st.integers(min_len, max_len))
    labels = st.lists(st.integers(-1, top), min_size=n, max_size=n)
    return np.array(data.draw(labels)), np.array(data.draw(labels))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_f1_matching_equals_optimal_matching_from_iou_half(data):
    # At IoU >= 0.5 a predicted segment can overlap at most one true segment that much, so MS-TCN's
    # greedy matching must equal the optimal one-to-one matching.
    pred, true = _label_pair(data, 5, 40, 2)
    thr = data.draw(st.sampled_from([0.5, 0.6, 0.75]))
    tp, fp, fn = overlap_counts(pred, true, thr)
    assert tp == _max_matching(pred, true, thr)
    assert tp + fp == len(runs(pred)) and tp + fn == len(runs(true))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_matches_meet_the_threshold_with_sets(data):
    pred, true = _label_pair(data, 3, 30, 1)
    p, y = runs(pred), runs(true)
    for i, j in matches(pred, true, 0.1):
        assert p[i][0] == y[j][0]
        assert _iou_sets(p[i][1:], y[j][1:]) >= 0.1
