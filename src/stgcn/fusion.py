"""Weighted score fusion (paper Table 5: skeleton + RGB/optical-flow; pyskl's 4-stream ensemble).

Inputs, matched by sample name:

- ``.npz`` written by ``stgcn train``/``stgcn eval``: ``names``, ``scores`` (N, K), ``labels``;
- ``.csv``: one row per sample, first column the name, then K score columns; an optional header
  row (first cell ``name``) may name a ``label`` column;
- ``.npy``: a bare (N, K) array from another model, taken in the order of the first named input
  (it has no names, so it must have the same length).

Each input is turned into probabilities with a softmax unless its rows already are probabilities
(non-negative, summing to 1), then ``sum_i w_i * p_i`` is taken.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metrics as M
from .errors import DataError


@dataclass
class ScoreFile:
    path: str
    names: list[str] | None
    scores: np.ndarray
    labels: np.ndarray | None
    class_names: list[str] | None = None


def save_scores(path: str | os.PathLike, names: Sequence[str], scores: np.ndarray, labels: np.ndarray,
                class_names: Sequence[str]) -> None:
    """``.npz`` with ``names`` (str), ``scores`` (N, K) float32 logits, ``labels`` (N,) and
    ``class_names``; loads with ``allow_pickle=False`` (:func:`load_scores`)."""
    import io

    from .atomic import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, names=np.asarray(list(names), dtype=str), scores=np.asarray(scores, dtype=np.float32),
             labels=np.asarray(labels, dtype=np.int64), class_names=np.asarray(list(class_names), dtype=str))
    atomic_write_bytes(path, buf.getvalue())


def load_scores(path: str | os.PathLike) -> ScoreFile:
    p = Path(path)
    if not p.is_file():
        raise DataError("score file not found", file=str(p))
    suffix = p.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if "scores" not in z:
                    raise DataError(f"no 'scores' array (found {sorted(z.files)})", file=str(p))
                names = [str(n) for n in z["names"]] if "names" in z else None
                labels = z["labels"].astype(np.int64) if "labels" in z else None
                cls = [str(c) for c in z["class_names"]] if "class_names" in z else None
                sf = ScoreFile(str(p), names, np.asarray(z["scores"], dtype=np.float64), labels, cls)
        elif suffix == ".npy":
            sf = ScoreFile(str(p), None, np.asarray(np.load(p, allow_pickle=False), dtype=np.float64), None)
        elif suffix == ".csv":
            sf = _load_csv(p)
        else:
            raise DataError("unsupported score file type (expected .npz, .csv or .npy)", file=str(p))
    except (ValueError, OSError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"cannot read scores: {exc}", file=str(p)) from None
    if sf.scores.ndim != 2:
        raise DataError(f"scores must be (N, K), found shape {sf.scores.shape}", file=str(p))
    if not np.isfinite(sf.scores).all():
        raise DataError("scores contain NaN or infinite values", file=str(p))
    if sf.names is not None and len(sf.names) != len(sf.scores):
        raise DataError(f"{len(sf.names)} names but {len(sf.scores)} score rows", file=str(p))
    if sf.names is not None and len(set(sf.names)) != len(sf.names):
        raise DataError("duplicate sample names", file=str(p))
    return sf


def _load_csv(p: Path) -> ScoreFile:
    with p.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        raise DataError("empty CSV", file=str(p))
    label_col = None
    if rows[0][0].strip().lower() in ("name", "names", "sample", "id"):
        header = [h.strip().lower() for h in rows[0]]
        label_col = header.index("label") if "label" in header else None
        rows = rows[1:]
    names, scores, labels = [], [], []
    for i, r in enumerate(rows, start=1):
        names.append(r[0])
        vals = [v for j, v in enumerate(r[1:], start=1) if j != label_col]
        try:
            scores.append([float(v) for v in vals])
            if label_col is not None:
                labels.append(int(r[label_col]))
        except ValueError:
            raise DataError(f"non-numeric value in row {i}", file=str(p), record=f"row {i}") from None
    if len({len(s) for s in scores}) != 1:
        raise DataError("rows have different numbers of scores", file=str(p))
    return ScoreFile(str(p), names, np.asarray(scores, dtype=np.float64),
                     np.asarray(labels, dtype=np.int64) if label_col is not None else None)


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if (s >= 0).all() and np.allclose(s.sum(axis=1), 1.0, atol=1e-3):
        return s
    return M.softmax(s, axis=1)


@dataclass
class FusionResult:
    names: list[str]
    scores: np.ndarray
    labels: np.ndarray | None
    metrics: dict | None
    class_names: list[str] | None


def fuse(files: Sequence[str | os.PathLike | ScoreFile], weights: Sequence[float] | None = None) -> FusionResult:
    """Fuse score files sample by sample (matched by name); raises :class:`DataError` listing
    unmatched names."""
    sfs = [f if isinstance(f, ScoreFile) else load_scores(f) for f in files]
    if len(sfs) < 2:
        raise DataError("fusion needs at least two score files")
    w = [1.0] * len(sfs) if weights is None else [float(x) for x in weights]
    if len(w) != len(sfs):
        raise DataError(f"{len(w)} weights for {len(sfs)} score files")
    ref = next((s for s in sfs if s.names is not None), None)
    if ref is None:
        raise DataError("no input has sample names (use an .npz or .csv for at least one)")
    names = ref.names
    k = ref.scores.shape[1]
    fused = np.zeros((len(names), k), dtype=np.float64)
    for sf, wi in zip(sfs, w, strict=True):
        if sf.scores.shape[1] != k:
            raise DataError(f"{sf.scores.shape[1]} classes but {ref.path} has {k}", file=sf.path)
        if sf.names is None:
            if len(sf.scores) != len(names):
                raise DataError(f"an unnamed .npy must have one row per sample of {ref.path} "
                                f"({len(names)}), found {len(sf.scores)}", file=sf.path)
            rows = np.arange(len(names))
        else:
            pos = {n: i for i, n in enumerate(sf.names)}
            missing = [n for n in names if n not in pos]
            extra = sorted(set(sf.names) - set(names))
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"{len(missing)} samples of {ref.path} missing here: {missing[:10]}")
                if extra:
                    parts.append(f"{len(extra)} samples not in {ref.path}: {extra[:10]}")
                raise DataError("sample names do not match: " + "; ".join(parts), file=sf.path)
            rows = np.array([pos[n] for n in names])
        fused += wi * to_probabilities(sf.scores[rows])
    labels = None
    for sf in sfs:
        if sf.labels is not None and sf.names is not None:
            pos = {n: i for i, n in enumerate(sf.names)}
            lab = sf.labels[[pos[n] for n in names]]
            if labels is not None and not np.array_equal(labels, lab):
                raise DataError("the score files disagree on the labels of the same samples", file=sf.path)
            labels = lab
    metrics = M.summarize(fused, labels) if labels is not None else None
    return FusionResult(list(names), fused, labels, metrics, ref.class_names)
