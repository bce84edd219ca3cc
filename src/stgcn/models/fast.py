"""Inference path of ST-GCN: the same math as the training graph, re-arranged for speed.

:func:`optimize_for_inference` turns an :class:`~stgcn.models.stgcn.STGCN` (any strategy, with or
without edge importance, paper or official block schedule, local convolution) into a
:class:`FastSTGCN`, a frozen module that computes the same function (eval mode: batch norms use their
running statistics, dropout is the identity) with:

* **every batch norm folded** into the preceding linear map: ``tcn.3`` into the temporal conv,
  ``residual.1`` into the residual conv, and ``tcn.0`` (after the graph aggregation) into the
  graph-conv weights plus a per-(joint, channel) bias;
* **edge importance folded into A** and the graph step done as **one batched matmul over (K·V)**,
  with the official bias-before-aggregation quirk (README quirk 3) folded into that per-joint bias;
  when the block widens (C_in < C_out) the aggregation runs *before* the 1×1 conv, on the narrower
  tensor (Σ_k A_kᵀ (W_k x + b_k) = Σ_k W_k (A_kᵀ x) + Σ_k b_k colsum(A_k)) — same function, fewer FLOPs;
* a **channels-last** layout throughout: activations are (N, T, V, C) tensors, the 1×1 convs are plain
  GEMMs on (N·T·V, C) and the temporal convolution runs on the zero-copy NHWC view;
* optionally, **chunks of the batch** small enough that a block's activations stay in cache, processed
  one after the other through the whole network (exact: in eval every sample is independent;
  ``chunk_bytes``, off by default, see ``DEFAULT_CHUNK_BYTES``).

Results equal the plain formulation up to float rounding (tested in float64 at 1e-10 in
tests/test_fast_path.py). :class:`STGCN` uses this path automatically in eval mode under
``torch.no_grad()``/``torch.inference_mode()`` (see ``STGCN.fast_inference``); with gradients
enabled, in training mode, or while tracing for export, the model runs its own modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.gcn import GraphConv, LocalGraphConv

# Bytes of the largest per-block intermediate that one chunk of the batch may hold; 0 = no chunking.
# Off by default: on the shared 2-core machine measured here (load 3-4), each extra chunk multiplies the
# number of OpenMP parallel regions and those stall when the second core is taken by another process;
# whole-batch runs were faster there (see the bench report). Set it (e.g. 8 MiB) on a dedicated machine.
DEFAULT_CHUNK_BYTES = 0


def _bn_affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of an eval-mode batch norm, in float64."""
    var = bn.running_var.double()
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    return scale, shift


class _FastBlock(nn.Module):
    """One folded ST-GCN block on channels-last activations (N, T, V, C)."""

    def __init__(self, block: nn.Module, A: torch.Tensor, dtype: torch.dtype) -> None:
        super().__init__()
        gcn = block.gcn
        s0, t0 = _bn_affine(block.tcn[0])
        conv_t = block.tcn[2]
        s3, t3 = _bn_affine(block.tcn[3])
        self.stride = conv_t.stride[0]
        self.pad = conv_t.padding[0]
        self.c_out = conv_t.out_channels
        self.local = isinstance(gcn, LocalGraphConv)
        A = A.detach().double()
        k, v, w = A.shape
        self.k, self.v = k, v
        if self.local:
            # the unshared-weight ablation: keep its own sparse formula, fold only the batch norm
            self.gcn = gcn
            self.register_buffer("gcn_scale", s0.to(dtype))
            self.register_buffer("gcn_shift", t0.to(dtype))
            self.agg_first = False
        else:
            assert isinstance(gcn, GraphConv)
            wt, b = gcn.effective_weight()
            c_in, c_out = gcn.in_channels, gcn.out_channels
            wt = wt.detach().double().view(k, c_out, c_in)            # W_k[o, c]
            b = torch.zeros(k, c_out, dtype=torch.float64) if b is None else b.detach().double().view(k, c_out)
            # per-joint bias after aggregation: Σ_k b_k[o] colsum_k[w], then BN (scale s0, shift t0)
            colsum = A.sum(dim=1)                                     # (K, W)
            bias = (b.t() @ colsum).t() * s0 + t0                     # (W, C_out)
            self.register_buffer("bias", bias.to(dtype).contiguous())
            wt = wt * s0[None, :, None]
            self.agg_first = c_in < c_out
            if self.agg_first:
                # z[nt, w, k, c] = Σ_v A[k, v, w] x[nt, v, c];  out = z (W·K·C_in) @ W2 (K·C_in, C_out)
                self.register_buffer("agg", A.permute(2, 0, 1).reshape(w * k, v).to(dtype).contiguous())
                self.register_buffer("w1", wt.permute(0, 2, 1).reshape(k * c_in, c_out).to(dtype).contiguous())
            else:
                # y[ntv, k·C_out + o] = x @ W1;  out[nt, w, o] = Σ_{v,k} A[k, v, w] y[nt, v, k, o]
                self.register_buffer("w1", wt.reshape(k * c_out, c_in).t().to(dtype).contiguous())
                self.register_buffer("agg", A.permute(2, 1, 0).reshape(w, v * k).to(dtype).contiguous())
        wt3 = conv_t.weight.detach().double() * s3[:, None, None, None]
        bt3 = (conv_t.bias.detach().double() * s3 if conv_t.bias is not None else 0.0) + t3
        self.register_buffer("wt", wt3.to(dtype).contiguous(memory_format=torch.channels_last))
        self.register_buffer("bt", bt3.to(dtype))
        self.res_mode = "none" if not block.has_residual else ("identity" if block.residual is None else "conv")
        if self.res_mode == "conv":
            conv_r, bn_r = block.residual[0], block.residual[1]
            sr, tr = _bn_affine(bn_r)
            wr = conv_r.weight.detach().double()[:, :, 0, 0] * sr[:, None]
            br = (conv_r.bias.detach().double() * sr if conv_r.bias is not None else 0.0) + tr
            self.register_buffer("wr", wr.t().to(dtype).contiguous())   # (C_in, C_out)
            self.register_buffer("br", br.to(dtype))
            self.res_stride = conv_r.stride[0]

    def graph(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, V, C_in) → ReLU(BN(gcn(x))) as (N, T, V, C_out), contiguous."""
        n, t, v, c = x.shape
        if self.local:
            h = self.gcn(x.permute(0, 3, 1, 2))                     # (N, C_out, T, V)
            h = h.permute(0, 2, 3, 1).mul_(self.gcn_scale).add_(self.gcn_shift)
            return h.relu_().contiguous()
        if self.agg_first:
            z = torch.matmul(self.agg, x.reshape(n * t, v, c))      # (N·T, W·K, C_in)
            h = torch.matmul(z.view(n * t, v, self.k * c), self.w1)  # (N·T, W, C_out)
            h = h.add_(self.bias)
        else:
            y = torch.matmul(x.reshape(n * t * v, c), self.w1)      # (N·T·V, K·C_out)
            h = torch.baddbmm(self.bias, self.agg.expand(n * t, -1, -1), y.view(n * t, v * self.k, -1))
        return h.view(n, t, v, -1).relu_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.graph(x)
        out = F.conv2d(h.permute(0, 3, 1, 2), self.wt, self.bt, (self.stride, 1), (self.pad, 0))
        out = out.permute(0, 2, 3, 1)                               # (N, T', V, C) view of NHWC memory
        if self.res_mode == "identity":
            out = out.add_(x)
        elif self.res_mode == "conv":
            xs = x[:, ::self.res_stride] if self.res_stride > 1 else x
            out = out.add_(torch.matmul(xs, self.wr).add_(self.br))
        out = out.relu_()
        return out if out.is_contiguous() else out.contiguous()


class FastSTGCN(nn.Module):
    """A frozen, folded copy of an STGCN for inference (see the module docstring).

    ``forward(x)`` logits, ``forward_features(x)`` (N·M, C', T', V), ``extract_features(x)`` and
    ``forward_head`` behave as the source model's in eval mode. The weights are a snapshot: rebuild
    after changing the source model (``STGCN`` does so automatically for its own fast path).
    ``chunk_bytes`` bounds the largest intermediate of one chunk of the batch (0: no chunking).
    """

    def __init__(self, model: nn.Module, chunk_bytes: int | None = None) -> None:
        super().__init__()
        p = next(model.parameters())
        dtype = p.dtype
        self.cfg = model.cfg
        self.layout = model.layout
        self.chunk_bytes = DEFAULT_CHUNK_BYTES if chunk_bytes is None else int(chunk_bytes)
        s, t = _bn_affine(model.data_bn)
        v = self.layout.num_joints
        c = model.cfg.in_channels
        # data_bn channel index = v·C + c, i.e. a (V, C) affine on (..., V, C) activations
        self.register_buffer("in_scale", s.view(v, c).to(dtype))
        self.register_buffer("in_shift", t.view(v, c).to(dtype))
        self.blocks = nn.ModuleList(
            _FastBlock(b, A, dtype) for b, A in zip(model.st_gcn_networks, model.graph_matrices(), strict=True))
        fw = model.fcn.weight.detach()
        self.register_buffer("fc_w", fw[:, :, 0, 0].t().contiguous())
        self.register_buffer("fc_b", model.fcn.bias.detach().clone())
        # largest per-person intermediate, in elements per frame (for the chunk size)
        self._width = max(max(blk.k * blk.c_out, blk.c_out) for blk in self.blocks) * v
        self.eval()

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def _chunk(self, nm: int, t: int, itemsize: int) -> int:
        if self.chunk_bytes <= 0 or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return nm
        per_person = self._width * t * itemsize
        return max(1, min(nm, self.chunk_bytes // max(per_person, 1)))

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        x = x.to(self.in_scale.dtype).permute(0, 4, 2, 3, 1).reshape(n * m, t, v, c)   # (N·M, T, V, C)
        return x * self.in_scale + self.in_shift

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x

    def _features_cl(self, x: torch.Tensor, pooled: bool) -> torch.Tensor:
        """(N, C, T, V, M) → channels-last features (N·M, T', V, C') or, if ``pooled``, (N·M, C')."""
        h = self._inputs(x)
        nm, t = h.shape[:2]
        step = self._chunk(nm, t, h.element_size())
        outs = []
        for i in range(0, nm, step):
            f = self._trunk(h[i:i + step])
            outs.append(f.mean(dim=(1, 2)) if pooled else f)
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) → per-joint feature maps (N·M, C', T', V) (contiguous)."""
        return self._features_cl(x, pooled=False).permute(0, 3, 1, 2).contiguous()

    def forward_head(self, feat: torch.Tensor, num_persons: int) -> torch.Tensor:
        nm, c = feat.shape[:2]
        return self._head(feat.mean(dim=(2, 3)), num_persons)

    def _head(self, pooled: torch.Tensor, num_persons: int) -> torch.Tensor:
        nm, c = pooled.shape
        pooled = pooled.view(nm // num_persons, num_persons, c).mean(dim=1)
        return torch.addmm(self.fc_b, pooled, self.fc_w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._head(self._features_cl(x, pooled=True), x.shape[4])

    def extract_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = x.shape[4]
        f = self._features_cl(x, pooled=False)                     # (N·M, T', V, C')
        logits = self._head(f.mean(dim=(1, 2)), m)
        nm, t, v, c = f.shape
        return f.view(nm // m, m, t, v, c).permute(0, 4, 2, 3, 1).contiguous(), logits


def optimize_for_inference(model: nn.Module, chunk_bytes: int | None = None) -> nn.Module:
    """A folded, channels-last, chunked copy of ``model`` for eval (see the module docstring).

    Models other than :class:`~stgcn.models.stgcn.STGCN` (e.g. the TCN baseline) are returned in
    eval mode unchanged. The source model is not modified.
    """
    from .stgcn import STGCN

    if not isinstance(model, STGCN):
        return model.eval()
    with torch.no_grad():
        fast = FastSTGCN(model, chunk_bytes)
    return fast.to(next(model.parameters()).device)
