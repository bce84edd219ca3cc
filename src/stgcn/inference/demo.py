"""The demo: a video file or a camera → MediaPipe pose → tracks → sliding-window ST-GCN → overlay.

``run_demo`` writes an H.264 mp4 (browser-playable) with every person's skeleton in the model's
layout, their track id, top label and current action segment, the per-joint attention of the
model's feature maps, and a HUD with the pose fps and the window latency; optionally a JSON of every
window's predictions per person and of each person's segments (``segments``: track id -> ``{label,
start, end, score, decided_at, delay_s}``, 0-based inclusive frames), with the timeline picture
beside it (``.png``). Files are written under temporary names and renamed when complete; an
interrupted run (Ctrl-C) still finalises what was processed.

Segments come from :class:`~stgcn.inference.segmenter.TrackSegmenter` fed each track's window
probabilities, with the checkpoint's calibrated settings (``meta["segmenter"]``, scaled to the
video's frame rate, which also sets the default window) or the defaults (the window's centre labelled;
its last frame for a causal model).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .mapping import map_keypoints
from .predictor import Predictor
from .segmenter import Decided, SegmenterConfig
from .stream import StreamRecognizer, WindowResult


def bundled_video() -> Path:
    """The packaged demo clip (ta_chi.mp4 from the official ST-GCN repository; see its PROVENANCE.md)."""
    from ..resources import resource_path

    return resource_path("videos", "ta_chi.mp4")


@dataclass
class DemoResult:
    """What a demo run produced and how fast it ran."""

    out: Path | None
    json_out: Path | None
    frames: int
    windows: list[WindowResult] = field(default_factory=list)
    pose_fps: float = 0.0
    fps: float = 0.0
    latency_ms: dict = field(default_factory=dict)  # mean / median / max over windows
    interrupted: bool = False
    source: str = ""
    video_fps: float = 30.0
    segmenter: SegmenterConfig | None = None
    segments: dict[int, list[Decided]] = field(default_factory=dict)  # track id -> final segments

    def timed(self, pose_s: float, wall_s: float, latencies_ms: list[float]) -> None:
        """Fill the speed figures from the seconds spent in pose estimation and in all."""
        self.pose_fps = self.frames / pose_s if pose_s > 0 else 0.0
        self.fps = self.frames / wall_s if wall_s > 0 else 0.0
        self.latency_ms = _latency_stats(latencies_ms)

    def summary(self) -> str:
        lat = self.latency_ms
        lines = [f"{self.frames} frames from {self.source}: pose {self.pose_fps:.1f} fps, end to end "
                 f"{self.fps:.1f} fps; {len(self.windows)} windows, latency mean {lat.get('mean', 0):.1f} ms, "
                 f"max {lat.get('max', 0):.1f} ms" + (" (interrupted)" if self.interrupted else "")]
        if self.windows and self.windows[-1].nobody:
            lines.append("last window: nobody there")
        elif self.windows:
            label, score = self.windows[-1].scene[0]
            lines.append(f"last window: {label} ({score:.2f})")
        if self.segmenter is not None:
            n = sum(len(v) for v in self.segments.values())
            lines.append(f"segments: {n} for {len(self.segments)} people ({self.segmenter.describe_lookahead()})")
        if self.out:
            lines.append(f"video: {self.out}")
        if self.json_out:
            lines.append(f"predictions: {self.json_out}")
        return "\n".join(lines)


def can_show_window() -> bool:
    """Whether a display window can be opened.

    The pip OpenCV build draws windows with Qt's xcb plugin only; without an X display ``cv2.imshow``
    aborts the whole process (SIGABRT), which skips the ``finally`` that finalises the video.
    """
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY"))
    return True


def _latency_stats(values: list[float]) -> dict:
    if not values:
        return {}
    a = np.asarray(values)
    return {"mean": float(a.mean()), "median": float(np.median(a)), "max": float(a.max()), "count": len(values)}


def run_demo(video: str | Path | None = None, camera: int | str | None = None, checkpoint: Any = None,
             out: str | Path | None = None, json_out: str | Path | None = None, window: int | None = None,
             no_window: bool = True, max_frames: int | None = None, *, stride: int | None = None,
             max_people: int = 2, detect_every: int = 15, topk: int = 5, smoothing: str = "ema",
             official: bool = False, pose: Any = None, progress: bool = False,
             precision: str = "fp32") -> DemoResult:
    """Run the demo on ``video`` (a file) or ``camera`` (an index or device path).

    Args:
        checkpoint: an stgcn checkpoint path (or, with ``official=True``, an official Kinetics one),
            or a ready :class:`Predictor`.
        out: the overlay mp4 to write (None: no video).
        json_out: per-window predictions per person as JSON (None: none).
        window, stride: frames per window and between windows (defaults from the checkpoint).
        no_window: do not open a display window (always true without a screen).
        max_frames: stop after this many frames.
        pose: a pose backend (default: :class:`MediaPipePose` with ``max_people``, ``detect_every``).
        precision: "fp32" or "bf16" for a checkpoint path (:class:`Predictor`; a ready one keeps its own).
    """
    if (video is None) == (camera is None):
        raise ConfigError("give exactly one of a video file or a camera")
    predictor = _predictor(checkpoint, official, precision)
    reader, pose, stream, writer = _open(predictor, video, camera, pose, out, max_people=max_people,
                                         detect_every=detect_every, window=window, stride=stride,
                                         smoothing=smoothing, topk=topk)
    source = str(video) if video is not None else f"camera {camera}"
    # without a display cv2.imshow aborts the process: record headless instead (see can_show_window)
    show = not no_window and can_show_window()
    cv2 = None
    if show:
        from ..errors import require

        cv2 = require("cv2", "video")
    result = DemoResult(out=None, json_out=None, frames=0, source=source)
    pose_time = 0.0
    t_start = time.perf_counter()
    try:
        for rgb in reader:
            if max_frames is not None and result.frames >= max_frames:
                break
            t0 = time.perf_counter()
            people = pose(rgb)
            pose_time += time.perf_counter() - t0
            pairs, win = stream.update(people)
            if win is not None:
                result.windows.append(win)
                if progress:
                    print(_progress_line(win), flush=True)
                    _print_segments(win.decided, reader.fps)
            result.frames += 1
            if writer is None and not show:
                continue
            canvas = _overlay(rgb, pairs, stream, pose.layout, result.frames / pose_time if pose_time > 0 else 0.0,
                              reader.fps)
            if writer is not None:
                writer.write(canvas)
            if show and _show(cv2, canvas):
                break
        if not result.windows and result.frames > 0:
            # a clip shorter than the first window still gets one answer
            result.windows.append(stream.predict_now())
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        _finish_segments(stream, result, reader.fps, progress)
        reader.close()
        try:
            pose.close()
        finally:
            if writer is not None:
                result.out = writer.close()
            if show:
                cv2.destroyAllWindows()
    result.timed(pose_time, time.perf_counter() - t_start, stream.latencies_ms)
    if json_out is not None:
        result.json_out = write_predictions_json(json_out, result, predictor, stream)
    return result


def _predictor(checkpoint: Any, official: bool, precision: str = "fp32") -> Predictor:
    if checkpoint is None:
        raise ConfigError("a checkpoint is needed (--checkpoint)")
    if isinstance(checkpoint, Predictor):
        return checkpoint
    return Predictor.from_checkpoint(checkpoint, official=official, precision=precision)


def _open(predictor: Predictor, video, camera, pose, out, *, max_people: int, detect_every: int,
          window: int | None, stride: int | None, smoothing: str, topk: int) -> tuple:
    """``(reader, pose, stream, writer)`` of a run; what was opened is closed when a later step fails."""
    from .pose import MediaPipePose
    from .video import CameraReader, H264Writer, VideoReader

    # fail on a layout the pose source cannot produce, or an unreadable input, before loading models
    predictor.check_source(pose.layout if pose is not None else MediaPipePose.layout)
    reader = VideoReader(video) if video is not None else CameraReader(camera)
    made_pose = pose is None
    try:
        if made_pose:
            pose = MediaPipePose(max_people=max(max_people, predictor.contract.num_persons), detect_every=detect_every)
        segmenter = _segmenter(predictor, window, reader.fps)
        if predictor.meta.get("segmenter"):  # the calibrated window and stride, in frames of this video
            window, stride = window or segmenter.window, stride or segmenter.stride
        stream = StreamRecognizer(predictor, pose.layout, window=window, stride=stride, smoothing=smoothing,
                                  topk=topk, image_size=(reader.width, reader.height), segmenter=segmenter)
        writer = H264Writer(out, reader.fps, reader.width, reader.height) if out is not None else None
    except BaseException:
        # release the camera (and MediaPipe) when the setup fails, e.g. an unwritable --out: a camera
        # left open stays busy for other programs until the process exits
        reader.close()
        if made_pose and pose is not None:
            pose.close()
        raise
    return reader, pose, stream, writer


def _segmenter(predictor: Predictor, window: int | None, fps: float) -> SegmenterConfig:
    """The segmenter settings of a run: calibrated ones scaled to ``fps``, else the defaults over
    the stream's window."""
    cfg = SegmenterConfig.for_model(predictor.meta, predictor.model,
                                    window=window or predictor.contract.clip_len or 64)
    return cfg.at_rate(fps)


def segment_line(tid: int, d: Decided, fps: float) -> str:
    """One line per decided segment (the camera mode prints them as they come)."""
    s = d.segment
    return (f"person {tid}: {s.label} from {s.start / fps:.2f} s to {(s.end + 1) / fps:.2f} s (frames {s.start}-"
            f"{s.end}, score {s.score:.2f}), decided at {d.decided_at / fps:.2f} s")


def _finish_segments(stream: StreamRecognizer, result: DemoResult, fps: float, progress: bool) -> None:
    """The stream ended: close every open segment and keep them all in the result."""
    last = stream.finish()
    if progress:
        _print_segments(last, fps)
    result.video_fps, result.segmenter = fps, stream.segmenter
    result.segments = {tid: v for tid, v in stream.segments().items() if v}


def _print_segments(decided: list[tuple[int, Decided]], fps: float) -> None:
    for tid, d in decided:
        print(segment_line(tid, d, fps), flush=True)


def _progress_line(win: WindowResult) -> str:
    top = f"{win.scene[0][0]} ({win.scene[0][1]:.2f})" if win.scene else "nobody there"
    return f"frame {win.frame}: {top}, {win.latency_ms:.0f} ms"


def _show(cv2: Any, canvas: np.ndarray) -> bool:
    """Show the frame in the window; whether the user asked to quit (q or Esc)."""
    cv2.imshow("stgcn demo", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    return cv2.waitKey(1) & 0xFF in (ord("q"), 27)


def _overlay(rgb: np.ndarray, pairs: list, stream: StreamRecognizer, pose_layout: str, pose_fps: float,
             fps: float) -> np.ndarray:
    """A copy of the frame with every person's skeleton (in the model's layout), track id, label,
    current segment and attention, and the HUD (pose fps, window latency, the scene's label or
    "nobody there")."""
    from .draw import draw_hud, draw_person

    canvas = rgb.copy()
    last, layout = stream.last, stream.predictor.layout
    for tid, p in pairs:
        kp = map_keypoints(p.keypoints, pose_layout, layout, score_channel=True)
        label = None
        if last is not None and last.people.get(tid):
            name, score = last.people[tid][0]
            label = f"{name} {score:.2f}"
        if stream.segmenter is not None:
            seg = stream.current_segment(tid)
            now = f"[{seg.label} since {seg.start / fps:.1f} s]" if seg is not None else "[no action]"
            label = f"{label} {now}" if label else now
        draw_person(canvas, kp, layout.edges, tid, label, last.attention.get(tid) if last is not None else None)
    hud = [f"pose {pose_fps:.0f} fps  window {stream.latencies_ms[-1]:.0f} ms" if stream.latencies_ms
           else f"pose {pose_fps:.0f} fps  warming up"]
    if last is not None:
        hud.append(f"{last.scene[0][0]} {last.scene[0][1]:.2f}" if last.scene else "nobody there")
    draw_hud(canvas, hud)
    return canvas


def write_predictions_json(path: str | Path, result: DemoResult, predictor: Predictor,
                           stream: StreamRecognizer) -> Path:
    from ..checkpoint import atomic_write_text

    doc = {
        "source": result.source, "frames": result.frames, "interrupted": result.interrupted,
        "layout": predictor.layout.name, "persons": predictor.contract.num_persons,
        "window": stream.window, "stride": stream.stride, "min_frames": predictor.contract.min_frames,
        "pose_fps": round(result.pose_fps, 2), "fps": round(result.fps, 2),
        "latency_ms": {k: round(v, 3) if isinstance(v, float) else v for k, v in result.latency_ms.items()},
        "windows": [w.to_json() for w in result.windows],
    }
    times = np.arange(result.frames + 1) / result.video_fps
    if result.segmenter is not None:
        doc["segmenter"] = {**result.segmenter.to_json(), "lookahead_s": result.segmenter.lookahead_s}
        doc["segments"] = {str(tid): [d.to_json(times) for d in v] for tid, v in result.segments.items()}
    path = Path(path)
    write_timeline(path.with_suffix(".png"), result, predictor)
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return path


def write_timeline(path: Path, result: DemoResult, predictor: Predictor) -> None:
    """The run's timeline picture: per person, the segments and each window's top-1 label."""
    from ..plots import plot_timeline, window_spans

    windows: dict[str, list[dict]] = {}
    for w in result.windows:
        for tid, top in w.people.items():
            windows.setdefault(str(tid), []).append({"start": w.start, "frame": w.frame, "label": top[0][0],
                                                     "score": top[0][1]})
    rows = []
    for tid in sorted({*map(str, result.segments), *windows}, key=int):
        rows.append((f"person {tid} segments", [d.segment for d in result.segments.get(int(tid), [])]))
        rows.append((f"person {tid} windows", window_spans(windows.get(tid, []))))
    plot_timeline(rows, predictor.class_names, max(result.frames, 1), path, fps=result.video_fps,
                  title=f"{Path(result.source).name}: segments and window labels")
