"""A recipe's transform specs as a transform: the stream placeholder, test clips, building.

Training, evaluation and inference build their pipelines here, so a checkpoint's recorded
``test_pipeline`` means the same thing on every path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def stream_spec(stream: str) -> dict:
    return {"name": "stream", "kind": stream}


def resolve_pipeline(specs: Sequence[dict], stream: str) -> list[dict]:
    """Fill the ``{name: stream}`` placeholder (appended when absent) with the chosen stream.

    The joint stream is the raw input, so its placeholder is dropped rather than run as a no-op.
    """
    out: list[dict] = []
    placed = False
    for spec in specs:
        if spec.get("name") == "stream" and len(spec) == 1:
            placed = True
            if stream != "joint":
                out.append(stream_spec(stream))
        else:
            out.append(dict(spec))
            placed = placed or spec.get("name") == "stream"
    if not placed and stream != "joint":
        out.append(stream_spec(stream))
    return out


def build_transform(specs: Sequence[dict], layout: Any, channels: Sequence[str] | None = None):
    """``stgcn.data.transforms.build_pipeline`` or None for an empty pipeline."""
    if not specs:
        return None
    from .transforms import build_pipeline

    return build_pipeline([dict(s) for s in specs], layout, channels=list(channels) if channels else None)


def with_test_clips(specs: Sequence[dict], clips: int) -> tuple[list[dict], int]:
    """Put ``clips`` into the test pipeline. ``uniform_sample`` draws its clips itself (pyskl's
    ``num_clips``, reproducible test-mode offsets); other pipelines are run ``clips`` times with
    different seeds. Returns (specs, clips the dataset must draw)."""
    specs = [dict(s) for s in specs]
    for spec in specs:
        if spec.get("name") == "uniform_sample":
            spec["num_clips"] = int(clips)
            return specs, 1
    return specs, int(clips)
