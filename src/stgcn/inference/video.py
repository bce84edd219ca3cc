"""Reading frames (PyAV for files, OpenCV for cameras) and writing browser-playable H.264 mp4.

The output is written with PyAV as libx264 / yuv420p with ``+faststart``: OpenCV's ``VideoWriter``
only manages MPEG-4 Part 2 (``mp4v``) in the pip build, which browsers refuse to play. The file is
written under a temporary name and renamed when closed; closing happens in ``finally`` blocks, so an
interrupted run still leaves a valid video of the frames written so far.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import DataError, require


class VideoError(DataError):
    """A video file or camera cannot be opened, read or written."""


class VideoReader:
    """Decoded RGB frames of a video file, (H, W, 3) uint8, in presentation order."""

    def __init__(self, path: str | Path) -> None:
        av = require("av", "video")
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError("video file not found", file=str(self.path))
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise VideoError(f"cannot open video ({exc})", file=str(self.path)) from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError("the file has no video stream", file=str(self.path))
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 30.0
        self.width = self._stream.codec_context.width
        self.height = self._stream.codec_context.height
        self.num_frames = int(self._stream.frames or 0)  # 0 when the container does not say

    def __iter__(self) -> Iterator[np.ndarray]:
        av = require("av", "video")
        try:
            for frame in self._container.decode(self._stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            raise VideoError(f"cannot decode video ({exc})", file=str(self.path)) from None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CameraReader:
    """Frames from a camera through OpenCV (BGR converted to RGB)."""

    def __init__(self, index: int | str = 0, width: int | None = None, height: int | None = None) -> None:
        cv2 = require("cv2", "video")
        self._cv2 = cv2
        self.path = f"camera {index}"
        cap = cv2.VideoCapture(int(index) if str(index).isdigit() else index)
        if not cap.isOpened():
            raise VideoError("cannot open the camera (no such device, or it is in use)", file=self.path)
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._cap = cap
        # Drivers report 0 (unknown), NaN or nonsense; NaN and inf used to reach the writer, where inf
        # crashed Fraction(). An unknown rate becomes 30, the usual webcam rate.
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0)
        self.fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else 30.0
        # The size comes from the first frame, not CAP_PROP_FRAME_*: several backends report 0, or the
        # requested rather than the negotiated size, and the writer and the keypoint normalisation
        # need the real one (a larger frame than announced crashed H264Writer.write).
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise VideoError("the camera opened but gives no frames", file=self.path)
        self._first: np.ndarray | None = first
        self.height, self.width = first.shape[:2]
        self.num_frames = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._first is not None:
            first, self._first = self._first, None
            yield self._cv2.cvtColor(first, self._cv2.COLOR_BGR2RGB)
        while True:
            ok, bgr = self._cap.read()
            if not ok:
                return
            yield self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> CameraReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def temp_path_for(path: Path) -> Path:
    """A sibling temporary name that keeps the suffix (FFmpeg picks the muxer from it)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.{int(time.time() * 1000)}.partial{path.suffix}")


class H264Writer:
    """Write RGB frames to an H.264 mp4 (yuv420p, +faststart) atomically.

    Frames go to a temporary file next to ``path``; :meth:`close` flushes the encoder, finishes the
    container and renames the file to ``path``. Odd frame sizes are padded by one pixel, since
    yuv420p needs even width and height.
    """

    def __init__(self, path: str | Path, fps: float, width: int, height: int, crf: int = 23) -> None:
        av = require("av", "video")
        self.path = Path(path)
        self._tmp = temp_path_for(self.path)
        self.width, self.height = width + width % 2, height + height % 2
        try:
            # inside the try: an unusable output folder (e.g. a file in the way) is a VideoError the
            # CLI reports, not a traceback
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self._tmp), mode="w", format="mp4",
                                      options={"movflags": "+faststart"})
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"cannot create the output video ({exc})", file=str(self.path)) from None
        rate = Fraction(fps).limit_denominator(1001) if math.isfinite(fps) and fps > 0 else Fraction(30)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "veryfast", "profile": "high"}
        self._av = av
        self.frames = 0
        self._closed = False

    def write(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        if (w, h) != (self.width, self.height):
            rgb = np.pad(rgb, ((0, self.height - h), (0, self.width - w), (0, 0)), mode="edge")
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and move it into place; returns the path, or None if no frame was written."""
        if self._closed:
            return self.path if self.frames else None
        self._closed = True
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
        if self.frames == 0:
            self._tmp.unlink(missing_ok=True)
            return None
        os.replace(self._tmp, self.path)
        return self.path

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
