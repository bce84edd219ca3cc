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


def test_no_people_no_prediction_and_predict_now():
    s = StreamRecognizer(predictor(), "mediapipe", window=8, stride=2)
    for _ in range(4):
        assert s.update([])[1] is None
    s.update([person(100)])
    r = s.predict_now()
    assert r is not None and list(r.people) == [0]


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
