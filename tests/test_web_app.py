"""stgcn.web.app through its HTTP interface (Starlette's TestClient): the page, the JSON API on
skeleton arrays and videos, every refused input as 4xx JSON, nothing written outside the server's
folder, and a request beyond capacity refused while the page and other requests are served."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest

from stgcn.web.jobs import MAX_PERSONS
from web_support import TestClient, app_for, npy_bytes, skeleton


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from demo_support import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("web") / "tiny.pt")


@pytest.fixture(scope="module")
def client(tiny):
    with TestClient(app_for(tiny, topk=3, max_frames=500)) as c:
        yield c


def post(client, name: str, data: bytes):
    return client.post("/api/predict", files={"file": (name, io.BytesIO(data), "application/octet-stream")})


def files_in(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_page_and_model(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert '<input id="file" type="file" name="file"' in r.text and "/api/predict" in r.text
    m = client.get("/api/model").json()
    assert m["layout"] == "kinect-v1" and m["classes"] == ["walk", "sit down", "stand up", "pick up"]
    assert m["limits"]["topk"] == 3 and client.get("/api/status").json() == {"running": 0, "capacity": 1}


def test_a_skeleton_array_gets_people_timeline_and_image(client):
    r = post(client, "walk.npy", npy_bytes(skeleton(t=120, m=2)))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["kind"] == "skeleton" and doc["frames"] == 120 and doc["persons"] == 2 and not doc["nobody"]
    assert set(doc["people"]) == {"0", "1"} and set(doc["segments"]) == {"0", "1"}
    for top in doc["people"].values():
        assert len(top) == 3 and {t["label"] for t in top} <= set(client.get("/api/model").json()["classes"])
        assert all(0 <= t["score"] <= 1 for t in top) and top[0]["score"] >= top[-1]["score"]
    rows = doc["timeline"]["0"]
    assert rows[-1]["frame"] == 119 and rows[0]["start"] == 0  # windows of 32 frames every 8, and the end
    assert [r["frame"] for r in rows[:3]] == [7, 15, 23] and rows[3]["start"] == 0 and rows[4]["start"] == 8
    assert "video" not in doc["urls"]
    img = client.get(doc["urls"]["timeline"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/png" and img.content[:4] == b"\x89PNG"


def test_one_person_array_answers_like_the_predictor(client, tiny):
    from stgcn.inference.predictor import Predictor

    arr = skeleton(t=50, seed=3)
    doc = post(client, "one.npy", npy_bytes(arr)).json()
    p = Predictor.from_checkpoint(tiny)  # the worker's model, in this process
    want = p(arr[None].transpose(3, 1, 2, 0), 3)
    got = [(t["label"], t["score"]) for t in doc["people"]["0"]]
    assert [g[0] for g in got] == [w[0] for w in want]
    assert np.allclose([g[1] for g in got], [w[1] for w in want], atol=1e-5)


@pytest.mark.parametrize(("name", "data", "status", "match"), [
    ("notes.txt", b"this is a plain text file, not a video", 415, "not a video or a .npy array"),
    ("clip.mp4", b"this is a plain text file, not a video", 415, "not a video"),
    ("clip.mp4", npy_bytes(skeleton()), 415, "the name says a video, but the content is a NumPy"),
    ("empty.mp4", b"", 400, "empty"),
    ("bad.npy", npy_bytes(skeleton(v=7)), 422, r"shape \(1, 40, 7, 3\); expected .*V = 20"),
    ("flat.npy", npy_bytes(np.zeros((40, 60), np.float32)), 422, r"shape \(40, 60\)"),
    ("crowd.npy", npy_bytes(skeleton(m=MAX_PERSONS + 1, t=5)), 422, "M <= 16"),
    ("long.npy", npy_bytes(skeleton(t=501)), 422, "501 frames, more than this server takes"),
    ("obj.npy", npy_bytes(np.array([{"a": 1}], dtype=object)), 422, "an object array, which needs pickle"),
    ("cut.npy", npy_bytes(skeleton())[:60], 422, "not a readable numeric .npy array: EOF"),
    ("broken.mp4", b"\x00\x00\x00\x20ftypisom" + b"\x00garbage" * 50, 422, "broken.mp4: cannot open video"),
])
def test_refused_inputs_get_4xx_json(client, name, data, status, match):
    r = post(client, name, data)
    assert r.status_code == status, r.text
    doc = r.json()
    assert doc["status"] == status
    import re

    assert re.search(match, doc["error"]), doc["error"]
    assert "stgcn-serve-" not in doc["error"]  # the server's folders are not shown
    assert client.get("/").status_code == 200  # and it keeps serving


def test_nan_is_refused_with_its_place(client):
    arr = skeleton()
    arr[4, 2, 1] = np.nan
    r = post(client, "nan.npy", npy_bytes(arr))
    assert r.status_code == 422 and "1 values are NaN or infinite, the first at (M, T, V, C) index (0, 4, 2, 1)" \
        in r.json()["error"]


def test_a_path_in_the_filename_writes_nothing_outside(client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = client.app.state.server.root
    before = set(files_in(root.parent)) if False else None  # noqa: F841 (the system temp dir is shared)
    r = post(client, "../../escape.npy", npy_bytes(skeleton()))
    assert r.status_code == 200 and r.json()["filename"] == "escape.npy"
    job = r.json()["id"]
    assert files_in(root / "jobs" / job) == ["timeline.png", "upload"]
    assert not (root.parent / "escape.npy").exists() and not (root.parent.parent / "escape.npy").exists()
    assert not list(tmp_path.iterdir())
    for bad in ("../../etc/passwd", f"{job}/../../x", "nothing"):
        assert client.get(f"/api/jobs/{bad}/upload").status_code == 404
    assert client.get(f"/api/jobs/{job}/upload").status_code == 404  # only the results are served
    assert client.get(f"/api/jobs/{'0' * 32}/timeline.png").status_code == 404


def test_not_multipart_and_no_field(client):
    r = client.post("/api/predict", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]
    r = client.post("/api/predict", files={"other": ("a.npy", io.BytesIO(npy_bytes(skeleton())))})
    assert r.status_code == 400 and "field named 'file'" in r.json()["error"]
    assert client.get("/api/nothing").status_code == 404


def test_old_results_are_removed(client):
    server = client.app.state.server
    ids = [post(client, f"k{i}.npy", npy_bytes(skeleton(t=10, seed=i))).json()["id"]
           for i in range(server.settings.keep_jobs + 1)]
    assert ids[0] not in server.jobs and not (server.root / "jobs" / ids[0]).exists()
    assert len(list((server.root / "jobs").iterdir())) == server.settings.keep_jobs


@pytest.mark.video
def test_video_gets_an_h264_overlay(client, small_video):
    pytest.importorskip("mediapipe")
    from demo_support import probe

    r = post(client, "grey.mp4", small_video.read_bytes())
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["kind"] == "video" and doc["frames"] == 40 and doc["nobody"] and doc["people"] == {}
    assert doc["segments"] == {}  # nobody, no segment
    video = client.get(doc["urls"]["video"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    out = client.app.state.server.root / "check.mp4"
    out.write_bytes(video.content)
    codec, pix, n, size, _ = probe(out)
    assert (codec, pix, n, size) == ("h264", "yuv420p", 40, (160, 120))
    ranged = client.get(doc["urls"]["video"], headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100  # browsers seek with ranges


@pytest.mark.video
def test_a_request_beyond_capacity_gets_503_while_the_page_is_served(client):
    pytest.importorskip("mediapipe")
    from stgcn.inference.demo import bundled_video

    answer = {}

    def long_request():
        answer["r"] = post(client, "ta_chi.mp4", bundled_video().read_bytes())

    t = threading.Thread(target=long_request)
    t.start()
    deadline = time.monotonic() + 60
    while client.get("/api/status").json()["running"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    busy = post(client, "other.npy", npy_bytes(skeleton()))
    t0 = time.monotonic()
    page = client.get("/")
    page_s = time.monotonic() - t0
    still_running = client.get("/api/status").json()["running"]
    t.join(timeout=300)
    assert busy.status_code == 503 and "busy" in busy.json()["error"] and busy.headers["retry-after"] == "5"
    assert page.status_code == 200 and still_running == 1, page_s
    assert answer["r"].status_code == 200 and answer["r"].json()["frames"] == 300
    assert post(client, "after.npy", npy_bytes(skeleton())).status_code == 200  # the slot is free again


def test_serve_cli_binds_to_localhost_and_uses_the_shipped_model(monkeypatch, capsys):
    import uvicorn

    from stgcn.cli import main

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    assert main(["serve"]) == 0
    app, kw = calls[-1]
    assert (kw["host"], kw["port"]) == ("127.0.0.1", 8000)
    server = app.state.server
    assert server.source.checkpoint.endswith("stgcn.utkinect.pt") and server.settings.slots == 1
    err = capsys.readouterr().err
    assert "using the shipped model stgcn.utkinect" in err and "anyone" not in err
    assert main(["serve", "--host", "0.0.0.0", "--port", "9000", "--workers", "2", "--max-upload-mb", "5",
                 "--timeout", "30", "--checkpoint", "x.pt"]) == 0
    app, kw = calls[-1]
    s = app.state.server.settings
    assert kw["host"] == "0.0.0.0" and (s.slots, s.max_upload_bytes, s.timeout_s) == (2, 5_000_000, 30.0)
    assert app.state.server.source.checkpoint == "x.pt" and app.state.server.source.threads >= 1
    assert "anyone who can reach this machine" in capsys.readouterr().err
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_skeleton_segments_are_those_of_the_online_segmenter(tmp_path):
    """The job's segments (offline, batched windows) equal a frame-by-frame OnlineSegmenter run, the
    path of `stgcn segment`; a person absent for a while gets new segments under the same id."""
    from demo_support import EAGER_SEGMENTER, make_checkpoint
    from stgcn.inference.predictor import Predictor
    from stgcn.inference.segmenter import OnlineSegmenter, SegmenterConfig
    from stgcn.web.jobs import run_job

    p = Predictor.from_checkpoint(make_checkpoint(tmp_path / "seg.pt", segmenter=EAGER_SEGMENTER))
    arr = skeleton(t=90, m=2, seed=4)
    arr[1, 30:45] = 0  # person 1 leaves and comes back
    (tmp_path / "a.npy").write_bytes(npy_bytes(arr))
    job = {"kind": "skeleton", "path": str(tmp_path / "a.npy"), "folder": str(tmp_path), "filename": "a.npy",
           "topk": 3, "max_frames": 500}
    doc = run_job(p, job)
    online = OnlineSegmenter(p, SegmenterConfig.from_json(EAGER_SEGMENTER))
    for t in range(90):
        online.update(t, {str(m): arr[m, t] for m in range(2) if np.any(arr[m, t])})
    online.finish()
    want = {k: [d.to_json() for d in v.decided] for k, v in online.tracks.items()}
    assert doc["segments"] == want and all(want.values())
    assert not any(s["start"] <= 37 <= s["end"] for s in doc["segments"]["1"])
    assert (tmp_path / "timeline.png").read_bytes()[:4] == b"\x89PNG"
