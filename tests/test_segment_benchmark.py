"""The UTKinect untrimmed benchmark: its stores keep the test subjects out of training; a tiny
end-to-end run writes the segmenter checkpoint, the report and one timeline per test recording."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stgcn.data.streams import utkinect_streams
from stgcn.engine.segment_benchmark import (
    BACKGROUND_CLASS,
    TEST_SUBJECTS,
    BenchmarkSettings,
    background_pieces,
    method_items,
)
from stgcn.segmentation import BACKGROUND


def test_background_pieces_cover_only_transitions():
    st = utkinect_streams(subjects=[1])[0]
    frames = st.frame_labels()
    pieces = background_pieces(st, 28)
    assert pieces and all((frames[lo:hi + 1] == BACKGROUND).all() and hi - lo + 1 >= 5 for lo, hi in pieces)


@pytest.mark.parametrize("method", ["windows", "class"])
def test_test_subjects_never_in_a_training_split(tmp_path, method):
    s = BenchmarkSettings(out=tmp_path, window=12, lookahead=3, window_stride=4)
    items = method_items(method, s, 10)
    assert items
    for it in items:
        subject = int(it.name[1:3])
        assert ("xsub_train" in it.splits) == (subject not in TEST_SUBJECTS)
        assert not any(sp.startswith("f") for sp in it.splits) or subject not in TEST_SUBJECTS


def test_window_labels_are_the_frame_lookahead_rows_before_the_end(tmp_path):
    s = BenchmarkSettings(out=tmp_path, window=12, lookahead=3, window_stride=1)
    st = utkinect_streams(subjects=[1])[0]
    items = {it.name: it for it in method_items("windows", s, 10) if it.name.startswith(st.name)}
    frames = st.frame_labels()
    ids = st.sample.meta["frame_ids"]
    for t in (3, 40, 100, st.num_frames - 1):
        it = items[f"{st.name}_t{t}"]
        assert it.options["end"] == ids[t] and it.options["start"] == ids[max(0, t - 11)]
        assert it.label == (10 if frames[t - 3] == BACKGROUND else frames[t - 3])


def test_a_causal_benchmark_has_no_lookahead(tmp_path):
    from stgcn.engine.segment_benchmark import run_benchmark
    from stgcn.errors import ConfigError

    with pytest.raises(ConfigError, match="no look-ahead; found lookahead 3"):
        run_benchmark(BenchmarkSettings(out=tmp_path, causal=True, lookahead=3))


@pytest.mark.slow
@pytest.mark.parametrize("causal", [False, True])
def test_tiny_benchmark_end_to_end(tmp_path, causal):
    from stgcn.checkpoint import load_model
    from stgcn.cli import main

    out = tmp_path / "bench"
    assert main(["segment", "--benchmark", "utkinect", "--out", str(out), "--epochs", "1", "--window-stride", "16",
                 "--train-set", "model.name=stgcn-tiny", "--train-set", "model.kwargs={}",
                 *(["--causal", "--no-head"] if causal else [])]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    test = summary["methods"]["windows"]["test"]
    assert {"accuracy", "edit", "f1@10", "f1@25", "f1@50", "delay_s"} <= set(test)
    assert summary["latency"]["updates"] > 500
    model, meta = load_model(out / "segmenter.pt")
    assert meta["segmenter"]["background"] == BACKGROUND_CLASS and meta["data"]["num_persons"] == 1
    assert meta["segmenter"]["fps"] == pytest.approx(6.7, abs=1.0)   # UTKinect's skeleton rows per second
    assert model.cfg.causal == causal and meta["segmenter"]["lookahead"] == (0 if causal else 3)
    # the head's variant is measured beside the plain one (not with --no-head); the checkpoint holds it
    # when chosen
    assert set(summary["methods"]) == ({"windows"} if causal else {"windows", "windows+head"})
    assert summary["chosen"] == max(summary["methods"], key=lambda k: summary["methods"][k]["calibration_objective"])
    with_head = summary["chosen"] == "windows+head"
    assert meta["segmenter"]["head"] is with_head and ("segmenter_head" in meta) is with_head
    assert sorted(p.stem for p in (out / "streams").glob("*.png")) == \
        sorted(st.name for st in utkinect_streams(subjects=TEST_SUBJECTS))
    doc = json.loads((out / "streams" / "s02_e01.json").read_text())
    assert set(doc["people"]) == {"0"} and len(doc["ground_truth"]) == 10
    assert "| windows |" in (out / "report.md").read_text()
    # the segmenter checkpoint works with `stgcn segment` and the ground truth CSV the run wrote
    rec = Path(utkinect_streams(subjects=[2])[0].meta["file"])
    js = tmp_path / "s.json"
    assert main(["segment", str(rec), "--checkpoint", str(out / "segmenter.pt"), "--labels",
                 str(out / "streams" / "s02_e01.csv"), "--out", str(js)]) == 0
    m = json.loads(js.read_text())["metrics"]["0"]
    assert m["accuracy"] == pytest.approx(doc["metrics"]["accuracy"], abs=1e-6)
    assert np.isfinite(m["edit"])


@pytest.mark.parametrize(("overrides", "expected"), [([], 0.0), (["train.label_smoothing=0.2"], 0.2)])
def test_window_models_train_without_label_smoothing_unless_asked(monkeypatch, tmp_path, overrides, expected):
    import stgcn.engine
    from stgcn.engine.segment_benchmark import train_model

    seen = {}

    class Stop(Exception):
        pass

    def fake_train(cfg, **_):
        seen["cfg"] = cfg
        raise Stop

    monkeypatch.setattr(stgcn.engine, "train", fake_train)
    with pytest.raises(Stop):
        train_model(tmp_path / "store", "train", "val", tmp_path / "out",
                    BenchmarkSettings(out=tmp_path, overrides=overrides), clip_len=12)
    assert seen["cfg"].train.label_smoothing == expected
    assert seen["cfg"].recipe == "small"  # the recipe itself has 0.1
