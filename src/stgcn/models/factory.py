"""``create_model``: a registered architecture with fresh weights, or shipped weights (timm style).

Apart from the registry so that the registry stays below the checkpoint loader, which the shipped
weights need (no import circle: factory -> pretrained -> checkpoint -> registry).
"""

from __future__ import annotations

from torch import nn

from . import pretrained as shipped
from .registry import build_model, list_models


def create_model(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build a registered model (see :func:`~stgcn.models.registry.build_model`).

    ``pretrained=True``: the shipped weights (:mod:`stgcn.models.pretrained`) of ``name``, a shipped
    name such as ``"stgcn.utkinect"`` or an architecture with shipped weights (its default), checked
    against their sha256, in eval mode, with ``model.pretrained_cfg``. A shipped name without
    ``pretrained`` builds its architecture with fresh weights."""
    if pretrained:
        return shipped.create_pretrained(name, **kwargs)
    if name not in list_models() and name in shipped.list_pretrained():
        params = {**shipped.get_pretrained(name).model_config["params"], **kwargs}
        return build_model(shipped.get_spec(name).architecture, params=params)
    return build_model(name, **kwargs)
