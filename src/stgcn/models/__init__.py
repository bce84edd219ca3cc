"""Models: the registry and the architectures (ST-GCN paper/official, TCN and local-conv baselines)."""

from .baselines import TCN, TCNConfig
from .factory import create_model
from .optimize import optimize_for_inference
from .registry import build_model, describe_models, list_models, model_arguments, register_model
from .stgcn import STGCN, STGCNConfig

__all__ = ["create_model", "build_model", "list_models", "describe_models", "model_arguments", "register_model",
           "optimize_for_inference", "STGCN", "STGCNConfig", "TCN", "TCNConfig"]
