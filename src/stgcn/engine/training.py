"""The training loop: ``train(cfg) -> RunResult``.

Read :func:`_run` top to bottom: read the checkpoint to fine-tune from (``train.init``, see
:mod:`.finetune`), set up the data, build the model (with those weights) and its optimiser, restore
the run state when resuming, then one epoch after another (train, validate, save ``last.pt``, log),
and finish (final evaluation, metrics, plots, report; ``checkpoints/final.pt`` is the model after
the last epoch, the one the final figures score, ``best.pt`` the epoch the validation split
picked). Runs survive: ``checkpoints/last.pt`` is a
:class:`~.state.RunState` written atomically at every epoch end and every
``train.checkpoint_every`` steps, from which ``--resume`` continues bit-identically on CPU.

A :class:`~.runlock.RunLock` keeps two runs from writing the same directory. Under torchrun,
only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import atomic_write_text, writable_dir
from ..data.dataset import EVAL_EPOCH, EpochBatchSampler, SkeletonDataset, make_loader
from ..data.pickle_cache import open_data
from ..data.pipeline import build_transform, resolve_pipeline, with_test_clips
from ..errors import ConfigError, DataError, StgcnError
from ..graph import Layout
from ..runtime import default_workers, flushing_denormals, torch_threads, usable_precision
from . import distributed as D
from . import finetune
from .config import RunConfig, dump_yaml, from_dict
from .evaluate import predict_scores, summarize_scores
from .optim import build_optimizer, build_scheduler, seed_everything
from .runlock import RunLock, RunLockedError
from .state import RunState, check_resume_config, fresh_running

__all__ = ["train", "train_streams", "train_ensemble", "member_names", "MEMBER_SEED_STEP",
           "RunResult", "RunLockedError", "TrainingDivergedError", "resolve_splits",
           "load_run_config"]


class TrainingDivergedError(StgcnError):
    """The loss became NaN or infinite."""


@dataclass
class RunResult:
    out: Path
    metrics: dict
    history: list[dict]
    best_checkpoint: Path
    last_checkpoint: Path
    files: dict = field(default_factory=dict)


def train(cfg: RunConfig, *, store=None) -> RunResult:
    """Train as ``cfg`` says; returns the run's metrics and file paths.

    ``store`` (optional) is an already opened store used instead of ``cfg.data.path``.
    """
    cfg.validate()
    if cfg.train.ensemble > 1:
        raise ConfigError(f"train.ensemble is {cfg.train.ensemble}: train() trains one model; "
                          "train_ensemble(cfg) trains the members and fuses them (stgcn train does)")
    info = D.init_distributed(cfg.train.device)
    out = Path(cfg.train.out)
    if info.is_main:
        writable_dir(out, what="--out")  # before any work, not when the first file is due
    lock = RunLock(out) if info.is_main else contextlib.nullcontext()
    # The process group stays up (several runs may share it: --streams, ablation); the CLI tears
    # it down with distributed.cleanup at exit.
    workers = default_workers() if cfg.data.num_workers is None else cfg.data.num_workers
    # flush-to-zero and the thread count for the run only
    with flushing_denormals(), torch_threads(cfg.train.num_threads, workers), lock:
        return _run(cfg, info, out, store, workers)


def _run(cfg: RunConfig, info: D.DistInfo, out: Path, store, workers: int) -> RunResult:
    ckdir = out / "checkpoints"
    last_path, best_path = ckdir / "last.pt", ckdir / "best.pt"
    saved = _saved_state(cfg, info, out, last_path)
    # a damaged or unknown checkpoint is refused before any data is opened; resuming, the weights
    # come from last.pt
    init = finetune.read_init(cfg.train.init) if cfg.train.init and saved is None else None

    seed_everything(cfg.train.seed, cfg.train.deterministic)
    data = setup_data(cfg, info, store)
    if saved is not None:  # after the split and layout names are resolved
        check_resume_config(saved["config"], cfg, last_path)
    batches = Batches(cfg, data, info, workers)
    state, init_report = build_model_and_optimizer(cfg, data, info, batches.steps_per_epoch, init)
    if saved is not None:
        state.restore(saved)
        if info.is_main:
            print(f"resuming {out} at epoch {state.epoch + 1}, step {state.step}", flush=True)
    meta = checkpoint_meta(cfg, data)
    log = RunLog(cfg, info, out, resumed_at=state.epoch if saved is not None else None)
    if init_report is not None and info.is_main:
        init_report.write(out / "init.json")
        print(init_report.summary(), flush=True)

    last_scores, last_eval_epoch = None, None
    ddp_model, frozen = None, None
    try:
        for epoch in range(state.epoch, cfg.train.epochs):
            want = finetune.backbone_frozen(cfg.train.freeze_backbone_epochs, epoch)
            if ddp_model is None or want != frozen:
                if want or frozen:  # the backbone freezes or thaws (never in a run without freezing)
                    finetune.freeze_backbone(state.model, want)
                frozen = want
                ddp_model = _ddp(state.model, info)  # DDP takes the parameters that need a gradient when wrapping
            row = train_one_epoch(cfg, info, state, ddp_model, batches, epoch, last_path, frozen)
            if info.is_main and ((epoch + 1) % cfg.train.eval_every == 0 or epoch + 1 == cfg.train.epochs):
                last_scores, m = validate(state.model, batches, data, info, log.progress)
                row.update(val_top1=m["top1"], val_top5=m["top5"], val_mean_class_acc=m["mean_class_acc"])
                last_eval_epoch = epoch + 1
                if m["top1"] > state.best["top1"]:
                    state.best = {"top1": m["top1"], "top5": m["top5"], "mean_class_acc": m["mean_class_acc"],
                                  "epoch": epoch + 1}
                    _save_model(best_path, state.model, {**meta, "epoch": epoch + 1, "val_metrics": m})
            state.history.append(row)
            state.epoch, state.step, state.order = epoch + 1, 0, None
            if info.is_main:
                state.save(last_path, cfg)
                log.epoch(row, state.history)
            D.barrier(info)

        if not info.is_main:
            return RunResult(out=out, metrics={}, history=state.history, best_checkpoint=best_path,
                             last_checkpoint=last_path)
        if last_scores is None:  # resumed a finished run: recompute the final evaluation
            last_scores, _ = validate(state.model, batches, data, info, log.progress)
            last_eval_epoch = cfg.train.epochs
        if not best_path.exists():
            _save_model(best_path, state.model, {**meta, "epoch": last_eval_epoch})
        # the model the final figures score (best.pt is the epoch the validation split picked)
        _save_model(ckdir / "final.pt", state.model, {**meta, "epoch": last_eval_epoch})
        files = finish(out, cfg, data, last_scores, last_eval_epoch, state.best, state.history)
    finally:
        log.close()
    metrics = json.loads((out / "metrics.json").read_text())
    return RunResult(out=out, metrics=metrics, history=state.history, best_checkpoint=best_path,
                     last_checkpoint=last_path, files=files)


# --------------------------------------------------------------------------- the steps


def _saved_state(cfg: RunConfig, info: D.DistInfo, out: Path, last_path: Path) -> dict | None:
    """The state to resume from (``--resume`` and a ``last.pt``), None for a fresh run; refuses to
    start a fresh run over an existing one unless ``train.overwrite``."""
    saved = None
    if info.is_main:
        if cfg.train.resume and last_path.exists():
            saved = RunState.read(last_path)
        elif last_path.exists() and not cfg.train.resume and not cfg.train.overwrite:
            raise ConfigError(f"{out} already holds a run ({last_path}); pass --resume to continue it, "
                              "--set train.overwrite=true to start over, or choose another --out")
    resuming = D.broadcast_object(saved is not None, info)
    if info.enabled and resuming and not info.is_main:
        saved = RunState.read(last_path)
    return saved


@dataclass
class RunData:
    """The data side of a run: the store, its resolved layout and splits, the two datasets."""

    store: object
    layout: Layout
    num_joints: int
    class_names: list[str]
    channels: list[str] | None
    train_ds: SkeletonDataset
    val_ds: SkeletonDataset
    train_indices: np.ndarray
    val_indices: np.ndarray
    test_specs: list[dict]
    in_channels: int


def setup_data(cfg: RunConfig, info: D.DistInfo, store=None) -> RunData:
    """Open the store, resolve layout and splits (written back into ``cfg``), check the splits and
    build the training and validation datasets with their pipelines."""
    from ..contract import training_layout

    if store is None:
        if not cfg.data.path:
            raise ConfigError("data.path is empty: pass --data PATH")
        if info.is_main:
            store = open_data(cfg.data.path, cfg.data.cache_dir, cfg.data.layout)  # converts a pickle once, on rank 0
        D.barrier(info)
        if not info.is_main:
            store = open_data(cfg.data.path, cfg.data.cache_dir, cfg.data.layout)
    layout = training_layout(cfg.data.layout, store, cfg.data.path)  # checked against the store's by table
    cfg.data.layout = cfg.data.layout or (layout.name if layout.builtin else None)  # None: the store's table
    cfg.data.train_split, cfg.data.val_split = resolve_splits(store, cfg.data.train_split, cfg.data.val_split)
    tr_idx = np.asarray(store.split(cfg.data.train_split), dtype=np.int64)
    va_idx = np.asarray(store.split(cfg.data.val_split), dtype=np.int64)
    for split, idx in ((cfg.data.train_split, tr_idx), (cfg.data.val_split, va_idx)):
        if len(idx) == 0:
            raise DataError(f"split {split!r} is empty", file=cfg.data.path)
        unl = int((np.asarray(store.labels)[idx] < 0).sum())
        if unl:
            raise DataError(f"split {split!r} has {unl} samples without a label", file=cfg.data.path)
    channels = getattr(store, "channels", None)
    train_tf = build_transform(resolve_pipeline(cfg.data.train_pipeline, cfg.data.stream), layout, channels)
    test_specs = resolve_pipeline(cfg.data.test_pipeline, cfg.data.stream)
    clip_specs, ds_clips = with_test_clips(test_specs, cfg.data.test_clips)
    test_tf = build_transform(clip_specs, layout, channels)
    train_ds = SkeletonDataset(store, tr_idx, train_tf, seed=cfg.train.seed)
    val_ds = SkeletonDataset(store, va_idx, test_tf, seed=cfg.train.seed, clips=ds_clips)
    return RunData(store=store, layout=layout, num_joints=layout.num_joints, class_names=list(store.class_names),
                   channels=channels, train_ds=train_ds, val_ds=val_ds, train_indices=tr_idx, val_indices=va_idx,
                   test_specs=test_specs, in_channels=int(val_ds[0][0].shape[-4]))


class Batches:
    """The epoch plan: this rank's share of a shuffled order (DistributedSampler, one process
    outside torchrun), its batches and the two loaders."""

    def __init__(self, cfg: RunConfig, data: RunData, info: D.DistInfo, workers: int):
        world = info.world_size
        if cfg.train.batch_size % world:
            raise ConfigError(f"train.batch_size {cfg.train.batch_size} is not divisible by the {world} processes")
        self.world = world
        self.per_rank = cfg.train.batch_size // world
        self.sampler = torch.utils.data.DistributedSampler(range(len(data.train_ds)), num_replicas=world,
                                                           rank=info.rank, shuffle=True, seed=cfg.train.seed,
                                                           drop_last=False)
        self.sampler.set_epoch(0)
        self.steps_per_epoch = -(-len(list(self.sampler)) // self.per_rank)
        self.amp = cfg.train.amp and info.device.type == "cuda"
        # the forward's autocast dtype: fp16 with a scaler on CUDA, bf16 (no scaler needed) on a CPU that has it
        self.autocast = torch.float16 if self.amp else None
        if info.device.type == "cpu" and usable_precision(cfg.train.precision) == "bf16":
            self.autocast = torch.bfloat16
        self.batch_sampler = EpochBatchSampler(self.per_rank)
        self.loader = make_loader(data.train_ds, self.batch_sampler, workers, seed=cfg.train.seed)
        val_bs = EpochBatchSampler(max(1, self.per_rank))
        val_bs.set_order(range(len(data.val_ds)), EVAL_EPOCH)
        self.val_loader = make_loader(data.val_ds, val_bs, workers, seed=cfg.train.seed)

    def order(self, epoch: int) -> list[int]:
        self.sampler.set_epoch(epoch)
        return list(self.sampler)


def build_model_and_optimizer(cfg: RunConfig, data: RunData, info: D.DistInfo, steps_per_epoch: int,
                              init: finetune.InitSource | None = None
                              ) -> tuple[RunState, finetune.InitReport | None]:
    """The model (on its device; with the weights of ``init`` that fit), optimiser, schedule and AMP
    scaler, as a fresh :class:`RunState`, and what was loaded from ``init``."""
    from ..models import create_model, model_arguments

    graph_kw = {k: getattr(cfg.model, k) for k in ("strategy", "edge_importance")
                if k in model_arguments(cfg.model.name)}  # the TCN and the local conv fix or lack them
    try:
        model = create_model(cfg.model.name, layout=data.layout.ref, num_classes=len(data.class_names),
                             in_channels=data.in_channels, dropout=cfg.model.dropout, **graph_kw,
                             **cfg.model.kwargs)
    except (TypeError, ValueError) as exc:  # a recipe's model.kwargs made for another model
        if isinstance(exc, StgcnError):
            raise
        raise ConfigError(f"model {cfg.model.name!r} cannot be built with model.kwargs {cfg.model.kwargs} "
                          f"(from recipe {cfg.recipe!r}): {exc}; pass --set 'model.kwargs={{}}' or settings "
                          "that model takes") from None
    report = None
    if init is not None:
        report = finetune.load_init(model, init, layout=data.layout, class_names=data.class_names,
                                    strategy=cfg.model.strategy, stream=cfg.data.stream, channels=data.channels)
    model.to(info.device)
    opt = build_optimizer(cfg, finetune.param_groups(model, finetune.backbone_lr_scaled(cfg)))
    sched = build_scheduler(cfg, opt, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.train.amp and info.device.type == "cuda")
    return RunState(model=model, optimizer=opt, scheduler=sched, scaler=scaler), report


def _ddp(model: torch.nn.Module, info: D.DistInfo) -> torch.nn.Module:
    if not info.enabled:
        return model
    dev = info.device
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)


def train_one_epoch(cfg: RunConfig, info: D.DistInfo, state: RunState, ddp_model: torch.nn.Module,
                    batches: Batches, epoch: int, last_path: Path, frozen: bool = False) -> dict:
    """One pass over this rank's share of the training split (the rest of it, when resuming
    mid-epoch); returns the epoch's row of ``log.csv`` without the validation columns. ``frozen``:
    the backbone's BatchNorm statistics stay as they are (its weights are frozen by the caller)."""
    from tqdm import tqdm

    order = batches.order(epoch)
    skip = state.step if epoch == state.epoch else 0
    if skip and state.order is not None and state.order != order:
        raise ConfigError(f"{last_path}: cannot resume: the sample order differs (did the data change?)")
    if not skip:
        state.running = fresh_running()
    state.order = order
    batches.batch_sampler.set_order(order, epoch, skip)
    ddp_model.train()
    if frozen:
        finetune.keep_frozen_statistics(state.model)
    opt, running, world, dev = state.optimizer, state.running, batches.world, info.device
    progress = cfg.train.progress and info.is_main
    bar = tqdm(total=len(order) * world, initial=min(len(order), skip * batches.per_rank) * world,
               desc=f"epoch {epoch + 1}/{cfg.train.epochs}", unit="sample", disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    step = skip
    with bar:
        for x, y, _ in batches.loader:
            x = x.to(dev, non_blocking=True)
            y = y.to(dev, non_blocking=True)
            with torch.autocast(dev.type, dtype=batches.autocast or torch.float16,
                                enabled=batches.autocast is not None):
                logits = ddp_model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.train.label_smoothing)
            lval = float(loss.detach())
            if D.any_true(not math.isfinite(lval), info):
                good = f"; the last good checkpoint is {last_path}" if last_path.exists() else ""
                raise TrainingDivergedError(
                    f"loss is {lval} at epoch {epoch + 1}, step {step + 1}: training diverged (lower "
                    f"optimizer.lr or set train.grad_clip){good}")
            opt.zero_grad(set_to_none=True)
            state.scaler.scale(loss).backward()
            if cfg.train.grad_clip > 0:
                state.scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.train.grad_clip)
            state.scaler.step(opt)
            state.scaler.update()
            state.scheduler.step()
            step += 1
            state.global_step += 1
            n = len(y)
            running["loss_sum"] += lval * n
            running["correct"] += int((logits.detach().argmax(1) == y).sum())
            running["seen"] += n
            bar.update(n * world)
            if step % 5 == 0 or step == batches.steps_per_epoch:
                bar.set_postfix(loss=f"{lval:.3f}", lr=f"{opt.param_groups[0]['lr']:.2e}", refresh=False)
            if (cfg.train.checkpoint_every and state.global_step % cfg.train.checkpoint_every == 0
                    and step < batches.steps_per_epoch and info.is_main):
                running["time"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                state.epoch, state.step = epoch, step
                state.save(last_path, cfg)
    running["time"] += time.perf_counter() - t0
    train_time, seen = running["time"], running["seen"]
    return {"epoch": epoch + 1, "loss": running["loss_sum"] / max(1, seen), "lr": opt.param_groups[0]["lr"],
            "train_acc": running["correct"] / max(1, seen), "time_s": round(train_time, 3),
            "samples_per_s": round(seen * world / train_time, 2) if train_time > 0 else None,
            "val_top1": None, "val_top5": None, "val_mean_class_acc": None}


def validate(model: torch.nn.Module, batches: Batches, data: RunData, info: D.DistInfo,
             progress: bool) -> tuple[np.ndarray, dict]:
    """Logits on the validation split (rank 0) and their top-1/top-5/mean-class metrics."""
    scores = predict_scores(model, batches.val_loader, info.device, amp=batches.amp, progress=progress,
                            desc="validate")
    return scores, summarize_scores(scores, data.val_ds.labels, data.class_names, []).metrics


def checkpoint_meta(cfg: RunConfig, data: RunData) -> dict:
    """What ``best.pt`` records besides the weights: class names and the data contract."""
    from ..contract import DataContract

    contract = DataContract.for_training(data.store, data.layout, data.train_indices, data.test_specs,
                                         in_channels=data.in_channels, stream=cfg.data.stream,
                                         test_clips=cfg.data.test_clips, seed=cfg.train.seed)
    data_meta = {**contract.to_dict(), "store_meta": _jsonable(getattr(data.store, "meta", {}))}
    return {"class_names": data.class_names, "layout": data.layout.name, "stream": cfg.data.stream, "data": data_meta,
            "in_channels": data.in_channels, "recipe": cfg.recipe, "config": cfg.to_dict()}


def _save_model(path: Path, model: torch.nn.Module, meta: dict) -> None:
    from ..checkpoint import save_model

    save_model(path, model, meta)


LOG_COLUMNS = ["epoch", "loss", "lr", "train_acc", "val_top1", "val_top5", "val_mean_class_acc", "time_s",
               "samples_per_s"]


class RunLog:
    """``config.yaml`` at the start, ``log.csv``, TensorBoard and a console line at every epoch
    (rank 0 only)."""

    def __init__(self, cfg: RunConfig, info: D.DistInfo, out: Path, resumed_at: int | None):
        self.out, self.tb = out, None
        self.on = info.is_main
        self.progress = cfg.train.progress and info.is_main
        if not self.on:
            return
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", dump_yaml(cfg))
        if cfg.train.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                return
            self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=resumed_at)

    def epoch(self, row: dict, history: list[dict]) -> None:
        atomic_write_text(self.out / "log.csv", history_csv(history))
        if self.tb is not None:
            for k in ("loss", "lr", "train_acc", "val_top1", "val_top5", "val_mean_class_acc", "samples_per_s"):
                if row.get(k) is not None:
                    self.tb.add_scalar(k, row[k], row["epoch"])
            self.tb.flush()
        if self.progress:
            from tqdm import tqdm

            msg = f"epoch {row['epoch']}: loss {row['loss']:.4f} train acc {row['train_acc']:.3f}"
            if row["val_top1"] is not None:
                msg += f" val top1 {row['val_top1']:.3f} top5 {row['val_top5']:.3f}"
            tqdm.write(msg)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def history_csv(history: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in LOG_COLUMNS})
    return buf.getvalue()


def finish(out: Path, cfg: RunConfig, data: RunData, scores: np.ndarray, final_epoch: int, best: dict,
           history: list[dict]) -> dict:
    """The final evaluation's files: metrics.json, val_scores.npz, curves, confusion, report."""
    from ..fusion import save_scores
    from ..plots import plot_confusion, plot_curves
    from ..report import train_report

    labels, class_names = data.val_ds.labels, data.class_names
    res = summarize_scores(scores, labels, class_names, [data.store.names[i] for i in data.val_indices])
    final = {**res.metrics, "epoch": final_epoch}
    train_time = sum(r.get("time_s") or 0 for r in history)
    seen = sum((r.get("samples_per_s") or 0) * (r.get("time_s") or 0) for r in history)
    metrics = {"final": final, "best": dict(best), "num_val_samples": int(len(labels)),
               "split": cfg.data.val_split, "train_time_s": round(train_time, 2),
               "samples_per_s": round(seen / train_time, 2) if train_time else None,
               "model": cfg.model.name, "strategy": cfg.model.strategy, "stream": cfg.data.stream}
    files = {k: out / v for k, v in {"config": "config.yaml", "metrics": "metrics.json", "log": "log.csv",
                                      "curves": "curves.png", "confusion": "confusion.png",
                                      "scores": "val_scores.npz", "report": "report.md",
                                      "best": "checkpoints/best.pt", "final": "checkpoints/final.pt",
                                      "last": "checkpoints/last.pt"}.items()}
    # Written again here, not only at each epoch end: a run stopped after the last epoch's
    # checkpoint but before its log.csv (a full disk, kill -9) resumes straight to this point, and
    # would otherwise keep a log.csv without the last epoch.
    atomic_write_text(files["log"], history_csv(history))
    atomic_write_text(files["metrics"], json.dumps(metrics, indent=2) + "\n")
    save_scores(files["scores"], res.names, scores, labels, class_names)
    plot_curves(history, files["curves"], title=f"{cfg.model.name} ({cfg.data.stream}) training")
    plot_confusion(res.confusion, class_names, files["confusion"],
                   title=f"Validation confusion (epoch {final_epoch}, top-1 {final['top1']:.1%})")
    atomic_write_text(files["report"], train_report(cfg, metrics, history, res))
    return {k: str(v) for k, v in files.items()}


# --------------------------------------------------------------------------- helpers


def resolve_splits(store, train_split: str, val_split: str) -> tuple[str, str]:
    """Fill empty split names from the store: ``train``/``val`` (or ``test``), or the only
    ``<p>_train``/``<p>_test`` pair; otherwise ask for them, listing what exists."""
    names = list(getattr(store, "splits", {}) or {})
    for given in (train_split, val_split):
        if given:
            store.split(given)  # raises DataError listing the available splits
    if train_split and val_split:
        return train_split, val_split
    pairs = []
    for n in names:
        if n == "train" or n.endswith("_train"):
            prefix = n[: -len("train")]
            for v in ("val", "test"):
                if prefix + v in names:
                    pairs.append((n, prefix + v))
                    break
    if train_split:
        pairs = [p for p in pairs if p[0] == train_split]
    if val_split:
        pairs = [p for p in pairs if p[1] == val_split]
    if len(pairs) == 1:
        return pairs[0]
    raise ConfigError(f"pass --train-split and --val-split; the data has the splits: {', '.join(names) or 'none'}")


def _jsonable(obj):
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        return {}


def load_run_config(out: str | os.PathLike) -> RunConfig:
    """The resolved config of an existing run directory."""
    import yaml

    p = Path(out) / "config.yaml"
    return from_dict(yaml.safe_load(p.read_text()), str(p))


#: Member ``i`` of a seed ensemble trains with ``train.seed + MEMBER_SEED_STEP * i``: member 0 is
#: the plain run of that seed, and the members of runs with seeds 0, 1, 2 ... share no seed.
MEMBER_SEED_STEP = 1000


def member_names(cfg: RunConfig) -> list[str]:
    """The sub-directories of a seed ensemble's members (``m0``, ``m1`` ...), [] for a single model."""
    return [f"m{i}" for i in range(cfg.train.ensemble)] if cfg.train.ensemble > 1 else []


def train_streams(cfg: RunConfig, streams: list[str], *, weights: list[float] | None = None,
                  store=None) -> dict:
    """Train one model per stream into ``<out>/<stream>/`` and fuse their validation scores into
    ``<out>/fused_scores.npz`` and ``<out>/fused_metrics.json`` (pyskl's multi-stream ensemble)."""
    from .config import STREAMS

    bad = [s for s in streams if s not in STREAMS]
    if bad or not streams:
        raise ConfigError(f"--streams: unknown stream(s) {bad}; choose from {', '.join(STREAMS)}")
    if cfg.train.ensemble > 1:
        raise ConfigError("--streams and train.ensemble > 1 do not combine: choose one kind of ensemble")
    members = {}
    for s in streams:
        c = copy.deepcopy(cfg)
        c.data.stream = s
        members[s] = c
    return _train_members(cfg, members, weights, store, "streams")


def train_ensemble(cfg: RunConfig, *, store=None) -> dict:
    """Train ``cfg.train.ensemble`` models that differ only in their seed (:data:`MEMBER_SEED_STEP`)
    into ``<out>/m0/``, ``<out>/m1/`` ... and fuse their validation scores (the mean of their
    softmax, :func:`stgcn.fusion.fuse`) into ``<out>/fused_scores.npz`` and ``fused_metrics.json``.
    k members cost k training runs; each member is an ordinary run (checkpoints, report) that
    ``stgcn eval`` / ``stgcn fuse`` take like any other."""
    members = {}
    for i, name in enumerate(member_names(cfg)):
        c = copy.deepcopy(cfg)
        c.train.ensemble = 1
        c.train.seed = cfg.train.seed + MEMBER_SEED_STEP * i
        members[name] = c
    if not members:
        raise ConfigError(f"train.ensemble: an ensemble needs at least 2 members, found {cfg.train.ensemble}")
    return _train_members(cfg, members, None, store, "members")


def _train_members(cfg: RunConfig, members: dict[str, RunConfig], weights: list[float] | None, store,
                   key: str) -> dict:
    """Train every member config into ``<out>/<name>/``; with more than one, fuse their validation
    scores. Returns {key: {name: final metrics}, "fused": ..., "weights": ...}."""
    from ..fusion import fuse, save_scores

    out = Path(cfg.train.out)
    results = {}
    for name, c in members.items():
        c.train.out = str(out / name)
        results[name] = train(c, store=store)
    summary: dict = {key: {n: r.metrics.get("final") for n, r in results.items()}}
    info = D.init_distributed(cfg.train.device)
    if info.is_main and len(members) > 1:
        fused = fuse([out / n / "val_scores.npz" for n in members], weights)
        save_scores(out / "fused_scores.npz", fused.names, fused.scores, fused.labels, fused.class_names or [])
        summary["fused"] = fused.metrics
        summary["weights"] = weights or [1.0] * len(members)
        atomic_write_text(out / "fused_metrics.json", json.dumps(summary, indent=2) + "\n")
    return summary
