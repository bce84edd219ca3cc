"""Optimiser, learning-rate schedule and seeding for :mod:`.training`."""

from __future__ import annotations

import math
import os
import random

import numpy as np
import torch

from .config import RunConfig


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def build_optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    o = cfg.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov and o.momentum > 0,
                               weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


def lr_factor(cfg: RunConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the base lr after ``step`` optimiser steps (a pure function, so resuming
    needs only the step count)."""
    s = cfg.scheduler
    epoch = step / max(1, steps_per_epoch)
    warm = 1.0
    if s.warmup_epochs > 0 and epoch < s.warmup_epochs:
        warm = (epoch + 1.0 / max(1, steps_per_epoch)) / s.warmup_epochs
    if s.name == "constant":
        f = 1.0
    elif s.name == "step":
        f = s.gamma ** sum(1 for m in s.milestones if math.floor(epoch + 1e-9) >= m)
    else:
        total = cfg.train.epochs * steps_per_epoch
        floor = s.min_lr / cfg.optimizer.lr
        f = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    return min(1.0, warm) * f


def build_scheduler(cfg: RunConfig, opt: torch.optim.Optimizer, steps_per_epoch: int):
    """The schedule of every parameter group (the backbone's own with ``optimizer.backbone_lr_scale``)."""
    from .finetune import backbone_lr_scaled, lr_lambdas

    o = cfg.optimizer
    lambdas = lr_lambdas(lambda s: lr_factor(cfg, s, steps_per_epoch), o.backbone_lr_scale, o.backbone_lr_epochs,
                         steps_per_epoch, backbone_lr_scaled(cfg))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambdas)
