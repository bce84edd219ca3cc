"""The demo: bundled clip → MediaPipe → tiny kinect-v1 model → H.264 mp4 + JSON; error cases and
interruption with a fake pose backend."""

from __future__ import annotations

import json

import pytest

av = pytest.importorskip("av")
pytest.importorskip("cv2")
pytest.importorskip("scipy")

from demo_support import CLASSES, FakePose, no_temporaries, probe  # noqa: E402
from stgcn.checkpoint import save_model  # noqa: E402
from stgcn.errors import LayoutError, StgcnError  # noqa: E402
from stgcn.inference.demo import bundled_video, run_demo  # noqa: E402
from stgcn.inference.video import VideoError  # noqa: E402
from stgcn.models import create_model  # noqa: E402


@pytest.mark.slow
@pytest.mark.video
def test_demo_on_bundled_clip(checkpoint, tmp_path):
    pytest.importorskip("mediapipe")
    out, js = tmp_path / "out.mp4", tmp_path / "out.json"
    r = run_demo(video=bundled_video(), checkpoint=checkpoint, out=out, json_out=js, max_frames=60)
    assert r.frames == 60 and r.out == out and r.pose_fps > 0
    assert probe(out)[:3] == ("h264", "yuv420p", 60)
    with open(out, "rb") as f:
        head = f.read(4096)
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))
    doc = json.loads(js.read_text())
    assert doc["frames"] == 60 and doc["layout"] == "kinect-v1" and len(doc["windows"]) >= 3
    w = doc["windows"][-1]
    assert w["people"] and all(p[0]["label"] in CLASSES for p in w["people"].values())
    assert w["scene"][0]["label"] in CLASSES and doc["latency_ms"]["mean"] > 0
    assert no_temporaries(tmp_path)  # temporaries renamed


def test_interrupt_finalises_video_and_json(checkpoint, small_video, tmp_path):
    pose = FakePose(interrupt_at=25, empty=range(5, 9))
    r = run_demo(video=small_video, checkpoint=checkpoint, out=tmp_path / "o.mp4", json_out=tmp_path / "o.json",
                 pose=pose, window=16, stride=4)
    assert r.interrupted and r.frames == 25 and pose.closed
    assert probe(tmp_path / "o.mp4")[:3] == ("h264", "yuv420p", 25)
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["interrupted"] and doc["windows"]


def test_person_leaving_and_short_clip(checkpoint, small_video, tmp_path):
    r = run_demo(video=small_video, checkpoint=checkpoint, json_out=tmp_path / "o.json",
                 pose=FakePose(empty=range(20, 40)), window=64, stride=100)
    assert r.frames == 40 and len(r.windows) == 1  # shorter than a window: one prediction at the end


def test_errors(checkpoint, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(VideoError):
        run_demo(video=bad, checkpoint=checkpoint, out=tmp_path / "o.mp4", pose=FakePose())
    with pytest.raises(VideoError, match="not found"):
        run_demo(video=tmp_path / "none.mp4", checkpoint=checkpoint, pose=FakePose())
    coco = tmp_path / "coco.pt"
    save_model(coco, create_model("stgcn-tiny", layout="coco", num_classes=2), {"class_names": ["a", "b"],
                                                                               "layout": "coco"})
    with pytest.raises(LayoutError, match="coco"):
        run_demo(video=bundled_video(), checkpoint=coco, out=tmp_path / "o.mp4", pose=FakePose())
    assert not (tmp_path / "o.mp4").exists()
    with pytest.raises(StgcnError):
        run_demo(checkpoint=checkpoint)


def test_bundled_video_is_packaged():
    p = bundled_video()
    assert p.is_file() and (p.parent / "PROVENANCE.md").is_file()


def test_cli_writes_the_json_beside_the_video(checkpoint, small_video, tmp_path, monkeypatch, capsys):
    from stgcn.cli import main
    from stgcn.inference import pose as pose_module

    def factory(**kw):
        return FakePose()

    factory.layout = FakePose.layout
    monkeypatch.setattr(pose_module, "MediaPipePose", factory)
    base = ["demo", str(small_video), "--checkpoint", str(checkpoint), "--window", "16", "--stride", "8"]
    assert main([*base, "--out", str(tmp_path / "a.mp4")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["frames"] == 40  # OUT.json by default
    assert main([*base, "--out", str(tmp_path / "b.mp4"), "--no-json"]) == 0
    assert (tmp_path / "b.mp4").is_file() and not (tmp_path / "b.json").exists()
    assert main([*base, "--out", str(tmp_path / "c.mp4"), "--json", str(tmp_path / "elsewhere.json")]) == 0
    assert (tmp_path / "elsewhere.json").is_file() and not (tmp_path / "c.json").exists()
    assert main([*base, "--out", str(tmp_path / "d.mp4"), "--json", "x.json", "--no-json"]) == 2
    capsys.readouterr()


def test_blank_video_is_nobody_there(checkpoint, small_video, tmp_path):
    r = run_demo(video=small_video, checkpoint=checkpoint, json_out=tmp_path / "o.json",
                 pose=FakePose(empty=range(40)), window=16, stride=8)
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["windows"] and all(w["nobody"] and w["scene"] == [] for w in doc["windows"])
    assert "last window: nobody there" in r.summary()
