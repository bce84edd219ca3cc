"""Training loop: ``train(cfg) -> RunResult``.

Runs survive: ``checkpoints/last.pt`` is written atomically at every epoch end and every
``train.checkpoint_every`` steps with everything needed to continue bit-identically on CPU —
model, optimiser, scheduler, AMP scaler, epoch and step within it, the epoch's sample order,
RNG states (torch, numpy, python) and the running epoch statistics. Augmentation randomness is a
function of (seed, epoch, sample index) only, so worker count and restarts do not change it.

A lock file (``<out>/.lock`` with the host and PID, ``flock``-ed for the whole run) keeps two runs
from writing the same directory; a lock left by a dead process is taken over by exactly one run.
Under torchrun, only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import random
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.dataset import EVAL_EPOCH, EpochBatchSampler, SkeletonDataset, make_loader
from ..errors import ConfigError, DataError, StgcnError
from . import distributed as D
from .config import RunConfig, dump_yaml, from_dict
from .evaluate import (
    build_transform,
    flushing_denormals,
    open_data,
    predict_scores,
    resolve_pipeline,
    save_scores,
    summarize_scores,
    with_test_clips,
)

STATE_FORMAT = "stgcn-train-state"


class RunLockedError(StgcnError):
    """Another live process is writing the same output directory."""


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


# --------------------------------------------------------------------------- lock


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: the O_EXCL + PID protocol alone
    fcntl = None

_held_locks: set[RunLock] = set()  # held until released (or the process ends)


def _drop_locks_in_child() -> None:
    # A forked child (DataLoader workers) shares the parent's lock file descriptions: close its
    # copies, so that the parent's death releases the lock even while workers linger, and forget
    # them, so that the child never releases (unlinks) the parent's lock.
    for lock in list(_held_locks):
        lock._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_locks_in_child)


class RunLock:
    """``<dir>/.lock`` holding ``host:pid``, with an exclusive ``flock`` held on it for the whole run.

    The kernel lock is what makes the lock race-free: only one open file can hold it, and it goes
    away when its process ends, ``kill -9`` included. The file is created with ``O_EXCL`` and locked
    before its owner is written; a file whose owner is not a dead process of this host (a live run,
    one of another host, one being written, one of a stgcn without ``flock``) is refused without
    looking further. A file left by a dead process is taken over by whoever gets its kernel lock,
    re-checked after locking, and rewritten in place; a run that finds it locked is refused. Without
    ``fcntl`` (Windows) or on a file system that refuses ``flock``, the stale file is removed and
    created again, as before (racy when two runs take over the same stale lock at once).
    """

    def __init__(self, directory: Path):
        self.path = Path(directory) / ".lock"
        self.held = False
        self._fd: int | None = None

    # -- helpers on an open descriptor
    @staticmethod
    def _kernel_lock(fd: int) -> bool | None:
        """True: locked; False: another open file holds it; None: no kernel lock on this platform."""
        if fcntl is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:  # ENOLCK, EOPNOTSUPP, ... (some network file systems)
            return None
        return True

    @staticmethod
    def _read(fd: int) -> str:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 4096).decode("utf-8", "replace").strip()

    @staticmethod
    def _write(fd: int, owner: str) -> None:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (owner + "\n").encode())

    def _is_current(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at ``self.path`` (not released and removed meanwhile)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        fst = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)

    @staticmethod
    def _stale(owner: str) -> bool:
        host, _, pid_s = owner.rpartition(":")
        pid = int(pid_s) if pid_s.isdigit() else -1
        return host == socket.gethostname() and not _pid_alive(pid)

    def _refuse(self, owner: str) -> RunLockedError:
        return RunLockedError(
            f"{self.path.parent} is in use by another training run (process {owner or 'unknown'}); wait for "
            f"it, choose another --out, or delete {self.path} if that process is gone")

    def _hold(self, fd: int, me: str) -> None:
        self._write(fd, me)
        self._fd, self.held = fd, True
        _held_locks.add(self)

    def _forget(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self.held = None, False
        _held_locks.discard(self)

    # -- public
    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = f"{socket.gethostname()}:{os.getpid()}"
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
            except FileExistsError:
                pass
            else:  # a new file: nobody else locks it (its empty owner is refused, see below)
                if self._kernel_lock(fd) is False:  # pragma: no cover - not under this protocol
                    os.close(fd)
                    raise self._refuse("")
                self._hold(fd, me)
                return
            try:
                fd = os.open(self.path, os.O_RDWR)
            except FileNotFoundError:  # released meanwhile
                continue
            try:
                owner = self._read(fd)
                if not self._stale(owner):
                    raise self._refuse(owner)
                # left by a dead process: whoever gets the kernel lock takes it over
                locked = self._kernel_lock(fd)
                if locked is False:
                    raise self._refuse(self._read(fd))
                if locked is None:  # no kernel lock: remove the stale file and create it again
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    os.close(fd)
                    continue
                if not self._is_current(fd):  # released and removed before we locked it
                    os.close(fd)
                    continue
                owner = self._read(fd)
                if not self._stale(owner):
                    raise self._refuse(owner)
                self._hold(fd, me)
                return
            except BaseException:
                if self._fd != fd:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                raise
        raise RunLockedError(f"could not acquire {self.path}")

    def release(self) -> None:
        if self.held:
            # remove the file while still holding the kernel lock, then drop the lock
            if self._fd is None or self._is_current(self._fd):
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            self._forget()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# --------------------------------------------------------------------------- RNG state


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


# --------------------------------------------------------------------------- optimiser / schedule


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


# --------------------------------------------------------------------------- the run


def _write_text(path: Path, text: str) -> None:
    from ..checkpoint import atomic_write_text

    atomic_write_text(path, text)


def _history_csv(history: list[dict]) -> str:
    cols = ["epoch", "loss", "lr", "train_acc", "val_top1", "val_top5", "val_mean_class_acc", "time_s",
            "samples_per_s"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in cols})
    return buf.getvalue()


def _check_resume_config(saved: dict, cfg: RunConfig, where: Path) -> None:
    # Everything that changes the trajectory must match; epochs may grow, paths may move.
    now = cfg.to_dict()
    for section in ("model", "optimizer", "scheduler"):
        if saved.get(section) != now[section]:
            raise ConfigError(f"{where}: cannot resume: '{section}' settings differ from the saved run "
                              f"(saved {saved.get(section)}, now {now[section]})")
    for key in ("batch_size", "seed"):
        if saved["train"].get(key) != now["train"][key]:
            raise ConfigError(f"{where}: cannot resume: train.{key} differs from the saved run "
                              f"(saved {saved['train'].get(key)}, now {now['train'][key]})")
    for key in ("stream", "train_pipeline", "train_split"):
        if saved["data"].get(key) != now["data"][key]:
            raise ConfigError(f"{where}: cannot resume: data.{key} differs from the saved run")


def train(cfg: RunConfig, *, store=None) -> RunResult:
    """Train as ``cfg`` says; returns the run's metrics and file paths.

    ``store`` (optional) is an already opened store used instead of ``cfg.data.path``.
    """
    cfg.validate()
    info = D.init_distributed(cfg.train.device)
    out = Path(cfg.train.out)
    lock = RunLock(out) if info.is_main else contextlib.nullcontext()
    # The process group stays up (several runs may share it: --streams, ablation); the CLI tears
    # it down with distributed.cleanup at exit.
    with flushing_denormals(), lock:  # flush-to-zero in this thread for the run only
        return _train(cfg, info, out, store)


def _train(cfg: RunConfig, info: D.DistInfo, out: Path, store) -> RunResult:
    from tqdm import tqdm

    from ..checkpoint import atomic_torch_save, safe_load, save_model
    from ..graph import get_layout
    from ..models import create_model, model_arguments

    if cfg.train.num_threads > 0:
        torch.set_num_threads(cfg.train.num_threads)
    ckdir = out / "checkpoints"
    last_path, best_path = ckdir / "last.pt", ckdir / "best.pt"
    resume_state = None
    if info.is_main:
        if cfg.train.resume and last_path.exists():
            resume_state = safe_load(last_path)
            if resume_state.get("format") != STATE_FORMAT:
                raise ConfigError(f"{last_path}: not a training state written by stgcn train")
        elif last_path.exists() and not cfg.train.resume and not cfg.train.overwrite:
            raise ConfigError(f"{out} already holds a run ({last_path}); pass --resume to continue it, "
                              "--set train.overwrite=true to start over, or choose another --out")
    resume_flag = D.broadcast_object(resume_state is not None, info)
    if info.enabled and resume_flag and not info.is_main:
        resume_state = safe_load(last_path)

    seed_everything(cfg.train.seed, cfg.train.deterministic)

    # ---- data
    if store is None:
        if not cfg.data.path:
            raise ConfigError("data.path is empty: pass --data PATH")
        if info.is_main:
            store = open_data(cfg.data.path, cfg.data.cache_dir)  # converts a pickle once, on rank 0
        D.barrier(info)
        if not info.is_main:
            store = open_data(cfg.data.path, cfg.data.cache_dir)
    layout_name = cfg.data.layout or store.layout
    layout = get_layout(layout_name)
    if layout.num_joints != get_layout(store.layout).num_joints:
        raise DataError(f"layout {layout_name!r} has {layout.num_joints} joints but the data has layout "
                        f"{store.layout!r} ({get_layout(store.layout).num_joints} joints)", file=cfg.data.path)
    cfg.data.layout = layout_name
    class_names = list(store.class_names)
    cfg.data.train_split, cfg.data.val_split = resolve_splits(store, cfg.data.train_split, cfg.data.val_split)
    tr_idx = np.asarray(store.split(cfg.data.train_split), dtype=np.int64)
    va_idx = np.asarray(store.split(cfg.data.val_split), dtype=np.int64)
    if resume_state is not None:  # after the split and layout names are resolved
        _check_resume_config(resume_state["config"], cfg, last_path)
    for split, idx in ((cfg.data.train_split, tr_idx), (cfg.data.val_split, va_idx)):
        if len(idx) == 0:
            raise DataError(f"split {split!r} is empty", file=cfg.data.path)
        unl = int((np.asarray(store.labels)[idx] < 0).sum())
        if unl:
            raise DataError(f"split {split!r} has {unl} samples without a label", file=cfg.data.path)
    train_specs = resolve_pipeline(cfg.data.train_pipeline, cfg.data.stream)
    test_specs = resolve_pipeline(cfg.data.test_pipeline, cfg.data.stream)
    channels = getattr(store, "channels", None)
    train_tf = build_transform(train_specs, layout_name, channels)
    clip_specs, ds_clips = with_test_clips(test_specs, cfg.data.test_clips)
    test_tf = build_transform(clip_specs, layout_name, channels)
    seed = cfg.train.seed
    train_ds = SkeletonDataset(store, tr_idx, train_tf, seed=seed)
    val_ds = SkeletonDataset(store, va_idx, test_tf, seed=seed, clips=ds_clips)
    in_channels = int(val_ds[0][0].shape[-4])

    # ---- model
    mkw = dict(cfg.model.kwargs)
    graph_kw = {k: getattr(cfg.model, k) for k in ("strategy", "edge_importance")
                if k in model_arguments(cfg.model.name)}  # the TCN and the local conv fix or lack them
    model = create_model(cfg.model.name, layout=layout_name, num_classes=len(class_names), in_channels=in_channels,
                         dropout=cfg.model.dropout, **graph_kw, **mkw)
    dev = info.device
    model.to(dev)
    ddp_model = model
    if info.enabled:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None)
    opt = build_optimizer(cfg, model.parameters())
    world = info.world_size
    if cfg.train.batch_size % world:
        raise ConfigError(f"train.batch_size {cfg.train.batch_size} is not divisible by the {world} processes")
    per_rank = cfg.train.batch_size // world
    sampler = torch.utils.data.DistributedSampler(range(len(train_ds)), num_replicas=world, rank=info.rank,
                                                  shuffle=True, seed=seed, drop_last=False)
    sampler.set_epoch(0)
    steps_per_epoch = -(-len(list(sampler)) // per_rank)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s, steps_per_epoch))
    use_amp = cfg.train.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, start_step, global_step = 0, 0, 0
    best = {"top1": -1.0, "epoch": 0}
    history: list[dict] = []
    running = {"loss_sum": 0.0, "correct": 0, "seen": 0, "time": 0.0}
    saved_order = None
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        opt.load_state_dict(resume_state["optimizer"])
        sched.load_state_dict(resume_state["scheduler"])
        if resume_state.get("scaler"):
            scaler.load_state_dict(resume_state["scaler"])
        start_epoch, start_step = int(resume_state["epoch"]), int(resume_state["step"])
        global_step = int(resume_state["global_step"])
        best = dict(resume_state["best"])
        history = [dict(r) for r in resume_state["history"]]
        running = dict(resume_state["running"])
        saved_order = resume_state.get("order")
        set_rng_state(resume_state["rng"])
        if info.is_main:
            print(f"resuming {out} at epoch {start_epoch + 1}, step {start_step}", flush=True)

    # ---- outputs
    data_meta = {"layout": layout_name, "stream": cfg.data.stream, "test_pipeline": test_specs,
                 "test_clips": cfg.data.test_clips, "in_channels": in_channels, "seed": seed,
                 "num_joints": layout.num_joints, "channels": list(channels or []),
                 "store_meta": _jsonable(getattr(store, "meta", {}))}
    meta = {"class_names": class_names, "layout": layout_name, "stream": cfg.data.stream, "data": data_meta,
            "in_channels": in_channels, "recipe": cfg.recipe, "config": cfg.to_dict()}
    tb = None
    if info.is_main:
        ckdir.mkdir(parents=True, exist_ok=True)
        _write_text(out / "config.yaml", dump_yaml(cfg))
        if cfg.train.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                tb = SummaryWriter(str(out / "tensorboard"), purge_step=start_epoch if resume_state else None)
            except ImportError:
                tb = None

    def state(epoch: int, step: int, order) -> dict:
        return {"format": STATE_FORMAT, "version": 1, "model": {k: v.detach().cpu() for k, v in
                                                                 model.state_dict().items()},
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict() if use_amp else None, "epoch": epoch, "step": step,
                "global_step": global_step, "rng": get_rng_state(),
                "order": torch.as_tensor(order, dtype=torch.int64) if order is not None else None,
                "best": best, "history": history, "running": running, "config": cfg.to_dict()}

    bs = EpochBatchSampler(per_rank)
    loader = make_loader(train_ds, bs, cfg.data.num_workers, seed=seed)
    val_bs = EpochBatchSampler(max(1, per_rank))
    val_bs.set_order(range(len(val_ds)), EVAL_EPOCH)
    val_loader = make_loader(val_ds, val_bs, cfg.data.num_workers, seed=seed)
    loss_fn_kw = {"label_smoothing": cfg.train.label_smoothing}
    progress = cfg.train.progress and info.is_main
    last_scores = None
    last_eval_epoch = None

    for epoch in range(start_epoch, cfg.train.epochs):
        sampler.set_epoch(epoch)
        order = list(sampler)
        skip = start_step if epoch == start_epoch else 0
        if skip and saved_order is not None and saved_order.tolist() != order:
            raise ConfigError(f"{last_path}: cannot resume: the sample order differs (did the data change?)")
        if not skip:
            running = {"loss_sum": 0.0, "correct": 0, "seen": 0, "time": 0.0}
        bs.set_order(order, epoch, skip)
        ddp_model.train()
        bar = tqdm(total=len(order) * world, initial=min(len(order), skip * per_rank) * world,
                   desc=f"epoch {epoch + 1}/{cfg.train.epochs}", unit="sample", disable=not progress,
                   dynamic_ncols=True)
        t0 = time.perf_counter()
        step = skip
        for x, y, _ in loader:
            x = x.to(dev, non_blocking=True)
            y = y.to(dev, non_blocking=True)
            with torch.autocast(dev.type, dtype=torch.float16, enabled=use_amp):
                logits = ddp_model(x)
                loss = F.cross_entropy(logits.float(), y, **loss_fn_kw)
            lval = float(loss.detach())
            if D.any_true(not math.isfinite(lval), info):
                if tb is not None:
                    tb.close()
                bar.close()
                good = f"; the last good checkpoint is {last_path}" if last_path.exists() else ""
                raise TrainingDivergedError(
                    f"loss is {lval} at epoch {epoch + 1}, step {step + 1}: training diverged (lower "
                    f"optimizer.lr or set train.grad_clip){good}")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.train.grad_clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            global_step += 1
            n = len(y)
            running["loss_sum"] += lval * n
            running["correct"] += int((logits.detach().argmax(1) == y).sum())
            running["seen"] += n
            bar.update(n * world)
            if step % 5 == 0 or step == steps_per_epoch:
                bar.set_postfix(loss=f"{lval:.3f}", lr=f"{opt.param_groups[0]['lr']:.2e}", refresh=False)
            if (cfg.train.checkpoint_every and global_step % cfg.train.checkpoint_every == 0
                    and step < steps_per_epoch and info.is_main):
                running["time"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                atomic_torch_save(state(epoch, step, order), last_path)
        bar.close()
        running["time"] += time.perf_counter() - t0
        train_time = running["time"]
        row = {"epoch": epoch + 1, "loss": running["loss_sum"] / max(1, running["seen"]),
               "lr": opt.param_groups[0]["lr"], "train_acc": running["correct"] / max(1, running["seen"]),
               "time_s": round(train_time, 3),
               "samples_per_s": round(running["seen"] * world / train_time, 2) if train_time > 0 else None,
               "val_top1": None, "val_top5": None, "val_mean_class_acc": None}
        is_last = epoch + 1 == cfg.train.epochs
        if info.is_main and ((epoch + 1) % cfg.train.eval_every == 0 or is_last):
            scores = predict_scores(model, val_loader, dev, amp=use_amp, progress=progress, desc="validate")
            m = summarize_scores(scores, val_ds.labels, class_names, []).metrics
            row.update(val_top1=m["top1"], val_top5=m["top5"], val_mean_class_acc=m["mean_class_acc"])
            last_scores, last_eval_epoch = scores, epoch + 1
            if m["top1"] > best["top1"]:
                best = {"top1": m["top1"], "top5": m["top5"], "mean_class_acc": m["mean_class_acc"],
                        "epoch": epoch + 1}
                save_model(best_path, model, {**meta, "epoch": epoch + 1, "val_metrics": m})
        history.append(row)
        if info.is_main:
            atomic_torch_save(state(epoch + 1, 0, None), last_path)
            _write_text(out / "log.csv", _history_csv(history))
            if tb is not None:
                for k in ("loss", "lr", "train_acc", "val_top1", "val_top5", "val_mean_class_acc", "samples_per_s"):
                    if row.get(k) is not None:
                        tb.add_scalar(k, row[k], epoch + 1)
                tb.flush()
            msg = f"epoch {epoch + 1}: loss {row['loss']:.4f} train acc {row['train_acc']:.3f}"
            if row["val_top1"] is not None:
                msg += f" val top1 {row['val_top1']:.3f} top5 {row['val_top5']:.3f}"
            if progress:
                tqdm.write(msg)
        D.barrier(info)

    files: dict = {}
    metrics: dict = {}
    if info.is_main:
        if last_scores is None:  # resumed a finished run: recompute the final evaluation
            last_scores = predict_scores(model, val_loader, dev, amp=use_amp, progress=progress, desc="validate")
            last_eval_epoch = cfg.train.epochs
        if not best_path.exists():
            save_model(best_path, model, {**meta, "epoch": last_eval_epoch})
        files = _finish(out, cfg, store, va_idx, val_ds.labels, class_names, last_scores, last_eval_epoch,
                        best, history)
        metrics = json.loads((out / "metrics.json").read_text())
        if tb is not None:
            tb.close()
    return RunResult(out=out, metrics=metrics, history=history, best_checkpoint=best_path, last_checkpoint=last_path,
                     files=files)


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


def _finish(out: Path, cfg: RunConfig, store, va_idx, labels, class_names, scores, final_epoch, best, history) -> dict:
    from ..plots import plot_confusion, plot_curves
    from ..report import train_report

    res = summarize_scores(scores, labels, class_names, [store.names[i] for i in va_idx])
    final = {**res.metrics, "epoch": final_epoch}
    train_time = sum(r.get("time_s") or 0 for r in history)
    seen = sum((r.get("samples_per_s") or 0) * (r.get("time_s") or 0) for r in history)
    metrics = {"final": final, "best": {k: v for k, v in best.items()}, "num_val_samples": int(len(labels)),
               "split": cfg.data.val_split, "train_time_s": round(train_time, 2),
               "samples_per_s": round(seen / train_time, 2) if train_time else None,
               "model": cfg.model.name, "strategy": cfg.model.strategy, "stream": cfg.data.stream}
    files = {k: out / v for k, v in {"config": "config.yaml", "metrics": "metrics.json", "log": "log.csv",
                                      "curves": "curves.png", "confusion": "confusion.png",
                                      "scores": "val_scores.npz", "report": "report.md",
                                      "best": "checkpoints/best.pt", "last": "checkpoints/last.pt"}.items()}
    # Written again here, not only at each epoch end: a run stopped after the last epoch's
    # checkpoint but before its log.csv (a full disk, kill -9) resumes straight to this point, and
    # would otherwise keep a log.csv without the last epoch.
    _write_text(files["log"], _history_csv(history))
    _write_text(files["metrics"], json.dumps(metrics, indent=2) + "\n")
    save_scores(files["scores"], res.names, scores, labels, class_names)
    plot_curves(history, files["curves"], title=f"{cfg.model.name} ({cfg.data.stream}) training")
    plot_confusion(res.confusion, class_names, files["confusion"],
                   title=f"Validation confusion (epoch {final_epoch}, top-1 {final['top1']:.1%})")
    _write_text(files["report"], train_report(cfg, metrics, history, res))
    return {k: str(v) for k, v in files.items()}


def load_run_config(out: str | os.PathLike) -> RunConfig:
    """The resolved config of an existing run directory."""
    import yaml

    p = Path(out) / "config.yaml"
    return from_dict(yaml.safe_load(p.read_text()), str(p))


def train_streams(cfg: RunConfig, streams: list[str], *, weights: list[float] | None = None,
                  store=None) -> dict:
    """Train one model per stream into ``<out>/<stream>/`` and fuse their validation scores into
    ``<out>/fused_scores.npz`` and ``<out>/fused_metrics.json`` (pyskl's multi-stream ensemble)."""
    import copy

    from ..checkpoint import atomic_write_text
    from ..fusion import fuse
    from .config import STREAMS

    bad = [s for s in streams if s not in STREAMS]
    if bad or not streams:
        raise ConfigError(f"--streams: unknown stream(s) {bad}; choose from {', '.join(STREAMS)}")
    out = Path(cfg.train.out)
    results = {}
    for s in streams:
        c = copy.deepcopy(cfg)
        c.data.stream = s
        c.train.out = str(out / s)
        results[s] = train(c, store=store)
    summary: dict = {"streams": {s: r.metrics.get("final") for s, r in results.items()}}
    info = D.init_distributed(cfg.train.device)
    if info.is_main and len(streams) > 1:
        fused = fuse([out / s / "val_scores.npz" for s in streams], weights)
        save_scores(out / "fused_scores.npz", fused.names, fused.scores, fused.labels, fused.class_names or [])
        summary["fused"] = fused.metrics
        summary["weights"] = weights or [1.0] * len(streams)
        atomic_write_text(out / "fused_metrics.json", json.dumps(summary, indent=2) + "\n")
    return summary
