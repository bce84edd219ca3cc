"""Overlays: skeletons with per-joint attention, track ids and labels, and a small HUD.

Drawing works on RGB uint8 frames with OpenCV (imported lazily). The per-joint attention is drawn as
in the paper's figures: a circle per joint whose size and colour grow with the joint's response.
"""

from __future__ import annotations

import numpy as np

from ..errors import require

# distinct RGB colours for track ids
_PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
            (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]


def track_colour(track_id: int) -> tuple[int, int, int]:
    return _PALETTE[track_id % len(_PALETTE)]


def _heat(a: float) -> tuple[int, int, int]:
    """Blue (low) → yellow → red (high), RGB."""
    a = float(np.clip(a, 0.0, 1.0))
    if a < 0.5:
        return (int(510 * a), int(510 * a), int(255 * (1 - 2 * a)))
    return (255, int(255 * (2 - 2 * a)), 0)


def draw_person(img: np.ndarray, kp: np.ndarray, edges, track_id: int, label: str | None = None,
                attention: np.ndarray | None = None, min_conf: float = 0.2) -> None:
    """Draw one skeleton in place: ``kp`` (V, 3) pixels + confidence in the model's layout."""
    cv2 = require("cv2", "video")
    colour = track_colour(track_id)
    h, w = img.shape[:2]
    scale = max(1.0, min(h, w) / 256.0)
    ok = kp[:, 2] >= min_conf
    pts = [(int(round(x)), int(round(y))) for x, y in kp[:, :2]]
    for i, j in edges:
        if ok[i] and ok[j]:
            cv2.line(img, pts[i], pts[j], colour, max(1, int(2 * scale)), cv2.LINE_AA)
    for v in np.flatnonzero(ok):
        if attention is not None:
            a = float(attention[v])
            cv2.circle(img, pts[v], int(round((1.5 + 4.5 * a) * scale)), _heat(a), -1, cv2.LINE_AA)
        else:
            cv2.circle(img, pts[v], int(round(2 * scale)), colour, -1, cv2.LINE_AA)
    if ok.any():
        x = int(kp[ok, 0].min())
        y = int(kp[ok, 1].min()) - 6
        text = f"#{track_id}" + (f" {label}" if label else "")
        put_text(img, text, (max(0, x), max(12, y)), colour, 0.45 * scale)


def put_text(img: np.ndarray, text: str, org: tuple[int, int], colour=(255, 255, 255), size: float = 0.45) -> None:
    """Text with a dark outline, readable on any background."""
    cv2 = require("cv2", "video")
    thick = max(1, int(round(size * 2)))
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, size, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, size, colour, thick, cv2.LINE_AA)


def draw_hud(img: np.ndarray, lines: list[str]) -> None:
    """A few lines of status text in the top-left corner, on a translucent band."""
    if not lines:
        return
    h = 16 * len(lines) + 6
    w = min(img.shape[1], 8 + 7 * max(len(s) for s in lines))
    band = img[:h, :w].astype(np.float32)
    img[:h, :w] = (band * 0.45).astype(np.uint8)
    for i, s in enumerate(lines):
        put_text(img, s, (4, 15 + 16 * i), (255, 255, 255), 0.4)
