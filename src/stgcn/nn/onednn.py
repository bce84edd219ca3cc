"""The oneDNN CPU kernels the fused inference units call directly (``torch.ops.mkldnn``, the ops
inductor's CPU lowering emits), and when they apply.

Measured on this project's CPU (AVX-512, torch 2.13, 1 and 2 threads, the fused model's shapes at
batch 8, T = 150): float32 ``F.linear`` / ``torch.mm`` goes to MKL sgemm, which runs the graph
convolution's channel mixing — tall GEMMs with K = 64..384 — at 30-100 GFLOP/s; oneDNN's inner
product runs the same products 1.5-2.5× faster (the temporal convolutions already go to oneDNN
through ``F.conv2d``). Where oneDNN does not apply (:func:`onednn_runs`) the plain op runs: the
same product up to float rounding.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F


@cache
def _has_linear_pointwise() -> bool:
    """Whether this torch build registers the op: it is private to inductor and may move between
    releases (pyproject allows a range of torch versions); without it the plain op runs."""
    try:
        torch.ops.mkldnn._linear_pointwise  # noqa: B018
    except (AttributeError, RuntimeError):
        return False
    return True


def onednn_runs(x: torch.Tensor) -> bool:
    """Whether the oneDNN kernels take ``x`` eagerly: a float32 CPU tensor, not under ONNX export,
    tracing or torch.compile (those record the plain ops, which ONNX has and inductor lowers
    itself). bfloat16 is left to the plain ops, which torch already sends to oneDNN (measured: the
    same time as the direct call)."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or not torch.backends.mkldnn.is_available():
        return False
    if not _has_linear_pointwise():
        return False
    return not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling())


def linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T`` for a 2-D ``x`` (rows, in) and ``weight`` (out, in), by oneDNN's inner
    product where it runs, else ``F.linear``."""
    if onednn_runs(x) and x.dim() == 2 and x.is_contiguous():
        return torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")
    return F.linear(x, weight)
