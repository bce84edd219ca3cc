"""Adjacency tensors of the spatial graph (paper §3.3–3.4, §3.6).

``Graph(layout, strategy).A`` is a float32 array (K, V, V) where ``A[k][v][w]`` is the weight with
which source joint v feeds output joint w in partition k, as the official code uses it in
``einsum('nkctv,kvw->nctw')``.

Two normalisations:

* ``"official"``: the released code. Self-loops are added, the whole adjacency is normalised by
  columns (``A · D⁻¹``: each joint averages its closed neighbourhood) and the partitions are cut out
  of the normalised matrix. This reproduces the released checkpoints.
* ``"paper"``: Eq. 10, each partition normalised symmetrically on its own,
  ``Λⱼ^-½ Aⱼ Λⱼ^-½`` with ``Λⱼ^ii = Σₖ Aⱼ^ik + α`` and α = 0.001.

The spatial partition compares each neighbour's distance to a centre with the root's:

* ``center="joint"`` (official): hop distances to a fixed root joint, truncated at ``max_hop`` as in
  the released code (joints farther than ``max_hop`` all count as "infinitely" far, so bones between
  two such joints land in the centrifugal subset; see docs and ``shared/reference``). Pass
  ``true_distance=True`` for the corrected graph (BFS distance), an opt-in.
* ``center="gravity"`` (paper): each joint's mean distance to the skeleton's centre of gravity over
  the training set (:func:`gravity_distances`).

Subset order is the official one for every centre: 0 = the root itself, 1 = neighbours at the same
or a larger distance (centrifugal), 2 = neighbours closer to the centre (centripetal).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import LayoutError
from .layouts import Layout, get_layout

STRATEGIES = ("uniform", "distance", "distance-star", "spatial")
NORMALIZATIONS = ("official", "paper")
CENTERS = ("joint", "gravity")
PAPER_ALPHA = 0.001


def hop_distance(num_joints: int, edges, max_hop: int = 1) -> np.ndarray:
    """Hop distance between joints, ``inf`` beyond ``max_hop`` (the official ``get_hop_distance``)."""
    adj = np.zeros((num_joints, num_joints))
    for i, j in edges:
        adj[i, j] = adj[j, i] = 1
    dist = np.full((num_joints, num_joints), np.inf)
    reach = np.eye(num_joints)
    dist[reach > 0] = 0
    power = np.eye(num_joints)
    for d in range(1, max_hop + 1):
        power = power @ adj
        dist[(power > 0) & np.isinf(dist)] = d
    return dist


def _column_normalize(a: np.ndarray) -> np.ndarray:
    deg = a.sum(axis=0)
    inv = np.zeros_like(deg)
    inv[deg > 0] = 1.0 / deg[deg > 0]
    return a * inv[None, :]


def _symmetric_normalize(a: np.ndarray, alpha: float) -> np.ndarray:
    # Λ_w = Σ_v a[v, w] + α: the in-degree of output joint w within this subset (Eq. 10).
    lam = a.sum(axis=0) + alpha
    s = lam ** -0.5
    return s[:, None] * a * s[None, :]


class Graph:
    """The partitioned adjacency of a skeleton layout.

    Args:
        layout: a layout name, YAML path or :class:`Layout`.
        strategy: ``uniform`` (uni-labeling, K=1), ``distance`` (K=2), ``distance-star`` (the
            distance partition whose two subset weights are bound, w0 = -w1; the binding is a
            weight constraint inside the convolution, see ``tie_weights``), ``spatial`` (K=3).
        center: ``joint`` or ``gravity`` (spatial strategy only).
        normalization: ``official`` or ``paper``.
        max_hop, dilation: neighbourhood radius D (the paper uses D = 1) and its dilation.
        gravity_distances: (V,) mean distance of each joint to the centre of gravity, required for
            ``center="gravity"``.
        true_distance: use BFS distances to the centre joint instead of the truncated hop distance.
    """

    def __init__(
        self,
        layout: str | Layout = "openpose",
        strategy: str = "spatial",
        *,
        center: str = "joint",
        normalization: str = "official",
        max_hop: int = 1,
        dilation: int = 1,
        gravity_distances: np.ndarray | None = None,
        true_distance: bool = False,
        alpha: float = PAPER_ALPHA,
    ) -> None:
        self.layout = get_layout(layout)
        if strategy not in STRATEGIES:
            raise LayoutError(f"unknown partition strategy {strategy!r}; choose one of {STRATEGIES}")
        if normalization not in NORMALIZATIONS:
            raise LayoutError(f"unknown normalization {normalization!r}; choose one of {NORMALIZATIONS}")
        if center not in CENTERS:
            raise LayoutError(f"unknown center {center!r}; choose one of {CENTERS}")
        if max_hop < 1 or dilation < 1:
            raise LayoutError(f"max_hop and dilation must be >= 1, got {max_hop}, {dilation}")
        self.strategy = strategy
        self.center = center
        self.normalization = normalization
        self.max_hop = max_hop
        self.dilation = dilation
        self.alpha = alpha
        v = self.layout.num_joints
        self.hop_dis = hop_distance(v, self.layout.edges, max_hop)
        if center == "gravity":
            if gravity_distances is None:
                raise LayoutError("center='gravity' needs gravity_distances: compute them with "
                                  "stgcn.graph.gravity_distances(arrays, layout) on the training set")
            r = np.asarray(gravity_distances, dtype=np.float64)
            if r.shape != (v,):
                raise LayoutError(f"gravity_distances must have shape ({v},), found {r.shape}")
            self.center_distance = r
        elif true_distance:
            self.center_distance = hop_distance(v, self.layout.edges, v)[:, self.layout.center]
        else:
            self.center_distance = self.hop_dis[:, self.layout.center]
        self.A = self._build().astype(np.float32)

    @property
    def K(self) -> int:
        return self.A.shape[0]

    @property
    def tie_weights(self) -> str | None:
        """``"negate"`` for distance-star: the convolution binds subset 1's weights to minus subset 0's."""
        return "negate" if self.strategy == "distance-star" else None

    def _build(self) -> np.ndarray:
        v = self.layout.num_joints
        hops = list(range(0, self.max_hop + 1, self.dilation))
        adjacency = np.zeros((v, v))
        for h in hops:
            adjacency[self.hop_dis == h] = 1
        # subsets of the binary adjacency, entry [v_src, w_out]
        masks: list[np.ndarray] = []
        if self.strategy == "uniform":
            masks = [adjacency]
        elif self.strategy in ("distance", "distance-star"):
            masks = [(self.hop_dis == h).astype(float) for h in hops]
        else:
            r = self.center_distance
            r_src, r_out = r[:, None], r[None, :]
            # inf == inf counts as "same distance", exactly as in the official code.
            same = (r_src == r_out) | (np.isinf(r_src) & np.isinf(r_out))
            for h in hops:
                at_hop = self.hop_dis == h
                if h == 0:
                    masks.append(at_hop.astype(float))
                else:
                    farther = at_hop & (same | (r_src > r_out))
                    closer = at_hop & ~same & (r_src < r_out)
                    masks += [farther.astype(float), closer.astype(float)]
        if self.normalization == "official":
            norm = _column_normalize(adjacency)
            return np.stack([norm * m for m in masks])
        return np.stack([_symmetric_normalize(m, self.alpha) for m in masks])

    def __repr__(self) -> str:
        return (f"Graph(layout={self.layout.name!r}, strategy={self.strategy!r}, center={self.center!r}, "
                f"normalization={self.normalization!r}, K={self.K}, V={self.layout.num_joints})")


def gravity_distances(arrays: Iterable[np.ndarray], layout: str | Layout | None = None) -> np.ndarray:
    """Mean distance of each joint to the skeleton's centre of gravity over all frames (paper §3.4).

    ``arrays`` yields clips as (C, T, V, M) arrays (only the first 3 coordinate channels are used, or
    2 for 2D data with a score channel when ``C == 3`` is ambiguous: pass xyz). Frames where a
    person is all zeros (padding, absent person) are skipped. The centre of gravity of a frame is the
    mean of its joints.
    """
    total = None
    count = 0
    for x in arrays:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 4:
            raise LayoutError(f"gravity_distances expects (C, T, V, M) arrays, got shape {x.shape}")
        xyz = x[: min(3, x.shape[0])]  # (C, T, V, M)
        present = np.abs(xyz).sum(axis=(0, 2)) > 0  # (T, M)
        g = xyz.mean(axis=2, keepdims=True)
        d = np.linalg.norm(xyz - g, axis=0)  # (T, V, M)
        d = d.transpose(0, 2, 1)[present]  # (frames, V)
        total = d.sum(axis=0) if total is None else total + d.sum(axis=0)
        count += d.shape[0]
    if not count:
        raise LayoutError("gravity_distances: no non-empty frame in the data")
    r = total / count
    if layout is not None and r.shape[0] != get_layout(layout).num_joints:
        raise LayoutError(f"gravity_distances: data has {r.shape[0]} joints, layout "
                          f"{get_layout(layout).name!r} has {get_layout(layout).num_joints}")
    return r
