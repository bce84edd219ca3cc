"""One ST-GCN unit: graph convolution → BN → ReLU → temporal conv (Γ×1) → BN → dropout, plus a
residual, then ReLU (the official block order), and its inference form (:meth:`STGCNBlock.fuse`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .gcn import GraphConv, LocalGraphConv


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask: ``rand < p`` instead of ``bernoulli_`` (3-4× faster on CPU
    here, where ``bernoulli_`` was ~7% of a training step). Same distribution — each element kept with
    probability 1 - p and scaled by 1 / (1 - p) — but a different random stream than ``F.dropout``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0 or torch.jit.is_tracing() or torch.jit.is_scripting():
            return super().forward(x)
        keep = torch.rand_like(x) >= self.p  # bool mask: 1 byte per element kept for backward
        scale = 1.0 / (1.0 - self.p)
        if self.inplace:
            return x.mul_(keep).mul_(scale)
        return x * keep * scale


class CausalConv2d(nn.Conv2d):
    """A (Γ×1) temporal convolution that sees only the past: Γ − 1 zero frames are padded before
    the first frame and none after the last, so output step ``j`` reads input frames
    ``j·stride − Γ + 1 .. j·stride``. Same parameters (and checkpoint keys) as ``nn.Conv2d``; the
    padding is done here rather than by the conv, which pads both sides alike. Folding a batch
    norm into it (``fuse_conv_bn_eval`` deep-copies the module) keeps the class, so a fused model
    stays causal."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (0, 0, self.kernel_size[0] - 1, 0)))


class TemporalUnit(nn.Sequential):
    """BN → ReLU → Conv(Γ×1, stride) → BN → Dropout. Indices 0..4 match the official ``tcn`` (its
    checkpoint keys); the properties below name them. ``causal``: the conv looks only at past frames
    (:class:`CausalConv2d`), else at (Γ − 1) / 2 frames on each side."""

    def __init__(self, channels: int, kernel_size: int = 9, stride: int = 1, dropout: float = 0.0,
                 causal: bool = False) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"temporal kernel size must be odd, got {kernel_size}")
        if causal:
            conv = CausalConv2d(channels, channels, (kernel_size, 1), (stride, 1))
        else:
            conv = nn.Conv2d(channels, channels, (kernel_size, 1), (stride, 1), ((kernel_size - 1) // 2, 0))
        super().__init__(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            conv,
            nn.BatchNorm2d(channels),
            Dropout(dropout, inplace=True),
        )

    @property
    def norm_in(self) -> nn.BatchNorm2d:
        return self[0]

    @property
    def conv(self) -> nn.Conv2d:
        return self[2]

    @property
    def norm_out(self) -> nn.BatchNorm2d:
        return self[3]

    def fuse(self) -> nn.Sequential:
        """Inference form without ``norm_in`` (the block folds it into the graph step before):
        ReLU → Conv(Γ×1) with ``norm_out`` folded in, its weight channels-last; dropout is the
        identity in eval."""
        conv = fuse_conv_bn_eval(self.conv, self.norm_out).to(memory_format=torch.channels_last)
        conv.requires_grad_(False)
        return nn.Sequential(nn.ReLU(inplace=True), conv)


class STGCNBlock(nn.Module):
    """A spatial temporal graph convolution unit (paper §3.6; official ``st_gcn``).

    Shape: x (N, C_in, T, V) → (N, C_out, ceil(T / stride), V); A (K, V, V), or None once fused.
    """

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int, *, kernel_size: int = 9,
                 stride: int = 1, dropout: float = 0.0, residual: bool = True, tie: str | None = None,
                 local_A: torch.Tensor | None = None, causal: bool = False) -> None:
        super().__init__()
        if local_A is not None:
            self.gcn = LocalGraphConv(in_channels, out_channels, local_A)
        else:
            self.gcn = GraphConv(in_channels, out_channels, num_subsets, tie=tie)
        self.tcn = TemporalUnit(out_channels, kernel_size, stride, dropout, causal)
        self.has_residual = residual
        if residual and (in_channels != out_channels or stride != 1):
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.residual = None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, A: torch.Tensor | None) -> torch.Tensor:
        out = self.tcn(self.gcn(x, A))
        # the residual after the main branch, so that it is not held while the graph step's wide
        # intermediates are (a widening block's peak); added in place into the branch's fresh output
        if self.has_residual:
            out = out.add_(x if self.residual is None else self.residual(x))
        return self.relu(out)

    @torch.no_grad()
    def fuse(self, A: torch.Tensor | None) -> None:
        """Fold this eval-mode block for inference, in place, for a fixed graph ``A`` (⊙ M).

        The batch norm after the graph step (``tcn.norm_in``) goes into the graph convolution with A,
        ``tcn.norm_out`` into the temporal conv, the residual's norm into its 1×1 conv; dropout goes.
        The units then run channels-last, and ``forward`` is called with ``A=None``.
        """
        self.gcn = self.gcn.fuse(A, self.tcn.norm_in)
        self.tcn = self.tcn.fuse()
        if self.residual is not None:
            conv, norm = self.residual
            self.residual = fuse_conv_bn_eval(conv, norm).to(memory_format=torch.channels_last)
            self.residual.requires_grad_(False)
