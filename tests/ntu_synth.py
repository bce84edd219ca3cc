"""NTU ``.skeleton`` text for tests (never real NTU data: it must not be committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stgcn.data.formats.ntu import synthesize_skeleton_text


def write_skeleton(folder: Path, name: str = "S001C002P001R001A005", num_frames: int = 20,
                   num_bodies: int = 2, seed: int = 0) -> Path:
    """Write a random, well-formed ``<name>.skeleton`` into ``folder`` and return its path."""
    path = Path(folder) / f"{name}.skeleton"
    path.write_text(synthesize_skeleton_text(num_frames, num_bodies, np.random.default_rng(seed)))
    return path


def reference_parse(text: str) -> list[list[tuple[int, list[list[float]]]]]:
    """A plain line-by-line parser (official read_skeleton style) to check the fast one against."""
    lines = iter(text.splitlines())
    frames = []
    for _ in range(int(next(lines))):
        bodies = []
        for _ in range(int(next(lines))):
            body_id = int(next(lines).split()[0])
            joints = [[float(v) for v in next(lines).split()] for _ in range(int(next(lines)))]
            bodies.append((body_id, joints))
        frames.append(bodies)
    return frames
