"""Linking people across frames: who in this frame is who in the last one.

The cost of pairing a track with a detection is ``(1 - IoU of the boxes) + w * keypoint distance``,
the distance being the mean pixel distance over joints both confidently see, divided by the track's
box diagonal (so it is scale free). Pairs are chosen by the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``) and accepted below ``max_cost``. Unmatched detections
start new tracks with new ids; a track survives ``max_age`` frames without a match (an occlusion, a
missed detection) and keeps its id when its person comes back.

Each track keeps its own per-frame keypoint history (None for frames it was not seen), from which the
stream builds model inputs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..errors import require
from .pose import Person, box_iou


@dataclass
class Track:
    """One person followed through time."""

    id: int
    history: deque = field(repr=False)   # (frame index, Person | None), the last ``history`` frames
    last: Person | None = None           # the latest matched detection
    last_frame: int = -1
    hits: int = 0
    score_sum: float = 0.0

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.hits if self.hits else 0.0

    def seen_at(self, frame: int) -> bool:
        return self.last_frame == frame


def keypoint_distance(a: Person, b: Person, min_conf: float = 0.3) -> float:
    """Mean distance of the joints both people see, over ``a``'s box diagonal; 1.0 when none shared."""
    ok = (a.keypoints[:, 2] >= min_conf) & (b.keypoints[:, 2] >= min_conf)
    if not ok.any():
        return 1.0
    d = np.linalg.norm(a.keypoints[ok, :2] - b.keypoints[ok, :2], axis=1).mean()
    diag = float(np.hypot(a.box[2] - a.box[0], a.box[3] - a.box[1])) or 1.0
    return float(d / diag)


class Tracker:
    """Assign stable ids to the people of consecutive frames.

    Args:
        max_age: frames a track may go unmatched before it ends.
        max_cost: pairs costlier than this are not matched (the person is new).
        kp_weight: weight of the keypoint distance against ``1 - IoU``.
        history: frames of keypoints each track keeps (at least the model's window).
    """

    def __init__(self, max_age: int = 30, max_cost: float = 1.2, kp_weight: float = 1.0, history: int = 300) -> None:
        self.max_age = max_age
        self.max_cost = max_cost
        self.kp_weight = kp_weight
        self.history = history
        self.tracks: list[Track] = []
        self.frame = -1
        self._next_id = 0

    def cost_matrix(self, people: list[Person]) -> np.ndarray:
        cost = np.zeros((len(self.tracks), len(people)), np.float64)
        for i, t in enumerate(self.tracks):
            for j, p in enumerate(people):
                cost[i, j] = (1.0 - box_iou(t.last.box, p.box)) + self.kp_weight * keypoint_distance(t.last, p)
        return cost

    def update(self, people: list[Person]) -> list[tuple[Track, Person]]:
        """Match this frame's ``people``; returns ``(track, person)`` for every person, in input order."""
        linear_sum_assignment = require("scipy.optimize", "video").linear_sum_assignment

        self.frame += 1
        assigned: dict[int, Track] = {}
        if self.tracks and people:
            cost = self.cost_matrix(people)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] <= self.max_cost:
                    assigned[c] = self.tracks[r]
        for j in range(len(people)):
            if j not in assigned:
                t = Track(id=self._next_id, history=deque(maxlen=self.history))
                self._next_id += 1
                self.tracks.append(t)
                assigned[j] = t
        matched = {id(t) for t in assigned.values()}
        for t in self.tracks:
            if id(t) not in matched:
                t.history.append((self.frame, None))
        for j, p in enumerate(people):
            t = assigned[j]
            t.history.append((self.frame, p))
            t.last, t.last_frame = p, self.frame
            t.hits += 1
            t.score_sum += p.score
        self.tracks = [t for t in self.tracks if self.frame - t.last_frame <= self.max_age]
        return [(assigned[j], p) for j, p in enumerate(people)]

    def active(self) -> list[Track]:
        """Tracks seen in the current frame."""
        return [t for t in self.tracks if t.seen_at(self.frame)]

    def most_confident(self, k: int = 2, since: int | None = None) -> list[Track]:
        """The ``k`` live tracks with the highest summed score (over frames after ``since``)."""
        def total(t: Track) -> float:
            return sum(p.score for f, p in t.history if p is not None and (since is None or f > since))

        return sorted(self.tracks, key=lambda t: (-total(t), t.id))[:k]
