"""A temporal head over a stream of window probabilities: MS-TCN's refinement stage, causal.

The window model (stage 1) gives, at every step ``t`` of a person's stream, the class
probabilities of the window ending there. :class:`TemporalHead` (stage 2) reads that sequence,
together with each class's "seen so far" (the running sum of its probabilities since the stream
began, divided by the class's typical length and capped at 1: in UTKinect, walking is the action
"walk" only before anything else was done), with a stack of dilated residual 1-D convolutions
(Farha & Gall, MS-TCN, CVPR 2019: a 1x1 input convolution, ``layers`` residual layers of a
kernel-3 convolution with dilation ``2**i``, ReLU, 1x1 convolution and dropout, a 1x1 output
convolution) and gives refined class logits per step:
the log window probabilities plus the stack's output, which starts at zero, so that an untrained
head passes the windows through and training learns corrections to them.
Unlike MS-TCN its convolutions are padded on the left only, so the output at step ``t`` depends
on steps ``<= t`` alone and can be computed as the stream arrives; it is trained to label the
frame the segmenter decides at that step (``SegmenterConfig.lookahead`` frames back), so it adds
no delay of its own.
Its receptive field is ``1 + 2 * (2**layers - 1)`` steps (63 by default, 9 s of UTKinect); "seen
so far" reaches back to the stream's start.

With ``members`` > 1 the head is an ensemble: that many stacks side by side (grouped convolutions,
``channels`` each, nothing shared but the input), each trained on its own loss from its own
initialisation, and the correction added to the log window probabilities is the mean of theirs
(the geometric mean of the members' probabilities).

:class:`HeadStream` runs a trained head one step at a time (a running sum, one cached input per
layer and tap,
a few small matrix products per step) and gives exactly the outputs of :meth:`TemporalHead.forward`
over the whole sequence.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import CheckpointError, ConfigError, ShapeError

FLOOR = 1e-6
"""Window probabilities are floored at this before the log (a zero would be minus infinity)."""


@dataclass(frozen=True)
class HeadConfig:
    evidence: tuple[float, ...]
    """Per class (the window model's, "no action" included): the steps of probability that make
    its "seen so far" input 1 (its median segment length in the training streams)."""
    channels: int = 16
    """Per member."""
    layers: int = 5
    dropout: float = 0.5
    members: int = 1
    """Stacks trained side by side whose corrections are averaged (an ensemble in one head)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", tuple(float(n) for n in self.evidence))  # a JSON list
        if not self.evidence or min(self.evidence) <= 0:
            raise ConfigError(f"temporal head: evidence lengths must be > 0, found {list(self.evidence)}")
        for key in ("channels", "layers", "members"):
            if getattr(self, key) < 1:
                raise ConfigError(f"temporal head: {key} must be >= 1, found {getattr(self, key)}")

    @property
    def num_classes(self) -> int:
        return len(self.evidence)

    @property
    def receptive_field(self) -> int:
        return 1 + 2 * (2 ** self.layers - 1)


class _CausalResidual(nn.Module):
    def __init__(self, channels: int, dilation: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Conv1d(channels, channels, 3, dilation=dilation, groups=groups)
        self.mix = nn.Conv1d(channels, channels, 1, groups=groups)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.pad(x, (2 * self.dilation, 0)))  # left padding: no future step reaches t
        return x + self.drop(self.mix(F.relu(y)))


class TemporalHead(nn.Module):
    """(N, num_classes, T) window probabilities -> (N, num_classes, T) logits, causal in T.

    Each member's stack (``config.members``) is one group of every convolution after the input
    one: member ``g`` owns channels ``g * channels .. (g + 1) * channels - 1`` and output rows
    ``g * num_classes ..`` of ``out``."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.register_buffer("evidence", torch.tensor(c.evidence, dtype=torch.float32)[:, None], persistent=False)
        width = c.channels * c.members
        self.inp = nn.Conv1d(2 * c.num_classes, width, 1)
        self.layers = nn.ModuleList(_CausalResidual(width, 2 ** i, c.dropout, c.members) for i in range(c.layers))
        self.out = nn.Conv1d(width, c.num_classes * c.members, 1, groups=c.members)
        nn.init.zeros_(self.out.weight)  # start as the identity: the window probabilities as they are
        nn.init.zeros_(self.out.bias)

    def member_logits(self, probs: torch.Tensor) -> torch.Tensor:
        """(N, members, num_classes, T): each member's logits (what each is trained on), from
        (N, num_classes, T) probabilities for all members or (N, members, num_classes, T), one
        stream per member (each trains on its own augmented copy)."""
        m = self.config.members
        if probs.dim() == 3:
            probs = probs[:, None].expand(-1, m, -1, -1)
        n, _, k, t = probs.shape
        seen = (probs.cumsum(dim=3) / self.evidence.to(probs.dtype)).clamp(max=1.0)
        # the input convolution grouped by member: member g's rows read member g's stream
        h = F.conv1d(torch.cat([probs, seen], dim=2).reshape(n, m * 2 * k, t), self.inp.weight, self.inp.bias,
                     groups=m)
        for layer in self.layers:
            h = layer(h)
        return torch.log(probs.clamp(min=FLOOR)) + self.out(h).view(n, m, k, t)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return self.member_logits(probs).mean(dim=1)

    @torch.no_grad()
    def probabilities(self, probs: np.ndarray) -> np.ndarray:
        """(T, K) window probabilities of one stream -> (T, K) refined probabilities, in float64
        (as :class:`HeadStream` computes them, so that offline and live decisions agree)."""
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[1] != self.config.num_classes:
            raise ShapeError(f"temporal head: expected (T, {self.config.num_classes}) probabilities, "
                             f"found shape {probs.shape}")
        exact = copy.deepcopy(self).double().eval()
        logits = exact(torch.from_numpy(probs.T.copy())[None])[0].T
        return torch.softmax(logits, dim=1).numpy()

    def to_meta(self) -> dict:
        """``{"config": ..., "state_dict": ...}``: plain data and tensors (a checkpoint's meta)."""
        return {"config": asdict(self.config), "state_dict": {k: v.detach().cpu().clone()
                                                              for k, v in self.state_dict().items()}}

    @classmethod
    def from_meta(cls, doc: dict, where: str = "checkpoint meta 'segmenter_head'") -> TemporalHead:
        try:
            known = {f.name for f in fields(HeadConfig)}
            config = HeadConfig(**{k: v for k, v in doc["config"].items() if k in known})
            if set(doc["config"]) - known:
                raise TypeError(f"unknown settings {sorted(set(doc['config']) - known)}")
            head = cls(config)
            head.load_state_dict(doc["state_dict"], strict=True)
        except (KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{where}: not a temporal head ({type(exc).__name__}: {exc})") from None
        return head.eval()


class HeadStream:
    """One person's stream through a trained head, step by step: ``step(probs)`` returns the
    refined probabilities of this step, equal to the
    whole-sequence :meth:`TemporalHead.probabilities` at that step."""

    def __init__(self, head: TemporalHead) -> None:
        sd = {k: v.detach().double().numpy() for k, v in head.state_dict().items()}
        m, k = head.config.members, head.config.num_classes
        self._inp = (sd["inp.weight"][:, :, 0], sd["inp.bias"])
        self._layers = [(_dense(sd[f"layers.{i}.conv.weight"], m), sd[f"layers.{i}.conv.bias"],
                         _dense(sd[f"layers.{i}.mix.weight"], m)[:, :, 0], sd[f"layers.{i}.mix.bias"], layer.dilation)
                        for i, layer in enumerate(head.layers)]
        # the members' mean correction: their output rows side by side, each weighted 1 / members
        out_w = _dense(sd["out.weight"], m)[:, :, 0].reshape(m, k, -1).sum(axis=0) / m
        self._out = (out_w, sd["out.bias"].reshape(m, k).mean(axis=0))
        self._evidence = np.asarray(head.config.evidence, dtype=np.float64)
        self.num_classes = head.config.num_classes
        self.reset()

    def reset(self) -> None:
        """A new stream: the past is the zero padding of :class:`TemporalHead`."""
        channels = self._inp[0].shape[0]
        self._sum = np.zeros(self.num_classes)
        # per layer, its inputs at t - 2d .. t (the kernel's taps are t - 2d, t - d, t)
        self._history = [deque([np.zeros(channels)] * (2 * d + 1), maxlen=2 * d + 1)
                         for *_, d in self._layers]

    def step(self, probs: np.ndarray) -> np.ndarray:
        probs = np.asarray(probs, dtype=np.float64)
        if probs.shape != (self.num_classes,):
            raise ShapeError(f"temporal head: expected {self.num_classes} probabilities, found shape {probs.shape}")
        self._sum = self._sum + probs
        seen = np.minimum(self._sum / self._evidence, 1.0)
        h = self._inp[0] @ np.concatenate([probs, seen]) + self._inp[1]
        for (w, b, wm, bm, d), hist in zip(self._layers, self._history, strict=True):
            hist.append(h)
            y = w[:, :, 0] @ hist[0] + w[:, :, 1] @ hist[d] + w[:, :, 2] @ hist[2 * d] + b
            h = h + wm @ np.maximum(y, 0.0) + bm
        z = np.log(np.maximum(probs, FLOOR)) + self._out[0] @ h + self._out[1]
        z = np.exp(z - z.max())
        return z / z.sum()


def _dense(weight: np.ndarray, groups: int) -> np.ndarray:
    """A grouped convolution's weight (out, in / groups, taps) as the dense (out, in, taps) one:
    block-diagonal, group g's outputs reading group g's inputs only."""
    out, per, taps = weight.shape
    rows = out // groups
    dense = np.zeros((out, per * groups, taps))
    for g in range(groups):
        dense[g * rows:(g + 1) * rows, g * per:(g + 1) * per] = weight[g * rows:(g + 1) * rows]
    return dense
