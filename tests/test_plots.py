"""stgcn.plots: the one timeline picture and the window spans it draws."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from stgcn.plots import plot_timeline, window_spans  # noqa: E402
from stgcn.segmentation import Segment  # noqa: E402


def test_window_spans_cover_the_frames_since_the_previous_window():
    rows = [{"start": 0, "frame": 7, "label": "a", "score": 0.5}, {"start": 0, "frame": 15, "label": "b", "score": 1},
            {"start": 40, "frame": 55, "label": "a", "score": 0.25}]  # after a gap: the whole window
    assert window_spans(rows) == [Segment("a", 0, 7, 0.5), Segment("b", 8, 15, 1.0), Segment("a", 40, 55, 0.25)]
    assert window_spans([]) == []


def test_timeline_with_rows_and_with_nobody(tmp_path):
    rows = [("person 0 segments", [Segment("a", 3, 9, 0.8)]), ("ground truth", [Segment("b", 2, 10)])]
    plot_timeline(rows, ["a", "b"], 20, tmp_path / "t.png", fps=10)
    plot_timeline([], ["a", "b"], 20, tmp_path / "empty.png")
    assert all((tmp_path / n).read_bytes()[:4] == b"\x89PNG" for n in ("t.png", "empty.png"))
