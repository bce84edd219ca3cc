"""Tracker: stable ids through crossings, reordering and gaps; new ids for new people."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy")

from stgcn.inference.pose import Person  # noqa: E402
from stgcn.inference.tracker import Tracker, keypoint_distance  # noqa: E402


def person(cx: float, cy: float = 100.0, score: float = 0.9, size: float = 40.0, seed: int = 0) -> Person:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-size / 2, size / 2, (33, 2)) + [cx, cy]
    kp = np.concatenate([pts, np.full((33, 1), score)], axis=1).astype(np.float32)
    box = np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()], np.float32)
    return Person(keypoints=kp, box=box, score=score)


def test_ids_follow_people_whatever_the_detection_order():
    tr = Tracker(max_age=5)
    ids = {}
    for f in range(20):
        a, b = person(50 + 2 * f, seed=1), person(250 - 2 * f, seed=2)
        people = [a, b] if f % 2 == 0 else [b, a]
        pairs = tr.update(people)
        for t, p in pairs:
            who = "a" if p is a else "b"
            ids.setdefault(who, t.id)
            assert t.id == ids[who], f"frame {f}: {who} changed id"
    assert ids["a"] != ids["b"]
    assert len(tr.tracks) == 2


def test_gap_within_max_age_keeps_the_id_and_longer_gap_gets_a_new_one():
    tr = Tracker(max_age=3)
    first = tr.update([person(100)])[0][0].id
    for _ in range(3):
        tr.update([])
    assert tr.update([person(102)])[0][0].id == first  # back after 3 missed frames
    for _ in range(4):
        tr.update([])
    assert tr.update([person(102)])[0][0].id != first  # 4 > max_age: the track had ended
    t = [t for t in tr.tracks][0]
    assert [p is None for _, p in t.history] == [False]


def test_new_person_gets_a_new_id_and_history_is_per_track():
    tr = Tracker()
    a = tr.update([person(50)])[0][0]
    pairs = tr.update([person(51), person(300, seed=3)])
    assert pairs[0][0] is a and pairs[1][0].id not in (a.id,)
    assert len(a.history) == 2 and len(pairs[1][0].history) == 1
    assert [t.id for t in tr.active()] == [a.id, pairs[1][0].id]


def test_far_jump_is_a_new_person():
    tr = Tracker(max_cost=1.2)
    a = tr.update([person(50)])[0][0]
    b = tr.update([person(500, seed=5)])[0][0]
    assert a.id != b.id


def test_most_confident_ranks_by_summed_score():
    tr = Tracker()
    for _ in range(5):
        tr.update([person(50, score=0.3), person(200, score=0.9, seed=1), person(350, score=0.6, seed=2)])
    top = tr.most_confident(2)
    assert [round(t.last.score, 1) for t in top] == [0.9, 0.6]


def test_keypoint_distance_is_scale_free():
    a, b = person(100, size=40), person(104, size=40)
    big_a, big_b = person(1000, size=400), person(1040, size=400)
    assert keypoint_distance(a, b) == pytest.approx(keypoint_distance(big_a, big_b), rel=1e-4)
