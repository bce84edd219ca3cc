"""A seed ensemble as one model: the members' softmax averaged, for prediction.

``stgcn train --set train.ensemble=k`` trains k models that differ only in their seed into
``OUT/m0`` ... ``OUT/m{k-1}`` and scores them with :func:`stgcn.fusion.fuse` (the mean of their
softmax). :class:`SoftmaxEnsemble` computes the same mean inside one forward, so the Predictor,
``stgcn predict``, the demo, the web app and ``stgcn segment`` take an ensemble run's directory where
they take a checkpoint (:func:`load_seed_ensemble`). Its forward returns ``log(mean_i softmax(z_i))``:
logits whose softmax is exactly the members' mean probability, so every caller that applies a
softmax to logits gets the ensemble's probabilities without knowing it is one.

Members of a ``--streams`` run read different inputs (joint, bone, motion) and cannot share one
forward; their scores fuse with ``stgcn fuse``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError

# which checkpoint of a member predicts: the final model, the one the fused scores come from
MEMBER_CHECKPOINT = Path("checkpoints") / "final.pt"


class SoftmaxEnsemble(nn.Module):
    """Models with one input and one class list; the output is the log of their mean softmax."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise CheckpointError(f"an ensemble needs at least 2 members, found {len(members)}")
        self.members = nn.ModuleList(members)

    def __getattr__(self, name: str):
        # member 0 answers for the architecture (num_classes, layout, config, check_input, ...)
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("members")[0], name)

    def _log_mean_softmax(self, logits: list[torch.Tensor]) -> torch.Tensor:
        # logsumexp rather than log(mean(exp)): a class every member rules out stays finite
        log_p = torch.stack([z.float().log_softmax(dim=-1) for z in logits])
        return torch.logsumexp(log_p, dim=0) - math.log(len(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._log_mean_softmax([m(x) for m in self.members])

    def extract_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The members' mean feature map (for the demo's joint attention) and the ensemble's logits."""
        pairs = [m.extract_features(x) for m in self.members]
        feat = torch.stack([f.float() for f, _ in pairs]).mean(dim=0)
        return feat, self._log_mean_softmax([z for _, z in pairs])

    def fuse(self) -> SoftmaxEnsemble:
        """Fold every member in place (:func:`stgcn.models.optimize_for_inference` calls this)."""
        for i, m in enumerate(self.members):
            self.members[i] = m.fuse() if hasattr(m, "fuse") else m.eval().requires_grad_(False)
        return self.eval().requires_grad_(False)


def ensemble_members(run_dir: str | Path) -> list[Path]:
    """The members' final checkpoints of a seed-ensemble run directory (``m0``, ``m1`` ... in order)."""
    run_dir = Path(run_dir)
    found = []
    while (run_dir / f"m{len(found)}").is_dir():
        ckpt = run_dir / f"m{len(found)}" / MEMBER_CHECKPOINT
        if not ckpt.is_file():
            raise CheckpointError(f"{run_dir}: ensemble member m{len(found)} has no final checkpoint {ckpt} "
                                  "(did its training finish? `stgcn train --resume` completes it; a run from before "
                                  "final.pt existed gets one by resuming it once)")
        found.append(ckpt)
    if len(found) < 2:
        what = "a --streams run: fuse its members' scores with `stgcn fuse`" if (run_dir / "joint").is_dir() \
            else "no m0/, m1/ ... member directories"
        raise CheckpointError(f"{run_dir}: not a checkpoint file nor a seed-ensemble run ({what})")
    return found


def _same_contract(meta: dict, first: dict) -> bool:
    # the members differ in their seed only; everything the input is built from must agree
    def key(m: dict) -> dict:
        return {k: v for k, v in (m.get("data") or {}).items() if k != "seed"}
    return key(meta) == key(first) and meta.get("class_names") == first.get("class_names")


def load_seed_ensemble(run_dir: str | Path) -> tuple[SoftmaxEnsemble, dict]:
    """``(SoftmaxEnsemble in eval mode, meta)`` of an ensemble run; the meta is member 0's with
    ``meta["ensemble"]`` listing the member checkpoints. Members whose data contract or class list
    differ are refused, naming the member."""
    from ..checkpoint import load_model

    paths = ensemble_members(run_dir)
    models, metas = zip(*(load_model(p) for p in paths), strict=True)
    for p, meta in zip(paths[1:], metas[1:], strict=True):
        if not _same_contract(meta, metas[0]):
            raise CheckpointError(f"{p}: this member's data contract or class names differ from {paths[0]}'s; "
                                  "an ensemble's members must read the same input")
    meta = dict(metas[0])
    meta["ensemble"] = {"members": [str(p) for p in paths], "fusion": "mean softmax"}
    return SoftmaxEnsemble(list(models)).eval(), meta
