"""The inference form of a model: a fused copy (timm's ``reparameterize_model`` pattern).

Every registered model has ``fuse()``, which folds its units in place (batch norms into the
convolutions, edge importance into each block's graph step, channels-last activations) and keeps its
class and forward; :func:`optimize_for_inference` does so on a deep copy and leaves the source
model untouched, so the same model can go on training. Predictor, export and the benchmarks call it;
nothing switches implementation implicitly.
"""

from __future__ import annotations

import copy

from torch import nn


def optimize_for_inference(model: nn.Module) -> nn.Module:
    """A fused, eval-mode copy of ``model`` (a ``DistributedDataParallel`` wrapper is unwrapped).

    The result computes the eval-mode function of ``model`` up to float rounding, on the same device
    and dtype, without gradients. A module without ``fuse()`` (not one of ours) comes back as an
    eval-mode copy.
    """
    model = copy.deepcopy(getattr(model, "module", model))
    if not hasattr(model, "fuse"):
        return model.eval().requires_grad_(False)
    return model.fuse()
