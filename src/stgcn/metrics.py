"""Classification metrics on score matrices (numpy only, so evaluation tools need no torch).

Conventions: ``scores`` is (N, K) (logits or probabilities; only the ranking matters), ``labels``
is (N,) int with values in 0..K-1.
"""

from __future__ import annotations

import numpy as np

from .errors import ShapeError


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2:
        raise ShapeError(f"scores must be (N, K), found shape {scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise ShapeError(f"labels must be ({scores.shape[0]},), found shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ShapeError(f"labels must lie in 0..{scores.shape[1] - 1}, found {labels.min()}..{labels.max()}")
    return scores, labels.astype(np.int64)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of samples whose label is among the ``k`` highest scores.

    Ties are broken towards the lower class index, like ``argmax``, so top-1 here always agrees
    with ``scores.argmax(1)``. With fewer than ``k`` classes every sample counts. Empty input: NaN.
    """
    scores, labels = _check(scores, labels)
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    true = scores[np.arange(len(labels)), labels][:, None]
    cls = np.arange(scores.shape[1])[None, :]
    rank = ((scores > true) | ((scores == true) & (cls < labels[:, None]))).sum(axis=1)
    return float((rank < k).mean())


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows = true class, columns = predicted class."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    if labels.shape != preds.shape:
        raise ShapeError(f"labels {labels.shape} and predictions {preds.shape} differ in shape")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, preds), 1)
    return cm


def per_class_stats(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class ``support``, ``recall`` (= per-class accuracy), ``precision`` from a confusion matrix.

    Classes without samples (or without predictions) get NaN recall (precision), not 0, so that
    they do not drag a mean down silently.
    """
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    diag = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, diag / support, np.nan)
        precision = np.where(predicted > 0, diag / predicted, np.nan)
    return {"support": support.astype(np.int64), "recall": recall, "precision": precision}


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in ``labels`` of each class's top-1 accuracy."""
    scores, labels = _check(scores, labels)
    if len(labels) == 0:
        return float("nan")
    cm = confusion_matrix(labels, scores.argmax(axis=1), scores.shape[1])
    return float(np.nanmean(per_class_stats(cm)["recall"]))


def summarize(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``top1``, ``top5``, ``mean_class_acc`` and ``num_samples`` as plain floats (JSON-able)."""
    return {
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, 5),
        "mean_class_acc": mean_class_accuracy(scores, labels),
        "num_samples": int(len(labels)),
    }


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64."""
    s = np.asarray(scores, dtype=np.float64)
    s = s - s.max(axis=axis, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=axis, keepdims=True)
