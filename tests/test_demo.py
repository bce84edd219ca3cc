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


def _replayed_segments(windows, absent, class_names, config, head=None):
    """The segments a TrackSegmenter finds from the windows' raw probabilities of track 0 (the run
    used no smoothing and every class in its top-k), the person closed at the first window after
    they left and at the end: an independent replay of the demo's wiring."""
    from stgcn.inference.segmenter import TrackSegmenter

    seg, last, out = TrackSegmenter(config, class_names, head), None, []
    for w in windows:
        if w.frame in absent or 0 not in w.people:
            if last is not None and seg.active:
                out += seg.finish(last)
            continue
        probs = dict(w.people[0])
        out += seg.push(w.frame, [probs[c] for c in class_names])
        last = w.frame
    out += seg.finish(last)
    return [d.segment.to_json() | {"decided_at": d.decided_at} for d in out]


@pytest.mark.parametrize("with_head", [False, True])
def test_segments_per_person_in_json_overlay_and_timeline(tmp_path, small_video, capsys, with_head):
    from demo_support import EAGER_SEGMENTER, make_checkpoint, make_head
    from stgcn.inference.segmenter import SegmenterConfig

    head = make_head() if with_head else None
    settings = {**EAGER_SEGMENTER, "head": with_head}
    ckpt = make_checkpoint(tmp_path / "seg.pt", segmenter=settings, head=head)
    absent = range(20, 28)  # the person leaves and comes back: new segments, same track id
    js = tmp_path / "o.json"
    r = run_demo(video=small_video, checkpoint=ckpt, out=tmp_path / "o.mp4", json_out=js, pose=FakePose(empty=absent),
                 smoothing="none", topk=len(CLASSES), progress=True)
    doc = json.loads(js.read_text())
    assert doc["window"] == 16 and doc["stride"] == 1  # the calibrated window and stride (25 fps: unscaled)
    assert doc["segmenter"]["lookahead"] == 4 and doc["segmenter"]["lookahead_s"] == pytest.approx(4 / 25)
    segs = doc["segments"]["0"]
    want = _replayed_segments(r.windows, set(absent), CLASSES, SegmenterConfig.from_json(settings), head)
    assert doc["segmenter"]["head"] is with_head
    assert [{k: s[k] for k in want[0]} for s in segs] == want
    assert all(s["label"] in CLASSES and 0 <= s["start"] <= s["end"] <= 39 for s in segs)
    assert not any(s["start"] <= 23 <= s["end"] or s["start"] <= 27 <= s["end"] for s in segs)  # nobody there
    assert any(s["end"] < 20 for s in segs) and any(s["start"] > 27 for s in segs)
    assert all(s["delay_s"] == pytest.approx((s["decided_at"] - s["end"]) / 25) for s in segs)
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("person 0: ")]
    assert len(printed) == len(segs) and f"frames {segs[0]['start']}-{segs[0]['end']}" in printed[0]
    assert (tmp_path / "o.png").read_bytes()[:4] == b"\x89PNG"
    assert f"segments: {len(segs)} for 1 people" in r.summary()


def test_overlay_shows_the_current_segment(tmp_path, small_video, monkeypatch):
    from demo_support import EAGER_SEGMENTER, make_checkpoint
    from stgcn.inference import draw

    labels = []
    real = draw.draw_person
    monkeypatch.setattr(draw, "draw_person", lambda img, kp, edges, tid, label=None, *a, **k:
                        (labels.append(label), real(img, kp, edges, tid, label, *a, **k)))
    ckpt = make_checkpoint(tmp_path / "seg.pt", segmenter=EAGER_SEGMENTER)
    run_demo(video=small_video, checkpoint=ckpt, out=tmp_path / "o.mp4", pose=FakePose())
    assert labels[0].endswith("[no action]")  # the first window (look-ahead 4) has decided no frame yet
    assert any(" since " in lab and lab.split("[")[1].split(" since")[0] in CLASSES for lab in labels if lab)


def test_a_plain_classifier_labels_the_window_centre(checkpoint, small_video, tmp_path):
    js = tmp_path / "o.json"
    run_demo(video=small_video, checkpoint=checkpoint, json_out=js, pose=FakePose(), window=16, stride=4)
    doc = json.loads(js.read_text())
    assert doc["segmenter"]["window"] == 16 and doc["segmenter"]["lookahead"] == 8 and "segments" in doc
