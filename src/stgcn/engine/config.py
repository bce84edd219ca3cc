"""Run settings as typed dataclasses: the single declaration of every training option.

Recipes (YAML, ``yaml.safe_load``: data, never code), a run's ``config.yaml``, ``--set key=value``
overrides and the ``stgcn train`` / ``stgcn ablation`` command lines are all checked against
these fields by one `jsonargparse <https://jsonargparse.readthedocs.io>`_ parser
(:func:`config_parser`): an unknown key or a wrong type raises :class:`~stgcn.errors.ConfigError`
naming the file (or the option) and the key; values are read the way people write them
(``1e-3`` is a number, although YAML 1.1 reads it as a string). :meth:`RunConfig.validate` checks
the values. The attribute docstrings are the command line's help. The fully resolved settings are
written to ``<out>/config.yaml`` so a run describes itself.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

STREAMS = ("joint", "bone", "joint-motion", "bone-motion")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("step", "cosine", "constant")


@dataclass
class ModelConfig:
    name: str = "stgcn"
    """Registered model name (stgcn layouts lists them)."""
    strategy: str = "spatial"
    """Graph partition strategy: uniform, distance, distance-star, spatial."""
    edge_importance: bool = True
    """Learnable edge importance weighting (paper §3.6, "ST-GCN + Imp.")."""
    dropout: float | None = None
    """Dropout after each unit, in [0, 1); null keeps the model's default."""
    kwargs: dict = field(default_factory=dict)
    """Extra keyword arguments for create_model, e.g. {channels: [32, 64]}."""


@dataclass
class DataConfig:
    path: str = ""
    """A prepared store directory or a pyskl-format pickle."""
    layout: str | None = None
    """Layout name or YAML file; null = the store's layout."""
    train_split: str = ""
    """Training split; empty = inferred from the store (train/val, or its only <p>_train/<p>_test pair)."""
    val_split: str = ""
    """Validation split; empty = inferred with train_split."""
    stream: str = "joint"
    """Input modality: joint, bone, joint-motion, bone-motion."""
    train_pipeline: list[dict] = field(default_factory=list)
    """Transform specs for training ({name: ..., **kwargs}); a {name: stream} entry marks where the
    stream conversion happens (appended at the end when absent)."""
    test_pipeline: list[dict] = field(default_factory=list)
    """Transform specs for validation and evaluation (recorded in the checkpoint)."""
    test_clips: int = 1
    """Clips per sample at evaluation; their logits are averaged."""
    num_workers: int | None = None
    """DataLoader worker processes; null = chosen from the cores this process may use."""
    cache_dir: str | None = None
    """Where a pyskl pickle is converted into a store; null = ~/.cache/stgcn."""


@dataclass
class OptimizerConfig:
    name: str = "sgd"
    """sgd, adam or adamw."""
    lr: float = 0.1
    """Base learning rate."""
    momentum: float = 0.9
    """SGD momentum."""
    nesterov: bool = True
    """Nesterov momentum (SGD with momentum > 0)."""
    weight_decay: float = 1e-4
    """L2 weight decay."""
    backbone_lr_scale: float = 1.0
    """Learning-rate factor of the backbone (every weight but the classifier) when fine-tuning
    (train.init), e.g. 0.1."""
    backbone_lr_epochs: int = 0
    """Epochs from the start during which backbone_lr_scale applies; 0 = the whole run."""


@dataclass
class SchedulerConfig:
    name: str = "step"
    """step (multiply by gamma at each milestone epoch), cosine (per step) or constant."""
    milestones: list[int] = field(default_factory=lambda: [10, 50])
    """Epochs at which the step schedule multiplies the lr by gamma."""
    gamma: float = 0.1
    """Factor of the step schedule, in (0, 1]."""
    warmup_epochs: float = 0.0
    """Linear warm-up over this many epochs."""
    min_lr: float = 0.0
    """Cosine floor."""


@dataclass
class TrainConfig:
    epochs: int = 80
    """Training epochs."""
    batch_size: int = 64
    """Global batch size (split evenly over DDP processes)."""
    seed: int = 0
    """Seed of initialisation, order and augmentation (>= 0)."""
    ensemble: int = 1
    """Seed ensemble: train this many models (seeds seed, seed + 1000, ...) into out/m0, out/m1 ...
    and average their softmax scores (k members cost k runs); 1 = one model."""
    checkpoint_every: int = 0
    """Also save last.pt every N optimiser steps inside an epoch (0 = only at epoch ends)."""
    eval_every: int = 1
    """Evaluate on the validation split every N epochs (and always after the last one)."""
    amp: bool = True
    """Mixed precision (autocast + GradScaler); used on CUDA only."""
    precision: str = "fp32"
    """CPU training precision: fp32, or bf16 (autocast to bfloat16 in the forward, float32 weights
    and optimiser; needs avx512_bf16 or AMX, else fp32 with a warning). Validation and checkpoints
    stay fp32."""
    deterministic: bool = True
    """Deterministic algorithms (bit-identical resume on CPU)."""
    grad_clip: float = 0.0
    """Clip the gradient norm to this (0 = off)."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy, in [0, 1)."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    out: str = "runs/train"
    """Run directory: checkpoints, metrics, curves, report."""
    resume: bool = False
    """Continue the run in out from checkpoints/last.pt."""
    overwrite: bool = False
    """Allow starting a fresh run in a directory that already holds one."""
    tensorboard: bool = True
    """Write TensorBoard logs to out/tensorboard (when tensorboard is installed)."""
    progress: bool = True
    """Progress bars."""
    num_threads: int = 0
    """torch intra-op threads; 0 = chosen from the cores this process may use and the workers."""
    init: str | None = None
    """Fine-tune: start from this checkpoint (stgcn's, an official yysijie/st-gcn one, or the name of
    shipped weights such as stgcn.utkinect): every weight whose name and shape match is loaded, the
    classifier is replaced when the class names differ; out/init.json lists what was not loaded and why."""
    freeze_backbone_epochs: int = 0
    """Fine-tune: train only the classifier for the first N epochs (the backbone's weights and
    BatchNorm statistics stay as loaded)."""


@dataclass
class RunConfig:
    recipe: str = ""
    """Name of the recipe the settings came from (a label; stgcn train --recipe loads one)."""
    description: str = ""
    """What the recipe is for."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self, where: str = "config") -> RunConfig:
        """Check values (types are checked by the parser); returns self. ``where`` prefixes the
        message (a file, ``--set``; empty for none)."""
        at = f"{where}: " if where else ""
        for key, ok, want in _checks(self):
            if not ok:
                raise ConfigError(f"{at}{key}: {want}, found {_get(self, key)!r}")
        for key in ("train_pipeline", "test_pipeline"):
            for i, spec in enumerate(getattr(self.data, key)):
                if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                    raise ConfigError(f"{at}data.{key}[{i}]: expected a mapping with a 'name' string, "
                                      f"found {spec!r}")
        return self


def _checks(c: RunConfig) -> list[tuple[str, bool, str]]:
    """(key, holds, what is expected) for every value constraint."""
    dev = c.train.device
    return [
        ("model.dropout", c.model.dropout is None or 0 <= c.model.dropout < 1, "must be in [0, 1) or null"),
        ("data.stream", c.data.stream in STREAMS, f"must be one of {', '.join(STREAMS)}"),
        ("data.test_clips", c.data.test_clips >= 1, "must be >= 1"),
        ("data.num_workers", c.data.num_workers is None or c.data.num_workers >= 0, "must be >= 0 or null"),
        ("optimizer.name", c.optimizer.name in OPTIMIZERS, f"must be one of {', '.join(OPTIMIZERS)}"),
        ("optimizer.lr", c.optimizer.lr > 0, "must be > 0"),
        ("optimizer.momentum", c.optimizer.momentum >= 0, "must be >= 0"),
        ("optimizer.weight_decay", c.optimizer.weight_decay >= 0, "must be >= 0"),
        ("optimizer.backbone_lr_scale", c.optimizer.backbone_lr_scale > 0,
         "must be > 0 (train.freeze_backbone_epochs freezes)"),
        ("optimizer.backbone_lr_epochs", c.optimizer.backbone_lr_epochs >= 0, "must be >= 0"),
        ("scheduler.name", c.scheduler.name in SCHEDULERS, f"must be one of {', '.join(SCHEDULERS)}"),
        ("scheduler.milestones", list(c.scheduler.milestones) == sorted(c.scheduler.milestones), "must be increasing"),
        ("scheduler.gamma", 0 < c.scheduler.gamma <= 1, "must be in (0, 1]"),
        ("scheduler.warmup_epochs", c.scheduler.warmup_epochs >= 0, "must be >= 0"),
        ("scheduler.min_lr", c.scheduler.min_lr >= 0, "must be >= 0"),
        ("train.epochs", c.train.epochs >= 1, "must be >= 1"),
        ("train.batch_size", c.train.batch_size >= 1, "must be >= 1"),
        ("train.eval_every", c.train.eval_every >= 1, "must be >= 1"),
        ("train.seed", 0 <= c.train.seed < 2**63, "must be in [0, 2**63)"),
        ("train.ensemble", c.train.ensemble >= 1, "must be >= 1"),
        ("train.checkpoint_every", c.train.checkpoint_every >= 0, "must be >= 0"),
        ("train.precision", c.train.precision in ("fp32", "bf16"), "must be fp32 or bf16"),
        ("train.grad_clip", c.train.grad_clip >= 0, "must be >= 0"),
        ("train.label_smoothing", 0 <= c.train.label_smoothing < 1, "must be in [0, 1)"),
        ("train.num_threads", c.train.num_threads >= 0, "must be >= 0"),
        ("train.freeze_backbone_epochs", c.train.freeze_backbone_epochs >= 0, "must be >= 0"),
        ("train.init", bool(c.train.init) or (c.train.freeze_backbone_epochs == 0
                                               and c.optimizer.backbone_lr_scale == 1.0),
         "must name a checkpoint when train.freeze_backbone_epochs or optimizer.backbone_lr_scale is set"),
        ("train.device", dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit()),
         "must be auto, cpu, cuda or cuda:N"),
    ]


def _get(obj: Any, key: str) -> Any:
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


# --------------------------------------------------------------------------- the parser


SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(RunConfig)
            if f.default_factory is not dataclasses.MISSING}


def config_parser(**kwargs):
    """A jsonargparse parser whose options are the fields of :class:`RunConfig`: ``--recipe``,
    ``--description`` and ``--<section>.<field>`` (``--optimizer.lr``, ``--train.epochs`` ...),
    with the attribute docstrings as help. ``kwargs`` go to ``ArgumentParser``."""
    from jsonargparse import ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    p = ArgumentParser(exit_on_error=False, **kwargs)
    p.add_class_arguments(RunConfig, None, as_group=False, skip=set(SECTIONS), instantiate=False)
    for name, cls in SECTIONS.items():
        # as_group=False: a group would also take "--data FILE", which stgcn train spells for data.path
        p.add_class_arguments(cls, name, as_group=False, instantiate=False)
    return p


def namespace_to_config(ns) -> RunConfig:
    """A :class:`RunConfig` from a parsed namespace (extra keys of a verb's own options are ignored)."""
    d = ns.as_dict() if hasattr(ns, "as_dict") else dict(ns)
    cfg = RunConfig(recipe=d.get("recipe") or "", description=d.get("description") or "")
    for name, cls in SECTIONS.items():
        names = {f.name for f in dataclasses.fields(cls)}
        setattr(cfg, name, cls(**{k: v for k, v in (d.get(name) or {}).items() if k in names}))
    return cfg


def config_to_namespace(parser, cfg: RunConfig):
    return parser.parse_object(cfg.to_dict())


def _parse_error(where: str, exc: Exception) -> ConfigError:
    msg = " ".join(str(exc).split())
    return ConfigError(f"{where}: {msg}")


def _check_sections(data: Any, where: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, found {type(data).__name__} {data!r}")
    for name in SECTIONS:
        if name in data and not isinstance(data[name], dict):
            raise ConfigError(f"{where}: {name}: expected a mapping, found {type(data[name]).__name__} "
                              f"{data[name]!r}")


def from_dict(data: dict, where: str = "config") -> RunConfig:
    """A validated :class:`RunConfig` from a mapping (a recipe, a run's ``config.yaml``); missing
    keys keep the field defaults."""
    _check_sections(data, where)
    p = config_parser()
    try:
        ns = p.parse_object(data)
    except (argparse.ArgumentError, TypeError, ValueError) as exc:
        raise _parse_error(where, exc) from None
    return namespace_to_config(ns).validate(where)


# --------------------------------------------------------------------------- recipes and overrides


def list_recipes() -> list[str]:
    """Names of the recipes shipped in ``stgcn/engine/recipes``."""
    root = resources.files("stgcn.engine") / "recipes"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def recipe_path(name_or_file: str) -> Path:
    """Resolve a shipped recipe name or a YAML path."""
    p = Path(name_or_file)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"recipe file {name_or_file!r} does not exist")
        return p
    cand = resources.files("stgcn.engine") / "recipes" / f"{name_or_file}.yaml"
    if not cand.is_file():
        raise ConfigError(f"unknown recipe {name_or_file!r}; shipped recipes: {', '.join(list_recipes())} "
                          "(or give a path to a .yaml file)")
    return Path(str(cand))


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from exc
    return {} if data is None else data


def load_recipe(name_or_file: str) -> RunConfig:
    """A :class:`RunConfig` from a shipped recipe name or a YAML file, validated."""
    path = recipe_path(name_or_file)
    cfg = from_dict(read_yaml(path), str(path))
    if not cfg.recipe:
        cfg.recipe = path.stem
    return cfg


def override_args(overrides: list[str]) -> list[str]:
    """``key.sub=value`` strings as the parser's ``--key.sub=value`` options; an unknown key is
    refused with the keys it could have been."""
    args = []
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. optimizer.lr=0.05)")
        section, _, leaf = key.partition(".")
        if section in SECTIONS:
            known = [f.name for f in dataclasses.fields(SECTIONS[section])]
            if leaf not in known:
                raise ConfigError(f"--set {item!r}: unknown key {key!r} (keys of {section}: {', '.join(known)})")
        elif leaf or section not in ("recipe", "description"):
            raise ConfigError(f"--set {item!r}: unknown key {key!r} (sections: {', '.join(SECTIONS)})")
        args.append(f"--{key}={value}")
    return args


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply ``key.sub=value`` strings, parsed by the field's type (``optimizer.lr=1e-3``,
    ``scheduler.milestones=[5, 8]``, ``model.dropout=null``), then validate."""
    p = config_parser()
    args = override_args(overrides)
    try:
        ns = p.parse_args(args, namespace=config_to_namespace(p, cfg))
    except (argparse.ArgumentError, TypeError, ValueError) as exc:
        raise _parse_error("--set", exc) from None
    return namespace_to_config(ns).validate("--set")


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)
