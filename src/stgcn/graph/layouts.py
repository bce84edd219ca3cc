"""Skeleton layouts: joint names, bones, the centre joint and what else is true of a skeleton, in
one table per skeleton.

Bones, left/right flips, parents (for the bone stream) and the adjacency matrices are all derived
from this one table, so a topology is never written twice. Joint indices are 0-based. The official
ST-GCN names (``openpose``, ``ntu-rgb+d``, ``ntu_edge``) are the canonical names of those layouts.

A layout also carries its facts: ``dims`` (2: image keypoints x, y with a confidence; 3: metric
x, y, z), its ``aliases``, and the input ``normalization`` the official ST-GCN checkpoints of that
layout use (``kinetics`` for ``openpose``). Adding a layout is one ``_register`` entry. A layout
travels as its table (:meth:`Layout.to_dict` / :meth:`Layout.from_dict`), so a custom one read from
YAML works in any folder once it is in a store or a checkpoint.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LayoutError

# Far above any skeleton (COCO-WholeBody has 133 joints) and small enough that the graph's
# (K, V, V) float32 matrices and (V, V) hop distances stay a few megabytes: a YAML line such as
# `joints: 100000000` is refused before anything is sized by it.
MAX_JOINTS = 1024

# input normalisations: "kinetics" divides pixel coordinates by the frame size (Kinetics-skeleton)
NORMALIZATIONS = ("none", "kinetics")
_TABLE_KEYS = ("name", "joints", "edges", "center", "description", "dims", "aliases", "normalization")


@dataclass(frozen=True, eq=False)
class Layout:
    """A skeleton: ``num_joints`` named joints, undirected ``edges`` (bones) and a ``center`` joint.

    ``center`` is the fixed root joint the official code uses for the spatial partition (the paper's
    gravity centre is selectable in :class:`stgcn.graph.Graph`). Two layouts are equal when their
    tables are: the same joint names in the same order, the same bones and the same centre (name,
    aliases, description and where it was read from do not matter).
    """

    name: str
    joint_names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    center: int
    description: str = ""
    source: str | None = None  # YAML file for custom layouts (for messages; never stored)
    dims: int | None = None    # 2: image keypoints (x, y, confidence); 3: metric x, y, z; None: unknown
    aliases: tuple[str, ...] = ()
    normalization: str = "none"  # input normalisation of the official checkpoints on this layout
    _parents: tuple[int, ...] = field(default=(), repr=False)
    _key: tuple = field(default=(), repr=False)

    def __post_init__(self) -> None:
        v = len(self.joint_names)
        where = self.source or self.name
        if v == 0:
            raise LayoutError(f"layout {where!r}: no joints")
        if v > MAX_JOINTS:
            raise LayoutError(f"layout {where!r}: {v} joints, more than the {MAX_JOINTS} a layout may have")
        if len(set(self.joint_names)) != v:
            dup = sorted({n for n in self.joint_names if self.joint_names.count(n) > 1})
            raise LayoutError(f"layout {where!r}: duplicate joint names {dup}")
        for k, (i, j) in enumerate(self.edges):
            for end in (i, j):
                if not (0 <= end < v):
                    raise LayoutError(
                        f"layout {where!r}: edge {k} ({i}, {j}) refers to joint {end}, "
                        f"but the layout has joints 0..{v - 1}"
                    )
            if i == j:
                raise LayoutError(f"layout {where!r}: edge {k} ({i}, {j}) is a self loop; self links are implicit")
        if not (0 <= self.center < v):
            raise LayoutError(f"layout {where!r}: center {self.center} is not a joint index in 0..{v - 1}")
        if self.dims not in (None, 2, 3):
            raise LayoutError(f"layout {where!r}: dims must be 2 (image keypoints) or 3 (metric), not {self.dims!r}")
        if self.normalization not in NORMALIZATIONS:
            raise LayoutError(f"layout {where!r}: normalization must be one of {list(NORMALIZATIONS)}, "
                              f"not {self.normalization!r}")
        object.__setattr__(self, "_parents", tuple(_bfs_parents(v, self.edges, self.center, where)))
        bones = tuple(sorted(tuple(sorted(e)) for e in self.edges))
        object.__setattr__(self, "_key", (self.joint_names, bones, self.center))

    # -- identity --------------------------------------------------------------------------------
    @property
    def key(self) -> tuple:
        """What makes two layouts the same skeleton: joint names in order, the set of bones, the centre."""
        return self._key

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Layout) and self._key == other._key)

    def __hash__(self) -> int:
        return hash(self._key)

    @property
    def builtin(self) -> bool:
        """Whether this is (the table of) the built-in layout of its name."""
        return _BUILTIN.get(self.name) == self

    @property
    def canonical(self) -> Layout | None:
        """The built-in layout with this table (whatever this one is called), or None."""
        return _BY_KEY.get(self._key)

    @property
    def ref(self) -> str | dict:
        """How to find this layout again anywhere: a built-in's name, a custom layout's table."""
        return self.name if self.builtin else self.to_dict()

    def to_dict(self) -> dict:
        """The table as plain data (JSON, YAML, ``torch.load(weights_only=True)``)."""
        return {"name": self.name, "joints": list(self.joint_names), "edges": [list(e) for e in self.edges],
                "center": self.center, "description": self.description, "dims": self.dims,
                "aliases": list(self.aliases), "normalization": self.normalization}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str | None = None) -> Layout:
        """A layout from its table (what :meth:`to_dict` or a layout YAML holds), validated.

        Keys: ``joints`` (names, or a count), ``edges`` (pairs of names or 0-based indices),
        ``center`` (name or index); optional ``name``, ``description``, ``dims``, ``aliases``,
        ``normalization``. Every problem is a :class:`LayoutError` naming ``where``.
        """
        if not isinstance(doc, Mapping):
            raise LayoutError(f"{where or 'layout'}: expected a mapping with keys 'joints', 'edges', 'center'")
        source = where
        where = where or f"layout {str(doc.get('name', 'custom'))!r}"
        unknown = set(doc) - set(_TABLE_KEYS)
        if unknown:
            raise LayoutError(f"{where}: unknown keys {sorted(unknown)}; allowed: {', '.join(_TABLE_KEYS)}")
        for key in ("joints", "edges", "center"):
            if key not in doc:
                raise LayoutError(f"{where}: missing key {key!r}")
        joints = _joint_names(doc["joints"], where)
        index = {n: i for i, n in enumerate(joints)}

        def resolve(x, what: str) -> int:
            if isinstance(x, bool):
                raise LayoutError(f"{where}: {what}: {x!r} is not a joint")
            if isinstance(x, int):
                if not 0 <= x < len(joints):
                    raise LayoutError(f"{where}: {what}: joint index {x} out of range 0..{len(joints) - 1}")
                return x
            if isinstance(x, str) and x in index:
                return index[x]
            raise LayoutError(f"{where}: {what}: {x!r} is not one of the joints {joints}")

        edges = doc["edges"]
        if not isinstance(edges, list | tuple):
            raise LayoutError(f"{where}: 'edges' must be a list of [joint, joint] pairs")
        pairs = []
        for k, e in enumerate(edges):
            if not isinstance(e, list | tuple) or len(e) != 2:
                raise LayoutError(f"{where}: edges[{k}]: expected a pair [joint, joint], found {e!r}")
            pairs.append((resolve(e[0], f"edges[{k}]"), resolve(e[1], f"edges[{k}]")))
        center = resolve(doc["center"], "center")
        aliases = doc.get("aliases") or ()
        if not isinstance(aliases, list | tuple) or not all(isinstance(a, str) for a in aliases):
            raise LayoutError(f"{where}: 'aliases' must be a list of names")
        return cls(str(doc.get("name", "custom")), tuple(joints), tuple(pairs), center,
                   description=str(doc.get("description") or ""), source=source, dims=doc.get("dims"),
                   aliases=tuple(aliases), normalization=str(doc.get("normalization") or "none"))

    # -- derived ---------------------------------------------------------------------------------
    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def parents(self) -> np.ndarray:
        """For each joint, its neighbour one hop closer to the centre (``parents[center] == center``)."""
        return np.asarray(self._parents, dtype=np.int64)

    @property
    def bones(self) -> list[tuple[int, int]]:
        """(child, parent) pairs of the tree rooted at the centre, one per non-centre joint."""
        return [(j, p) for j, p in enumerate(self._parents) if j != p]

    @property
    def flip_pairs(self) -> list[tuple[int, int]]:
        """Pairs of joints that swap under a left/right mirror, matched by name."""
        index = {n: i for i, n in enumerate(self.joint_names)}
        pairs = []
        for i, n in enumerate(self.joint_names):
            m = _mirror_name(n)
            if m != n and m in index and i < index[m]:
                pairs.append((i, index[m]))
        return pairs

    def index(self, joint: str) -> int:
        try:
            return self.joint_names.index(joint)
        except ValueError:
            raise LayoutError(
                f"layout {self.name!r} has no joint {joint!r}; joints: {list(self.joint_names)}") from None


def _mirror_name(name: str) -> str:
    for a, b in (("left", "right"), ("right", "left")):
        if a in name:
            return name.replace(a, b)
    return name


def _bfs_parents(v: int, edges, center: int, where: str) -> list[int]:
    adj: list[list[int]] = [[] for _ in range(v)]
    for i, j in edges:
        adj[i].append(j)
        adj[j].append(i)
    parent = [-1] * v
    parent[center] = center
    queue = deque([center])
    while queue:
        u = queue.popleft()
        for w in sorted(adj[u]):
            if parent[w] < 0:
                parent[w] = u
                queue.append(w)
    missing = [i for i, p in enumerate(parent) if p < 0]
    if missing:
        raise LayoutError(f"layout {where!r}: joints {missing} are not connected to the center joint {center}")
    return parent


def _joint_names(joints: Any, where: str) -> list[str]:
    """The joint names of a table: a list of names, or a count (names ``joint_0`` ...), bounded."""
    if isinstance(joints, int) and not isinstance(joints, bool):
        if not 0 < joints <= MAX_JOINTS:
            raise LayoutError(f"{where}: 'joints: {joints}': a layout has 1..{MAX_JOINTS} joints")
        return [f"joint_{i}" for i in range(joints)]
    if not isinstance(joints, list | tuple) or not all(isinstance(j, str) for j in joints):
        raise LayoutError(f"{where}: 'joints' must be a list of joint names (or a joint count)")
    if len(joints) > MAX_JOINTS:
        raise LayoutError(f"{where}: {len(joints)} joints, more than the {MAX_JOINTS} a layout may have")
    return list(joints)


def _one_based(pairs):
    return tuple((i - 1, j - 1) for i, j in pairs)


_OPENPOSE_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
_NTU_NAMES = (
    "spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee", "left_ankle",
    "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot", "spine_shoulder",
    "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
)
_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)
_MEDIAPIPE_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)
_KINECT_V1_NAMES = (
    "hip_center", "spine", "shoulder_center", "head", "left_shoulder", "left_elbow", "left_wrist",
    "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee",
    "left_ankle", "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot",
)
_MSR_NAMES = (
    "left_shoulder", "right_shoulder", "shoulder_center", "spine", "left_hip", "right_hip", "hip_center",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand", "left_knee",
    "right_knee", "left_ankle", "right_ankle", "left_foot", "right_foot", "head",
)
_OPENNI15_NAMES = (
    "head", "neck", "torso", "left_shoulder", "left_elbow", "left_hand", "right_shoulder", "right_elbow",
    "right_hand", "left_hip", "left_knee", "left_foot", "right_hip", "right_knee", "right_foot",
)
_BODY25_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
    "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)
_KARD_NAMES = (
    "head", "neck", "right_shoulder", "right_elbow", "right_hand", "left_shoulder", "left_elbow",
    "left_hand", "torso", "right_hip", "right_knee", "right_foot", "left_hip", "left_knee", "left_foot",
)

_BUILTIN: dict[str, Layout] = {}


_ALIASES: dict[str, str] = {}
_BY_KEY: dict[tuple, Layout] = {}


def _register(layout: Layout) -> None:
    _BUILTIN[layout.name] = layout
    _BY_KEY[layout.key] = layout
    for a in layout.aliases:
        _ALIASES[a] = layout.name


_register(Layout(
    "openpose", _OPENPOSE_NAMES,
    ((4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5), (8, 2), (5, 1), (2, 1),
     (0, 1), (15, 0), (14, 0), (17, 15), (16, 14)),
    center=1, description="OpenPose COCO-18 (Kinetics-skeleton), official ST-GCN layout",
    dims=2, normalization="kinetics",
    aliases=("openpose18", "coco18", "kinetics"),
))
_register(Layout(
    "ntu-rgb+d", _NTU_NAMES,
    _one_based(((1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
                (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
                (20, 19), (22, 23), (23, 8), (24, 25), (25, 12))),
    center=20, description="NTU RGB+D (Kinect v2, 25 joints), official ST-GCN layout",
    dims=3,
    aliases=("nturgb+d", "ntu", "ntu-rgbd", "ntu25", "kinect-v2"),
))
_register(Layout(
    "ntu_edge", tuple(n for n in _NTU_NAMES if n != "spine_shoulder"),
    _one_based(((1, 2), (3, 2), (4, 3), (5, 2), (6, 5), (7, 6), (8, 7), (9, 2), (10, 9), (11, 10),
                (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
                (21, 22), (22, 8), (23, 24), (24, 12))),
    center=2, description="NTU RGB+D without the spine-shoulder joint (24), official ST-GCN layout",
    dims=3,
    aliases=("ntu-edge",),
))
_register(Layout(
    "coco", _COCO_NAMES,
    ((15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8), (8, 6), (5, 0),
     (6, 0), (1, 0), (3, 1), (2, 0), (4, 2)),
    center=0, description="COCO-17 keypoints (RTMPose, YOLO-pose, HRNet); edges as in pyskl",
    dims=2,
    aliases=("coco17",),
))
_register(Layout(
    "mediapipe", _MEDIAPIPE_NAMES,
    # MediaPipe's POSE_CONNECTIONS leave the face apart from the body; the nose is tied to both
    # shoulders and to the mouth so that the graph is connected.
    ((0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (0, 9), (0, 10),
     (0, 11), (0, 12), (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14),
     (14, 16), (16, 18), (16, 20), (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26),
     (25, 27), (26, 28), (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32)),
    center=0, description="MediaPipe Pose 33 landmarks",
    dims=2,
    aliases=("mediapipe33", "blazepose"),
))
_register(Layout(
    "kinect-v1", _KINECT_V1_NAMES,
    _one_based(((1, 2), (2, 3), (3, 4), (3, 5), (5, 6), (6, 7), (7, 8), (3, 9), (9, 10), (10, 11),
                (11, 12), (1, 13), (13, 14), (14, 15), (15, 16), (1, 17), (17, 18), (18, 19), (19, 20))),
    center=1, description="Kinect SDK v1, 20 joints (UTKinect-Action3D, NW-UCLA)",
    dims=3,
    aliases=("kinect20", "kinect", "utkinect"),
))
_register(Layout(
    "msr-action3d", _MSR_NAMES,
    _one_based(((20, 3), (1, 3), (2, 3), (1, 8), (8, 10), (10, 12), (2, 9), (9, 11), (11, 13), (3, 4),
                (4, 7), (7, 5), (7, 6), (5, 14), (6, 15), (14, 16), (15, 17), (16, 18), (17, 19))),
    center=3, description="MSR Action3D's own 20-joint order (Kinect v1 joints)",
    dims=3,
    aliases=("msr", "msr_action3d"),
))
_register(Layout(
    "openni-15", _OPENNI15_NAMES,
    _one_based(((1, 2), (2, 3), (2, 4), (4, 5), (5, 6), (2, 7), (7, 8), (8, 9), (3, 10), (10, 11),
                (11, 12), (3, 13), (13, 14), (14, 15))),
    center=2, description="OpenNI 15 joints in the Florence 3D / SBU Kinect Interaction order",
    dims=3,
    aliases=("openni15", "florence3d", "sbu"),
))
_register(Layout(
    "kard", _KARD_NAMES,
    _one_based(((1, 2), (2, 3), (3, 4), (4, 5), (2, 6), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11),
                (11, 12), (9, 13), (13, 14), (14, 15))),
    center=8, description="OpenNI 15 joints in the KARD order",
    dims=3,
))

_register(Layout(
    "body25", _BODY25_NAMES,
    # OpenPose's POSE_BODY_25_PAIRS
    ((1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12), (12, 13),
     (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21), (11, 22),
     (22, 23), (11, 24)),
    center=1, description="OpenPose BODY_25 (COCO-18 plus the mid-hip and six foot points)",
    dims=2, aliases=("body_25", "openpose25"),
))


def list_layouts() -> list[str]:
    """Canonical names of the built-in layouts."""
    return sorted(_BUILTIN)


def get_layout(name_or_path: str | Path | Layout | Mapping) -> Layout:
    """A built-in layout by name (aliases accepted), a custom layout from a YAML file, or a layout
    from its table (a mapping as :meth:`Layout.to_dict` writes it).

    Custom YAML::

        name: my-skeleton
        joints: [head, neck, left_hand, right_hand]
        edges: [[head, neck], [neck, left_hand], [neck, right_hand]]   # names or 0-based indices
        center: neck                                                   # name or index
        dims: 3                                                        # optional: 2 (image) or 3 (metric)
    """
    if isinstance(name_or_path, Layout):
        return name_or_path
    if isinstance(name_or_path, Mapping):
        return Layout.from_dict(name_or_path)
    key = str(name_or_path)
    canon = _ALIASES.get(key.lower(), key.lower())
    if canon in _BUILTIN:
        return _BUILTIN[canon]
    if key.endswith((".yaml", ".yml")) or Path(key).is_file():
        return load_layout_file(key)
    raise LayoutError(f"unknown layout {key!r}; built-in layouts: {', '.join(list_layouts())} "
                      "(or give the path of a layout YAML file)")


def load_layout_file(path: str | Path) -> Layout:
    """Read and validate a custom layout YAML (parsed as data with ``yaml.safe_load``)."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LayoutError(f"{path}: layout file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LayoutError(f"{path}: cannot read the layout file: {exc}") from None
    except yaml.YAMLError as exc:
        raise LayoutError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(doc, dict):
        doc = {"name": path.stem, **doc}
    return Layout.from_dict(doc, where=str(path))
