"""The causal temporal head (stgcn.models.temporal_head) and its training (stgcn.engine.temporal_head)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stgcn.engine.temporal_head import IGNORE, HeadTraining, fit_head, targets, typical_lengths
from stgcn.errors import CheckpointError, ConfigError, ShapeError
from stgcn.models.temporal_head import HeadConfig, HeadStream, TemporalHead


def _head(k=3, layers=4, seed=0) -> TemporalHead:
    torch.manual_seed(seed)
    return TemporalHead(HeadConfig(tuple(float(n) for n in range(4, 4 + k)), channels=8, layers=layers)).eval()


def _probs(t=60, k=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(k), size=t)


def test_outputs_up_to_t_do_not_change_when_later_frames_do():
    head, p = _head(), _probs()
    q = p.copy()
    q[31:] = _probs(len(p) - 31, seed=1)          # every step after t = 30 replaced
    a, b = head.probabilities(p), head.probabilities(q)
    np.testing.assert_array_equal(a[:31], b[:31])
    assert np.abs(a[31:] - b[31:]).max() > 1e-3    # ... and the later outputs do depend on them


def test_step_by_step_stream_equals_the_whole_sequence():
    """HeadStream (numpy, one cached input per tap) is an independent formulation of the torch
    forward (padded dilated convolutions); after reset it starts the same way again."""
    head, p = _head(layers=5), _probs(80)
    stream = HeadStream(head)
    first = np.stack([stream.step(x) for x in p])
    np.testing.assert_allclose(first, head.probabilities(p), atol=1e-12)
    stream.reset()
    np.testing.assert_allclose(np.stack([stream.step(x) for x in p[:20]]), first[:20], atol=1e-12)


def test_evidence_is_the_capped_running_sum_over_the_class_length():
    """With every weight but the evidence inputs' zero, the output is a known function of the
    evidence min(1, sum of p so far / length)."""
    head = _head(k=2, layers=1)
    with torch.no_grad():
        for prm in head.parameters():
            prm.zero_()
        head.inp.weight[0, 2, 0] = 1.0   # channel 0 <- evidence of class 0 (inputs: probs, then evidence)
        head.out.weight[0, 0, 0] = 1.0   # logit of class 0 <- channel 0
    p = np.tile([[1.0, 0.0]], (8, 1))    # class 0 with probability 1: evidence (t + 1) / 4, capped at 1
    evidence = np.minimum(np.arange(1, 9) / 4.0, 1.0)
    expected = 1.0 / (1.0 + np.exp(-evidence))
    np.testing.assert_allclose(head.probabilities(p)[:, 0], expected, atol=1e-12)
    stream = HeadStream(head)
    np.testing.assert_allclose([stream.step(x)[0] for x in p], expected, atol=1e-12)


def test_meta_round_trip_and_bad_meta():
    head, p = _head(), _probs()
    again = TemporalHead.from_meta(head.to_meta())
    np.testing.assert_array_equal(again.probabilities(p), head.probabilities(p))
    doc = head.to_meta()
    doc["state_dict"].pop("out.bias")
    with pytest.raises(CheckpointError, match="not a temporal head"):
        TemporalHead.from_meta(doc)
    with pytest.raises(CheckpointError, match="unknown settings"):
        TemporalHead.from_meta({**head.to_meta(), "config": {**head.to_meta()["config"], "size": 3}})
    with pytest.raises(ConfigError, match="evidence lengths must be > 0"):
        HeadConfig((3.0, 0.0))
    with pytest.raises(ShapeError, match=r"expected \(T, 3\)"):
        head.probabilities(np.ones((5, 4)))
    with pytest.raises(ShapeError, match="expected 3 probabilities"):
        HeadStream(head).step(np.ones(2))


def test_targets_are_the_labels_offset_steps_back():
    np.testing.assert_array_equal(targets(np.arange(5), 2), [IGNORE, IGNORE, 0, 1, 2])
    np.testing.assert_array_equal(targets(np.arange(3), 0), [0, 1, 2])
    assert typical_lengths([np.array([0, 0, 1, 0, 0, 0, 1])], 3) == (2.5, 1.0, 1.5)  # class 2: median of all


def _context_stream(rng, t=60):
    """Class 0's evidence looks the same early and late; only the early stretch is labelled 0 (like
    UTKinect's first walk), the late one is "no action" (class 2); class 1 sits between."""
    probs = np.full((t, 3), 0.05)
    labels = np.full(t, 2)
    a, b, c = sorted(rng.choice(np.arange(5, t - 12), size=3, replace=False))
    probs[a - 5:a, 0], labels[a - 5:a] = 0.9, 0
    probs[b:b + 4, 1], labels[b:b + 4] = 0.9, 1
    probs[max(c, b + 5):max(c, b + 5) + 5, 0] = 0.9   # the late look-alike, labelled no action
    return probs / probs.sum(axis=1, keepdims=True), labels


def test_a_trained_head_learns_what_came_before():
    rng = np.random.default_rng(0)
    train = [_context_stream(rng) for _ in range(12)]
    test = [_context_stream(rng) for _ in range(6)]
    head = fit_head([p for p, _ in train], [y for _, y in train], 0,
                    HeadTraining(channels=8, layers=3, epochs=300, dropout=0.0, lr=1e-2))
    window = np.mean([(p.argmax(1) == y).mean() for p, y in test])     # per-step argmax alone
    refined = np.mean([(head.probabilities(p).argmax(1) == y).mean() for p, y in test])
    assert window < 0.95 and refined > window + 0.04 and refined > 0.97
