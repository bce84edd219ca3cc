"""The in-memory form of one skeleton clip, shared by every reader."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError


@dataclass
class Sample:
    """One clip.

    Attributes:
        keypoint: float32 array (M, T, V, C): persons, frames, joints, coordinates (2 or 3).
        score: float32 array (M, T, V) of detection confidences, or None (3D data).
        label: class index (0-based) or None when unknown.
        name: a unique sample name (file stem for most formats).
        meta: format-specific extras (subject, camera, image shape, ...), JSON-serialisable.
    """

    keypoint: np.ndarray
    score: np.ndarray | None = None
    label: int | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoint)
        if kp.ndim != 4:
            raise DataError(f"keypoint must have 4 dimensions (M, T, V, C), found shape {kp.shape}",
                            file=self.name or None)
        if kp.shape[3] not in (2, 3):
            raise DataError(f"keypoint must have 2 or 3 coordinates, found {kp.shape[3]}",
                            file=self.name or None)
        if kp.shape[0] < 1 or kp.shape[1] < 1:
            raise DataError(f"clip has no person or no frame (shape {kp.shape})", file=self.name or None)
        self.keypoint = np.ascontiguousarray(kp, dtype=np.float32)
        if not np.isfinite(self.keypoint).all():
            bad = np.argwhere(~np.isfinite(self.keypoint))[0]
            raise DataError(f"non-finite coordinate at person {bad[0]}, frame {bad[1]}, joint {bad[2]}",
                            file=self.name or None, record=f"frame {int(bad[1])}")
        if self.score is not None:
            sc = np.ascontiguousarray(self.score, dtype=np.float32)
            if sc.shape != kp.shape[:3]:
                raise DataError(f"score shape {sc.shape} does not match keypoint shape {kp.shape[:3]}",
                                file=self.name or None)
            if not np.isfinite(sc).all():
                raise DataError("non-finite score", file=self.name or None)
            self.score = sc

    @property
    def num_persons(self) -> int:
        return self.keypoint.shape[0]

    @property
    def num_frames(self) -> int:
        return self.keypoint.shape[1]

    @property
    def num_joints(self) -> int:
        return self.keypoint.shape[2]

    def to_array(self, with_score: bool | None = None) -> np.ndarray:
        """The clip as the model sees it: float32 (C, T, V, M).

        For 2D data with scores the score becomes the third channel (x, y, score), as in the
        Kinetics-skeleton convention of the paper. ``with_score=False`` drops it.
        """
        kp = self.keypoint
        if with_score is None:
            with_score = self.score is not None and kp.shape[3] == 2
        if with_score:
            if self.score is None:
                raise DataError("with_score=True but the sample has no score", file=self.name or None)
            kp = np.concatenate([kp, self.score[..., None]], axis=3)
        return np.ascontiguousarray(kp.transpose(3, 1, 2, 0))


def channel_names(coords: int, has_score: bool) -> list[str]:
    """Names of the channels of a clip with ``coords`` coordinates (2 or 3) and maybe a score, in
    the order :meth:`stgcn.data.sample.Sample.to_array` writes them."""
    if has_score:
        return ["x", "y", "score"]
    return ["x", "y", "z"][:coords] if coords <= 3 else [f"c{i}" for i in range(coords)]
