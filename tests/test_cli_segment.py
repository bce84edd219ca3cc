"""``stgcn segment``: JSON + timeline for a sequence, metrics against a label CSV, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stgcn.cli import main

SETTINGS = ["--set", "window=8", "--set", "lookahead=2", "--set", "threshold=0.0", "--set", "min_length=1"]


def _sequence(tmp_path, shape=(30, 20, 3), gap=None):
    kp = np.cumsum(np.random.default_rng(0).normal(scale=0.05, size=shape), axis=-3).astype(np.float32) + 1.0
    if gap is not None:
        kp[..., gap, :, :] = 0.0
    np.save(tmp_path / "seq.npy", kp)
    return tmp_path / "seq.npy"


def test_segments_json_and_timeline(tmp_path, checkpoint, capsys):
    seq = _sequence(tmp_path)
    out = tmp_path / "out" / "segments.json"
    assert main(["segment", str(seq), "--checkpoint", str(checkpoint), "--out", str(out), *SETTINGS]) == 0
    doc = json.loads(out.read_text())
    assert list(doc["people"]) == ["0"] and doc["people"]["0"]
    for s in doc["people"]["0"]:
        assert {"label", "start", "end", "score", "decided_at"} <= set(s) and 0 <= s["start"] <= s["end"] < 30
        assert s["label"] in ["walk", "sit down", "stand up", "pick up"] and s["decided_at"] >= s["end"]
    assert doc["segmenter"]["window"] == 8 and doc["latency_ms"]["updates"] == 30
    assert out.with_suffix(".png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "latency per update" in printed and "look-ahead 2 frames" in printed
    assert doc["segmenter"]["lookahead"] == 2 and doc["segmenter"]["lookahead_s"] is None  # no calibration rate


def test_a_causal_checkpoint_streams_with_no_lookahead(tmp_path, capsys):
    from stgcn.checkpoint import save_model
    from stgcn.models import create_model

    ckpt = tmp_path / "causal.pt"
    save_model(ckpt, create_model("stgcn-tiny", layout="kinect-v1", num_classes=2, causal=True),
               {"class_names": ["a", "b"], "layout": "kinect-v1", "data": {"test_pipeline": [{"name": "center"}]}})
    out = tmp_path / "s.json"
    assert main(["segment", str(_sequence(tmp_path)), "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["segmenter"]["lookahead"] == 0
    assert "look-ahead 0 frames (causal)" in capsys.readouterr().out


def test_two_people_and_a_gap(tmp_path, checkpoint):
    seq = _sequence(tmp_path, shape=(2, 30, 20, 3))
    kp = np.load(seq)
    kp[1, 10:15] = 0.0                     # person 1 leaves for five frames
    np.save(seq, kp)
    out = tmp_path / "s.json"
    assert main(["segment", str(seq), "--checkpoint", str(checkpoint), "--out", str(out), *SETTINGS]) == 0
    people = json.loads(out.read_text())["people"]
    assert sorted(people) == ["0", "1"]
    assert all(not (s["start"] <= 12 <= s["end"]) for s in people["1"])


def test_metrics_against_labels(tmp_path, checkpoint, capsys):
    seq = _sequence(tmp_path)
    gt = tmp_path / "gt.csv"
    gt.write_text("label,start,end\nwalk,2,12\nsit down,18,27\n")
    out = tmp_path / "s.json"
    assert main(["segment", str(seq), "--checkpoint", str(checkpoint), "--labels", str(gt), "--out", str(out),
                 *SETTINGS]) == 0
    doc = json.loads(out.read_text())
    m = doc["metrics"]["0"]
    assert {"accuracy", "edit", "f1@10", "f1@25", "f1@50"} <= set(m) and 0 <= m["accuracy"] <= 100
    assert doc["ground_truth"] == [{"label": "walk", "start": 2, "end": 12},
                                   {"label": "sit down", "start": 18, "end": 27}]
    assert "vs --labels: frame-wise" in capsys.readouterr().out


@pytest.mark.parametrize("csv, message", [
    ("walk,2,12\njump,14,20\n", "unknown label 'jump'"),
    ("walk,2,12\nsit down,10,20\n", "overlaps segment walk 2-12"),
    ("walk,2,40\n", "runs past the sequence, which has 30 frames"),
])
def test_bad_labels_fail_cleanly_without_output(tmp_path, checkpoint, capsys, csv, message):
    seq = _sequence(tmp_path)
    gt = tmp_path / "gt.csv"
    gt.write_text(csv)
    out = tmp_path / "s.json"
    assert main(["segment", str(seq), "--checkpoint", str(checkpoint), "--labels", str(gt), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(gt) in err and "Traceback" not in err
    assert not out.exists()


def test_bad_settings_and_missing_arguments(tmp_path, checkpoint, capsys):
    seq = _sequence(tmp_path)
    assert main(["segment", str(seq), "--checkpoint", str(checkpoint), "--set", "windw=3"]) == 2
    assert "unknown settings ['windw']" in capsys.readouterr().err
    assert main(["segment", str(seq)]) == 2
    assert "give INPUT and --checkpoint" in capsys.readouterr().err
    np.save(tmp_path / "empty.npy", np.zeros((0, 20, 3), np.float32))
    assert main(["segment", str(tmp_path / "empty.npy"), "--checkpoint", str(checkpoint)]) == 2
    assert "no person or no frame" in capsys.readouterr().err
    np.save(tmp_path / "v18.npy", np.ones((10, 18, 3), np.float32))
    assert main(["segment", str(tmp_path / "v18.npy"), "--checkpoint", str(checkpoint)]) == 2
    assert "18 joints" in capsys.readouterr().err


def test_utkinect_recording_times_come_from_its_frame_ids(tmp_path, checkpoint):
    from stgcn.cli.segment import _times, load_input
    from stgcn.data.sources import _BUNDLED

    rec = _BUNDLED / "utkinect" / "joints_s02_e01.txt.gz"
    sample = load_input(rec, None)
    ids = np.asarray(sample.meta["frame_ids"])
    np.testing.assert_allclose(_times(sample, None), ids / 30.0)
    np.testing.assert_allclose(_times(sample, 10.0), np.arange(len(ids)) / 10.0)
    np.testing.assert_allclose(_times(sample, None, 6.7), ids / 30.0)   # the file's ids beat the default
    sample.meta.pop("frame_ids")
    np.testing.assert_allclose(_times(sample, None, 6.7), np.arange(len(ids)) / 6.7)
    out = tmp_path / "s.json"
    assert main(["segment", str(rec), "--checkpoint", str(checkpoint), "--out", str(out), *SETTINGS,
                 "--set", "stride=4"]) == 0
    doc = json.loads(out.read_text())
    assert doc["num_frames"] == 587 == len(ids)
    assert doc["latency_ms"]["updates"] == len(range(0, 587, 4))  # one per scored window


def test_a_checkpoint_with_a_temporal_head_and_precision(tmp_path, capsys, monkeypatch):
    """A segmenter.pt with a head (meta["segmenter_head"], settings head=true) segments through it;
    --set head=false streams the windows alone; --precision reaches the segmenter's predictor."""
    from demo_support import CLASSES, make_checkpoint, make_head

    settings = {"window": 8, "lookahead": 2, "threshold": 0.0, "min_length": 1, "smoothing": 1, "head": True}
    ckpt = make_checkpoint(tmp_path / "h.pt", segmenter=settings, head=make_head(len(CLASSES)))
    seq = _sequence(tmp_path)
    runs = {}
    for name, extra in (("head", []), ("plain", ["--set", "head=false"])):
        out = tmp_path / f"{name}.json"
        assert main(["segment", str(seq), "--checkpoint", str(ckpt), "--out", str(out), "--precision", "fp32",
                     *extra]) == 0
        runs[name] = json.loads(out.read_text())
    assert runs["head"]["segmenter"]["head"] is True and runs["plain"]["segmenter"]["head"] is False
    assert runs["head"]["people"]["0"] != runs["plain"]["people"]["0"]
    assert "causal temporal head" in capsys.readouterr().out
    assert runs["head"]["precision"] == "fp32"
    from stgcn.inference.predictor import Predictor

    asked = []
    real = Predictor.from_checkpoint.__func__
    monkeypatch.setattr(Predictor, "from_checkpoint",
                        classmethod(lambda cls, path, **kw: asked.append(kw) or real(cls, path, **kw)))
    assert main(["segment", str(seq), "--checkpoint", str(ckpt), "--precision", "bf16"]) == 0
    assert asked == [{"precision": "bf16"}]
    with pytest.raises(SystemExit):
        main(["segment", str(seq), "--checkpoint", str(ckpt), "--precision", "fp16"])  # not a choice
    capsys.readouterr()


def test_head_setting_without_a_head_in_the_checkpoint(tmp_path, checkpoint, capsys):
    assert main(["segment", str(_sequence(tmp_path)), "--checkpoint", str(checkpoint), "--set", "head=true"]) == 2
    assert "carries no temporal head" in capsys.readouterr().err
