"""Named models, built by one function (timm-style registry).

>>> model = create_model("stgcn", layout="ntu-rgb+d", strategy="spatial", num_classes=60)
"""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatch

from torch import nn

from ..errors import ConfigError
from .baselines import TCN, TCNConfig
from .stgcn import OFFICIAL_CHANNELS, OFFICIAL_STRIDES, STGCN, STGCNConfig

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_DOCS: dict[str, str] = {}


def register_model(name: str, doc: str):
    def deco(fn):
        _MODELS[name] = fn
        _DOCS[name] = doc
        return fn

    return deco


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _MODELS if fnmatch(n, pattern))


def describe_models() -> dict[str, str]:
    return dict(_DOCS)


def create_model(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build a registered model. ``None`` values are dropped so CLI defaults never override the
    model's own defaults. Unknown keyword arguments raise :class:`ConfigError`.

    ``pretrained=True``: the shipped weights (:mod:`stgcn.models.pretrained`) of ``name``, a shipped
    name such as ``"stgcn.utkinect"`` or an architecture with shipped weights (its default), checked
    against their sha256, in eval mode, with ``model.pretrained_cfg``. A shipped name without
    ``pretrained`` builds its architecture with fresh weights."""
    from . import pretrained as shipped

    if pretrained:
        return shipped.create_pretrained(name, **kwargs)
    if name not in _MODELS and name in shipped.list_pretrained():
        params = {**shipped.get_pretrained(name).model_config["params"], **kwargs}
        return create_model(shipped.get_spec(name).architecture, params=params)
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    if "params" in kwargs and len(kwargs) == 1:  # the form stored in model.config
        kwargs = dict(kwargs["params"])
        kwargs.pop("extra", None)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        return _MODELS[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from None


def _checked(name: str, config_cls, params: dict) -> dict:
    """Tuples for the per-unit lists, and a ConfigError naming any argument the config lacks."""
    params = {k: tuple(v) if k in ("channels", "strides") else v for k, v in params.items()}
    allowed = set(config_cls.__dataclass_fields__) - {"extra"}
    unknown = set(params) - allowed
    if unknown:
        raise ConfigError(f"model {name!r}: unknown arguments {sorted(unknown)}; allowed: {sorted(allowed)}")
    return params


def _stgcn_cfg(name: str, defaults: dict, kwargs: dict) -> STGCNConfig:
    return STGCNConfig(**_checked(name, STGCNConfig, {**defaults, **kwargs}), extra={"name": name})


@register_model("stgcn", "the paper's ST-GCN (§3.6): 9 units 64,64,64,128,128,128,256,256,256, residual on "
                         "every unit, dropout 0.5, stride 2 in the 4th and 7th unit")
def stgcn(**kw) -> STGCN:
    return STGCN(_stgcn_cfg("stgcn", {}, kw))


@register_model("stgcn-official", "the official 10-block ST-GCN (yysijie/st-gcn net/st_gcn.py): loads official "
                                  "checkpoints key for key")
def stgcn_official(**kw) -> STGCN:
    defaults = dict(channels=OFFICIAL_CHANNELS, strides=OFFICIAL_STRIDES, first_residual=False, first_dropout=False)
    return STGCN(_stgcn_cfg("stgcn-official", defaults, kw))


@register_model("local-conv", "the ablation's local convolution: the sparse joint graph with unshared weights "
                              "per joint pair (paper §4.2)")
def local_conv(**kw) -> STGCN:
    kw.pop("strategy", None)  # the graph fixes the neighbourhoods; there are no shared subsets
    kw.pop("edge_importance", None)
    return STGCN(_stgcn_cfg("local-conv", dict(local=True, edge_importance=False, strategy="uniform"), kw))


@register_model("stgcn-tiny", "a 3-unit, 16-32 channel ST-GCN for tests and smoke runs")
def stgcn_tiny(**kw) -> STGCN:
    defaults = dict(channels=(16, 16, 32), strides=(1, 2, 1), temporal_kernel=3, dropout=0.0)
    return STGCN(_stgcn_cfg("stgcn-tiny", defaults, kw))


@register_model("tcn", "the ablation's baseline TCN: joints of a frame concatenated, temporal convolutions only")
def tcn(**kw) -> TCN:
    for graph_only in ("strategy", "edge_importance", "center", "normalization", "max_hop", "dilation",
                       "gravity_distances", "true_distance", "first_residual", "first_dropout"):
        kw.pop(graph_only, None)
    return TCN(TCNConfig(**_checked("tcn", TCNConfig, kw)))
