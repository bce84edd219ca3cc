"""The live-camera path of the demo against a simulated camera.

There is no camera on the machines that run the tests, so ``cv2.VideoCapture`` is replaced (in the
cv2 module, where ``CameraReader`` looks it up) by :class:`FakeCapture`, which serves real frames:
the bundled clip decoded with PyAV, handed out as BGR uint8 the way OpenCV does. What a real device
adds (driver quirks, dropped frames, timing) is not exercised here; see docs/demo.md.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")
pytest.importorskip("scipy")

from demo_support import CLASSES, FakePose, no_temporaries, probe  # noqa: E402
from stgcn.cli import main as cli_main  # noqa: E402
from stgcn.inference import pose as pose_module  # noqa: E402
from stgcn.inference.demo import bundled_video, run_demo  # noqa: E402
from stgcn.inference.video import CameraReader, VideoError  # noqa: E402

SERVED = 48  # frames of the clip the camera serves; enough for several 16-frame windows
W, H = 340, 256  # the bundled clip's size


@pytest.fixture(scope="module")
def clip_bgr() -> list[np.ndarray]:
    with av.open(str(bundled_video())) as c:
        frames = []
        for frame in c.decode(c.streams.video[0]):
            frames.append(frame.to_ndarray(format="bgr24"))
            if len(frames) == SERVED:
                break
    return frames


class FakeCapture:
    """A ``cv2.VideoCapture`` stand-in: serves ``frames`` (BGR uint8) from ``read()``.

    ``fps`` is what ``get(CAP_PROP_FPS)`` reports (cameras often say 0); ``size`` what
    ``get(CAP_PROP_FRAME_WIDTH/HEIGHT)`` reports (None: the frames' size; backends may say 0 or the
    requested size); ``fail_after``: ``read()`` fails from that frame on (an unplugged camera);
    ``opened=False``: the device cannot be opened.
    """

    def __init__(self, index, frames, *, fps=30.0, size=None, fail_after=None, opened=True):
        self.index, self.frames, self.fps = index, frames, fps
        self.size = size if size is not None else (frames[0].shape[1], frames[0].shape[0]) if frames else (0, 0)
        self.fail_after, self.opened = fail_after, opened
        self.reads = self.served = 0
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self.opened and not self.released

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FPS:
            return self.fps
        if prop == cv2.CAP_PROP_FRAME_WIDTH:
            return float(self.size[0])
        if prop == cv2.CAP_PROP_FRAME_HEIGHT:
            return float(self.size[1])
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return -1.0  # a live source has no length
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return False  # like many drivers: the request is not honoured

    def read(self):
        self.reads += 1
        if self.released or not self.opened or self.served >= len(self.frames):
            return False, None
        if self.fail_after is not None and self.served >= self.fail_after:
            return False, None
        frame = self.frames[self.served].copy()  # OpenCV hands out a fresh buffer per read
        self.served += 1
        return True, frame

    def release(self) -> None:
        self.released = True


@pytest.fixture
def camera(monkeypatch, clip_bgr):
    """``camera(**kw)`` installs a FakeCapture factory; returns the list of every capture opened in the test."""
    opened: list[FakeCapture] = []

    def install(frames=None, **kw):
        def factory(index, *args):
            cap = FakeCapture(index, clip_bgr if frames is None else frames, **kw)
            opened.append(cap)
            return cap

        monkeypatch.setattr(cv2, "VideoCapture", factory)
        return opened

    return install


def test_camera_run_writes_video_and_json_like_a_file(camera, checkpoint, small_video, tmp_path, clip_bgr):
    caps = camera(fps=29.97)
    pose = FakePose()
    out, js = tmp_path / "cam.mp4", tmp_path / "cam.json"
    r = run_demo(camera=0, checkpoint=checkpoint, out=out, json_out=js, pose=pose, window=16, stride=4)
    (cap,) = caps
    assert cap.index == 0 and cap.released and pose.closed
    assert r.frames == SERVED and not r.interrupted and r.source == "camera 0" and r.out == out
    codec, pix, n, size, rate = probe(out)
    assert (codec, pix, n, size) == ("h264", "yuv420p", SERVED, (W, H))
    assert rate == pytest.approx(29.97, abs=0.01)
    # OpenCV serves BGR; the pose model must get RGB
    np.testing.assert_array_equal(pose.first, clip_bgr[0][..., ::-1])
    assert pose.shapes == {(H, W, 3)}
    doc = json.loads(js.read_text())
    assert doc["source"] == "camera 0" and doc["frames"] == SERVED and not doc["interrupted"]
    assert len(doc["windows"]) == (SERVED - 4) // 4 + 1  # one every stride from the 4th frame
    assert all(w["scene"][0]["label"] in CLASSES for w in doc["windows"])
    # the same document as for a video file
    ref = run_demo(video=small_video, checkpoint=checkpoint, json_out=tmp_path / "file.json", pose=FakePose(),
                   window=16, stride=4)
    ref_doc = json.loads(ref.json_out.read_text())
    assert doc.keys() == ref_doc.keys() and doc["latency_ms"].keys() == ref_doc["latency_ms"].keys()
    assert doc["windows"][-1].keys() == ref_doc["windows"][-1].keys()
    assert no_temporaries(tmp_path)


@pytest.mark.slow
@pytest.mark.video
def test_camera_with_mediapipe_finds_the_person(camera, checkpoint, tmp_path):
    pytest.importorskip("mediapipe")
    camera(fps=0)
    js = tmp_path / "cam.json"
    r = run_demo(camera="0", checkpoint=checkpoint, out=tmp_path / "cam.mp4", json_out=js, window=16, stride=8)
    assert r.frames == SERVED and r.pose_fps > 0
    assert probe(tmp_path / "cam.mp4")[:4] == ("h264", "yuv420p", SERVED, (W, H))
    doc = json.loads(js.read_text())
    # the tai chi performer is found in the served frames (wrong colours or garbage would lose them)
    assert sum(1 for w in doc["windows"] if w["people"]) >= len(doc["windows"]) - 1 >= 3


def test_camera_that_cannot_be_opened(camera, checkpoint, tmp_path):
    caps = camera(opened=False)
    pose = FakePose()
    with pytest.raises(VideoError, match="cannot open the camera") as e:
        run_demo(camera=3, checkpoint=checkpoint, out=tmp_path / "o.mp4", pose=pose)
    assert "camera 3" in str(e.value)
    assert caps[0].index == 3 and pose.n == 0
    # opens, but never delivers a frame (e.g. a metadata-only /dev/video node)
    caps = camera(frames=[])
    with pytest.raises(VideoError, match="gives no frames"):
        run_demo(camera="/dev/video1", checkpoint=checkpoint, out=tmp_path / "o.mp4", pose=pose)
    assert caps[-1].index == "/dev/video1" and caps[-1].released
    assert not (tmp_path / "o.mp4").exists() and no_temporaries(tmp_path)


@pytest.mark.parametrize("reported, expected", [(0.0, 30.0), (math.nan, 30.0), (-1.0, 30.0), (math.inf, 30.0),
                                                (1e9, 30.0), (15.0, 15.0)])
def test_camera_frame_rate(camera, checkpoint, tmp_path, clip_bgr, reported, expected):
    camera(frames=clip_bgr[:6], fps=reported)
    with CameraReader(0) as reader:
        assert reader.fps == expected
    r = run_demo(camera=0, checkpoint=checkpoint, out=tmp_path / "o.mp4", pose=FakePose(), window=16, stride=4)
    assert r.frames == 6
    assert probe(tmp_path / "o.mp4")[2:] == (6, (W, H), expected)


@pytest.mark.parametrize("size", [(0, 0), (640, 480), (160, 120)])
def test_camera_size_comes_from_the_frames(camera, checkpoint, tmp_path, clip_bgr, size):
    # backends report 0 before the first frame, or the requested size instead of the negotiated one
    camera(frames=clip_bgr[:6], size=size)
    with CameraReader(0, width=size[0] or None, height=size[1] or None) as reader:
        assert (reader.width, reader.height) == (W, H)
        assert sum(1 for _ in reader) == 6  # the frame read to learn the size is not lost
    pose = FakePose()
    run_demo(camera=0, checkpoint=checkpoint, out=tmp_path / "o.mp4", pose=pose, window=16, stride=4)
    assert probe(tmp_path / "o.mp4")[2:4] == (6, (W, H)) and pose.shapes == {(H, W, 3)}


def test_camera_failing_mid_stream_ends_cleanly(camera, checkpoint, tmp_path):
    caps = camera(fail_after=21)
    pose = FakePose()
    out, js = tmp_path / "o.mp4", tmp_path / "o.json"
    r = run_demo(camera=0, checkpoint=checkpoint, out=out, json_out=js, pose=pose, window=16, stride=4)
    assert r.frames == 21 and not r.interrupted and r.out == out and r.json_out == js
    assert caps[0].released and pose.closed and caps[0].reads == 22  # stopped at the first failed read
    assert probe(out)[:4] == ("h264", "yuv420p", 21, (W, H))
    doc = json.loads(js.read_text())
    assert doc["frames"] == 21 and len(doc["windows"]) == 5 and doc["windows"][-1]["frame"] == 19
    assert no_temporaries(tmp_path)


def test_camera_max_frames(camera, checkpoint, tmp_path):
    caps = camera()
    r = run_demo(camera=0, checkpoint=checkpoint, out=tmp_path / "o.mp4", pose=FakePose(), window=16, stride=4,
                 max_frames=10)
    assert r.frames == 10 and caps[0].released and caps[0].served <= 11
    assert probe(tmp_path / "o.mp4")[2] == 10


def test_unwritable_output_releases_the_camera(camera, checkpoint, tmp_path):
    (tmp_path / "file").write_text("in the way")
    caps = camera()
    with pytest.raises(VideoError, match="output video"):
        run_demo(camera=0, checkpoint=checkpoint, out=tmp_path / "file" / "o.mp4", pose=FakePose())
    assert caps[0].released  # a camera left open stays busy for other programs


def test_window_mode_quits_on_q(camera, checkpoint, tmp_path, monkeypatch):
    # the display calls are faked: no screen here, and a real imshow without one aborts the process
    monkeypatch.setenv("DISPLAY", ":99")
    shown, destroyed = [], []
    monkeypatch.setattr(cv2, "imshow", lambda name, img: shown.append(img.shape))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: ord("q") if len(shown) == 5 else -1)
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: destroyed.append(True))
    caps = camera()
    r = run_demo(camera=0, checkpoint=checkpoint, out=tmp_path / "o.mp4", pose=FakePose(), no_window=False,
                 window=16, stride=4)
    assert r.frames == 5 and shown == [(H, W, 3)] * 5 and destroyed and caps[0].released
    assert probe(tmp_path / "o.mp4")[2] == 5


@pytest.fixture
def headless(monkeypatch):
    """No display; a real cv2.imshow would then abort the test process, so it is made to fail loudly."""
    monkeypatch.delenv("DISPLAY", raising=False)

    def imshow(*a):
        raise AssertionError("imshow without a display aborts the process")

    monkeypatch.setattr(cv2, "imshow", imshow)


def test_no_display_records_headless(camera, checkpoint, tmp_path, headless):
    camera()
    r = run_demo(camera=0, checkpoint=checkpoint, out=tmp_path / "o.mp4", pose=FakePose(), no_window=False,
                 window=16, stride=4, max_frames=8)
    assert r.frames == 8 and probe(tmp_path / "o.mp4")[2] == 8


@pytest.fixture
def cli_pose(monkeypatch):
    """Replaces MediaPipe in the CLI path (which builds its own pose backend); returns those built."""
    built: list[FakePose] = []

    def factory(**kw):
        built.append(FakePose(interrupt_at=factory.interrupt_at))
        return built[-1]

    factory.interrupt_at = None
    factory.layout = FakePose.layout
    monkeypatch.setattr(pose_module, "MediaPipePose", factory)
    return factory, built


def test_cli_camera(camera, checkpoint, tmp_path, cli_pose, capsys, headless):
    factory, built = cli_pose
    caps = camera(fps=0)
    out, js = tmp_path / "o.mp4", tmp_path / "o.json"
    base = ["demo", "--camera", "0", "--checkpoint", str(checkpoint), "--window", "16", "--stride", "4"]
    assert cli_main([*base, "--out", str(out), "--json", str(js), "--max-frames", "30"]) == 0
    assert caps[0].index == 0 and caps[0].released and built[0].closed  # "0" is the index, not a file
    assert probe(out)[:4] == ("h264", "yuv420p", 30, (W, H)) and probe(out)[4] == 30.0
    doc = json.loads(js.read_text())
    assert doc["source"] == "camera 0" and doc["frames"] == 30 and doc["windows"]
    assert "30 frames from camera 0" in capsys.readouterr().out

    # Ctrl-C: exit 130, both files finished with what was processed
    factory.interrupt_at = 12
    assert cli_main([*base, "--no-window", "--out", str(out), "--json", str(js)]) == 130
    assert probe(out)[2] == 12 and json.loads(js.read_text())["interrupted"]

    # the camera unplugged mid-run: a normal end
    factory.interrupt_at = None
    camera(fail_after=9)
    assert cli_main([*base, "--no-window", "--json", str(js)]) == 0
    assert json.loads(js.read_text())["frames"] == 9

    # nowhere to show and nothing to write: refused before the camera is opened
    opened = len(camera())
    assert cli_main([*base]) == 2 and cli_main([*base, "--no-window"]) == 2
    assert "nothing to write" in capsys.readouterr().err and len(caps) == opened

    camera(opened=False)
    assert cli_main([*base, "--out", str(out)]) == 2
    assert "cannot open the camera" in capsys.readouterr().err


def test_cli_camera_prints_a_line_per_decided_segment(camera, tmp_path, cli_pose, capsys, headless):
    from demo_support import EAGER_SEGMENTER, make_checkpoint

    ckpt = make_checkpoint(tmp_path / "seg.pt", segmenter=EAGER_SEGMENTER)
    camera(fps=25)
    js = tmp_path / "o.json"
    assert cli_main(["demo", "--camera", "0", "--checkpoint", str(ckpt), "--no-window", "--json", str(js),
                     "--max-frames", "40"]) == 0
    segs = json.loads(js.read_text())["segments"]["0"]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("person 0: ")]
    assert segs and len(lines) == len(segs)
    for line, s in zip(lines, segs, strict=True):
        assert line.startswith(f"person 0: {s['label']} from {s['start'] / 25:.2f} s to {(s['end'] + 1) / 25:.2f} s")
        assert f"decided at {s['decided_at'] / 25:.2f} s" in line
