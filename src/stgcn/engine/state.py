"""The state of a training run that ``--resume`` continues from: ``checkpoints/last.pt``.

It holds everything needed to continue bit-identically on CPU: model, optimiser, scheduler, AMP
scaler, the epoch and the step within it, the epoch's sample order, the RNG states (torch, numpy,
python), the best result so far, the history and the running statistics of the current epoch.
Augmentation randomness is a function of (seed, epoch, sample index) only, so neither the worker
count nor a restart changes it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .config import RunConfig

STATE_FORMAT = "stgcn-train-state"


def get_rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fresh_running() -> dict:
    return {"loss_sum": 0.0, "correct": 0, "seen": 0, "time": 0.0}


@dataclass
class RunState:
    """Where a run is (``epoch`` epochs done, ``step`` steps into the next) and what it has seen.

    ``model``, ``optimizer``, ``scheduler`` and ``scaler`` are the live objects: :meth:`save` writes
    their states, :meth:`restore` loads a saved state into them.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    order: list[int] | None = None
    best: dict = field(default_factory=lambda: {"top1": -1.0, "epoch": 0})
    history: list[dict] = field(default_factory=list)
    running: dict = field(default_factory=fresh_running)

    @staticmethod
    def read(path: Path) -> dict:
        """A saved state (``weights_only`` load), refused when it is not one."""
        from ..checkpoint import safe_load

        saved = safe_load(path)
        if saved.get("format") != STATE_FORMAT:
            raise ConfigError(f"{path}: not a training state written by stgcn train")
        return saved

    def restore(self, saved: dict) -> None:
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        self.epoch, self.step = int(saved["epoch"]), int(saved["step"])
        self.global_step = int(saved["global_step"])
        self.best = dict(saved["best"])
        self.history = [dict(r) for r in saved["history"]]
        self.running = dict(saved["running"])
        order = saved.get("order")
        self.order = order.tolist() if order is not None else None
        set_rng_state(saved["rng"])

    def save(self, path: Path, cfg: RunConfig) -> None:
        from ..checkpoint import atomic_torch_save

        atomic_torch_save({
            "format": STATE_FORMAT, "version": 1,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": self.epoch, "step": self.step, "global_step": self.global_step, "rng": get_rng_state(),
            "order": torch.as_tensor(self.order, dtype=torch.int64) if self.order is not None else None,
            "best": self.best, "history": self.history, "running": self.running, "config": cfg.to_dict()}, path)


def _with_defaults(saved: dict) -> dict:
    """The saved settings completed with the defaults of fields they lack; as saved when they no
    longer parse (a field since removed): the comparison below then names what differs."""
    from .config import from_dict

    try:
        return from_dict(saved, "the saved run").to_dict()
    except ConfigError:
        return saved


def check_resume_config(saved: dict, cfg: RunConfig, where: Path) -> None:
    """Everything that changes the trajectory must match; epochs may grow, paths may move. A field
    added to the settings after the run was saved counts as its default (what that run used)."""
    now = cfg.to_dict()
    saved = _with_defaults(saved)
    for section in ("model", "optimizer", "scheduler"):
        if saved.get(section) != now[section]:
            raise ConfigError(f"{where}: cannot resume: '{section}' settings differ from the saved run "
                              f"(saved {saved.get(section)}, now {now[section]})")
    for key in ("batch_size", "seed", "freeze_backbone_epochs"):
        if saved["train"].get(key) != now["train"][key]:
            raise ConfigError(f"{where}: cannot resume: train.{key} differs from the saved run "
                              f"(saved {saved['train'].get(key)}, now {now['train'][key]})")
    # the init checkpoint's weights are in the saved state (its file may have moved), but a run
    # started from one is not continued as one that was not
    if bool(saved["train"].get("init")) != bool(now["train"]["init"]):
        raise ConfigError(f"{where}: cannot resume: train.init differs from the saved run (saved "
                          f"{saved['train'].get('init')!r}, now {now['train']['init']!r})")
    for key in ("stream", "train_pipeline", "train_split"):
        if saved["data"].get(key) != now["data"][key]:
            raise ConfigError(f"{where}: cannot resume: data.{key} differs from the saved run")
