"""Shared test settings: one thread (the machine has 2 cores shared with other work), the shared
folder's location, and a deterministic seed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STGCN_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared folder not found at {SHARED} (set STGCN_SHARED)")
    return SHARED


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """An untrained tiny demo checkpoint (demo and camera tests)."""
    from demo_support import make_checkpoint

    return make_checkpoint(tmp_path / "tiny.pt")


@pytest.fixture
def small_video(tmp_path) -> Path:
    """A 40-frame synthetic mp4 (demo and camera tests; they skip without the [video] extra)."""
    from demo_support import make_small_video

    return make_small_video(tmp_path / "in.mp4")
