"""The ablation's baseline TCN (paper §4.2, after Kim & Reiter 2017): all joints of a frame
concatenated into one feature vector, temporal convolutions only.

It equals a spatial temporal graph convolution with unshared weights on a fully connected joint
graph. Same unit schedule, temporal kernel, residuals, strides and head as ST-GCN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

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


class TCN(nn.Module):
    """Temporal-only baseline. Input (N, C, T, V, M) → logits (N, num_classes)."""

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

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    @property
    def config(self) -> dict:
        d = asdict(self.cfg)
        d["channels"], d["strides"] = list(d["channels"]), list(d["strides"])
        return {"name": "tcn", "params": d}

    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        check_skeleton_input(x, self.cfg.in_channels, self.layout)
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)  # joints of a frame concatenated
        return self.blocks(self.data_bn(x))  # (N·M, C', T')

    def extract_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (N, C', T', 1, M): this model has no per-joint maps."""
        n, m = x.shape[0], x.shape[4]
        f = self._frames(x)
        logits = self.fc(f.mean(dim=2).view(n, m, -1).mean(dim=1))
        return f.view(n, m, f.shape[1], f.shape[2], 1).permute(0, 2, 3, 4, 1), logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extract_features(x)[1]
