"""`stgcn quickstart` (what `make demo` runs) end to end on the bundled UTKinect, shortened."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quickstart_one_epoch(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "stgcn", "quickstart", "--out", str(out), "--epochs", "1",
                        "--no-video"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for f in ("data/meta.json", "train/report.md", "train/checkpoints/best.pt", "train/checkpoints/final.pt",
              "train/curves.png", "eval/report.md", "eval/confusion.png", "eval/scores.npz"):
        assert (out / f).is_file(), f
    assert "UTKinect cross-subject" in r.stdout and "training report" in r.stdout
