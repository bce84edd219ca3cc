"""Transforms on one clip: float32 numpy (C, T, V, M) in, the same out, with an explicit RNG.

Every transform is a callable ``t(x, rng) -> x``; randomness comes only from ``rng`` (a
``np.random.Generator``), so a pipeline is reproducible from a seed and independent of the number
of DataLoader workers. Random transforms also expose ``sample(T, rng)`` (the random draw) and
``apply(x, params)`` (the deterministic part), which is what the tests check against plain
per-frame formulations.

Three families (see docs/data_format.md for every parameter):

* the paper's Kinetics augmentation (§3.7): ``paper_random_move``, ``random_fragment``;
* the official code's (yysijie/st-gcn ``feeder/tools.py``): ``random_choose``, ``random_shift``,
  ``random_move``, ``auto_pading``, and ``pad_to`` (replay / zero padding);
* pyskl's: ``pre_normalize`` (3D), ``uniform_sample`` (UniformSampleFrames), ``center``, and the
  input streams ``stream(kind)`` with kind in joint / bone / joint-motion / bone-motion.

Transforms that need coordinates versus the detection score (2D + score data: channels x, y,
score) take ``channels`` (the store's ``meta["channels"]``); ``build_pipeline`` passes it on.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeError


def _check(x: np.ndarray, name: str, ndim: Sequence[int] = (4,)) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim not in ndim:
        shape = getattr(x, "shape", type(x).__name__)
        raise ShapeError(f"{name}: expected a numpy array (C, T, V, M), got {shape}")
    return x if x.dtype == np.float32 else x.astype(np.float32)


def _coord_channels(c: int, channels: Sequence[str] | None) -> int:
    """Number of leading coordinate channels: all but a trailing 'score' channel."""
    if channels is not None and len(channels) == c and "score" in channels:
        return list(channels).index("score")
    return c


def _valid_frames(x: np.ndarray) -> np.ndarray:
    """Bool (T,): frames where some channel of some joint of some person is non-zero."""
    return (x != 0).any(axis=(0, 2, 3))


class Transform:
    """Base class: subclasses implement ``__call__(x, rng)``."""

    name = ""

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def out_channels(self, channels: int) -> int:
        """How many channels a clip of ``channels`` has after this transform (the model's input)."""
        return channels

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply transforms in order, all drawing from the same generator."""

    name = "compose"

    def __init__(self, transforms: Sequence[Any]):
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            x = t(x, rng)
        return x

    def out_channels(self, channels: int) -> int:
        for t in self.transforms:
            channels = t.out_channels(channels)
        return channels

    def __len__(self) -> int:
        return len(self.transforms)


# -- temporal: official st-gcn ---------------------------------------------------------------------

class AutoPading(Transform):
    """Zero-pad to ``size`` frames (official ``auto_pading``; the spelling is the original's).
    ``random_pad`` puts the clip at a random offset instead of the start. Longer clips pass through."""

    name = "auto_pading"

    def __init__(self, size: int, random_pad: bool = False):
        self.size = int(size)
        self.random_pad = bool(random_pad)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = _check(x, self.name)
        c, t, v, m = x.shape
        if t >= self.size:
            return x
        begin = int(rng.integers(0, self.size - t + 1)) if self.random_pad else 0
        out = np.zeros((c, self.size, v, m), dtype=np.float32)
        out[:, begin:begin + t] = x
        return out


class RandomChoose(Transform):
    """Random contiguous window of ``size`` frames (official ``random_choose``); shorter clips are
    zero-padded at a random offset when ``auto_pad``, else returned as they are."""

    name = "random_choose"

    def __init__(self, size: int, auto_pad: bool = True):
        self.size = int(size)
        self.auto_pad = bool(auto_pad)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = _check(x, self.name)
        t = x.shape[1]
        if t == self.size:
            return x
        if t < self.size:
            return AutoPading(self.size, random_pad=True)(x, rng) if self.auto_pad else x
        begin = int(rng.integers(0, t - self.size + 1))
        return x[:, begin:begin + self.size]


class RandomShift(Transform):
    """Move the non-empty frame range to a random offset inside the same length (official
    ``random_shift``); the rest becomes zeros."""

    name = "random_shift"

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = _check(x, self.name)
        valid = _valid_frames(x)
        if not valid.any():
            return x.copy()
        begin = int(valid.argmax())
        end = len(valid) - int(valid[::-1].argmax())
        size = end - begin
        bias = int(rng.integers(0, x.shape[1] - size + 1))
        out = np.zeros_like(x)
        out[:, bias:bias + size] = x[:, begin:end]
        return out


class PadTo(Transform):
    """Pad to ``length`` frames: ``loop`` replays the clip (the paper's Kinetics padding, pyskl
    ``PadTo``), ``zero`` appends zeros. Longer clips are cut to their first ``length`` frames (put
    ``random_choose`` / ``uniform_sample`` before it to choose which part instead)."""

    name = "pad_to"

    def __init__(self, length: int, mode: str = "loop"):
        if mode not in ("loop", "zero"):
            raise ConfigError(f"pad_to: mode must be 'loop' or 'zero', got {mode!r}")
        self.length = int(length)
        self.mode = mode

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _check(x, self.name)
        t = x.shape[1]
        if t >= self.length:
            return x[:, :self.length]
        if self.mode == "zero":
            out = np.zeros((x.shape[0], self.length) + x.shape[2:], dtype=np.float32)
            out[:, :t] = x
            return out
        return x[:, np.arange(self.length) % t]


def _affine_xy(x: np.ndarray, angle_deg: np.ndarray, scale: np.ndarray, tx: np.ndarray,
               ty: np.ndarray) -> np.ndarray:
    """Per-frame rotation, scale and translation of channels 0 and 1; the others are untouched."""
    a = np.deg2rad(angle_deg)[:, None, None]
    s = scale[:, None, None]
    cos, sin = np.cos(a) * s, np.sin(a) * s
    out = x.copy()
    out[0] = cos * x[0] - sin * x[1] + tx[:, None, None]
    out[1] = sin * x[0] + cos * x[1] + ty[:, None, None]
    return out


class RandomMove(Transform):
    """Official ``random_move``: the clip is cut into ``move_time`` equal segments; at each segment
    boundary an angle (degrees), scale and x/y translation are drawn from the candidates; within a
    segment they are interpolated linearly (``np.linspace`` including both ends, as the original),
    and every frame gets the resulting rotation+scale of (x, y) plus the translation. Applied to
    all joints, zeros included, like the original."""

    name = "random_move"

    def __init__(self, angle_candidate: Sequence[float] = (-10.0, -5.0, 0.0, 5.0, 10.0),
                 scale_candidate: Sequence[float] = (0.9, 1.0, 1.1),
                 transform_candidate: Sequence[float] = (-0.2, -0.1, 0.0, 0.1, 0.2),
                 move_time_candidate: Sequence[int] = (1,)):
        self.angle_candidate = [float(a) for a in angle_candidate]
        self.scale_candidate = [float(a) for a in scale_candidate]
        self.transform_candidate = [float(a) for a in transform_candidate]
        self.move_time_candidate = [int(a) for a in move_time_candidate]

    def sample(self, t: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Nodes and per-node factors, as the original draws them."""
        move_time = int(rng.choice(self.move_time_candidate))
        node = np.arange(0, t, t * 1.0 / move_time).round().astype(int)
        node = np.append(node, t)
        n = len(node)
        return {"node": node, "A": rng.choice(self.angle_candidate, n), "S": rng.choice(self.scale_candidate, n),
                "TX": rng.choice(self.transform_candidate, n), "TY": rng.choice(self.transform_candidate, n)}

    @staticmethod
    def per_frame(p: dict[str, np.ndarray], t: int) -> tuple[np.ndarray, ...]:
        node = p["node"]
        frames = np.arange(t)
        seg = np.clip(np.searchsorted(node, frames, side="right") - 1, 0, len(node) - 2)
        length = node[seg + 1] - node[seg]
        # linspace(a, b, n)[k] = a + (b - a) * k / (n - 1); n == 1 gives a.
        frac = np.where(length > 1, (frames - node[seg]) / np.maximum(length - 1, 1), 0.0)
        return tuple(p[k][seg] + (p[k][seg + 1] - p[k][seg]) * frac for k in ("A", "S", "TX", "TY"))

    def apply(self, x: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
        a, s, tx, ty = self.per_frame(p, x.shape[1])
        return _affine_xy(x, a, s, tx, ty)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = _check(x, self.name)
        return self.apply(x, self.sample(x.shape[1], rng))


# -- the paper's Kinetics augmentation (§3.7) -----------------------------------------------------

class PaperRandomMove(Transform):
    """Random moving (paper §3.7): two combinations of (angle, scale, x/y translation) are drawn
    from fixed candidates, one for the first frame and one for the last; the affine transform is
    interpolated linearly over the frames in between, as if the view point moved smoothly. Acts on
    the coordinates (x, y); ``skip_missing`` keeps joints that are exactly zero (not detected) at 0."""

    name = "paper_random_move"

    def __init__(self, angle_candidate: Sequence[float] = (-10.0, -5.0, 0.0, 5.0, 10.0),
                 scale_candidate: Sequence[float] = (0.9, 1.0, 1.1),
                 transform_candidate: Sequence[float] = (-0.2, -0.1, 0.0, 0.1, 0.2),
                 skip_missing: bool = False):
        self.angle_candidate = [float(a) for a in angle_candidate]
        self.scale_candidate = [float(a) for a in scale_candidate]
        self.transform_candidate = [float(a) for a in transform_candidate]
        self.skip_missing = bool(skip_missing)

    def sample(self, t: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """(start, end) of each factor."""
        return {"angle": rng.choice(self.angle_candidate, 2), "scale": rng.choice(self.scale_candidate, 2),
                "tx": rng.choice(self.transform_candidate, 2), "ty": rng.choice(self.transform_candidate, 2)}

    def apply(self, x: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
        t = x.shape[1]
        w = np.linspace(0.0, 1.0, t) if t > 1 else np.zeros(1)
        f = {k: v[0] + (v[1] - v[0]) * w for k, v in p.items()}
        out = _affine_xy(x, f["angle"], f["scale"], f["tx"], f["ty"])
        if self.skip_missing:
            missing = (x[:2] == 0).all(axis=0)
            out[:2][:, missing] = 0
        return out

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = _check(x, self.name)
        return self.apply(x, self.sample(x.shape[1], rng))


class RandomFragment(Transform):
    """Random fragment sampling (paper §3.7): in training a random contiguous fragment of
    ``length`` frames; with ``test_mode`` (or a clip no longer than ``length``) all frames. The
    network's global pooling takes any length; ``pad_collate`` pads a batch to its longest clip
    (by replaying the shorter clips)."""

    name = "random_fragment"

    def __init__(self, length: int, test_mode: bool = False):
        self.length = int(length)
        self.test_mode = bool(test_mode)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = _check(x, self.name)
        t = x.shape[1]
        if self.test_mode or t <= self.length:
            return x
        begin = int(rng.integers(0, t - self.length + 1))
        return x[:, begin:begin + self.length]


# -- pyskl ---------------------------------------------------------------------------------------

# Joint names tried, in order, when a layout other than ntu-rgb+d is given.
_CENTER_NAMES = ("spine_mid", "spine", "torso")
_Z_BOTTOM_NAMES = ("spine_base", "hip_center", "torso")
_Z_TOP_NAMES = ("spine_mid", "spine", "neck", "spine_shoulder", "shoulder_center")
_RSHOULDER_NAMES = ("right_shoulder",)
_LSHOULDER_NAMES = ("left_shoulder",)


def _rotation_matrix(axis: np.ndarray, theta: float) -> np.ndarray:
    """Euler-Rodrigues rotation by ``theta`` about ``axis`` (pyskl / 2s-AGCN's convention)."""
    if np.abs(axis).sum() < 1e-6 or abs(theta) < 1e-6:
        return np.eye(3)
    axis = axis / np.sqrt(np.dot(axis, axis))
    a = np.cos(theta / 2.0)
    b, c, d = -axis * np.sin(theta / 2.0)
    aa, bb, cc, dd = a * a, b * b, c * c, d * d
    bc, ad, ac, ab, bd, cd = b * c, a * d, a * c, a * b, b * d, c * d
    return np.array([[aa + bb - cc - dd, 2 * (bc + ad), 2 * (bd - ac)],
                     [2 * (bc - ad), aa + cc - bb - dd, 2 * (cd + ab)],
                     [2 * (bd + ac), 2 * (cd - ab), aa + dd - bb - cc]])


def _angle_between(v1: np.ndarray, v2: np.ndarray) -> float:
    if np.abs(v1).sum() < 1e-6 or np.abs(v2).sum() < 1e-6:
        return 0.0
    u1, u2 = v1 / np.linalg.norm(v1), v2 / np.linalg.norm(v2)
    return float(np.arccos(np.clip(np.dot(u1, u2), -1.0, 1.0)))


class PreNormalize(Transform):
    """pyskl ``PreNormalize3D`` (from 2s-AGCN), for 3D skeletons (C = 3: x, y, z).

    1. The main person is the one with most non-empty frames (ties: the first); it is moved to
       person slot 0 and the frames where it is empty are dropped (T may shrink).
    2. ``align_center``: subtract its ``center_joint`` at the first frame; missing joints stay 0.
    3. ``align_spine``: rotate so the bone ``zaxis[0] -> zaxis[1]`` (hip -> spine) of the first frame
       points along +z, then so ``xaxis[0] -> xaxis[1]`` (right -> left shoulder) points along +x.

    Defaults are ntu-rgb+d's joints (1 spine_mid; 0 -> 1; 8 -> 4). With another ``layout`` the
    joints are looked up by name (spine/torso, hip centre, shoulders); pass indices explicitly for
    layouts without such names.
    """

    name = "pre_normalize"

    def __init__(self, center_joint: int | None = None, zaxis: Sequence[int] | None = None,
                 xaxis: Sequence[int] | None = None, align_center: bool = True, align_spine: bool = True,
                 layout: Any = None):
        if layout is None:  # pyskl's defaults are NTU RGB+D's joints, which the names below find
            from ..graph import get_layout

            layout = get_layout("ntu-rgb+d")
        self.center_joint = center_joint if center_joint is not None else _lookup(layout, _CENTER_NAMES,
                                                                                  "center_joint")
        self.zaxis = list(zaxis) if zaxis is not None else [_lookup(layout, _Z_BOTTOM_NAMES, "zaxis"),
                                                            _lookup(layout, _Z_TOP_NAMES, "zaxis")]
        self.xaxis = list(xaxis) if xaxis is not None else [_lookup(layout, _RSHOULDER_NAMES, "xaxis"),
                                                            _lookup(layout, _LSHOULDER_NAMES, "xaxis")]
        self.align_center = bool(align_center)
        self.align_spine = bool(align_spine)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _check(x, self.name)
        if x.shape[0] != 3:
            raise ShapeError(f"pre_normalize needs 3D coordinates (C = 3), got C = {x.shape[0]}")
        if not x.any():
            return x
        valid = (~np.isclose(x, 0)).any(axis=(0, 2))  # (T, M)
        main = int(valid.sum(axis=0).argmax())
        order = [main] + [m for m in range(x.shape[3]) if m != main]
        x = x[:, valid[:, main]][..., order]
        if self.align_center:
            origin = x[:, 0, self.center_joint, 0].copy()
            present = (x != 0).any(axis=0, keepdims=True)
            x = (x - origin[:, None, None, None]) * present
        if self.align_spine:
            for (j0, j1), target in ((self.zaxis, (0.0, 0.0, 1.0)), (self.xaxis, (1.0, 0.0, 0.0))):
                bone = x[:, 0, j1, 0] - x[:, 0, j0, 0]
                target = np.array(target)
                r = _rotation_matrix(np.cross(bone, target), _angle_between(bone, target))
                x = np.einsum("kc,ctvm->ktvm", r, x)
        return np.ascontiguousarray(x, dtype=np.float32)


def _lookup(layout: Any, names: Sequence[str], what: str) -> int:
    joints = list(getattr(layout, "joint_names", []) or [])
    for n in names:
        if n in joints:
            return joints.index(n)
    raise ConfigError(f"pre_normalize: layout {getattr(layout, 'name', layout)!r} has none of the joints "
                      f"{list(names)} needed for {what}; pass {what} as joint indices")


class UniformSample(Transform):
    """pyskl ``UniformSampleFrames``: split the clip into ``clip_len`` equal segments and take one
    frame from each (random in training, reproducible in ``test_mode``); clips shorter than
    ``clip_len`` are looped from a random start; between ``clip_len`` and ``2 * clip_len`` frames a
    random subset of single frames is skipped. ``p_interval`` (a number or (lo, hi)) first keeps a
    random fraction of the clip. ``num_clips > 1`` returns (num_clips, C, clip_len, V, M).

    In ``test_mode`` the draw ignores ``rng`` and uses ``np.random.RandomState(seed)`` with pyskl's
    call order, so test-time indices equal pyskl's for the same ``seed`` (255 by default).
    """

    name = "uniform_sample"

    def __init__(self, clip_len: int, num_clips: int = 1, test_mode: bool = False,
                 p_interval: float | Sequence[float] = 1.0, seed: int = 255):
        self.clip_len = int(clip_len)
        self.num_clips = int(num_clips)
        self.test_mode = bool(test_mode)
        pi = p_interval if isinstance(p_interval, list | tuple) else (p_interval, p_interval)
        self.p_interval = (float(pi[0]), float(pi[1]))
        self.seed = int(seed)

    def indices(self, t: int, rng: np.random.Generator) -> np.ndarray:
        """Frame indices (num_clips * clip_len,), already taken modulo ``t``."""
        if self.test_mode:
            rs = np.random.RandomState(self.seed)
            rand, randint, choice = rs.rand, rs.randint, rs.choice
        else:
            rand = rng.random
            randint = rng.integers
            choice = rng.choice
        cl, lo, hi = self.clip_len, self.p_interval[0], self.p_interval[1]
        out = []
        for i in range(self.num_clips):
            n = int((rand() * (hi - lo) + lo) * t)
            off = int(randint(t - n + 1))
            if n < cl:
                if self.test_mode:
                    start = i if n < self.num_clips else i * n // self.num_clips
                else:
                    start = int(randint(0, n)) if n > 0 else 0
                inds = np.arange(start, start + cl)
            elif n < 2 * cl:
                skip = np.zeros(cl + 1, dtype=np.int64)
                skip[choice(cl + 1, n - cl, replace=False)] = 1
                inds = np.arange(cl) + np.cumsum(skip)[:-1]
            else:
                bids = np.arange(cl + 1) * n // cl
                inds = bids[:cl] + randint(np.diff(bids))
            out.append(inds + off)
        return np.mod(np.concatenate(out), t)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = _check(x, self.name)
        inds = self.indices(x.shape[1], rng)
        y = x[:, inds]
        if self.num_clips == 1:
            return y
        c, _, v, m = x.shape
        return np.ascontiguousarray(y.reshape(c, self.num_clips, self.clip_len, v, m).transpose(1, 0, 2, 3, 4))


class Resample(Transform):
    """Stretch or squeeze the clip to ``clip_len`` frames by linear interpolation in time, the first
    and last frame kept (CTR-GCN's ``valid_crop_resize``). Unlike ``uniform_sample``, which loops a
    clip shorter than ``clip_len``, the motion keeps its direction: a 9-frame push does not become
    push-jump-push. In training a random fraction ``U(p_interval)`` of the frames (at least 2) is
    first cut at a random offset; ``test_mode`` takes the whole clip (nothing random)."""

    name = "resample"

    def __init__(self, clip_len: int, p_interval: float | Sequence[float] = 1.0, test_mode: bool = False):
        self.clip_len = int(clip_len)
        if self.clip_len < 1:
            raise ConfigError(f"resample: clip_len must be >= 1, got {clip_len}")
        pi = p_interval if isinstance(p_interval, list | tuple) else (p_interval, p_interval)
        self.p_interval = (float(pi[0]), float(pi[1]))
        if not 0 < self.p_interval[0] <= self.p_interval[1] <= 1:
            raise ConfigError(f"resample: p_interval must satisfy 0 < lo <= hi <= 1, got {p_interval!r}")
        self.test_mode = bool(test_mode)

    def positions(self, t: int, rng: np.random.Generator | None) -> np.ndarray:
        """The fractional source frame of each output frame (clip_len,)."""
        start, n = 0, t
        if not self.test_mode and t > 2:
            lo, hi = self.p_interval
            n = min(t, max(2, int(round(rng.uniform(lo, hi) * t))))
            start = int(rng.integers(0, t - n + 1))
        if self.clip_len == 1:
            return np.array([start + (n - 1) / 2.0])
        return start + np.linspace(0.0, n - 1, self.clip_len)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _check(x, self.name)
        pos = self.positions(x.shape[1], rng)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, x.shape[1] - 1)
        w = (pos - lo).astype(np.float32)[None, :, None, None]
        return np.ascontiguousarray(x[:, lo] * (1 - w) + x[:, hi] * w, dtype=np.float32)


class Center(Transform):
    """Move the origin. With ``value`` (the official Kinetics feeder's 0.5 for [0, 1] coordinates)
    subtract that constant; otherwise subtract the position of ``joint`` (default: the layout's
    centre joint) of person 0 at its first non-empty frame, or with ``per_frame`` at every frame
    (the body's own frame of reference: posture without the path it walks; motion streams computed
    after it then carry no trajectory either). Only coordinate channels change (not a 'score'
    channel) and joints that are exactly zero (missing) stay zero. Works on 4D and 5D input."""

    name = "center"

    def __init__(self, value: float | None = None, joint: int | None = None, per_frame: bool = False,
                 layout: Any = None, channels: Sequence[str] | None = None):
        self.value = None if value is None else float(value)
        self.per_frame = bool(per_frame)
        self.joint = joint if joint is not None else (int(layout.center) if layout is not None else None)
        if self.value is None and self.joint is None:
            raise ConfigError("center: give value= (a constant) or joint= (or build it with a layout)")
        self.channels = None if channels is None else list(channels)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _check(x, self.name, (4, 5))
        nc = _coord_channels(x.shape[-4], self.channels)
        out = x.copy()
        coords = out[..., :nc, :, :, :]
        present = (coords != 0).any(axis=-4, keepdims=True)
        if self.value is not None:
            origin = np.float32(self.value)
        elif self.per_frame:
            origin = coords[..., :, :, self.joint, 0][..., None, None]  # (..., C, T, 1, 1)
        else:
            valid = (coords[..., :, :, 0] != 0).any(axis=(-3, -1))  # (..., T) frames where person 0 exists
            first = valid.argmax(axis=-1)
            origin = np.take_along_axis(coords[..., :, :, self.joint, 0],
                                        first[..., None, None], axis=-1)[..., None, None]  # (..., C, 1, 1, 1)
        coords -= origin
        coords *= present
        return out


class Stream(Transform):
    """Input stream (pyskl's j / b / jm / bm): ``joint`` (unchanged), ``bone`` (joint minus its parent
    in the layout; the centre joint's bone is 0), ``joint-motion`` (x[t + 1] - x[t], last frame 0),
    ``bone-motion`` (motion of the bones). A 'score' channel (2D + score data) is left as it is.
    Works on 4D and 5D input."""

    name = "stream"
    KINDS = ("joint", "bone", "joint-motion", "bone-motion")

    def __init__(self, kind: str = "joint", layout: Any = None, channels: Sequence[str] | None = None):
        if kind not in self.KINDS:
            raise ConfigError(f"stream: unknown kind {kind!r}; valid: {list(self.KINDS)}")
        if kind.startswith("bone") and layout is None:
            raise ConfigError(f"stream {kind!r} needs the layout (its parents); build it with a layout")
        self.kind = kind
        self.channels = None if channels is None else list(channels)
        self._parents = None if layout is None else np.asarray(layout.parents, dtype=np.int64)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _check(x, self.name, (4, 5))
        if self.kind == "joint":
            return x
        nc = _coord_channels(x.shape[-4], self.channels)
        out = x.copy()
        coords = out[..., :nc, :, :, :]
        if self.kind.startswith("bone"):
            if len(self._parents) != x.shape[-2]:
                raise ShapeError(f"stream {self.kind}: layout has {len(self._parents)} joints, data has "
                                 f"{x.shape[-2]}")
            coords[...] = coords - coords[..., self._parents, :]
        if self.kind.endswith("motion"):
            coords[..., :-1, :, :] = coords[..., 1:, :, :] - coords[..., :-1, :, :]
            coords[..., -1, :, :] = 0
        return out


class ConcatStreams(Transform):
    """Several input streams stacked on the channel axis (early fusion): ``kinds=["joint", "bone"]``
    turns (3, T, V, M) into (6, T, V, M), and the model's first layer sees both. One model instead of
    one per stream and a score fusion (``stgcn train --streams``). Put it last in the pipeline (no
    ``{name: stream}`` placeholder is needed: the run's ``data.stream`` must stay ``joint``)."""

    name = "concat_streams"

    def __init__(self, kinds: Sequence[str] = ("joint", "bone"), layout: Any = None,
                 channels: Sequence[str] | None = None):
        if not kinds:
            raise ConfigError("concat_streams: kinds is empty")
        self.kinds = list(kinds)
        self._streams = [Stream(k, layout=layout, channels=channels) for k in self.kinds]

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _check(x, self.name, (4, 5))
        return np.concatenate([s(x) for s in self._streams], axis=-4)

    def out_channels(self, channels: int) -> int:
        return channels * len(self.kinds)


# -- random linear maps of the coordinates (small-dataset augmentation) ---------------------------

def _rotation_xyz(angles_rad: np.ndarray) -> np.ndarray:
    """``Rz @ Ry @ Rx``: rotation by the three angles about the x, then y, then z axis."""
    cx, cy, cz = np.cos(angles_rad)
    sx, sy, sz = np.sin(angles_rad)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


class _RandomLinear(Transform):
    """One random matrix per clip, applied to the coordinate vector of every joint of every frame
    and person (``x' = A x``). Linear, so missing joints (exact zeros) stay zero and the origin
    (put it on the body first: ``center`` or ``pre_normalize``) stays fixed. 3D coordinates use the
    3 x 3 matrix; 2D (+ score) data its top-left 2 x 2 block, and a score channel is untouched."""

    def __init__(self, channels: Sequence[str] | None = None):
        self.channels = None if channels is None else list(channels)

    def sample(self, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def apply(self, x: np.ndarray, a: np.ndarray) -> np.ndarray:
        nc = min(_coord_channels(x.shape[0], self.channels), 3)
        out = x.copy()
        out[:nc] = np.einsum("kc,ctvm->ktvm", a[:nc, :nc].astype(np.float32), x[:nc])
        return out

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = _check(x, self.name)
        return self.apply(x, self.sample(rng))


class RandomRotate(_RandomLinear):
    """Rotate the clip by angles drawn uniformly from ``[-angle, angle]`` degrees about each axis
    (``angle`` a number or (x, y, z); order x, then y, then z), as pyskl's ``RandomRot`` and
    CTR-GCN's ``random_rot`` do: views a small dataset was not recorded from."""

    name = "random_rotate"

    def __init__(self, angle: float | Sequence[float] = 17.0, channels: Sequence[str] | None = None):
        super().__init__(channels)
        a = angle if isinstance(angle, list | tuple) else (angle, angle, angle)
        if len(a) != 3:
            raise ConfigError(f"random_rotate: angle must be a number or 3 numbers (x, y, z), got {angle!r}")
        self.angle = [float(v) for v in a]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        lim = np.deg2rad(self.angle)
        return _rotation_xyz(rng.uniform(-lim, lim))


class RandomScale(_RandomLinear):
    """Scale each axis by its own factor ``1 + u``, ``u`` uniform in ``[-scale, scale]`` (pyskl's
    ``RandomScale``): body sizes and proportions the training subjects did not have."""

    name = "random_scale"

    def __init__(self, scale: float = 0.1, channels: Sequence[str] | None = None):
        super().__init__(channels)
        self.scale = float(scale)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return np.diag(1.0 + rng.uniform(-self.scale, self.scale, 3))


class RandomShear(_RandomLinear):
    """Shear: the identity with its six off-diagonal entries drawn uniformly from
    ``[-shear, shear]`` (the skeleton shear of 2s-AGCN / SkeletonCLR augmentation)."""

    name = "random_shear"

    def __init__(self, shear: float = 0.1, channels: Sequence[str] | None = None):
        super().__init__(channels)
        self.shear = float(shear)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        a = np.eye(3)
        off = ~np.eye(3, dtype=bool)
        a[off] = rng.uniform(-self.shear, self.shear, 6)
        return a


TRANSFORMS: dict[str, type] = {cls.name: cls for cls in (
    PadTo, AutoPading, RandomChoose, RandomShift, RandomMove, PaperRandomMove, RandomFragment,
    PreNormalize, UniformSample, Resample, Center, Stream, ConcatStreams, RandomRotate, RandomScale,
    RandomShear)}


def build_pipeline(specs: Sequence[dict] | None, layout: Any = None,
                   channels: Sequence[str] | None = None) -> Compose:
    """``[{"name": "random_choose", "size": 150}, ...]`` -> :class:`Compose`. ``layout`` (a Layout or
    a name) and ``channels`` are handed to the transforms that take them. Unknown names or
    arguments raise :class:`ConfigError` listing the valid ones."""
    if isinstance(layout, str):
        from ..graph import get_layout

        layout = get_layout(layout)
    out = []
    for i, spec in enumerate(specs or []):
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"transform #{i}: expected a mapping with a 'name' key, got {spec!r}")
        kwargs = dict(spec)
        name = kwargs.pop("name")
        cls = TRANSFORMS.get(name)
        if cls is None:
            raise ConfigError(f"transform #{i}: unknown transform {name!r}; valid: {sorted(TRANSFORMS)}")
        params = inspect.signature(cls.__init__).parameters
        allowed = [p for p in params if p not in ("self", "layout", "channels")]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ConfigError(f"transform #{i} {name!r}: unknown arguments {unknown}; valid: {allowed}")
        if "layout" in params:
            kwargs["layout"] = layout
        if "channels" in params:
            kwargs["channels"] = channels
        try:
            out.append(cls(**kwargs))
        except TypeError as exc:
            raise ConfigError(f"transform #{i} {name!r}: {exc}") from None
    return Compose(out)
