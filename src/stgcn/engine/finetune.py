"""Fine-tuning: a run that starts from the weights of a trained model (``train.init``).

Three steps, each called by :mod:`.training`:

1. :func:`read_init` (before any data is opened): the file (or the shipped weights of that name,
   sha256 checked) is read safely (``weights_only``) and recognised as an stgcn checkpoint
   (``format: stgcn``) or an official yysijie/st-gcn one (by its keys, as
   :func:`stgcn.compat.load_official` recognises them); anything else, or a damaged file, is a
   :class:`~stgcn.errors.CheckpointError` here, before training starts.
2. :func:`load_init` (once the run's model is built): the checkpoint's model is rebuilt through the
   loader of its kind (``load_model`` / ``load_official``: strict, so a truncated state dict is
   refused), its layout is checked against the run's (by table; for official checkpoints, which
   name none, by their graph ``A``), then every tensor whose name and shape match is copied into
   the run's model. The classifier is kept when the class names are the same, else it stays the
   run's fresh one. :class:`InitReport` lists what was loaded and what was not, and why.
3. While training: :func:`backbone_frozen` says whether the backbone (every weight but the
   classifier) is frozen in an epoch (``train.freeze_backbone_epochs``): :func:`freeze_backbone`
   turns its gradients off and :func:`keep_frozen_statistics` keeps its BatchNorm layers in eval
   mode, as timm's ``freeze`` does, so neither weights nor running statistics move.
   :func:`param_groups` and :func:`lr_lambdas` give the backbone its own learning rate
   (``optimizer.backbone_lr_scale`` for the first ``optimizer.backbone_lr_epochs`` epochs), a pure
   function of the step like the rest of the schedule, so ``--resume`` stays bit-identical.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..graph import Layout

STGCN, OFFICIAL = "stgcn", "official"


@dataclass
class InitSource:
    """A checkpoint recognised by :func:`read_init`: its ``kind`` and the loaded object."""

    path: Path
    kind: str
    raw: dict
    sha256: str


def read_init(path: str | Path) -> InitSource:
    """Read and recognise the checkpoint of ``train.init`` (a file, or the name of shipped weights,
    ``stgcn models``, checked against their sha256); raises :class:`CheckpointError`."""
    from ..checkpoint import FORMAT, safe_load
    from ..compat.official import is_official, official_state_dict
    from ..models.pretrained import get_pretrained, list_pretrained

    if not Path(path).exists() and str(path) in list_pretrained():
        path = get_pretrained(str(path)).verified_path()
    path = Path(path)
    raw = safe_load(path)  # not found, damaged, or carrying code: CheckpointError naming the file
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        return InitSource(path, STGCN, raw, digest)
    if isinstance(raw, dict) and raw.get("format") == "stgcn-train-state":
        raise CheckpointError(f"{path}: a training state (checkpoints/last.pt), not a model checkpoint: start "
                              "from checkpoints/final.pt, or continue that run with --resume")
    try:
        official = is_official(official_state_dict(raw))
    except CheckpointError:
        official = False
    if not official:
        raise CheckpointError(f"{path}: neither an stgcn checkpoint (no 'format': 'stgcn' entry) nor an official "
                              "ST-GCN state dict (no fcn.weight, data_bn.weight, st_gcn_networks.0.gcn.conv.weight)")
    return InitSource(path, OFFICIAL, raw, digest)


@dataclass
class InitReport:
    """What :func:`load_init` did: ``loaded`` keys, ``not_loaded`` (key, why) of the run's model,
    ``unused`` (key, why) of the checkpoint, the ``classifier`` decision and ``notes``."""

    source: str
    kind: str
    sha256: str
    loaded: list[str] = field(default_factory=list)
    not_loaded: list[tuple[str, str]] = field(default_factory=list)
    unused: list[tuple[str, str]] = field(default_factory=list)
    classifier: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"source": self.source, "kind": self.kind, "sha256": self.sha256, "classifier": self.classifier,
                "loaded": self.loaded, "not_loaded": [{"key": k, "why": w} for k, w in self.not_loaded],
                "unused": [{"key": k, "why": w} for k, w in self.unused], "notes": self.notes}

    def write(self, path: Path) -> None:
        from ..atomic import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def summary(self, limit: int = 12) -> str:
        total = len(self.loaded) + len(self.not_loaded)
        lines = [f"init: {len(self.loaded)} of {total} tensors loaded from {self.source} ({self.kind} checkpoint); "
                 f"classifier {self.classifier}"]
        for what, items in (("not loaded", self.not_loaded), ("in the checkpoint, unused", self.unused)):
            for k, why in items[:limit]:
                lines.append(f"  {what}: {k}: {why}")
            if len(items) > limit:
                lines.append(f"  ... and {len(items) - limit} more {what} (init.json lists them all)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def load_init(model: nn.Module, src: InitSource, *, layout: Layout, class_names: list[str], strategy: str,
              stream: str, channels: list[str] | None) -> InitReport:
    """Copy the weights of ``src`` that fit into ``model`` (the run's, freshly built); see the module
    docstring. Raises :class:`CheckpointError` or :class:`~stgcn.errors.LayoutError` when the
    checkpoint is for another skeleton or nothing of it fits."""
    from ..contract import DataContract, check_layout

    where = f"{src.path} (train.init)"
    ck_model, meta = _rebuild(src, layout, strategy)
    contract = DataContract.from_meta(meta, ck_model, source=str(src.path))
    check_layout(layout, contract.layout, what=where, expected_what="this run trains on")
    sd = ck_model.state_dict()
    head = classifier_keys(model)
    ck_names = list(meta.get("class_names") or [])
    keep_head = ck_names == list(class_names)
    report = InitReport(str(src.path), src.kind, src.sha256,
                        classifier=_classifier_decision(keep_head, ck_names, class_names))
    own = model.state_dict()
    with torch.no_grad():
        for key, target in own.items():
            why = _why_not(key, target, sd, head, keep_head)
            if why:
                report.not_loaded.append((key, why))
            else:
                target.copy_(sd[key])
                report.loaded.append(key)
    report.unused = [(k, "not in this model") for k in sd if k not in own]
    if not [k for k in report.loaded if k not in head and k != "A"]:
        why = "; ".join(f"{k}: {w}" for k, w in report.not_loaded[:5])
        raise CheckpointError(f"{where}: no weight of the checkpoint fits this run's model "
                              f"{model.config.get('name')!r}: {why}")
    if contract.stream != stream:
        report.notes.append(f"the checkpoint was trained on stream {contract.stream!r}, this run uses {stream!r}")
    if channels is not None and list(contract.channels) != list(channels):
        report.notes.append(f"the checkpoint read channels {list(contract.channels)}, this data has {list(channels)}")
    return report


def _rebuild(src: InitSource, layout: Layout, strategy: str) -> tuple[nn.Module, dict]:
    """The checkpoint's own model and meta, through the loader of its kind."""
    from ..checkpoint import build_from_checkpoint
    from ..compat.official import load_official, official_graph_layouts, official_meta, official_state_dict

    if src.kind == STGCN:
        return build_from_checkpoint(src.raw, str(src.path))
    if not layout.builtin:
        raise CheckpointError(f"{src.path} (train.init): official checkpoints are on built-in layouts; this run "
                              f"trains on a custom layout ({layout.num_joints} joints)")
    # An official checkpoint names no layout; its graph A does (the same joint count is not enough).
    sd = official_state_dict(src.raw)
    if "A" in sd:
        from ..graph import Graph

        own = torch.as_tensor(Graph(layout, strategy).A, dtype=torch.float64)
        if tuple(sd["A"].shape) != tuple(own.shape) or not torch.allclose(sd["A"].double(), own, atol=1e-6):
            found = official_graph_layouts(sd, strategy) or ["none of the built-in layouts"]
            raise CheckpointError(
                f"{src.path} (train.init): the official checkpoint's graph A is that of {', '.join(found)} "
                f"(strategy {strategy!r}), not of layout {layout.name!r} that this run trains on")
    model = load_official(src.path, layout=layout.name, strategy=strategy)
    return model, official_meta(model, src.path)


def _classifier_decision(keep: bool, ck_names: list[str], names: list[str]) -> str:
    if keep:
        return f"kept (the same {len(names)} classes)"
    if len(ck_names) != len(names):
        return f"replaced ({len(names)} classes here, {len(ck_names)} in the checkpoint)"
    i = next(i for i, (a, b) in enumerate(zip(ck_names, names, strict=True)) if a != b)
    return f"replaced (other class names: class {i} is {ck_names[i]!r} there, {names[i]!r} here)"


def _why_not(key: str, target: torch.Tensor, sd: dict, head: set[str], keep_head: bool) -> str:
    """Why the checkpoint's ``key`` is not copied into the model ('' when it is)."""
    if key in head and not keep_head:
        return "classifier replaced (other classes)"
    if key not in sd:
        return "not in the checkpoint"
    found = sd[key]
    if tuple(found.shape) != tuple(target.shape):
        return f"shape {tuple(found.shape)} in the checkpoint, {tuple(target.shape)} in this model"
    if key == "A" and not torch.allclose(found.to(target.dtype), target, atol=1e-6):
        return "the graph differs (another partition strategy?): the run keeps its own"
    return ""


# --------------------------------------------------------------------------- backbone and classifier


def classifier_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the classifier: the model's last module with weights of its own, whose
    output size is the class count (``fcn`` of ST-GCN, ``fc`` of the TCN)."""
    last = None
    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            last = (name, module)
    n_cls = getattr(model, "num_classes", None)
    if last is None or getattr(last[1], "weight", None) is None or last[1].weight.shape[0] != n_cls:
        raise CheckpointError(f"cannot tell the classifier of model {type(model).__name__} (its last layer with "
                              f"weights does not output its {n_cls} classes)")
    prefix = f"{last[0]}." if last[0] else ""
    return {prefix + k for k in last[1].state_dict()}


def backbone_frozen(freeze_epochs: int, epoch: int) -> bool:
    """Whether the backbone is frozen in ``epoch`` (0-based)."""
    return epoch < freeze_epochs


def freeze_backbone(model: nn.Module, frozen: bool) -> None:
    """Gradients of every weight but the classifier's off (``frozen``) or on."""
    head = classifier_keys(model)
    for name, p in model.named_parameters():
        p.requires_grad_(not frozen or name in head)


def keep_frozen_statistics(model: nn.Module) -> None:
    """BatchNorm layers of the backbone in eval mode: their running statistics stay as loaded.
    Called after ``model.train()`` in every frozen epoch."""
    head = {k.rsplit(".", 1)[0] for k in classifier_keys(model)}
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and name not in head:
            module.eval()


def backbone_lr_scaled(cfg) -> bool:
    """Whether the backbone has a learning rate of its own (``optimizer.backbone_lr_scale``)."""
    return cfg.optimizer.backbone_lr_scale != 1.0


def param_groups(model: nn.Module, scaled: bool) -> list:
    """The optimiser's parameters: one group, or (``scaled``) classifier then backbone."""
    if not scaled:
        return list(model.parameters())
    head = classifier_keys(model)
    named = list(model.named_parameters())
    return [{"params": [p for n, p in named if n in head]}, {"params": [p for n, p in named if n not in head]}]


def lr_lambdas(factor: Callable[[int], float], scale: float, scale_epochs: int, steps_per_epoch: int,
               scaled: bool) -> Callable | list[Callable]:
    """The schedule of each group of :func:`param_groups`: ``factor(step)``, times ``scale`` for the
    backbone in its first ``scale_epochs`` epochs (0: the whole run)."""
    if not scaled:
        return factor

    def backbone(step: int) -> float:
        within = scale_epochs == 0 or step < scale_epochs * steps_per_epoch
        return factor(step) * (scale if within else 1.0)

    return [factor, backbone]
