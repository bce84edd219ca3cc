"""What the demo and camera tests share (their fixtures ``checkpoint`` and ``small_video`` are in
conftest.py and build on these)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stgcn.checkpoint import save_model
from stgcn.models import create_model

CLASSES = ["walk", "sit down", "stand up", "pick up"]


# segmenter settings under which an untrained model gives segments: every window decides
EAGER_SEGMENTER = {"window": 16, "stride": 1, "lookahead": 4, "smoothing": 1, "threshold": 0.0, "hysteresis": 1,
                   "min_length": 1, "background": None, "fps": 25.0}


def make_head(num_classes: int = len(CLASSES), seed: int = 0):
    """A temporal head (stgcn.models.temporal_head) over ``num_classes`` classes with random weights
    (a fresh one passes the windows through unchanged)."""
    import torch

    from stgcn.models.temporal_head import HeadConfig, TemporalHead

    torch.manual_seed(seed)
    head = TemporalHead(HeadConfig(tuple(4.0 + i for i in range(num_classes)), channels=8, layers=3)).eval()
    with torch.no_grad():
        head.out.weight.normal_(std=1.0)
    return head


def make_checkpoint(path: Path, segmenter: dict | None = None, head=None) -> Path:
    """An untrained stgcn-tiny on kinect-v1 (a layout the MediaPipe mapping produces), with
    ``segmenter`` settings (and a temporal ``head``) in its meta when given."""
    model = create_model("stgcn-tiny", layout="kinect-v1", num_classes=len(CLASSES))
    save_model(path, model, {"class_names": CLASSES, "layout": "kinect-v1",
                             "data": {"layout": "kinect-v1", "in_channels": 3, "clip_len": 32,
                                      "test_pipeline": [{"name": "center"}]},
                             **({"segmenter": segmenter} if segmenter else {}),
                             **({"segmenter_head": head.to_meta()} if head is not None else {})})
    return path


def make_small_video(path: Path) -> Path:
    """40 grey frames of 160x120 at 25 fps (needs the [video] extra)."""
    from stgcn.inference.video import H264Writer

    with H264Writer(path, 25, 160, 120) as w:
        for i in range(40):
            w.write(np.full((120, 160, 3), i * 5, np.uint8))
    return path


class FakePose:
    """Stands in for MediaPipe: one person walking right (with world landmarks), nobody on the
    frames in ``empty``, Ctrl-C at frame ``interrupt_at``; keeps the first frame and every shape seen."""

    layout = "mediapipe"

    def __init__(self, interrupt_at: int | None = None, empty=(), **_) -> None:
        self.n, self.interrupt_at, self.empty, self.closed = 0, interrupt_at, set(empty), False
        self.first: np.ndarray | None = None
        self.shapes: set[tuple[int, ...]] = set()

    def __call__(self, frame: np.ndarray) -> list:
        from stgcn.inference.pose import Person

        if self.first is None:
            self.first = frame.copy()
        self.shapes.add(frame.shape)
        i = self.n
        self.n += 1
        if i == self.interrupt_at:
            raise KeyboardInterrupt
        if i in self.empty:
            return []
        rng = np.random.default_rng(0)
        xy = rng.uniform(-40, 40, (33, 2)) + [100 + i, 120]
        kp = np.concatenate([xy, np.full((33, 1), 0.9)], 1).astype(np.float32)
        box = np.array([*xy.min(0), *xy.max(0)], np.float32)
        return [Person(kp, box, 0.9, world=rng.normal(0, 0.3, (33, 3)).astype(np.float32))]

    def close(self) -> None:
        self.closed = True


def probe(path: Path) -> tuple:
    """codec, pixel format, decoded frame count, (width, height), frame rate of an mp4."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return s.codec_context.name, s.codec_context.pix_fmt, n, (s.width, s.height), float(s.average_rate)


def no_temporaries(folder: Path) -> bool:
    """No hidden temporary file left (outputs are written as .NAME.*.tmp and renamed)."""
    return not [p for p in folder.iterdir() if p.name.startswith(".")]
