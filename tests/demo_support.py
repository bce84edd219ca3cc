"""What the demo and camera tests share (their fixtures ``checkpoint`` and ``small_video`` are in
conftest.py and build on these)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stgcn.checkpoint import save_model
from stgcn.models import create_model

CLASSES = ["walk", "sit down", "stand up", "pick up"]


def make_checkpoint(path: Path) -> Path:
    """An untrained stgcn-tiny on kinect-v1 (a layout the MediaPipe mapping produces)."""
    model = create_model("stgcn-tiny", layout="kinect-v1", num_classes=len(CLASSES))
    save_model(path, model, {"class_names": CLASSES, "layout": "kinect-v1",
                             "data": {"layout": "kinect-v1", "in_channels": 3, "clip_len": 32,
                                      "test_pipeline": [{"name": "center"}]}})
    return path


def make_small_video(path: Path) -> Path:
    """40 grey frames of 160x120 at 25 fps (needs the [video] extra)."""
    from stgcn.inference.video import H264Writer

    with H264Writer(path, 25, 160, 120) as w:
        for i in range(40):
            w.write(np.full((120, 160, 3), i * 5, np.uint8))
    return path
