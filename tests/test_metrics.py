"""metrics: top-k with ties, mean class accuracy, confusion matrix, per-class stats."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stgcn import metrics as M
from stgcn.errors import ShapeError


def test_topk_and_mean_class_accuracy():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    labels = np.array([0, 2, 1, 2])
    assert M.topk_accuracy(scores, labels, 1) == 0.5
    assert M.topk_accuracy(scores, labels, 2) == 1.0
    assert M.topk_accuracy(scores, labels, 10) == 1.0  # k larger than the class count
    # class 0: 1/1, class 1: 0/1, class 2: 1/2
    assert M.mean_class_accuracy(scores, labels) == pytest.approx((1 + 0 + 0.5) / 3)


def test_ties_follow_argmax():
    scores = np.zeros((3, 4))
    assert M.topk_accuracy(scores, np.array([0, 1, 3]), 1) == pytest.approx(1 / 3)
    assert M.topk_accuracy(scores, np.array([0, 1, 3]), 2) == pytest.approx(2 / 3)


def test_confusion_and_per_class():
    cm = M.confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    s = M.per_class_stats(cm)
    assert s["support"].tolist() == [2, 1, 1, 0]
    assert s["recall"][:3].tolist() == [0.5, 1.0, 0.0] and np.isnan(s["recall"][3])
    assert s["precision"][1] == pytest.approx(1 / 3) and np.isnan(s["precision"][2])


def test_bad_shapes_raise():
    with pytest.raises(ShapeError):
        M.topk_accuracy(np.zeros(3), np.zeros(3, int))
    with pytest.raises(ShapeError):
        M.topk_accuracy(np.zeros((3, 2)), np.array([0, 1, 2]))
    assert np.isnan(M.topk_accuracy(np.zeros((0, 2)), np.zeros(0, int)))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 30), st.integers(1, 8), st.integers(0, 2**31 - 1))
def test_topk_matches_argsort_definition(n, k, seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, k))
    labels = rng.integers(0, k, n)
    assert M.topk_accuracy(scores, labels, 1) == pytest.approx((scores.argmax(1) == labels).mean())
    for kk in (1, 2, 5):
        top = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
        assert M.topk_accuracy(scores, labels, kk) == pytest.approx((top == labels[:, None]).any(1).mean())
    p = M.softmax(scores)
    assert np.allclose(p.sum(1), 1)
