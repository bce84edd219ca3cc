"""Shipped weights (timm-style pretrained configs), next to the model registry.

A shipped model is registered once here as a :class:`PretrainedSpec` (what it is and how it is
made: architecture, bundled dataset, recipe, seed, splits, licence, attribution, paper). What the
build produced (file, sha256, label names, data contract, accuracy, the command that made it) is
the *card*, ``resources/pretrained/<name>.json``, written by ``stgcn models NAME --reproduce
--install`` (:mod:`stgcn.shipping`) next to the weights ``<name>.pt`` (a plain stgcn checkpoint:
model config, fp32 state_dict, meta with the data contract) and a human-readable ``<name>.md``.
:func:`get_pretrained` joins both into a :class:`PretrainedConfig`.

Every load checks the file's sha256 against the card: a damaged or replaced file is a
:class:`CheckpointError`, never a model with other weights.

>>> model = stgcn.create_model("stgcn.utkinect", pretrained=True)
>>> predictor = stgcn.Predictor.from_pretrained()            # the default shipped model
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError

CARD_VERSION = 1


@dataclass(frozen=True)
class PretrainedSpec:
    """A shipped model as registered: what it is and how :mod:`stgcn.shipping` makes it."""

    name: str                 # "ARCH.TAG" (timm style): the architecture of the registry, a tag
    architecture: str         # a name of stgcn.models.list_models()
    dataset: str              # a bundled dataset (a reader of `stgcn prepare` that needs no source)
    recipe: str               # the training recipe
    train_split: str
    test_split: str
    protocol: str             # how the test accuracy is measured, in words
    licence: str              # of the weights
    data_licence: str         # of the data they were trained on
    attribution: str          # the data's citation
    data_provenance: str      # the data's PROVENANCE.md, relative to stgcn/resources
    paper: str                # the model's paper
    seed: int = 0
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE of the training run

    @property
    def file(self) -> str:
        return f"{self.name}.pt"

    def path(self, folder: Path | None = None) -> Path:
        return (folder or pretrained_dir()) / self.file

    def card_path(self, folder: Path | None = None) -> Path:
        return (folder or pretrained_dir()) / f"{self.name}.json"


@dataclass(frozen=True)
class PretrainedConfig:
    """A shipped model: its spec and its card (file, sha256, label names, data contract, accuracy)."""

    spec: PretrainedSpec
    file: Path
    sha256: str
    size_bytes: int
    label_names: tuple[str, ...]
    data: dict                # the data contract (stgcn.contract.DataContract.to_dict())
    accuracy: dict            # {"top1", "top5", "mean_class_acc", "correct", "total", "split", "protocol"}
    command: str              # the command that reproduced the file
    model_config: dict        # create_model(**model_config) builds the architecture
    training: dict = field(default_factory=dict)  # the resolved training config of the run

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def layout(self) -> str:
        return str(self.data["layout"]["name"])

    @property
    def licence(self) -> str:
        return self.spec.licence

    @property
    def paper(self) -> str:
        return self.spec.paper

    @property
    def contract(self):
        """The :class:`~stgcn.contract.DataContract` the weights expect."""
        from ..contract import DataContract

        return DataContract.from_meta({"data": self.data}, source=str(self.file))

    def verified_path(self) -> Path:
        """The weights file, after checking its sha256 against the card (:class:`CheckpointError`
        when it differs or the file is missing)."""
        if not self.file.is_file():
            raise CheckpointError(f"{self.file}: the shipped weights of {self.name!r} are missing (the card "
                                  f"{self.spec.card_path()} names them); rebuild with: {self.command}")
        found = sha256_file(self.file)
        if found != self.sha256:
            raise CheckpointError(f"{self.file}: sha256 {found} differs from the card's {self.sha256}: the file "
                                  f"is damaged or was replaced; reinstall stgcn or rebuild with: {self.command}")
        return self.file

    @classmethod
    def from_card(cls, spec: PretrainedSpec, folder: Path | None = None) -> PretrainedConfig:
        path = spec.card_path(folder)
        try:
            card = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: the card of {spec.name!r} cannot be read ({exc}); build it with: "
                              f"{reproduce_command(spec)}") from None
        if card.get("card_version", 0) > CARD_VERSION or card.get("name") != spec.name:
            raise ConfigError(f"{path}: not a version-{CARD_VERSION} card of {spec.name!r}")
        return cls(spec=spec, file=spec.path(folder), sha256=card["sha256"], size_bytes=int(card["size_bytes"]),
                   label_names=tuple(card["label_names"]), data=card["data"], accuracy=card["accuracy"],
                   command=card["command"], model_config=card["model_config"], training=card.get("training", {}))


_SPECS: dict[str, PretrainedSpec] = {}


def register_pretrained(spec: PretrainedSpec) -> PretrainedSpec:
    _SPECS[spec.name] = spec
    return spec


def pretrained_dir() -> Path:
    from ..resources import resource_path

    return resource_path("pretrained")


def list_pretrained(architecture: str | None = None) -> list[str]:
    """Names of the registered shipped models (of one architecture), the default first."""
    return [n for n, s in _SPECS.items() if architecture is None or s.architecture == architecture]


def get_spec(name: str) -> PretrainedSpec:
    if name in _SPECS:
        return _SPECS[name]
    by_arch = list_pretrained(name)
    if by_arch:  # an architecture name: its first shipped model (timm's default tag)
        return _SPECS[by_arch[0]]
    raise ConfigError(f"no shipped weights named {name!r}; shipped: {', '.join(_SPECS) or 'none'} "
                      "(`stgcn models` lists them)")


def get_pretrained(name: str | None = None) -> PretrainedConfig:
    """The config of a shipped model (``None``: the default, the first registered)."""
    if name is None:
        if not _SPECS:
            raise ConfigError("this stgcn ships no weights")
        name = next(iter(_SPECS))
    return PretrainedConfig.from_card(get_spec(name))


def load_pretrained(name: str | None = None) -> tuple[Any, dict]:
    """``(model in eval mode, meta)`` of a shipped model, its file checked against its sha256."""
    from ..checkpoint import load_model

    cfg = get_pretrained(name)
    model, meta = load_model(cfg.verified_path())
    model.pretrained_cfg = cfg
    return model, meta


def create_pretrained(name: str, **kwargs: Any):
    """``create_model(name, pretrained=True, **kwargs)``: the shipped model. ``kwargs`` may only
    repeat what the shipped architecture is (a different class count or layout is fine-tuning)."""
    model, _ = load_pretrained(get_spec(name).name)
    params = model.pretrained_cfg.model_config["params"]
    differ = {k: v for k, v in kwargs.items() if v is not None and params.get(k) != v}
    if differ:
        raise ConfigError(f"pretrained {model.pretrained_cfg.name!r} is built with "
                          f"{ {k: params.get(k) for k in differ} }; cannot change {sorted(differ)} when loading "
                          "its weights (that is fine-tuning: train a model from it)")
    return model


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def reproduce_command(spec: PretrainedSpec) -> str:
    """The one command that rebuilds a shipped model into the package (see :mod:`stgcn.shipping`)."""
    return f"stgcn models {spec.name} --reproduce --install"


register_pretrained(PretrainedSpec(
    name="stgcn.utkinect",
    architecture="stgcn",
    dataset="utkinect",
    recipe="small",
    train_split="xsub_train",
    test_split="xsub_test",
    protocol="UTKinect-Action3D cross-subject (subjects 1,3,5,7,9 train / 2,4,6,8,10 test; Zhu et al. 2013, "
             "Vemulapalli et al. 2014), the final epoch's model (no epoch picked on the test split), "
             "top-1 over the test clips as `stgcn eval` scores them",
    licence="research use only, as the data it was trained on (no licence stated; cite the dataset)",
    data_licence="UTKinect-Action3D: no licence stated by the authors; research use with citation",
    attribution="L. Xia, C.-C. Chen, J. K. Aggarwal, \"View Invariant Human Action Recognition Using Histograms "
                "of 3D Joints\", CVPR Workshops 2012 (UT Austin)",
    data_provenance="datasets/utkinect/PROVENANCE.md",
    paper="S. Yan, Y. Xiong, D. Lin, \"Spatial Temporal Graph Convolutional Networks for Skeleton-Based Action "
          "Recognition\", AAAI 2018",
    seed=0,
))
