"""Run settings as typed dataclasses, loaded from YAML recipes and ``--set key=value`` overrides.

A recipe is data (``yaml.safe_load``), never code. Every key is checked against the dataclass
fields below: an unknown key, a wrong type or an invalid value raises
:class:`~stgcn.errors.ConfigError` naming the file (or the ``--set`` option) and the key.
The fully resolved settings are written to ``<out>/config.yaml`` so a run describes itself.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
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
    """Registered model name (``stgcn.models.list_models()``)."""
    strategy: str = "spatial"
    """Graph partition strategy: uniform, distance, distance-star, spatial."""
    edge_importance: bool = True
    """Learnable edge importance weighting (paper §3.6, "ST-GCN + Imp.")."""
    dropout: float | None = None
    """Dropout after each unit; None keeps the model's default."""
    kwargs: dict = field(default_factory=dict)
    """Extra keyword arguments for ``create_model``."""


@dataclass
class DataConfig:
    path: str = ""
    """A prepared store directory or a pyskl-format pickle."""
    layout: str | None = None
    """Layout name or YAML file; None = the store's layout."""
    train_split: str = ""
    """Empty = inferred from the store (``train``/``val``, or its only ``<p>_train``/``<p>_test`` pair)."""
    val_split: str = ""
    stream: str = "joint"
    """Input modality: joint, bone, joint-motion, bone-motion."""
    train_pipeline: list[dict] = field(default_factory=list)
    """Transform specs for training ({"name": ..., **kwargs}); a ``{name: stream}`` entry marks
    where the stream conversion happens (appended at the end when absent)."""
    test_pipeline: list[dict] = field(default_factory=list)
    test_clips: int = 1
    """Clips per sample at evaluation; their logits are averaged."""
    num_workers: int = 2
    cache_dir: str | None = None
    """Where a pyskl pickle is converted into a store; None = ~/.cache/stgcn."""


@dataclass
class OptimizerConfig:
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4


@dataclass
class SchedulerConfig:
    name: str = "step"
    """step (multiply by gamma at each milestone epoch), cosine (per step) or constant."""
    milestones: list[int] = field(default_factory=lambda: [10, 50])
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    """Cosine floor."""


@dataclass
class TrainConfig:
    epochs: int = 80
    batch_size: int = 64
    """Global batch size (split evenly over DDP processes)."""
    seed: int = 0
    checkpoint_every: int = 0
    """Also save ``last.pt`` every N optimiser steps inside an epoch (0 = only at epoch ends)."""
    eval_every: int = 1
    """Evaluate on the validation split every N epochs (and always after the last one)."""
    amp: bool = True
    """Mixed precision (autocast + GradScaler); used on CUDA only."""
    deterministic: bool = True
    grad_clip: float = 0.0
    label_smoothing: float = 0.0
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    out: str = "runs/train"
    resume: bool = False
    overwrite: bool = False
    """Allow starting a fresh run in a directory that already holds one."""
    tensorboard: bool = True
    progress: bool = True
    num_threads: int = 0
    """torch intra-op threads (0 = torch's default). On a small, busy CPU 1 is often fastest:
    OpenMP threads spin while waiting for a core."""


@dataclass
class RunConfig:
    recipe: str = ""
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self, where: str = "config") -> RunConfig:
        """Check values (not only types); returns self."""

        def bad(key: str, msg: str) -> ConfigError:
            return ConfigError(f"{where}: {key}: {msg}")

        if self.data.stream not in STREAMS:
            raise bad("data.stream", f"{self.data.stream!r} is not one of {', '.join(STREAMS)}")
        for key in ("train_pipeline", "test_pipeline"):
            for i, spec in enumerate(getattr(self.data, key)):
                if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                    raise bad(f"data.{key}[{i}]", f"expected a mapping with a 'name' string, found {spec!r}")
        if self.data.test_clips < 1:
            raise bad("data.test_clips", f"must be >= 1, found {self.data.test_clips}")
        if self.data.num_workers < 0:
            raise bad("data.num_workers", f"must be >= 0, found {self.data.num_workers}")
        if self.optimizer.name not in OPTIMIZERS:
            raise bad("optimizer.name", f"{self.optimizer.name!r} is not one of {', '.join(OPTIMIZERS)}")
        if not self.optimizer.lr > 0:
            raise bad("optimizer.lr", f"must be > 0, found {self.optimizer.lr}")
        if self.optimizer.weight_decay < 0:
            raise bad("optimizer.weight_decay", f"must be >= 0, found {self.optimizer.weight_decay}")
        if self.scheduler.name not in SCHEDULERS:
            raise bad("scheduler.name", f"{self.scheduler.name!r} is not one of {', '.join(SCHEDULERS)}")
        if list(self.scheduler.milestones) != sorted(self.scheduler.milestones):
            raise bad("scheduler.milestones", f"must be increasing, found {self.scheduler.milestones}")
        if not 0 < self.scheduler.gamma <= 1:
            raise bad("scheduler.gamma", f"must be in (0, 1], found {self.scheduler.gamma}")
        if self.scheduler.warmup_epochs < 0:
            raise bad("scheduler.warmup_epochs", f"must be >= 0, found {self.scheduler.warmup_epochs}")
        for key in ("epochs", "batch_size", "eval_every"):
            if getattr(self.train, key) < 1:
                raise bad(f"train.{key}", f"must be >= 1, found {getattr(self.train, key)}")
        if self.train.checkpoint_every < 0:
            raise bad("train.checkpoint_every", f"must be >= 0, found {self.train.checkpoint_every}")
        if self.train.grad_clip < 0:
            raise bad("train.grad_clip", f"must be >= 0, found {self.train.grad_clip}")
        if not 0 <= self.train.label_smoothing < 1:
            raise bad("train.label_smoothing", f"must be in [0, 1), found {self.train.label_smoothing}")
        dev = self.train.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise bad("train.device", f"{dev!r} is not auto, cpu, cuda or cuda:N")
        return self


# --------------------------------------------------------------------------- typed conversion


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` checked against the annotation ``tp`` (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, found {type(value).__name__} {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, found {type(value).__name__} {value!r}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, found {type(value).__name__} {value!r}")
        return copy.deepcopy(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, found {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, found {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, found {type(value).__name__} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, found {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported field type {_type_name(tp)}")  # pragma: no cover


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _merge(obj: Any, data: dict, where: str) -> None:
    """Set the fields of dataclass ``obj`` from ``data`` (recursively), rejecting unknown keys."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, found {type(data).__name__} {data!r}")
    hints = _hints(type(obj))
    for key, value in data.items():
        if key not in hints:
            known = ", ".join(hints)
            raise ConfigError(f"{where}: unknown key {key!r} (known keys: {known})")
        current = getattr(obj, key)
        sub = f"{where}.{key}" if where and not where.endswith(":") else f"{where}{key}"
        if dataclasses.is_dataclass(current):
            _merge(current, value, sub)
        else:
            setattr(obj, key, _coerce(value, hints[key], sub))


# --------------------------------------------------------------------------- recipes


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
    root = resources.files("stgcn.engine") / "recipes"
    cand = root / f"{name_or_file}.yaml"
    if not cand.is_file():
        raise ConfigError(f"unknown recipe {name_or_file!r}; shipped recipes: {', '.join(list_recipes())} "
                          "(or give a path to a .yaml file)")
    return Path(str(cand))


def load_recipe(name_or_file: str) -> RunConfig:
    """A :class:`RunConfig` from a shipped recipe name or a YAML file, validated."""
    path = recipe_path(name_or_file)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        data = {}
    cfg = RunConfig()
    _merge(cfg, data, f"{path}: ")
    if not cfg.recipe:
        cfg.recipe = path.stem
    return cfg.validate(str(path))


def from_dict(data: dict, where: str = "config") -> RunConfig:
    """Rebuild a :class:`RunConfig` from ``to_dict()`` output (e.g. a run's ``config.yaml``)."""
    cfg = RunConfig()
    _merge(cfg, data, f"{where}: ")
    return cfg.validate(where)


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply ``key.sub=value`` strings; values are parsed as YAML and type-checked."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. optimizer.lr=0.05)")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {exc}") from exc
        parts = key.split(".")
        obj: Any = cfg
        for depth, part in enumerate(parts[:-1]):
            if not dataclasses.is_dataclass(obj) or part not in _hints(type(obj)):
                raise ConfigError(f"--set {item!r}: unknown key {'.'.join(parts[: depth + 1])!r}")
            obj = getattr(obj, part)
        leaf = parts[-1]
        if not dataclasses.is_dataclass(obj) or leaf not in _hints(type(obj)):
            known = ", ".join(_hints(type(obj))) if dataclasses.is_dataclass(obj) else ""
            raise ConfigError(f"--set {item!r}: unknown key {key!r}" + (f" (known: {known})" if known else ""))
        if dataclasses.is_dataclass(getattr(obj, leaf)):
            _merge(getattr(obj, leaf), value, f"--set {key}")
        else:
            setattr(obj, leaf, _coerce(value, _hints(type(obj))[leaf], f"--set {key}"))
    return cfg.validate("--set")


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)
