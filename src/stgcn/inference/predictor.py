"""Top-k action labels from a skeleton, with the checkpoint's own data contract.

``Predictor(model, meta)`` reads the :class:`~stgcn.contract.DataContract` of the checkpoint (layout,
person slots, channels, normalisation, test pipeline and clips) and builds every input from it:

* a raw clip, a :class:`~stgcn.data.sample.Sample` or an array (C, T, V, M) as
  ``open_store(D).get(i)`` returns it, goes through :meth:`Predictor.prepare` (layout and channels
  checked, person slots filled, normalisation, the test pipeline as ``stgcn eval`` runs it) in
  ``__call__``, :meth:`~Predictor.probabilities` and :meth:`~Predictor.logits`;
* input already prepared for the model, (N, C, T, V, M), goes through the explicit
  :meth:`~Predictor.logits_prepared`, :meth:`~Predictor.probabilities_prepared` and
  :meth:`~Predictor.features_prepared`;
* people from a pose source (video, OpenPose folder, camera) become a raw clip in the model's
  layout with :meth:`~Predictor.people_clip`.

>>> p = Predictor.from_checkpoint("runs/demo/train/checkpoints/final.pt")
>>> p(open_store("runs/demo/data").get(20), topk=3)   # the answer of `stgcn predict runs/demo/data#20`
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import DataContract, channel_names
from ..errors import CheckpointError, LayoutError, ShapeError
from ..graph import Layout, get_layout
from .mapping import map_keypoints, mapping_table, mediapipe_world_to_kinect


@dataclass
class ClipPrediction:
    """The answer for a clip built from detected people (a video, an OpenPose folder)."""

    top: list[tuple[str, float]]  # top-k (label, probability); empty when nobody is there
    frames: int                   # frames of the input
    person_frames: int            # frames in which the most-seen person was detected
    min_frames: int               # frames of a person the model needs (its contract's min_frames)

    @property
    def nobody(self) -> bool:
        return not self.top

    def describe(self) -> str:
        return (f"nobody there: a person in {self.person_frames} of {self.frames} frames, the model needs "
                f"at least {self.min_frames}")


class Predictor:
    """A model plus its data contract: skeleton in, top-k ``(label, probability)`` out."""

    def __init__(self, model: Any, meta: Mapping, device: str = "cpu", precision: str = "fp32") -> None:
        import torch

        from ..models import optimize_for_inference

        self.torch = torch
        # a fused copy (folded, channels-last) in ``precision``; fp32 where the CPU lacks it (warned)
        self.model = optimize_for_inference(model, precision).to(device)
        self.precision = "bf16" if any(p.dtype == torch.bfloat16 for p in self.model.parameters()) else "fp32"
        self.meta = dict(meta)
        self.device = device
        self.contract: DataContract = DataContract.from_meta(self.meta, model)
        self.layout: Layout = self.contract.layout
        n_cls = getattr(model, "num_classes", None)
        names = self.meta.get("class_names") or [str(i) for i in range(n_cls or 0)]
        if n_cls is not None and len(names) != n_cls:
            raise CheckpointError(f"meta has {len(names)} class names, the model {n_cls} classes")
        self.class_names: list[str] = list(names)
        self._warned_position = False

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path, *, official: bool = False, layout: str = "openpose",
                        device: str = "cpu", precision: str = "fp32") -> Predictor:
        """Load an stgcn checkpoint, or with ``official=True`` a checkpoint of the official code
        (its meta from :func:`stgcn.compat.official.official_meta`, as ``convert-official`` writes it).
        A directory is a seed-ensemble run (``train.ensemble=k``): its members' final models predict
        together, their softmax averaged (:mod:`stgcn.models.ensemble`).
        ``precision``: "fp32" or "bf16" (:func:`stgcn.models.optimize_for_inference`)."""
        if official:
            from ..compat.official import load_official, official_meta

            model = load_official(path, layout=layout)
            return cls(model, official_meta(model, path), device, precision)
        if Path(path).is_dir():
            from ..models.ensemble import load_seed_ensemble

            return cls(*load_seed_ensemble(path), device, precision)
        from ..checkpoint import load_model

        model, meta = load_model(path)
        return cls(model, meta, device, precision)

    @classmethod
    def from_pretrained(cls, name: str | None = None, *, device: str = "cpu", precision: str = "fp32") -> Predictor:
        """A shipped model (``stgcn models`` lists them; None: the default), its sha256 checked."""
        from ..models.pretrained import load_pretrained

        model, meta = load_pretrained(name)
        return cls(model, meta, device, precision)

    # -- raw clips -------------------------------------------------------------------------------
    def prepare(self, clip: Any, *, layout: Layout | str | Mapping | None = None,
                image_size: tuple[float, float] | None = None, what: str | None = None) -> np.ndarray:
        """The model input (clips, C, T, V, M) of a raw clip: a Sample, or (C, T, V, M) as the store
        keeps it. ``layout``: the clip's layout when known (a Sample's ``meta["layout"]`` otherwise),
        checked against the model's; ``image_size`` (width, height) for pixel coordinates; ``what``
        names the clip in errors."""
        channels = None
        if hasattr(clip, "to_array"):  # a Sample
            meta = getattr(clip, "meta", {}) or {}
            layout = layout if layout is not None else meta.get("layout")
            image_size = image_size if image_size is not None else _image_size(meta)
            channels = channel_names(clip.keypoint.shape[3], clip.score is not None and clip.keypoint.shape[3] == 2)
            what = what or (f"sample {clip.name!r}" if getattr(clip, "name", "") else "the sample")
            clip = clip.to_array()
        elif isinstance(clip, self.torch.Tensor):
            clip = clip.detach().cpu().numpy()
        return self.contract.prepare(np.asarray(clip), layout=layout, channels=channels, image_size=image_size,
                                     what=what or "the input")

    def logits(self, clip: Any, **kw: Any) -> np.ndarray:
        """Logits (classes,) of one raw clip: the mean over its test clips, as ``stgcn eval`` scores."""
        return self.logits_prepared(self.prepare(clip, **kw)).mean(axis=0)

    def probabilities(self, clip: Any, **kw: Any) -> np.ndarray:
        """Class probabilities (classes,) of one raw clip (softmax of :meth:`logits`)."""
        return _softmax(self.logits(clip, **kw))

    def __call__(self, clip: Any, topk: int = 5, **kw: Any) -> list[tuple[str, float]]:
        """Top-k ``(label, probability)`` of one raw clip (keywords as for :meth:`prepare`)."""
        return self.topk(self.probabilities(clip, **kw), topk)

    def topk(self, probs: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-probs, kind="stable")[:k]
        return [(self.class_names[i], float(probs[i])) for i in order]

    # -- prepared input --------------------------------------------------------------------------
    def _tensor(self, x: Any):
        torch = self.torch
        x = x.float() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))
        if x.dim() == 4:
            x = x[None]
        if x.dim() != 5:
            raise ShapeError(f"expected prepared input (N, C, T, V, M) or (C, T, V, M), found shape {tuple(x.shape)}")
        return x.to(self.device)

    def logits_prepared(self, x: Any) -> np.ndarray:
        """Logits (N, classes) of input already prepared for the model (no contract applied)."""
        with self.torch.inference_mode():
            return self.model(self._tensor(x)).float().cpu().numpy()

    def probabilities_prepared(self, x: Any) -> np.ndarray:
        return _softmax(self.logits_prepared(x))

    def features_prepared(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(feature (N, C', T', V, M), logits (N, classes))`` via ``model.extract_features``."""
        with self.torch.inference_mode():
            feat, logits = self.model.extract_features(self._tensor(x))
            return feat.float().cpu().numpy(), logits.float().cpu().numpy()

    def run_prepared(self, inputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Several prepared inputs (each (clips, C, T, V, M), as :meth:`prepare` gives) in one batch:
        ``(probabilities (n, classes), features (n, C', T', V, M))``, each averaged over its clips
        (logits before the softmax, as ``stgcn eval`` does)."""
        clips = inputs[0].shape[0]
        feat, logits = self.features_prepared(np.concatenate(list(inputs)))
        n = len(inputs)
        return (_softmax(logits.reshape(n, clips, -1).mean(axis=1)),
                feat.reshape(n, clips, *feat.shape[1:]).mean(axis=1))

    # -- people from a pose source ---------------------------------------------------------------
    def check_source(self, src_layout: str | Layout) -> None:
        """Raise :class:`LayoutError` when a pose source cannot feed this model."""
        try:
            mapping_table(src_layout, self.layout)
        except LayoutError as exc:
            raise LayoutError(f"the checkpoint's layout is {self.layout.name!r}, which the pose source "
                              f"cannot provide: {exc}") from None

    def people_clip(self, slots: Sequence[Sequence[Any]], src_layout: str | Layout) -> np.ndarray:
        """A raw clip (C, T, V, M) in the model's layout and channels from person slots, each a
        per-frame list of ``Person | None`` (at most M slots are used; missing frames and slots stay
        zero, as in the training data). 3D models get the mapped world landmarks in Kinect axes,
        2D models the mapped pixel keypoints (x, y and, when trained with it, the score)."""
        self.check_source(src_layout)
        c = self.contract
        t = max((len(s) for s in slots), default=0)
        arr = np.zeros((3, max(t, 1), self.layout.num_joints, c.num_persons), np.float32)
        for j, frames in enumerate(list(slots)[:c.num_persons]):
            for i, p in enumerate(frames):
                if p is None:
                    continue
                if c.world:
                    self._warn_position()
                    if p.world is None:
                        raise LayoutError(f"the checkpoint's layout {self.layout.name!r} is 3D, but the pose "
                                          f"source {get_layout(src_layout).name!r} gives no world coordinates")
                    arr[:, i, :, j] = map_keypoints(mediapipe_world_to_kinect(p.world), src_layout, self.layout).T
                else:
                    arr[:, i, :, j] = map_keypoints(p.keypoints, src_layout, self.layout, score_channel=True).T
        return arr[:len(c.channels)]  # a 2D model trained without the score gets x, y only

    def present(self, slots: Sequence[Sequence[Any]]) -> int:
        """Frames in which the most-seen person of ``slots`` was detected."""
        return max((sum(p is not None for p in frames) for frames in slots), default=0)

    def _warn_position(self) -> None:
        centred = any(s.get("name") in ("pre_normalize", "center") for s in self.contract.test_pipeline)
        if not centred and not self._warned_position:
            self._warned_position = True
            warnings.warn("this 3D checkpoint's test pipeline does not centre the skeleton, so it depends on "
                          "where the person stands; camera-derived (MediaPipe world) skeletons are placed "
                          "at a nominal 2.3 m from the camera", stacklevel=3)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


def _image_size(meta: Mapping) -> tuple[float, float] | None:
    """(width, height) from a sample's meta: ``image_size`` (width, height) or pyskl's ``img_shape``
    (height, width)."""
    if meta.get("image_size"):
        w, h = meta["image_size"]
        return float(w), float(h)
    shape = meta.get("img_shape") or meta.get("image_shape")
    return (float(shape[1]), float(shape[0])) if shape else None


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


def predict_people(predictor: Predictor, frames: Any, src_layout: str | Layout, topk: int = 5,
                   image_size: tuple[int, int] | None = None, what: str = "the input") -> ClipPrediction:
    """The answer for a whole clip of detected people (an iterable of per-frame person lists): tracks,
    the M most confident of them (M from the contract), "nobody there" when no person was seen in
    the contract's ``min_frames`` frames."""
    tracks, n = track_people(frames)
    if n == 0:
        raise ShapeError(f"{what}: no frame")
    slots = clip_slots(tracks, n, predictor.contract.num_persons)
    seen, need = predictor.present(slots), predictor.contract.min_frames
    if seen < need:
        return ClipPrediction([], n, seen, need)
    x = predictor.people_clip(slots, src_layout)
    return ClipPrediction(predictor(x, topk, image_size=image_size), n, seen, need)


def predict_video(predictor: Predictor, path: str | Path, topk: int = 5, max_people: int = 2,
                  pose: Any = None) -> ClipPrediction:
    """The answer for a whole video: pose on every frame, tracks, the M most confident people."""
    from .video import VideoReader

    if pose is None:
        from .pose import MediaPipePose

        pose = MediaPipePose(max_people=max(max_people, predictor.contract.num_persons))
    predictor.check_source(pose.layout)
    with VideoReader(path) as reader:
        try:
            return predict_people(predictor, (pose(f) for f in reader), pose.layout, topk,
                                  (reader.width, reader.height), what=f"{path}: the video")
        finally:
            pose.close()


def predict_openpose_folder(predictor: Predictor, folder: str | Path, topk: int = 5,
                            image_size: tuple[int, int] | None = None) -> ClipPrediction:
    """The answer for an OpenPose output folder (COCO-18 or BODY_25 JSON per frame)."""
    from .pose import OpenPoseFolderSource

    src = OpenPoseFolderSource(folder, image_size=image_size)
    predictor.check_source(src.layout)
    return predict_people(predictor, iter(src), src.layout, topk, image_size, what=str(folder))
