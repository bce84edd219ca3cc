"""From video (or a camera, or OpenPose output) to actions.

``pose`` (MediaPipe / OpenPose folders) → ``mapping`` (to the model's layout) → ``tracker`` (ids)
→ ``stream`` (sliding windows) → ``predictor`` (the checkpoint's data contract) → ``draw`` /
``video`` (H.264 overlay) — tied together by ``demo.run_demo``. Nothing here imports mediapipe,
cv2 or av until it is used.
"""

from __future__ import annotations

__all__ = ["Predictor", "run_demo", "bundled_video", "map_keypoints", "MediaPipePose", "OpenPoseFolderSource",
           "Tracker", "StreamRecognizer"]

_WHERE = {"Predictor": "predictor", "run_demo": "demo", "bundled_video": "demo", "map_keypoints": "mapping",
          "MediaPipePose": "pose", "OpenPoseFolderSource": "pose", "Tracker": "tracker",
          "StreamRecognizer": "stream"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
