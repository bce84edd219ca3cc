"""Training a :class:`~stgcn.models.temporal_head.TemporalHead` on labelled streams.

The inputs are, per stream, the window model's probabilities at every step (T, K) and the frame
labels (T,) (class indices of the model, its "no action" class included). The head's output at
step ``t`` is trained on the label of frame ``t - offset`` (the frame the segmenter decides at
that step) with MS-TCN's loss: cross-entropy plus ``smoothing`` times the truncated mean squared
difference of consecutive log-probabilities (tau = 4), all streams in one batch per step, each
resampled in time and tempered anew every step (a handful of training streams is all there is).
Give it probabilities the window model did not train on (out-of-fold), so that it learns from the
confidences of unseen data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import ShapeError
from ..models.temporal_head import HeadConfig, TemporalHead
from ..segmentation import runs as segment_runs

IGNORE = -100


_ARCH = {f.name: f.default for f in fields(HeadConfig) if f.name in ("channels", "layers", "dropout")}
"""The head's size as HeadConfig defines it (one place for the defaults)."""


@dataclass(frozen=True)
class HeadTraining:
    channels: int = _ARCH["channels"]
    layers: int = _ARCH["layers"]
    dropout: float = _ARCH["dropout"]
    members: int = 5
    """Heads trained side by side, each on its own loss from its own initialisation, and averaged
    (:class:`HeadConfig`; a head stored without it has one); every step each member sees its own
    augmented copy of the streams. 5: chosen out-of-fold (docs/segmentation.md)."""
    epochs: int = 300
    """Full-batch steps (all streams at once)."""
    lr: float = 1e-3
    weight_decay: float = 1e-4
    smoothing: float = 0.15
    speed: float = 0.3
    """Augmentation: every step, each stream resampled at a rate drawn log-uniformly in
    [1 / (1 + speed), 1 + speed] (its labels alike); 0: as recorded."""
    temperature: float = 0.3
    """Augmentation: every step, each stream's probabilities sharpened or flattened (p ** (1 / tau),
    renormalised) with log tau uniform in [-temperature, temperature]; 0: as given."""
    seed: int = 0

    def __post_init__(self) -> None:  # a bad size fails now, not after the window models trained
        HeadConfig((1.0,), self.channels, self.layers, self.dropout, self.members)


def targets(labels: np.ndarray, offset: int) -> np.ndarray:
    """(T,) the label each step is trained on: frame ``t - offset``'s (none for the first steps)."""
    out = np.full(len(labels), IGNORE, dtype=np.int64)
    out[offset:] = labels[:len(labels) - offset] if offset else labels
    return out


def _batch(probs: Sequence[np.ndarray], labels: Sequence[np.ndarray], offset: int, k: int):
    """Streams right-padded to one length (the padding is after every real step: a causal head's
    outputs at real steps do not see it)."""
    t_max = max(len(p) for p in probs)
    x = np.zeros((len(probs), k, t_max), np.float32)
    y = np.full((len(probs), t_max), IGNORE, np.int64)
    for i, (p, lab) in enumerate(zip(probs, labels, strict=True)):
        if p.shape != (len(lab), k):
            raise ShapeError(f"stream {i}: probabilities {p.shape} do not fit {len(lab)} frame labels of {k} classes")
        x[i, :, :len(p)] = p.T
        y[i, :len(p)] = targets(np.asarray(lab, np.int64), offset)
    return torch.from_numpy(x), torch.from_numpy(y)


def augment(probs: np.ndarray, labels: np.ndarray, s: HeadTraining, rng: np.random.Generator):
    """One stream's probabilities and labels resampled in time and tempered (``s.speed``,
    ``s.temperature``)."""
    if s.speed > 0:
        rate = float(np.exp(rng.uniform(-np.log1p(s.speed), np.log1p(s.speed))))
        idx = np.minimum((np.arange(max(2, round(len(probs) * rate))) / rate).astype(int), len(probs) - 1)
        probs, labels = probs[idx], labels[idx]
    if s.temperature > 0:
        probs = probs ** float(np.exp(-rng.uniform(-s.temperature, s.temperature)))
        probs = probs / probs.sum(axis=1, keepdims=True)
    return probs, labels


def loss(logits: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Cross-entropy over the labelled steps + ``smoothing`` x truncated MSE (MS-TCN, tau 4).
    ``logits`` (N, K, T) with ``y`` (N, T), or (N, members, K, T) with ``y`` (N, T) or (N, members, T):
    over the members' steps together."""
    if logits.dim() == 4:
        n, m, k, t = logits.shape
        y = y[:, None].expand(n, m, t) if y.dim() == 2 else y
        logits, y = logits.reshape(n * m, k, t), y.reshape(n * m, t)
    ce = F.cross_entropy(logits, y, ignore_index=IGNORE)
    if smoothing == 0:
        return ce
    logp = F.log_softmax(logits, dim=1)
    diff = (logp[:, :, 1:] - logp[:, :, :-1].detach()).pow(2).clamp(max=16.0).mean(dim=1)
    both = (y[:, 1:] != IGNORE) & (y[:, :-1] != IGNORE)
    return ce + smoothing * diff[both].mean()


def typical_lengths(labels: Sequence[np.ndarray], k: int) -> tuple[float, ...]:
    """Per class, the median length of its runs in ``labels`` (the median over all classes' runs
    for a class without any)."""
    runs: dict[int, list[int]] = {}
    for lab in labels:
        for c, start, end in segment_runs(np.asarray(lab)):
            runs.setdefault(int(c), []).append(end - start + 1)
    every = float(np.median([n for v in runs.values() for n in v]))
    return tuple(float(np.median(runs[c])) if c in runs else every for c in range(k))


def fit_head(probs: Sequence[np.ndarray], labels: Sequence[np.ndarray], offset: int,
             settings: HeadTraining = HeadTraining()) -> TemporalHead:
    """A head trained on streams' window probabilities ``probs`` (T, K) and frame labels (T,)
    (class indices 0..K-1, every frame labelled)."""
    k = int(probs[0].shape[1])
    torch.manual_seed(settings.seed)
    head = TemporalHead(HeadConfig(typical_lengths(labels, k), settings.channels, settings.layers, settings.dropout,
                                   settings.members))
    x, y = _batch(probs, labels, offset, k)  # as given, for every member
    rng = np.random.default_rng(settings.seed)
    n, m = len(probs), settings.members
    opt = torch.optim.Adam(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    head.train()
    for _ in range(settings.epochs):
        if settings.speed > 0 or settings.temperature > 0:  # stream i's copy for member g at i * m + g
            pairs = [augment(p, np.asarray(lab), settings, rng) for p, lab in zip(probs, labels, strict=True)
                     for _ in range(m)]
            x, y = _batch([p for p, _ in pairs], [lab for _, lab in pairs], offset, k)
            x, y = x.view(n, m, k, -1), y.view(n, m, -1)
        opt.zero_grad()
        loss(head.member_logits(x), y, settings.smoothing).backward()
        opt.step()
    return head.eval()
