"""The spatial graph convolution (paper Eq. 10), the unshared-weight "local convolution" baseline,
and their inference forms (batch norm and edge importance folded in, channels-last).

Shapes: x is (N, C, T, V); A is (K, V, V) with ``A[k][v][w]`` the weight from source v to output w,
already multiplied by the layer's edge-importance mask.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from . import onednn


def graph_conv_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         A: torch.Tensor) -> torch.Tensor:
    """The official formulation, written plainly: 1×1 conv to K·C channels, then one einsum."""
    k = A.shape[0]
    y = F.conv2d(x, weight, bias)
    n, kc, t, v = y.shape
    y = y.view(n, k, kc // k, t, v)
    return torch.einsum("nkctv,kvw->nctw", y, A)


def bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of an eval-mode batch norm: ``bn(x) = scale·x + shift`` per channel."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


# The aggregate-first identity, used by GraphConv (training) and FusedGraphConv (inference):
#   Σ_k A_kᵀ (W_k x + b_k) = [W_0 … W_{K-1}] · [A_0ᵀx; …; A_{K-1}ᵀx] + Σ_k b_k colsum(A_k)
# i.e. aggregate over joints on the C_in channels, then one linear map over (K·C_in), plus a
# per-joint bias. Cheaper than the official order (1×1 conv to K·C_out first) when C_in < C_out.

def stacked_weight(weight: torch.Tensor, num_subsets: int) -> torch.Tensor:
    """The (K·C_out, C_in, 1, 1) conv weight as [W_0 … W_{K-1}]: (C_out, K·C_in), subset-major."""
    kc, c_in = weight.shape[:2]
    return weight.view(num_subsets, kc // num_subsets, c_in).transpose(0, 1).reshape(kc // num_subsets, -1)


def aggregated_bias(bias: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Σ_k b_k colsum(A_k) as (C_out, W): the conv bias after the aggregation over joints (the
    official code adds it before, so a joint's bias depends on A and on the edge importance)."""
    return bias.view(A.shape[0], -1).t() @ A.sum(dim=1)


class GraphConv(nn.Module):
    """Σ_k (A_k ⊙ M_k)ᵀ (W_k x + b_k): a 1×1 convolution to K·C_out channels, then the aggregation
    over joints for all K subsets as one matmul over (K·V). When the block widens (C_in < C_out) the
    order is swapped (the aggregate-first identity above): the same linear map, fewer FLOPs and
    smaller activations.

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
        if c_in < c:  # widening block: aggregate first, on the narrower C_in channels
            z = x.reshape(n * c_in * t, v) @ A.transpose(0, 1).reshape(v, k * wj)   # (N·C_in·T, K·W)
            z = z.view(n, c_in, t, k, wj).permute(0, 3, 1, 2, 4).reshape(n, k * c_in, t, wj)  # (N, K·C_in, T, W)
            out = F.conv2d(z, stacked_weight(w, k)[:, :, None, None])                 # (N, C, T, W)
            if b is not None:
                out = out.add_(aggregated_bias(b, A).view(1, c, 1, wj))
            return out
        y = F.conv2d(x, w, b)  # (N, K·C, T, V)
        # (N, K, C·T, V) -> (N·C·T, K·V): one GEMM against A stacked over subsets
        y = y.view(n, k, c * t, v).transpose(1, 2).reshape(n * c * t, k * v)
        out = y @ A.reshape(k * v, wj)
        return out.view(n, c, t, wj)

    @torch.no_grad()
    def fuse(self, A: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm) -> FusedGraphConv:
        """The inference form of ``bn(self(x, A))`` for a fixed A (edge importance included)."""
        w, b = self.effective_weight()
        k, c_in, c = self.num_subsets, self.in_channels, self.out_channels
        scale, shift = bn_affine(bn)
        b = torch.zeros(k * c, dtype=w.dtype, device=w.device) if b is None else b
        bias = (aggregated_bias(b, A) * scale[:, None] + shift[:, None]).t()           # (W, C_out)
        aggregate_first = c_in < c
        if aggregate_first:
            weight = stacked_weight(w, k) * scale[:, None]                              # (C_out, K·C_in)
            agg = A.permute(2, 0, 1).reshape(-1, A.shape[1])                            # (W·K, V)
        else:
            weight = (w[:, :, 0, 0].view(k, c, c_in) * scale[:, None]).reshape(k * c, c_in)  # (K·C_out, C_in)
            agg = A.permute(2, 1, 0).reshape(A.shape[2], -1)                            # (W, V·K)
        return FusedGraphConv(weight, agg, bias, num_subsets=k, aggregate_first=aggregate_first)


class FusedGraphConv(nn.Module):
    """Inference form of GraphConv followed by its batch norm, for one fixed A ⊙ M: the batch norm
    is folded into the linear map and the per-joint bias, the aggregation over joints is one batched
    matmul over (K·V), and activations are channels-last.

    Shape: x (N, C_in, T, V), any memory format (channels-last avoids a copy) →
    (N, C_out, T, W) in channels-last memory, which the next units keep.

    The channel mixing holds its weight as an ``nn.Linear`` (no bias; the bias is per joint), so a
    reduced precision is a dtype of this unit, not another network; it runs as oneDNN's inner
    product on the CPU (:func:`stgcn.nn.onednn.linear`, 1.5-2.5× MKL's sgemm at these shapes).
    """

    def __init__(self, weight: torch.Tensor, agg: torch.Tensor, bias: torch.Tensor, *, num_subsets: int,
                 aggregate_first: bool) -> None:
        super().__init__()
        self.num_subsets = num_subsets
        self.aggregate_first = aggregate_first
        self.mix = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device=weight.device, dtype=weight.dtype)
        self.mix.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
        self.register_buffer("agg", agg.contiguous())    # aggregate first: (W·K, V), else (W, V·K)
        self.register_buffer("bias", bias.contiguous())  # (W, C_out)
        self.in_channels = weight.shape[1] // num_subsets if aggregate_first else weight.shape[1]
        self.out_channels = bias.shape[1]
        self.num_joints = bias.shape[0]

    def forward(self, x: torch.Tensor, A: None = None) -> torch.Tensor:
        if A is not None:
            raise ValueError("a FusedGraphConv holds its own graph (A ⊙ M, folded by GraphConv.fuse); pass None")
        n, _, t, v = x.shape
        k, c_in, w = self.num_subsets, self.in_channels, self.num_joints
        # (N, T, V, C_in): a view of channels-last memory; the first block's input gets one copy here
        # (a strided view would make the batched matmul below loop over N·T)
        x = x.permute(0, 2, 3, 1).contiguous()
        if self.aggregate_first:
            z = torch.matmul(self.agg, x.reshape(n * t, v, c_in))                      # (N·T, W·K, C_in)
            h = onednn.linear(z.view(n * t * w, k * c_in), self.mix.weight)            # (N·T·W, C_out)
            h = h.view(n * t, w, -1).add_(self.bias)                                   # (N·T, W, C_out)
        else:
            y = onednn.linear(x.reshape(n * t * v, c_in), self.mix.weight)             # (N·T·V, K·C_out)
            h = torch.baddbmm(self.bias, self.agg.expand(n * t, -1, -1),
                              y.view(n * t, v * k, self.out_channels))                 # (N·T, W, C_out)
        return h.view(n, t, w, self.out_channels).permute(0, 3, 1, 2)                  # (N, C_out, T, W)


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

    @torch.no_grad()
    def fuse(self, A: torch.Tensor | None, bn: nn.modules.batchnorm._BatchNorm) -> LocalGraphConv:
        """The inference form of ``bn(self(x))``: a LocalGraphConv with the batch norm folded in.

        The scale goes into every pair's weight and bias; the shift t is spread over the pairs that
        reach each output joint w, as t / Σ_{v∈B(w)} A[v, w] on each (exact: the pair weights of a
        joint sum to that column sum). ``A`` is not used (fixed at construction).
        """
        scale, shift = bn_affine(bn)
        colsum = self.spread.sum(dim=0)                              # (V,): Σ_{v∈B(w)} A[v, w]
        if not bool((colsum != 0).all()):  # such a joint outputs 0 before the norm and t after: no pair to carry t
            raise ValueError("cannot fold a batch norm into a local convolution with a joint whose weights sum to 0")
        bias = self.bias if self.bias is not None else torch.zeros_like(self.weight[:, :, 0])
        fused = copy.deepcopy(self)
        fused.weight = nn.Parameter(self.weight * scale[None, :, None], requires_grad=False)
        fused.bias = nn.Parameter(bias * scale + shift / colsum[self.dst, None], requires_grad=False)
        return fused
