"""stgcn: Spatial Temporal Graph Convolutional Networks (Yan, Xiong & Lin, AAAI 2018).

Public API (imports stay light: torch is imported on first use of a model function)::

    import stgcn
    model = stgcn.create_model("stgcn", layout="ntu-rgb+d", strategy="spatial", num_classes=60)
    sample = stgcn.load_sample("S001C001P001R001A001.skeleton")
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models", "load_sample", "get_layout", "Graph"]


def __getattr__(name: str):
    # Lazy re-exports keep `import stgcn` fast and free of torch/cv2/mediapipe imports.
    if name in ("create_model", "list_models"):
        from . import models

        return getattr(models, name)
    if name == "load_sample":
        from .data import load_sample

        return load_sample
    if name in ("get_layout", "Graph"):
        from . import graph

        return getattr(graph, name)
    raise AttributeError(f"module 'stgcn' has no attribute {name!r}")
