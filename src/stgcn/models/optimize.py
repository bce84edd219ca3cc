"""The inference form of a model: a fused copy (timm's ``reparameterize_model`` pattern), in fp32 or
a reduced precision.

Every registered model has ``fuse()``, which folds its units in place (batch norms into the
convolutions, edge importance into each block's graph step, channels-last activations) and keeps its
class and forward; :func:`optimize_for_inference` does so on a deep copy and leaves the source
model untouched, so the same model can go on training. Predictor, export and the benchmarks call it;
nothing switches implementation implicitly. A reduced precision is a dtype of that same fused model
(:class:`Bfloat16Model`), not another network.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import ConfigError
from ..runtime import usable_precision


class Bfloat16Model(nn.Module):
    """A fused model with its weights and activations in bfloat16; input and output stay float32.

    Measured on this project's CPU (avx512_bf16, NTU batch 8, T = 150, 2 threads, loaded machine):
    bf16 weights 1.03 s per forward against 1.22 s for the same fused model under
    ``torch.autocast("cpu", dtype=torch.bfloat16)`` (which casts each weight on every call) and
    1.51 s in fp32, with the same max logit difference; hence weights converted once, here.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(torch.bfloat16)

    def __getattr__(self, name: str):
        # the wrapped model's attributes (num_classes, layout, cfg, config, check_input, ...)
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(torch.bfloat16)).float()

    def extract_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat, logits = self.model.extract_features(x.to(torch.bfloat16))
        return feat.float(), logits.float()


def optimize_for_inference(model: nn.Module, precision: str = "fp32") -> nn.Module:
    """A fused, eval-mode copy of ``model`` (a ``DistributedDataParallel`` wrapper is unwrapped), in
    ``precision``: "fp32" (exact up to float rounding), "bf16" (weights and activations in bfloat16,
    logits float32); int8 is an ONNX Runtime export (:mod:`stgcn.export.onnx`).

    The result has the forward signature of ``model`` (float32 in, float32 logits out) and computes
    its eval-mode function, on the same device, without gradients. A precision this CPU cannot run
    natively falls back to fp32 with one warning naming the missing feature
    (:func:`stgcn.runtime.usable_precision`). ``model`` (and so a checkpoint) is never changed. A
    module without ``fuse()`` (not one of ours) comes back as an eval-mode copy.
    """
    if precision == "int8":
        raise ConfigError("int8 runs through ONNX Runtime: `stgcn export CKPT --onnx OUT.onnx --precision int8 "
                          "--calibration STORE` (stgcn.export.onnx)")
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    precision = usable_precision(precision) if on_cpu else precision
    model = copy.deepcopy(getattr(model, "module", model))
    fused = model.fuse() if hasattr(model, "fuse") else model.eval().requires_grad_(False)
    if precision == "bf16":
        return Bfloat16Model(fused).eval()
    return fused
