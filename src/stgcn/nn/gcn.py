"""The spatial graph convolution (paper Eq. 10) and the unshared-weight "local convolution" baseline.

Shapes: x is (N, C, T, V); A is (K, V, V) with ``A[k][v][w]`` the weight from source v to output w,
already multiplied by the layer's edge-importance mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def graph_conv_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         A: torch.Tensor) -> torch.Tensor:
    """The official formulation, written plainly: 1×1 conv to K·C channels, then one einsum."""
    k = A.shape[0]
    y = F.conv2d(x, weight, bias)
    n, kc, t, v = y.shape
    y = y.view(n, k, kc // k, t, v)
    return torch.einsum("nkctv,kvw->nctw", y, A)


class GraphConv(nn.Module):
    """Σ_k (A_k ⊙ M_k)ᵀ (W_k x + b_k): a 1×1 convolution to K·C_out channels, then the aggregation
    over joints for all K subsets as one matmul over (K·V). When the block widens (C_in < C_out) the
    order is swapped — aggregation first, on the narrower tensor, for all K subsets as one matmul, then
    one 1×1 conv over (K·C_in) plus the per-joint bias Σ_k b_k colsum(A_k) — the same linear map
    (the inference path in models/fast.py does the same), fewer FLOPs and smaller activations.

    The bias is added before the aggregation, as in the official code (so the effective bias of a
    joint depends on A and on the learned edge importance).

    ``tie="negate"`` implements the paper's distance* partition: the layer owns one weight W and uses
    [W, -W] for the two subsets, so w0 = -w1 holds by construction after any optimiser step.
    """

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int, *, tie: str | None = None,
                 bias: bool = True) -> None:
        super().__init__()
        if tie not in (None, "negate"):
            raise ValueError(f"unknown weight tie {tie!r}")
        if tie == "negate" and num_subsets != 2:
            raise ValueError("tie='negate' (distance*) needs exactly 2 subsets")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_subsets = num_subsets
        self.tie = tie
        conv_out = out_channels if tie == "negate" else out_channels * num_subsets
        # name 'conv' and layout (K·C_out, C_in, 1, 1) match the official checkpoints
        self.conv = nn.Conv2d(in_channels, conv_out, kernel_size=1, bias=bias)

    def effective_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        w, b = self.conv.weight, self.conv.bias
        if self.tie == "negate":
            w = torch.cat([w, -w], dim=0)
            b = None if b is None else torch.cat([b, -b], dim=0)
        return w, b

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        w, b = self.effective_weight()
        n, _, t, v = x.shape
        # channel counts from the module, not from x.shape: ONNX export traces x.shape as dynamic,
        # and a conv weight reshaped with dynamic sizes cannot be exported
        c_in, k, c = self.in_channels, self.num_subsets, self.out_channels
        wj = A.shape[-1]
        if c_in < c:
            # widening block: aggregate over joints first, on the narrower C_in channels, then one
            # 1×1 conv over (K·C_in): Σ_k A_kᵀ (W_k x + b_k) = Σ_k W_k (A_kᵀ x) + Σ_k b_k colsum(A_k)
            z = x.reshape(n * c_in * t, v) @ A.transpose(0, 1).reshape(v, k * wj)   # (N·C_in·T, K·W)
            z = z.view(n, c_in, t, k, wj).permute(0, 3, 1, 2, 4).reshape(n, k * c_in, t, wj)
            w2 = w.view(k, c, c_in).transpose(0, 1).reshape(c, k * c_in, 1, 1)
            out = F.conv2d(z, w2)
            if b is not None:
                out = out.add_((b.view(k, c).t() @ A.sum(dim=1)).view(1, c, 1, wj))
            return out
        y = F.conv2d(x, w, b)  # (N, K·C, T, V)
        # (N, K, C·T, V) -> (N·C·T, K·V): one GEMM against A stacked over subsets
        y = y.view(n, k, c * t, v).transpose(1, 2).reshape(n * c * t, k * v)
        out = y @ A.reshape(k * v, wj)
        return out.view(n, c, t, wj)


class LocalGraphConv(nn.Module):
    """The ablation's "local convolution": the sparse joint graph of ST-GCN, but every (source,
    output) joint pair of the graph has its own unshared weight (paper §4.2).

    ``A`` (V, V) is the fixed (uni-labeling, official) normalised adjacency; its non-zeros define the
    pairs. out[w] = Σ_{v∈B(w)} A[v, w] (W_{vw} x_v + b_{vw}).
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, bias: bool = True) -> None:
        super().__init__()
        src, dst = torch.nonzero(A, as_tuple=True)
        e = src.numel()
        self.register_buffer("src", src, persistent=False)
        self.register_buffer("dst", dst, persistent=False)
        # (E, V): pair e's weight A[src_e, dst_e] in the column of its output joint, so the sum over
        # the pairs of each joint is one matmul (index_add_ exports to ONNX as a scatter that drops
        # repeated indices instead of summing them)
        spread = torch.zeros(e, A.shape[-1], dtype=A.dtype)
        spread[torch.arange(e), dst] = A[src, dst]
        self.register_buffer("spread", spread, persistent=False)
        self.num_joints = A.shape[-1]
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.empty(e, out_channels, in_channels))
        self.bias = nn.Parameter(torch.zeros(e, out_channels)) if bias else None
        # same fan-in initialisation as a 1×1 convolution
        bound = 1.0 / in_channels ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, A: torch.Tensor | None = None) -> torch.Tensor:
        """``A`` is not used: the pairs and their weights were fixed at construction."""
        xs = x[..., self.src]                                        # (N, C_in, T, E): each pair's source
        y = torch.einsum("ncte,eoc->note", xs, self.weight)          # (N, C_out, T, E)
        if self.bias is not None:
            y = y + self.bias.t()[None, :, None, :]
        return y @ self.spread                                       # (N, C_out, T, V)
