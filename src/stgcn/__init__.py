"""stgcn: Spatial Temporal Graph Convolutional Networks (Yan, Xiong & Lin, AAAI 2018).

Public API (``import stgcn`` stays light: torch is imported on first use of a model function, and
mediapipe/cv2 only by the video demo)::

    import stgcn
    model = stgcn.create_model("stgcn", layout="ntu-rgb+d", strategy="spatial", num_classes=60)
    sample = stgcn.load_sample("S001C001P001R001A001.skeleton")
    model, meta = stgcn.load_model("runs/demo/train/checkpoints/final.pt")
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "create_model": ("models", "create_model"),
    "list_models": ("models", "list_models"),
    "load_sample": ("data", "load_sample"),
    "get_layout": ("graph", "get_layout"),
    "list_layouts": ("graph", "list_layouts"),
    "Graph": ("graph", "Graph"),
    "load_model": ("checkpoint", "load_model"),
    "save_model": ("checkpoint", "save_model"),
    "load_official": ("compat", "load_official"),
    "Predictor": ("inference.predictor", "Predictor"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    # Lazy re-exports keep `import stgcn` fast and free of torch/cv2/mediapipe imports.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'stgcn' has no attribute {name!r}")
