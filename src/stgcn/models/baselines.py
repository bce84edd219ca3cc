"""The ablation's baseline TCN (paper §4.2, after Kim & Reiter 2017): all joints of a frame
concatenated into one feature vector, temporal convolutions only.

It equals a spatial temporal graph convolution with unshared weights on a fully connected joint
graph. Same unit schedule, temporal kernel, residuals, strides and head as ST-GCN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..graph import get_layout
from .stgcn import PAPER_CHANNELS, PAPER_STRIDES, check_skeleton_input


@dataclass
class TCNConfig:
    layout: str
    num_classes: int
    in_channels: int = 3
    channels: tuple[int, ...] = PAPER_CHANNELS
    strides: tuple[int, ...] = PAPER_STRIDES
    temporal_kernel: int = 9
    dropout: float = 0.5
    extra: dict = field(default_factory=dict)


class _TemporalResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dropout: float) -> None:
        super().__init__()
        pad = (kernel - 1) // 2
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel, stride, pad), nn.BatchNorm1d(c_out), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Conv1d(c_out, c_out, kernel, 1, pad), nn.BatchNorm1d(c_out),
        )
        self.residual = (nn.Identity() if c_in == c_out and stride == 1 else
                         nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride), nn.BatchNorm1d(c_out)))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.residual(x))

    def fuse(self) -> None:
        """Fold each batch norm into the convolution before it, in place; dropout goes (eval)."""
        conv1, norm1, relu, _, conv2, norm2 = self.body
        self.body = nn.Sequential(fuse_conv_bn_eval(conv1, norm1), relu, fuse_conv_bn_eval(conv2, norm2))
        if isinstance(self.residual, nn.Sequential):
            self.residual = fuse_conv_bn_eval(*self.residual)


class TCN(nn.Module):
    """Temporal-only baseline. Input (N, C, T, V, M) → logits (N, num_classes).

    Same API as :class:`~stgcn.models.stgcn.STGCN`; its feature maps have a joint axis of size 1
    (the joints are concatenated into channels at the input).
    """

    def __init__(self, config: TCNConfig) -> None:
        super().__init__()
        self.cfg = config
        self.layout = get_layout(config.layout)
        v = self.layout.num_joints
        self.data_bn = nn.BatchNorm1d(config.in_channels * v)
        blocks = []
        c_in = config.in_channels * v
        for c_out, stride in zip(config.channels, config.strides, strict=True):
            blocks.append(_TemporalResBlock(c_in, c_out, config.temporal_kernel, stride, config.dropout))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, config.num_classes)
        self.feature_dim = c_in
        self.fused = False

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    @property
    def config(self) -> dict:
        d = asdict(self.cfg)
        d["channels"], d["strides"] = list(d["channels"]), list(d["strides"])
        return {"name": "tcn", "params": d}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) → feature maps (N·M, C', T', 1)."""
        check_skeleton_input(x, self.cfg.in_channels, self.layout)
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)  # (N·M, V·C, T): joints of a frame concatenated
        return self.blocks(self.data_bn(x)).unsqueeze(3)       # (N·M, C', T', 1)

    def forward_head(self, feat: torch.Tensor, num_persons: int, pre_logits: bool = False) -> torch.Tensor:
        """Mean over (T', 1) and persons, linear classifier → (N, num_classes); or the pooled (N, C')."""
        nm, c = feat.shape[:2]
        pooled = feat.mean(dim=(2, 3)).view(nm // num_persons, num_persons, c).mean(dim=1)  # (N, C')
        return pooled if pre_logits else self.fc(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x), x.shape[4])

    def extract_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (N, C', T', 1, M): this model has no per-joint maps; and logits."""
        m = x.shape[4]
        feat = self.forward_features(x)                                       # (N·M, C', T', 1)
        nm, c, t, v = feat.shape
        return feat.view(nm // m, m, c, t, v).permute(0, 2, 3, 4, 1), self.forward_head(feat, m)

    def reset_classifier(self, num_classes: int) -> None:
        self.cfg.num_classes = num_classes
        self.fc = nn.Linear(self.feature_dim, num_classes).to(self.fc.weight)  # same device and dtype

    @torch.no_grad()
    def fuse(self) -> TCN:
        """Fold the batch norms of every block into its convolutions, in place (eval mode, no
        gradients); the input norm stays."""
        if self.fused:
            return self
        self.eval()
        for block in self.blocks:
            block.fuse()
        self.fused = True
        return self.requires_grad_(False)
