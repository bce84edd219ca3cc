"""The data contract: what a model expects as input, recorded at training, read by every other path.

Training writes it into the checkpoint meta (``meta["data"]``, :meth:`DataContract.to_dict`);
evaluation, :class:`stgcn.inference.predictor.Predictor` (store samples, skeleton files, OpenPose
folders, videos), the camera stream and the ONNX export all build their input from it with
:meth:`DataContract.prepare`, which runs the same dataset code (:class:`SkeletonDataset`) as
``stgcn eval``. It holds:

* ``layout``: the :class:`~stgcn.graph.Layout` itself, stored as its table, so a layout read from a
  YAML file works in any folder; inputs in another layout (another table, whatever the joint count)
  are refused;
* ``num_persons`` (M, the store's person slots) and ``channels`` (the store's channel names,
  e.g. ``x, y, z`` or ``x, y, score``); ``in_channels`` (what the model reads);
* ``normalization``: ``kinetics`` when pixel coordinates are divided by the image size (x / W,
  y / H, zero where the score is 0), as the Kinetics-skeleton data is; else ``none``;
* ``test_pipeline`` (transform specs), ``test_clips``, ``seed``, ``stream``;
* ``clip_len``: the longest training clip, the default live window (every action the model learned
  fits in it); ``min_frames``: a person seen in fewer frames than this is "nobody there" (half the
  shortest training clip, at most a quarter of ``clip_len``).

Checkpoints written before this contract still load: what the old meta does not say is inferred
(persons from the store meta it kept, channels from the layout) or takes the stated defaults
:data:`DEFAULT_PERSONS`, ``clip_len`` None (a 64-frame window) and ``min_frames`` 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .data.sample import channel_names
from .errors import CheckpointError, LayoutError, ShapeError
from .graph import Layout, get_layout
from .graph.layouts import NORMALIZATIONS

#: Person slots of a checkpoint whose meta records none (and whose store meta is not there either).
DEFAULT_PERSONS = 1
#: The official Kinetics feeder's input after dividing by the image size: x and y minus 0.5.
KINETICS_TEST_PIPELINE = ({"name": "center", "value": 0.5},)
# Pixel coordinates are told from image fractions by their size: fractions stay within about
# [-0.5, 1.5] even for joints estimated outside the frame.
_PIXELS = 1.5


@dataclass(frozen=True)
class DataContract:
    """What a model expects as input (see the module docstring)."""

    layout: Layout
    num_persons: int
    channels: tuple[str, ...]
    in_channels: int
    normalization: str = "none"
    test_pipeline: tuple[dict, ...] = ()
    test_clips: int = 1
    seed: int = 0
    stream: str = "joint"
    clip_len: int | None = None  # the longest training clip (frames): the default live window
    min_frames: int = 1           # fewer frames of a person than this: nobody there

    def __post_init__(self) -> None:
        if self.num_persons < 1:
            raise CheckpointError(f"the data contract has {self.num_persons} person slots; at least 1 is needed")
        if self.normalization not in NORMALIZATIONS:
            raise CheckpointError(f"unknown normalisation {self.normalization!r}; known: {list(NORMALIZATIONS)}")
        transform = self._test_transform[0]
        fed = transform.out_channels(len(self.channels)) if transform is not None else len(self.channels)
        if fed != self.in_channels:  # concat_streams stacks streams: 3 channels in, 9 to the model
            raise CheckpointError(f"the data contract names {len(self.channels)} channels {list(self.channels)}, "
                                  f"which its test pipeline turns into {fed}, but the model reads {self.in_channels}")

    @property
    def world(self) -> bool:
        """Whether the model reads metric 3D coordinates (Kinect-like) rather than image ones."""
        return "z" in self.channels

    # -- storage -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain data for the checkpoint meta (``meta["data"]``); the layout as its table."""
        return {"layout": self.layout.to_dict(), "num_persons": self.num_persons, "channels": list(self.channels),
                "in_channels": self.in_channels, "normalization": self.normalization,
                "test_pipeline": [dict(s) for s in self.test_pipeline], "test_clips": self.test_clips,
                "seed": self.seed, "stream": self.stream, "clip_len": self.clip_len, "min_frames": self.min_frames}

    @classmethod
    def from_meta(cls, meta: Mapping, model: Any = None, source: str = "checkpoint") -> DataContract:
        """The contract of a checkpoint meta (new or old); ``model`` fills what old metas lack and
        is checked against the contract's layout."""
        data = dict(meta.get("data") or {})
        layout = data.get("layout") or meta.get("layout") or getattr(model, "layout", None)
        if layout is None:
            raise CheckpointError(f"{source}: the checkpoint meta names no layout (meta['data']['layout'])")
        try:
            layout = get_layout(layout)
        except LayoutError as exc:
            raise CheckpointError(f"{source}: the checkpoint's layout cannot be read: {exc}") from None
        model_layout = getattr(model, "layout", None)
        if model_layout is not None and model_layout != layout:
            raise CheckpointError(f"{source}: the model is built on layout {model_layout.name!r} but the data "
                                  f"contract says {layout.name!r}")
        in_ch = data.get("in_channels") or meta.get("in_channels")
        if in_ch is None and model is not None:
            in_ch = (getattr(model, "config", {}) or {}).get("params", {}).get("in_channels")
        in_ch = int(in_ch or 3)
        store_meta = data.get("store_meta") or {}
        channels = data.get("channels") or store_meta.get("channels") or \
            channel_names(in_ch, has_score=layout.dims == 2 and in_ch == 3)
        persons = data.get("num_persons") or data.get("num_person") or \
            (store_meta.get("counts") or {}).get("persons") or DEFAULT_PERSONS
        normalization = str(data.get("normalization") or "none")
        pipeline = data.get("test_pipeline", data.get("pipeline"))
        if isinstance(pipeline, dict):  # {"train": [...], "test": [...]}
            pipeline = pipeline.get("test") or pipeline.get("val")
        if pipeline is None:  # written before pipelines were recorded: an official conversion at most
            pipeline = KINETICS_TEST_PIPELINE if normalization == "kinetics" else ()
        clip_len = data.get("clip_len") or data.get("window")
        return cls(layout=layout, num_persons=int(persons), channels=tuple(channels), in_channels=in_ch,
                   normalization=normalization, test_pipeline=tuple(dict(s) for s in pipeline),
                   test_clips=int(data.get("test_clips") or 1), seed=int(data.get("seed") or 0),
                   stream=str(data.get("stream") or meta.get("stream") or "joint"),
                   clip_len=None if clip_len is None else int(clip_len), min_frames=int(data.get("min_frames") or 1))

    @classmethod
    def for_training(cls, store: Any, layout: Layout, train_index: Sequence[int], test_pipeline: Sequence[dict], *,
                     in_channels: int, stream: str = "joint", test_clips: int = 1, seed: int = 0) -> DataContract:
        """The contract of a model trained on ``store`` (its ``train_index`` clips) in ``layout``."""
        first = np.asarray(store.get(int(train_index[0])))
        channels = list(getattr(store, "channels", None) or []) or channel_names(first.shape[0], False)
        lengths = getattr(store, "lengths", None)
        clip_len = min_frames = None
        if lengths is not None:
            lengths = np.asarray(lengths)[np.asarray(train_index, dtype=np.int64)]
            clip_len = max(1, int(lengths.max()))
            # half the shortest training clip (no action was shorter; half leaves room for missed
            # detections), at most a quarter window, so that a store of padded clips (Kinetics:
            # every clip 300 frames) still answers for a person seen part of the time
            min_frames = max(1, min(int(lengths.min()) // 2, clip_len // 4))
        return cls(layout=layout, num_persons=int(first.shape[3]), channels=tuple(channels),
                   in_channels=int(in_channels), test_pipeline=tuple(dict(s) for s in test_pipeline),
                   test_clips=int(test_clips), seed=int(seed), stream=stream, clip_len=clip_len,
                   min_frames=min_frames or 1)

    # -- checks ----------------------------------------------------------------------------------
    def check_layout(self, found: Layout | str | Mapping | None, what: str = "the input") -> None:
        """Raise :class:`LayoutError` when ``found`` is another skeleton than the model's (see
        :func:`check_layout`). None: not known, not checked."""
        check_layout(self.layout, found, what)

    def conform(self, arr: np.ndarray, *, layout: Layout | str | Mapping | None = None,
                channels: Sequence[str] | None = None, what: str = "the input") -> np.ndarray:
        """A raw clip (C, T, V, M) in the contract's shape: layout and channels checked (names when
        known), person slots zero-padded to M or cut to the first M (as ``stgcn prepare`` does)."""
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim != 4:
            raise ShapeError(f"{what}: expected a raw clip (C, T, V, M), found shape {arr.shape}; an input "
                             "already prepared for the model goes to Predictor.logits_prepared()")
        self.check_layout(layout, what)
        c, t, v, m = arr.shape
        if v != self.layout.num_joints:
            raise LayoutError(f"{what} has {v} joints (V, dim 2); the model's layout {self.layout.name!r} has "
                              f"{self.layout.num_joints}")
        if channels is not None and list(channels) != list(self.channels):
            raise ShapeError(f"{what} has channels {list(channels)}; the model was trained on {list(self.channels)}")
        if c != len(self.channels):
            raise ShapeError(f"{what} has {c} channels (C, dim 0); the model was trained on {list(self.channels)}")
        if t < 1:
            raise ShapeError(f"{what} has no frame (T = 0)")
        if not np.isfinite(arr).all():
            raise ShapeError(f"{what} contains NaN or Inf")
        if m > self.num_persons:
            arr = arr[..., :self.num_persons]
        elif m < self.num_persons:
            arr = np.concatenate([arr, np.zeros((c, t, v, self.num_persons - m), np.float32)], axis=3)
        return np.ascontiguousarray(arr)

    def normalize(self, arr: np.ndarray, image_size: tuple[float, float] | None = None,
                  what: str = "the input") -> np.ndarray:
        """The contract's normalisation of a raw (C, T, V, M) clip: for ``kinetics``, pixels divided by
        ``image_size`` (width, height) and x, y zeroed where the score is 0."""
        if self.normalization != "kinetics":
            return arr
        if arr.shape[0] != 3 or list(self.channels) != ["x", "y", "score"]:
            raise ShapeError(f"{what}: the Kinetics normalisation needs channels x, y, score; found C={arr.shape[0]}")
        out = np.array(arr, dtype=np.float32, copy=True)
        if image_size is not None:
            out[0] /= float(image_size[0])
            out[1] /= float(image_size[1])
        elif float(np.abs(out[:2]).max(initial=0)) > _PIXELS:
            raise ShapeError(f"{what}: pixel coordinates but no image size; this model divides by the frame "
                             "size: give it (e.g. --image-size 340x256, or the sample meta 'image_size')")
        out[0:2][:, out[2] == 0] = 0.0
        return out

    # -- the model input -------------------------------------------------------------------------
    def prepare(self, arr: np.ndarray, *, layout: Layout | str | Mapping | None = None,
                channels: Sequence[str] | None = None, image_size: tuple[float, float] | None = None,
                what: str = "the input") -> np.ndarray:
        """The model input of a raw clip (C, T, V, M): (clips, C, T', V, M), clips = ``test_clips``.

        Conformed (:meth:`conform`), normalised (:meth:`normalize`), then run through the test
        pipeline by :class:`~stgcn.data.dataset.SkeletonDataset`, the code ``stgcn eval`` uses (the
        clip counts as store index 0 for the transforms' generator; test pipelines draw nothing at
        random, or ignore the generator, so the index does not change them).
        """
        x = self.normalize(self.conform(arr, layout=layout, channels=channels, what=what), image_size, what)
        from .data.dataset import SkeletonDataset

        transform, clips = self._test_transform
        item = SkeletonDataset(_OneClip(x), None, transform, seed=self.seed, clips=clips)[0][0].numpy()
        return item if item.ndim == 5 else item[None]

    @cached_property
    def _test_transform(self) -> tuple[Any, int]:
        """(the test pipeline built as evaluation builds it, the clips the dataset must draw)."""
        from .data.pipeline import with_test_clips
        from .data.transforms import build_pipeline

        specs, clips = with_test_clips(self.test_pipeline, self.test_clips)
        return (build_pipeline(specs, self.layout, channels=list(self.channels)) if specs else None), clips


def check_layout(expected: Layout, found: Layout | str | Mapping | None, what: str = "the input",
                 expected_what: str = "the model expects") -> None:
    """Raise :class:`LayoutError` naming both layouts when ``found`` is another skeleton than
    ``expected``: compared by table (joint names in order, bones, centre), not by joint count, so
    an MSR Action3D input is refused by a kinect-v1 model. None: not known, not checked."""
    if found is None:
        return
    found = get_layout(found)
    if found == expected:
        return
    detail = f"{found.num_joints} joints against {expected.num_joints}"
    if found.num_joints == expected.num_joints:
        j = next((i for i, (a, b) in enumerate(zip(found.joint_names, expected.joint_names, strict=True))
                  if a != b), None)
        detail = (f"joint {j} is {found.joint_names[j]!r} there and {expected.joint_names[j]!r} here"
                  if j is not None else "the same joints with other bones or centre")
    raise LayoutError(f"{what} is in layout {found.name!r}, {expected_what} layout {expected.name!r} ({detail})")


def training_layout(requested: str | Mapping | Layout | None, store: Any, file: str | None = None) -> Layout:
    """The layout a model is trained on: ``requested`` (a name, a YAML path, a table) or else the
    store's. A store that knows its layout must be in the requested one (same table, not just the
    same joint count); one that does not (a pyskl pickle of unusual joint count) must have its
    joint count."""
    found = store.joint_layout() if hasattr(store, "joint_layout") else (
        None if str(getattr(store, "layout", "") or "unknown") == "unknown" else get_layout(store.layout))
    where = f"{file}: " if file else ""
    if requested is None:
        if found is None:
            raise LayoutError(f"{where}the data does not say which skeleton layout it is in: pass --layout "
                              "NAME_OR_YAML (see `stgcn layouts`)")
        return found
    lay = get_layout(requested)
    if found is not None:
        check_layout(found, lay, f"{where}the model to train (--layout)", expected_what="the data is in")
        return lay
    v = int(np.asarray(store.get(0)).shape[2])
    if v != lay.num_joints:
        raise LayoutError(f"{where}the data has {v} joints; layout {lay.name!r} has {lay.num_joints}")
    return lay


class _OneClip:
    """A one-clip store: what :class:`SkeletonDataset` reads when a raw clip is prepared."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.labels = np.array([-1], dtype=np.int64)

    def get(self, i: int) -> np.ndarray:
        return self.x.copy()

    def __len__(self) -> int:
        return 1
