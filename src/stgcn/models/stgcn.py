"""ST-GCN: the paper's 9-unit network (§3.6) and the official 10-block variant, in one class.

Shape: input (N, C, T, V, M) float — batch, channels, frames, joints, persons —
output logits (N, num_classes). Persons share the network and are averaged after global pooling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import ShapeError
from ..graph import Graph, get_layout
from ..nn import STGCNBlock

PAPER_CHANNELS = (64, 64, 64, 128, 128, 128, 256, 256, 256)
PAPER_STRIDES = (1, 1, 1, 2, 1, 1, 2, 1, 1)
OFFICIAL_CHANNELS = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
OFFICIAL_STRIDES = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)


@dataclass
class STGCNConfig:
    """Every hyperparameter of an ST-GCN; saved in checkpoints and enough to rebuild the model."""

    layout: str
    num_classes: int
    in_channels: int = 3
    strategy: str = "spatial"
    center: str = "joint"
    normalization: str = "official"
    max_hop: int = 1
    dilation: int = 1
    true_distance: bool = False
    gravity_distances: list[float] | None = None
    edge_importance: bool = True
    channels: tuple[int, ...] = PAPER_CHANNELS
    strides: tuple[int, ...] = PAPER_STRIDES
    temporal_kernel: int = 9
    dropout: float = 0.5
    first_residual: bool = True  # the paper puts a residual on every unit, the official code not on the first
    first_dropout: bool = True   # the official code drops the dropout kwarg for block 0
    local: bool = False          # the ablation's local convolution (unshared weights)
    causal: bool = False         # temporal convs see only past frames (left padding): streaming with no look-ahead
    extra: dict = field(default_factory=dict)


def check_skeleton_input(x: torch.Tensor, in_channels: int, layout) -> None:
    """Raise :class:`ShapeError` saying what was expected and found, for any model of this package."""
    if x.dim() != 5:
        raise ShapeError(f"expected input of rank 5 (N, C, T, V, M), found shape {tuple(x.shape)}")
    _, c, t, v, _ = x.shape
    if c != in_channels:
        raise ShapeError(f"expected {in_channels} input channels (C, dim 1), found {c}")
    if v != layout.num_joints:
        raise ShapeError(f"layout {layout.name!r} has {layout.num_joints} joints (V, dim 3), input has {v}")
    if t < 1:
        raise ShapeError("input has no frame (T = 0)")
    # a data-dependent check would be frozen into a constant by tracing/ONNX export
    if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()) and not torch.isfinite(x).all():
        raise ShapeError("input contains NaN or Inf")


class STGCN(nn.Module):
    """Spatial temporal graph convolutional network.

    Module names follow the official implementation (``data_bn``, ``st_gcn_networks.{i}.gcn.conv``,
    ``.tcn.{0,2,3}``, ``.residual.{0,1}``, ``edge_importance.{i}``, ``fcn``, buffer ``A``) so that
    official checkpoints load key for key into the 10-block configuration.

    Inference: :meth:`fuse` folds the model in place (batch norms into the convolutions, each
    block's A ⊙ M into its graph step, channels-last activations); the forward below is the same
    for both, only the units differ. :func:`stgcn.models.optimize_for_inference` fuses a copy.
    """

    def __init__(self, config: STGCNConfig) -> None:
        super().__init__()
        if len(config.channels) != len(config.strides):
            raise ValueError("channels and strides must have the same length")
        self.cfg = config
        self.layout = get_layout(config.layout)
        gd = None if config.gravity_distances is None else np.asarray(config.gravity_distances)
        self.graph = Graph(self.layout, "uniform" if config.local else config.strategy, center=config.center,
                           normalization=config.normalization, max_hop=config.max_hop,
                           dilation=config.dilation, gravity_distances=gd, true_distance=config.true_distance)
        A = torch.tensor(self.graph.A, dtype=torch.float32)
        self.register_buffer("A", A)
        k = A.shape[0]
        v = self.layout.num_joints
        self.data_bn = nn.BatchNorm1d(config.in_channels * v)
        blocks = []
        c_in = config.in_channels
        for i, (c_out, stride) in enumerate(zip(config.channels, config.strides, strict=True)):
            blocks.append(STGCNBlock(
                c_in, c_out, k, kernel_size=config.temporal_kernel, stride=stride,
                dropout=config.dropout if (i > 0 or config.first_dropout) else 0.0,
                residual=config.first_residual if i == 0 else True,
                tie=self.graph.tie_weights, local_A=A[0] if config.local else None, causal=config.causal,
            ))
            c_in = c_out
        self.st_gcn_networks = nn.ModuleList(blocks)
        if config.edge_importance and not config.local:
            self.edge_importance = nn.ParameterList([nn.Parameter(torch.ones_like(A)) for _ in blocks])
        else:
            self.edge_importance = None
        self.fcn = nn.Conv2d(c_in, config.num_classes, kernel_size=1)
        self.feature_dim = c_in
        self.fused = False

    # -- public attributes -------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    @property
    def config(self) -> dict:
        """JSON-able arguments of :func:`stgcn.models.create_model` that rebuild this model."""
        d = asdict(self.cfg)
        d["channels"] = list(d["channels"])
        d["strides"] = list(d["strides"])
        if not d["causal"]:  # the symmetric model's config (and so its checkpoint bytes) as before the option
            del d["causal"]
        return {"name": self.cfg.extra.get("name", "stgcn"), "params": d}

    def check_input(self, x: torch.Tensor) -> None:
        check_skeleton_input(x, self.cfg.in_channels, self.layout)

    def graph_matrices(self) -> list[torch.Tensor | None]:
        """The effective (K, V, V) adjacency of every block, A ⊙ M; None once fused (in the units)."""
        if self.fused:
            return [None] * len(self.st_gcn_networks)
        if self.edge_importance is None:
            return [self.A] * len(self.st_gcn_networks)
        return [self.A * m for m in self.edge_importance]

    # -- forward -------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) → per-joint feature maps (N·M, C', T', V)."""
        self.check_input(x)
        n, c, t, v, m = x.shape
        # (N, M, V, C, T) so that the input BN has one channel per (joint, coordinate): index v·C + c
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)                 # (N·M, V·C, T)
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)  # (N·M, C, T, V)
        for block, A in zip(self.st_gcn_networks, self.graph_matrices(), strict=True):
            x = block(x, A)                                                   # (N·M, C_i, T_i, V)
        return x

    def forward_head(self, feat: torch.Tensor, num_persons: int, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling over (T, V), mean over persons, 1×1 classifier → (N, num_classes);
        with ``pre_logits`` the pooled features (N, C') instead."""
        nm, c = feat.shape[:2]
        # mean() rather than avg_pool2d(x, x.size()[2:]) keeps T dynamic in ONNX export
        pooled = feat.mean(dim=(2, 3)).view(nm // num_persons, num_persons, c).mean(dim=1)  # (N, C')
        if pre_logits:
            return pooled
        return self.fcn(pooled[:, :, None, None]).flatten(1)                 # (N, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x), x.shape[4])

    def extract_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-joint feature maps (N, C', T', V, M) and logits (N, num_classes).

        The demo draws ``feature.norm(dim=1).mean(dim=1)`` — the activation magnitude of each joint —
        as the per-joint attention of the paper's figures.
        """
        m = x.shape[4]
        feat = self.forward_features(x)                                       # (N·M, C', T', V)
        logits = self.forward_head(feat, m)
        nm, c, t, v = feat.shape
        return feat.view(nm // m, m, c, t, v).permute(0, 2, 3, 4, 1), logits  # (N, C', T', V, M)

    def reset_classifier(self, num_classes: int) -> None:
        self.cfg.num_classes = num_classes
        self.fcn = nn.Conv2d(self.feature_dim, num_classes, kernel_size=1).to(self.fcn.weight)  # same device and dtype

    # -- inference form ------------------------------------------------------------------------
    @torch.no_grad()
    def fuse(self) -> STGCN:
        """Fold this model for inference, in place, and return it (in eval mode, without gradients).

        Each block folds its batch norms into its convolutions and its A ⊙ M into its graph step
        (:meth:`stgcn.nn.STGCNBlock.fuse`), so ``A`` and ``edge_importance`` leave the model; the
        function is the eval-mode one up to float rounding. A fused model cannot be trained again
        (its batch norms are gone); :func:`stgcn.models.optimize_for_inference` fuses a copy.
        """
        if self.fused:
            return self
        self.eval()
        for block, A in zip(self.st_gcn_networks, self.graph_matrices(), strict=True):
            block.fuse(A)
        self.edge_importance = None
        self.A = None
        self.fused = True
        return self.requires_grad_(False)
