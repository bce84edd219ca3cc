"""The online segmenter: hand-worked decisions, delays, people leaving, and online == offline."""

from __future__ import annotations

import numpy as np
import pytest

from stgcn.errors import ConfigError, ShapeError
from stgcn.inference.segmenter import (
    OnlineSegmenter,
    SegmenterConfig,
    TrackSegmenter,
    WindowScorer,
    load_head,
    segment_person,
)
from stgcn.segmentation import Segment

A, B, LOW = (0.9, 0.1), (0.1, 0.9), (0.4, 0.4)


def feed(config: SegmenterConfig, rows, names=("A", "B")):
    seg = TrackSegmenter(config, list(names))
    for t, p in enumerate(rows):
        seg.push(t, np.array(p))
    seg.finish(len(rows) - 1)
    return [(d.segment.label, d.segment.start, d.segment.end, d.decided_at) for d in seg.decided]


def cfg(**kw) -> SegmenterConfig:
    base = {"window": 8, "lookahead": 0, "smoothing": 1, "threshold": 0.5, "hysteresis": 1, "min_length": 1}
    return SegmenterConfig(**{**base, **kw})


ROWS = [A] * 5 + [LOW] * 2 + [B] * 3


def test_causal_decisions():
    # A ends at 4 and is decided when frame 5 turns to no action; B is closed by the end of the stream
    assert feed(cfg(), ROWS) == [("A", 0, 4, 5), ("B", 7, 9, 9)]


def test_lookahead_and_hysteresis_delay_the_decision_by_their_sum():
    out = feed(cfg(lookahead=2, hysteresis=2), ROWS)
    # frame f is labelled by the window ending at f + 2 (so the A windows 0..4 label frames 0..2);
    # the switch to no action needs frames 3 and 4, decided by the windows ending at 5 and 6
    assert out == [("A", 0, 2, 2 + 2 + 2), ("B", 5, 9, 9)]


def test_short_blip_joins_the_run_and_short_segments_are_dropped():
    assert feed(cfg(hysteresis=2), [A] * 3 + [B] + [A] * 3) == [("A", 0, 6, 6)]
    assert feed(cfg(min_length=3), [A] * 2 + [LOW] * 3 + [B] * 3) == [("B", 5, 7, 7)]


def test_smoothing_averages_the_last_windows():
    # one B window among A ones: with a mean over 3 windows B never wins
    rows = [A] * 4 + [B] + [A] * 4
    assert feed(cfg(), rows) == [("A", 0, 3, 4), ("B", 4, 4, 5), ("A", 5, 8, 8)]
    assert feed(cfg(smoothing=3), rows) == [("A", 0, 8, 8)]


def test_segment_score_is_the_mean_smoothed_probability():
    seg = TrackSegmenter(cfg(), ["A", "B"])
    for t, p in enumerate([(0.9, 0.1), (0.7, 0.3), (0.2, 0.1)]):
        seg.push(t, np.array(p))
        if t == 1:
            assert seg.current() == Segment("A", 0, 1, pytest.approx(0.8))
    assert seg.current() is None
    assert seg.segments == [Segment("A", 0, 1, pytest.approx(0.8))]


def test_background_class():
    names = ["A", "none"]
    rows = [(0.8, 0.2)] * 3 + [(0.1, 0.9)] * 3 + [(0.7, 0.3)] * 2
    assert feed(cfg(background="none", threshold=0.0), rows, names) == [("A", 0, 2, 3), ("A", 6, 7, 7)]
    with pytest.raises(ConfigError, match="background class 'idle'"):
        TrackSegmenter(cfg(background="idle"), names)


def test_config_is_checked():
    with pytest.raises(ConfigError, match="lookahead must be in"):
        SegmenterConfig(window=4, lookahead=4)
    with pytest.raises(ConfigError, match="hysteresis must be >= 1"):
        SegmenterConfig(hysteresis=0)
    with pytest.raises(ConfigError, match="unknown settings"):
        SegmenterConfig.from_json({"window": 8, "windw": 3})
    assert SegmenterConfig.from_json(cfg().to_json()) == cfg()
    with pytest.raises(ShapeError, match="2 class probabilities"):
        TrackSegmenter(cfg(), ["A", "B"]).push(0, np.ones(3))


def test_empty_stream_gives_no_segment():
    seg = TrackSegmenter(cfg(), ["A", "B"])
    assert seg.finish(-1) == [] and seg.segments == []


# ------------------------------------------------------------------------ with a model


@pytest.fixture
def predictor(checkpoint):
    from stgcn.inference.predictor import Predictor

    return Predictor.from_checkpoint(checkpoint)


def _person(t: int = 40) -> np.ndarray:
    rng = np.random.default_rng(1)
    kp = np.cumsum(rng.normal(scale=0.05, size=(t, 20, 3)), axis=0).astype(np.float32) + 1.0
    kp[15:20] = 0.0  # the person leaves for five frames
    return kp


def test_online_equals_offline_and_a_return_starts_new_segments(predictor):
    config = SegmenterConfig(window=8, stride=2, lookahead=2, smoothing=2, threshold=0.0, hysteresis=1,
                             min_length=1)
    person = _person()
    offline = segment_person(WindowScorer(predictor, config.window), config, person, predictor.class_names)
    online = OnlineSegmenter(predictor, config)
    got = []
    for t, kp in enumerate(person):
        got += online.update(t, {"7": kp} if np.abs(kp).any() else {})
    got += online.finish()
    assert [k for k, _ in got] == ["7"] * len(got)
    assert [d for _, d in got] == offline
    assert offline and all(not (d.segment.start <= 17 <= d.segment.end) for d in offline)
    assert any(d.segment.start == 20 for d in offline)  # back at frame 20: a new segment
    for a, b in zip(offline, [d for _, d in got], strict=True):
        assert a.segment.score == pytest.approx(b.segment.score)
    assert len(online.latencies_ms) == len(range(0, 15, 2)) + len(range(20, 40, 2))  # updates that scored


def test_window_input_holds_the_person_alone_in_the_first_slot(predictor):
    scorer = WindowScorer(predictor, 8)
    x = scorer.window_input(_person(), 12)  # (clips, C, T, V, M)
    assert x.shape[4] == predictor.contract.num_persons and x.shape[3] == 20
    assert not x[..., 1:].any()


def test_two_people_in_one_model_call_decide_as_each_alone(predictor):
    config = SegmenterConfig(window=8, lookahead=1, smoothing=1, threshold=0.0, hysteresis=1, min_length=1)
    a, b = _person(30), _person(30)[::-1].copy()
    b[:6] = 0.0  # b arrives at frame 6
    online = OnlineSegmenter(predictor, config)
    calls = []
    original = online.scorer.batch_probabilities
    online.scorer.batch_probabilities = lambda xs, batch=64: calls.append(len(xs)) or original(xs, batch)
    for t in range(30):
        online.update(t, {k: p[t] for k, p in (("a", a), ("b", b)) if np.abs(p[t]).any()})
    online.finish()
    scorer = WindowScorer(predictor, config.window)
    def plain(decided):
        return [(d.segment.label, d.segment.start, d.segment.end, d.decided_at, round(d.segment.score, 4))
                for d in decided]

    for key, person in (("a", a), ("b", b)):
        assert plain(online.tracks[key].decided) == plain(segment_person(scorer, config, person,
                                                                         predictor.class_names))
    assert max(calls) == 2 and len(calls) == 30  # both people due at once share one forward


def test_settings_at_another_frame_rate_and_the_stated_lookahead():
    cfg = SegmenterConfig(window=12, lookahead=3, smoothing=3, hysteresis=3, min_length=12, fps=6.7)
    fast = cfg.at_rate(30.0)  # 30 / 6.7 = 4.48 times the frames
    assert (fast.window, fast.stride, fast.lookahead, fast.hysteresis, fast.min_length) == (54, 4, 13, 13, 54)
    assert fast.smoothing == 3 and fast.fps == 30.0  # smoothing counts windows
    assert cfg.lookahead_s == pytest.approx(3 / 6.7) and "3 frames = 0.45 s at 6.7 fps" in cfg.describe_lookahead()
    plain = SegmenterConfig(window=8, lookahead=2)
    assert plain.at_rate(25.0) == plain.replace(fps=25.0) and plain.lookahead_s is None
    assert "(causal)" in SegmenterConfig(lookahead=0).describe_lookahead()


def test_settings_for_a_model_symmetric_causal_or_calibrated():
    from stgcn.models import create_model

    sym = create_model("stgcn-tiny", layout="kinect-v1", num_classes=2)
    causal = create_model("stgcn-tiny", layout="kinect-v1", num_classes=2, causal=True)
    assert SegmenterConfig.for_model({}, sym, window=32).lookahead == 16  # the window's centre
    assert SegmenterConfig.for_model({}, causal, window=32).lookahead == 0  # its last frame
    calibrated = {"segmenter": {"window": 12, "lookahead": 3}}
    assert SegmenterConfig.for_model(calibrated, causal) == SegmenterConfig(window=12, lookahead=3)
    with pytest.raises(ConfigError, match="unknown settings"):
        SegmenterConfig.for_model({"segmenter": {"windw": 3}}, sym)


def test_background_weight_lets_an_action_win_close_calls():
    names = ["A", "none"]
    rows = [(0.45, 0.55)] * 6
    plain = cfg(background="none", threshold=0.0)
    assert feed(plain, rows, names) == []
    assert feed(plain.replace(background_weight=0.5), rows, names) == [("A", 0, 5, 5)]  # 0.45 > 0.275
    with pytest.raises(ConfigError, match="background_weight must be > 0"):
        cfg(background_weight=0.0)


def test_min_fraction_drops_runs_short_for_their_class():
    c = cfg(min_fraction=0.5, class_lengths=(4, 10))  # A needs 2 frames, B 5
    rows = [A] * 3 + [LOW] * 2 + [B] * 4 + [LOW] * 2 + [B] * 5
    assert [s[:3] for s in feed(c, rows)] == [("A", 0, 2), ("B", 11, 15)]  # the 4-frame B is too short
    assert c.at_rate(2 * 1.0).class_lengths == (4, 10)  # no calibration rate: unchanged
    assert c.replace(fps=5.0).at_rate(10.0).class_lengths == (8, 20)
    assert SegmenterConfig.from_json(c.to_json()) == c  # the JSON list comes back as a tuple
    with pytest.raises(ConfigError, match="min_fraction needs class_lengths"):
        cfg(min_fraction=0.5)
    with pytest.raises(ConfigError, match="class_lengths has 3 entries"):
        TrackSegmenter(cfg(class_lengths=(1, 2, 3)), ["A", "B"])


def test_class_lengths_are_the_median_training_segment():
    from stgcn.data.streams import utkinect_streams
    from stgcn.inference.segment_calibration import class_lengths

    streams = utkinect_streams(subjects=[1, 3])
    names = streams[0].class_names
    got = class_lengths(streams, [*names, "noAction"])
    walk = sorted(s.length for st in streams for s in st.segments if s.label == names[0])
    assert got[0] == int(np.median(walk)) and got[-1] == 0 and all(n > 0 for n in got[:-1])


# ---------------------------------------------------------------------------------- temporal head


def _plain(decided):
    return [(d.segment.label, d.segment.start, d.segment.end, d.decided_at, round(d.segment.score, 6))
            for d in decided]


def test_a_head_refines_each_push_and_starts_afresh_when_the_person_is_back():
    """Pushing window probabilities through the head's track segmenter equals pushing the whole
    sequence's refined probabilities (what calibration scores) into one without it; after the
    person leaves, the head's past (its evidence too) is gone."""
    from demo_support import make_head

    head = make_head(3)
    names = ["A", "B", "idle"]
    config = cfg(threshold=0.0, background="idle", lookahead=1)
    rows = np.random.default_rng(0).dirichlet(np.ones(3), size=30)
    with_head = TrackSegmenter(config.replace(head=True), names, head)
    plain = TrackSegmenter(config, names)
    refined = np.concatenate([head.probabilities(rows[:12]), head.probabilities(rows[12:])])
    for t in range(30):
        if t == 12:  # left after frame 11, back at 12
            with_head.finish(11)
            plain.finish(11)
        with_head.push(t, rows[t])
        plain.push(t, refined[t])
    with_head.finish(29)
    plain.finish(29)
    assert with_head.decided and _plain(with_head.decided) == _plain(plain.decided)
    assert not np.allclose(head.probabilities(rows)[12:], refined[12:])  # a fresh start differs


def test_head_setting_needs_the_checkpoints_head():
    from demo_support import make_head

    with pytest.raises(ConfigError, match="no temporal head was given"):
        TrackSegmenter(cfg(head=True), ["A", "B"])
    with pytest.raises(ConfigError, match="the temporal head has 3 classes, the model 2"):
        TrackSegmenter(cfg(head=True), ["A", "B"], make_head(3))
    with pytest.raises(ConfigError, match="carries no temporal head"):
        load_head({}, cfg(head=True))
    assert load_head({"segmenter_head": make_head(2).to_meta()}, cfg()) is None  # head=false: not used
    assert "causal temporal head" in cfg(head=True).describe_lookahead()


def test_online_with_a_head_equals_offline(tmp_path):
    from demo_support import CLASSES, make_checkpoint, make_head
    from stgcn.inference.predictor import Predictor

    config = {"window": 8, "stride": 1, "lookahead": 2, "smoothing": 1, "threshold": 0.0, "hysteresis": 1,
              "min_length": 1, "head": True}
    ckpt = make_checkpoint(tmp_path / "h.pt", segmenter=config, head=make_head(len(CLASSES)))
    predictor = Predictor.from_checkpoint(ckpt)
    settings = SegmenterConfig.for_model(predictor.meta, predictor.model)
    person = _person()
    online = OnlineSegmenter(predictor, settings)
    for t, kp in enumerate(person):
        online.update(t, {"0": kp} if np.abs(kp).any() else {})
    online.finish()
    offline = segment_person(WindowScorer(predictor, settings.window), settings, person, predictor.class_names)
    assert offline and _plain(online.tracks["0"].decided) == _plain(offline)
    # ... and the head changes the answer (the windows alone decide otherwise)
    alone = segment_person(WindowScorer(predictor, 8), settings.replace(head=False), person, predictor.class_names)
    assert _plain(alone) != _plain(offline)
