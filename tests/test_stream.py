"""Streaming: windows every stride frames, per-track and scene predictions, smoothing, latency."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy")

from stgcn.errors import LayoutError  # noqa: E402
from stgcn.inference.pose import Person  # noqa: E402
from stgcn.inference.predictor import Predictor  # noqa: E402
from stgcn.inference.stream import Smoother, StreamRecognizer  # noqa: E402
from stgcn.models import create_model  # noqa: E402


def predictor(layout="kinect-v1", data=None) -> Predictor:
    model = create_model("stgcn-tiny", layout=layout, num_classes=3)
    data = {"test_pipeline": [{"name": "center"}]} if data is None else data
    return Predictor(model, {"class_names": ["a", "b", "c"], "layout": layout, "data": data})


def person(cx: float, seed: int = 0) -> Person:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-20, 20, (33, 2)) + [cx, 120]
    kp = np.concatenate([xy, np.full((33, 1), 0.9)], 1).astype(np.float32)
    box = np.array([xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()], np.float32)
    return Person(keypoints=kp, box=box, score=0.9, world=rng.normal(0, 0.3, (33, 3)).astype(np.float32))


def test_windows_at_stride_with_per_track_predictions():
    s = StreamRecognizer(predictor(), "mediapipe", window=16, stride=4, image_size=(340, 256))
    results = []
    for f in range(20):
        people = [person(60 + f), person(260 - f, seed=1)] if f < 12 else [person(60 + f)]
        pairs, r = s.update(people)
        assert len(pairs) == len(people)
        if r is not None:
            results.append(r)
    assert [r.frame for r in results] == [3, 7, 11, 15, 19]
    assert all(len(r.people) == 2 for r in results[:3]) and len(results[-1].people) == 1
    for r in results:
        assert r.latency_ms > 0 and len(r.scene) == 3
        assert r.start == max(0, r.frame - 15)
        for tid, top in r.people.items():
            assert [n for n, _ in top] and sorted(n for n, _ in top) == ["a", "b", "c"]
            att = r.attention[tid]
            assert att.shape == (20,) and att.min() >= 0 and att.max() <= 1
    assert len(s.latencies_ms) == 5
    assert "people" in results[0].to_json() and results[0].to_json()["scene"][0]["label"] in "abc"


def test_nobody_there_is_the_answer_and_predict_now():
    s = StreamRecognizer(predictor(), "mediapipe", window=8, stride=2)
    results = [s.update([])[1] for _ in range(4)]
    assert [r is None for r in results] == [True, False, True, False]  # a window every stride frames
    for r in results[1::2]:
        assert r.nobody and r.scene == [] and r.people == {} and r.to_json()["nobody"] is True
    assert s.latencies_ms == []  # nothing ran
    s.update([person(100)])
    r = s.predict_now()
    assert not r.nobody and list(r.people) == [0] and r.to_json()["nobody"] is False


def test_a_person_seen_in_too_few_frames_is_nobody():
    data = {"test_pipeline": [{"name": "center"}], "min_frames": 3}
    s = StreamRecognizer(predictor(data=data), "mediapipe", window=8, stride=100, min_frames=100)
    s.update([person(100)])
    s.update([person(101)])  # two detections (a false positive, say)
    for _ in range(3):
        s.update([])
    assert s.predict_now().nobody
    for f in range(3):
        s.update([person(100 + f)])
    assert not s.predict_now().nobody  # five detections in the window now


def test_one_person_model_gets_one_slot_and_the_scene_is_that_person():
    data = {"test_pipeline": [{"name": "center"}], "num_persons": 1}
    p = predictor(data=data)
    s = StreamRecognizer(p, "mediapipe", window=8, stride=4, smoothing="none")
    frames = [[person(60 + f), person(260 - f, seed=1)] for f in range(8)]
    for people in frames:
        s.update(people)
    r = s.last
    assert len(r.people) == 2
    # the scene is the most confident track alone (M = 1), no phantom second slot
    x = p.people_clip([[f[0] for f in frames]], "mediapipe")
    assert x.shape == (3, 8, 20, 1)
    assert [n for n, _ in r.scene] == [n for n, _ in p(x, 3)]
    np.testing.assert_allclose([v for _, v in r.scene], [v for _, v in p(x, 3)], rtol=1e-5)


def test_smoother():
    ema = Smoother("ema", alpha=0.5)
    ema(1, np.array([1.0, 0.0]))
    np.testing.assert_allclose(ema(1, np.array([0.0, 1.0])), [0.5, 0.5])
    mean = Smoother("mean")
    for v in ([1.0, 0.0], [0.0, 1.0], [0.0, 1.0]):
        out = mean(7, np.array(v))
    np.testing.assert_allclose(out, [1 / 3, 2 / 3])
    np.testing.assert_allclose(Smoother("none")(1, np.array([0.2, 0.8])), [0.2, 0.8])


def test_layout_mismatch_fails_before_streaming():
    with pytest.raises(LayoutError, match="coco"):
        StreamRecognizer(predictor("coco", {}), "mediapipe")
