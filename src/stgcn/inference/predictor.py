"""Top-k action labels from a skeleton, with the checkpoint's own data contract.

``Predictor(model, meta)`` reads everything it needs from the checkpoint meta, so the caller never
guesses the input format:

* ``meta["layout"]`` (or ``meta["data"]["layout"]``): the joint order the model expects;
* ``meta["data"]["normalization"]``: ``"kinetics"`` for the official Kinetics model (x / W, y / H,
  minus 0.5, zero where the score is 0; channels x, y, score) — raw inputs only;
* ``meta["data"]["test_pipeline"]`` (or ``"pipeline"``): transform specs for
  :func:`stgcn.data.transforms.build_pipeline`, applied to every input (centering, pre-normalisation,
  padding, the bone/motion stream, ...); store samples get only this, since the store already holds
  what the training pipeline started from;
* ``meta["data"]["clip_len"]`` / ``num_persons``: the window and person slots of live inputs.

>>> p = Predictor.from_checkpoint("runs/utkinect/best.pt")
>>> p(sample, topk=3)          # [("walk", 0.91), ("carry", 0.05), ("push", 0.02)]
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, LayoutError, ShapeError
from ..graph import get_layout
from .mapping import WORLD_LAYOUTS, canonical_layout, mapping_table, mediapipe_world_to_kinect

TWO_D_LAYOUTS = frozenset({"openpose", "coco", "mediapipe"})


@dataclass
class DataContract:
    """What a model expects as input, resolved from checkpoint meta."""

    layout: str
    in_channels: int
    normalization: str = "none"
    clip_len: int | None = None
    num_persons: int = 2
    pipeline: list[dict] = field(default_factory=list)
    channels: list[str] | None = None

    @property
    def world(self) -> bool:
        """Whether the model wants metric 3D coordinates (Kinect-like) rather than image ones."""
        return canonical_layout(self.layout) in WORLD_LAYOUTS or (
            self.channels is not None and "z" in self.channels)

    @classmethod
    def from_meta(cls, meta: dict, model: Any = None) -> DataContract:
        data = dict(meta.get("data") or {})
        layout = meta.get("layout") or data.get("layout") or getattr(getattr(model, "layout", None), "name", None)
        if layout is None:
            raise CheckpointError("the checkpoint meta names no layout (meta['layout'])")
        layout = get_layout(layout).name
        in_ch = data.get("in_channels") or meta.get("in_channels")
        if in_ch is None and model is not None:
            in_ch = (getattr(model, "config", {}) or {}).get("params", {}).get("in_channels")
        pipeline = data.get("test_pipeline", data.get("pipeline")) or []
        if isinstance(pipeline, dict):  # {"train": [...], "test": [...]}
            pipeline = pipeline.get("test") or pipeline.get("val") or []
        channels = data.get("channels") or (data.get("store_meta") or {}).get("channels")
        return cls(layout=layout, in_channels=int(in_ch or 3), normalization=str(data.get("normalization", "none")),
                   clip_len=data.get("clip_len") or data.get("window"),
                   num_persons=int(data.get("num_persons") or data.get("num_person") or 2),
                   pipeline=list(pipeline), channels=list(channels) if channels else None)


def normalize_kinetics(arr: np.ndarray, image_size: tuple[float, float] | None = None) -> np.ndarray:
    """The official Kinetics input: (3, T, V, M) x, y, score -> x/W - 0.5, y/H - 0.5, 0 where score is 0.

    Coordinates already in 0..1 (Kinetics-skeleton JSON) pass ``image_size=None``.
    """
    out = np.array(arr, dtype=np.float32, copy=True)
    if image_size is not None:
        out[0] /= float(image_size[0])
        out[1] /= float(image_size[1])
    out[0:2] -= 0.5
    out[0:2][:, out[2] == 0] = 0.0
    return out


class Predictor:
    """A model plus its data contract: skeleton in, top-k ``(label, probability)`` out."""

    def __init__(self, model: Any, meta: dict, device: str = "cpu") -> None:
        import torch

        from ..models import optimize_for_inference

        self.torch = torch
        self.model = optimize_for_inference(model).to(device)  # a fused copy: folded, channels-last
        self.meta = dict(meta)
        self.device = device
        self.contract = DataContract.from_meta(self.meta, model)
        self.layout = get_layout(self.contract.layout)
        n_cls = getattr(model, "num_classes", None)
        names = self.meta.get("class_names") or [str(i) for i in range(n_cls or 0)]
        if n_cls is not None and len(names) != n_cls:
            raise CheckpointError(f"meta has {len(names)} class names, the model {n_cls} classes")
        self.class_names: list[str] = list(names)
        self._pipeline = None
        if self.contract.pipeline:
            from ..data.transforms import build_pipeline

            self._pipeline = build_pipeline(self.contract.pipeline, self.layout, channels=self.contract.channels)
        self._warned_position = False

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path, *, official: bool = False, layout: str = "openpose",
                        device: str = "cpu") -> Predictor:
        """Load an stgcn checkpoint, or with ``official=True`` a checkpoint of the official code
        (Kinetics-400: layout ``openpose``, the packaged Kinetics-400 class names)."""
        if official:
            from ..compat import load_official
            from ..compat.official import KINETICS_CONTRACT
            from ..resources import kinetics400_labels

            model = load_official(path, layout=layout)
            names = kinetics400_labels() if model.num_classes == 400 else None
            meta = {"class_names": names, "layout": get_layout(layout).name,
                    "data": dict(KINETICS_CONTRACT) if get_layout(layout).name == "openpose" else {}}
            return cls(model, meta, device)
        from ..checkpoint import load_model

        model, meta = load_model(path)
        return cls(model, meta, device)

    # -- input preparation -----------------------------------------------------------------------
    def check_source(self, src_layout: str) -> None:
        """Raise :class:`LayoutError` when a pose source cannot feed this model."""
        try:
            mapping_table(src_layout, self.layout.name)
        except LayoutError as exc:
            raise LayoutError(f"the checkpoint's layout is {self.layout.name!r}, which the pose source "
                              f"cannot provide: {exc}") from None

    def finish(self, arr: np.ndarray, raw: bool = True, image_size: tuple[float, float] | None = None,
               seed: int = 0) -> np.ndarray:
        """Apply the contract's normalisation (raw inputs) and test pipeline to (C, T, V, M)."""
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim != 4:
            raise ShapeError(f"expected a skeleton array (C, T, V, M), found shape {arr.shape}")
        if arr.shape[2] != self.layout.num_joints:
            raise LayoutError(f"the input has {arr.shape[2]} joints, the checkpoint's layout "
                              f"{self.layout.name!r} has {self.layout.num_joints}")
        if raw and self.contract.normalization == "kinetics":
            if arr.shape[0] != 3:
                raise ShapeError(f"the Kinetics normalisation needs channels x, y, score; found C={arr.shape[0]}")
            arr = normalize_kinetics(arr, image_size)
        if self._pipeline is not None:
            arr = self._pipeline(arr, np.random.default_rng(seed))
        return np.ascontiguousarray(arr, dtype=np.float32)

    def sample_to_input(self, sample: Any) -> np.ndarray:
        """A :class:`stgcn.data.sample.Sample` as a model input (C, T, V, M)."""
        arr = sample.to_array()
        image_size = None
        meta = getattr(sample, "meta", {}) or {}
        shape = meta.get("img_shape") or meta.get("image_shape")
        size = meta.get("image_size")
        if self.contract.normalization == "kinetics" and float(np.abs(arr[:2]).max(initial=0)) > 1.5:
            if size:
                image_size = (float(size[0]), float(size[1]))
            elif shape:
                image_size = (float(shape[1]), float(shape[0]))  # (h, w) as pyskl writes it
            else:
                raise ShapeError("pixel coordinates but no image size: give the sample meta 'image_size' "
                                 "(width, height), e.g. --image-size 340x256")
        return self.finish(arr, raw=True, image_size=image_size)

    def people_to_input(self, slots: list[list[Any]], image_size: tuple[int, int] | None,
                        src_layout: str) -> np.ndarray:
        """Model input (C, T, V, M) from per-person-slot lists of per-frame ``Person | None``.

        2D models get mapped pixel keypoints (x, y, score); 3D models get mapped world landmarks in
        Kinect axes. Missing frames and empty slots stay zero, as in the training data.
        """
        if self.contract.normalization == "kinetics" and not self.contract.world and image_size is None:
            raise ShapeError("this checkpoint normalises by the image size, which the pose source does not "
                             "record: give it (--image-size WIDTHxHEIGHT)")
        t = max((len(s) for s in slots), default=0)
        m = max(self.contract.num_persons, 1)
        v = self.layout.num_joints
        table_src = canonical_layout(src_layout)
        self.check_source(table_src)
        c = 3
        arr = np.zeros((c, max(t, 1), v, m), np.float32)
        from .mapping import map_keypoints

        for j, frames in enumerate(slots[:m]):
            for i, p in enumerate(frames):
                if p is None:
                    continue
                if self.contract.world:
                    self._warn_position()
                    if p.world is None:
                        raise LayoutError(f"the checkpoint's layout {self.layout.name!r} is 3D, but the pose "
                                          f"source {src_layout!r} gives no world coordinates")
                    arr[:, i, :, j] = map_keypoints(mediapipe_world_to_kinect(p.world), table_src,
                                                    self.layout.name).T
                else:
                    arr[:, i, :, j] = map_keypoints(p.keypoints, table_src, self.layout.name, score_channel=True).T
        # a 2D model trained without the score channel gets x, y only
        if not self.contract.world and self.contract.in_channels == 2:
            arr = arr[:2]
        return self.finish(arr, raw=True, image_size=image_size)

    def _warn_position(self) -> None:
        centred = any(s.get("name") in ("pre_normalize", "center") for s in self.contract.pipeline)
        if not centred and not self._warned_position:
            self._warned_position = True
            warnings.warn("this 3D checkpoint's test pipeline does not centre the skeleton, so it depends on "
                          "where the person stands; camera-derived (MediaPipe world) skeletons are placed "
                          "at a nominal 2.3 m from the camera", stacklevel=3)

    # -- inference -----------------------------------------------------------------------------
    def _tensor(self, x: Any):
        torch = self.torch
        if hasattr(x, "to_array"):
            x = self.sample_to_input(x)
        x = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x.float()
        if x.dim() == 4:
            x = x[None]
        if x.dim() != 5:
            raise ShapeError(f"expected (C, T, V, M) or (N, C, T, V, M), found shape {tuple(x.shape)}")
        return x.to(self.device)

    def logits(self, x: Any) -> np.ndarray:
        with self.torch.inference_mode():
            return self.model(self._tensor(x)).float().cpu().numpy()

    def features(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(feature (N, C', T', V, M), probabilities (N, classes))`` via ``model.extract_features``."""
        with self.torch.inference_mode():
            feat, logits = self.model.extract_features(self._tensor(x))
            return feat.float().cpu().numpy(), self.torch.softmax(logits.float(), dim=1).cpu().numpy()

    def probabilities(self, x: Any) -> np.ndarray:
        with self.torch.inference_mode():
            return self.torch.softmax(self.model(self._tensor(x)).float(), dim=1).cpu().numpy()

    def topk(self, probs: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-probs)[:k]
        return [(self.class_names[i], float(probs[i])) for i in order]

    def __call__(self, x: Any, topk: int = 5) -> list[tuple[str, float]]:
        """Top-k ``(label, probability)`` for one skeleton: a Sample, (C, T, V, M) or (1, C, T, V, M)."""
        probs = self.probabilities(x)
        if probs.shape[0] != 1:
            raise ShapeError(f"__call__ takes one skeleton; use probabilities() for a batch of {probs.shape[0]}")
        return self.topk(probs[0], topk)


def joint_attention(feature: np.ndarray) -> np.ndarray:
    """Per-joint response (N, V, M) from feature maps (N, C', T', V, M): the L2 norm over channels,
    averaged over time, then stretched to 0..1 per person (min to max) so that the circles of the
    paper's figures show which joints stand out rather than the overall activation level."""
    a = np.linalg.norm(feature, axis=1).mean(axis=1)
    lo = a.min(axis=1, keepdims=True)
    span = a.max(axis=1, keepdims=True) - lo
    return np.where(span > 0, (a - lo) / np.where(span > 0, span, 1), 0.0).astype(np.float32)


def track_people(frames: Any, max_age: int = 30) -> tuple[list, int]:
    """Run the tracker over an iterable of per-frame person lists; returns (tracks, frame count)."""
    from .tracker import Tracker

    tracker = Tracker(max_age=max_age, history=1 << 30)
    n = 0
    ended: list = []
    for people in frames:
        before = {id(t): t for t in tracker.tracks}
        tracker.update(people)
        alive = {id(t) for t in tracker.tracks}
        ended.extend(t for k, t in before.items() if k not in alive)
        n += 1
    return ended + tracker.tracks, n


def clip_slots(tracks: list, num_frames: int, k: int = 2) -> list[list[Any]]:
    """Per-frame persons of the ``k`` tracks with the largest summed score over the clip."""
    def total(t) -> float:
        return sum(p.score for _, p in t.history if p is not None)

    slots = []
    for t in sorted(tracks, key=lambda t: (-total(t), t.id))[:k]:
        by_frame = {f: p for f, p in t.history if p is not None}
        slots.append([by_frame.get(f) for f in range(num_frames)])
    return slots


def predict_video(predictor: Predictor, path: str | Path, topk: int = 5, max_people: int = 2,
                  pose: Any = None) -> list[tuple[str, float]]:
    """Top-k for a whole video: pose on every frame, tracks, the two most confident people."""
    from .video import VideoReader

    if pose is None:
        from .pose import MediaPipePose

        pose = MediaPipePose(max_people=max_people)
    predictor.check_source(pose.layout)
    with VideoReader(path) as reader:
        try:
            tracks, n = track_people(pose(f) for f in reader)
        finally:
            pose.close()
        size = (reader.width, reader.height)
    if n == 0:
        raise ShapeError(f"{path}: the video has no frame")
    x = predictor.people_to_input(clip_slots(tracks, n, max(predictor.contract.num_persons, 1)), size, pose.layout)
    return predictor(x, topk)


def predict_openpose_folder(predictor: Predictor, folder: str | Path, topk: int = 5,
                            image_size: tuple[int, int] | None = None) -> list[tuple[str, float]]:
    """Top-k for an OpenPose output folder (COCO-18 or BODY_25 JSON per frame)."""
    from .pose import OpenPoseFolderSource

    src = OpenPoseFolderSource(folder, image_size=image_size)
    predictor.check_source(src.layout)
    tracks, n = track_people(iter(src))
    x = predictor.people_to_input(clip_slots(tracks, n, max(predictor.contract.num_persons, 1)), image_size,
                                  src.layout)
    return predictor(x, topk)
