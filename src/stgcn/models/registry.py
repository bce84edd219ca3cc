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
_ARGUMENTS: dict[str, frozenset[str]] = {}
_FIXED: dict[str, frozenset[str]] = {}


def register_model(name: str, doc: str, config_cls: type, fixed: tuple[str, ...] = ()):
    """Register a builder; it accepts the fields of ``config_cls`` except ``extra`` and ``fixed``
    (the ones the model sets itself)."""
    def deco(fn):
        _MODELS[name] = fn
        _DOCS[name] = doc
        _ARGUMENTS[name] = frozenset(config_cls.__dataclass_fields__) - {"extra", *fixed}
        _FIXED[name] = frozenset(fixed)
        return fn

    return deco


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _MODELS if fnmatch(n, pattern))


def describe_models() -> dict[str, str]:
    return dict(_DOCS)


def model_arguments(name: str) -> frozenset[str]:
    """The keyword arguments the registered model ``name`` accepts (e.g. the TCN has no ``strategy``)."""
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _ARGUMENTS[name]


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the registered architecture ``name`` with fresh weights. ``None`` values are dropped so
    CLI defaults never override the model's own defaults. Arguments the model does not use raise
    :class:`ConfigError`. (:func:`stgcn.models.create_model` also knows the shipped weights.)"""
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    if "params" in kwargs and len(kwargs) == 1:  # the form stored in model.config
        kwargs = dict(kwargs["params"])
        kwargs.pop("extra", None)
        kwargs = {k: v for k, v in kwargs.items() if k not in _FIXED[name]}  # saved, but set by the model
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    unknown = set(kwargs) - _ARGUMENTS[name]
    if unknown:
        raise ConfigError(f"model {name!r}: unknown arguments {sorted(unknown)} (the model does not use them); "
                          f"it takes: {sorted(_ARGUMENTS[name])}")
    params = {k: tuple(v) if k in ("channels", "strides") else v for k, v in kwargs.items()}
    try:
        return _MODELS[name](**params)
    except TypeError as exc:  # a required argument (layout, num_classes) is missing
        raise ConfigError(f"model {name!r}: {exc}") from None


def _stgcn(name: str, defaults: dict, kwargs: dict) -> STGCN:
    return STGCN(STGCNConfig(**{**defaults, **kwargs}, extra={"name": name}))


@register_model("stgcn", "the paper's ST-GCN (§3.6): 9 units 64,64,64,128,128,128,256,256,256, residual on "
                         "every unit, dropout 0.5, stride 2 in the 4th and 7th unit", STGCNConfig)
def stgcn(**kw) -> STGCN:
    return _stgcn("stgcn", {}, kw)


@register_model("stgcn-official", "the official 10-block ST-GCN (yysijie/st-gcn net/st_gcn.py): loads official "
                                  "checkpoints key for key", STGCNConfig)
def stgcn_official(**kw) -> STGCN:
    defaults = dict(channels=OFFICIAL_CHANNELS, strides=OFFICIAL_STRIDES, first_residual=False, first_dropout=False)
    return _stgcn("stgcn-official", defaults, kw)


# the graph fixes the neighbourhoods (uni-labeling) and every pair has its own weight: no shared
# subsets to choose and no edge importance to learn
@register_model("local-conv", "the ablation's local convolution: the sparse joint graph with unshared weights "
                              "per joint pair (paper §4.2)", STGCNConfig,
                fixed=("local", "strategy", "edge_importance"))
def local_conv(**kw) -> STGCN:
    return _stgcn("local-conv", dict(local=True, edge_importance=False, strategy="uniform"), kw)


@register_model("stgcn-tiny", "a 3-unit, 16-32 channel ST-GCN for tests and smoke runs", STGCNConfig)
def stgcn_tiny(**kw) -> STGCN:
    defaults = dict(channels=(16, 16, 32), strides=(1, 2, 1), temporal_kernel=3, dropout=0.0)
    return _stgcn("stgcn-tiny", defaults, kw)


@register_model("tcn", "the ablation's baseline TCN: joints of a frame concatenated, temporal convolutions only",
                TCNConfig)
def tcn(**kw) -> TCN:
    return TCN(TCNConfig(**kw))
