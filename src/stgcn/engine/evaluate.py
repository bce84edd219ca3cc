"""Evaluation: score a checkpoint on a split, with multi-clip averaging and class subsets.

Also home of the data plumbing shared with training: opening a store (or converting a pyskl
pickle) and building pipelines. The dataset, batch sampler and collation live in
:mod:`stgcn.data.dataset`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import metrics as M
from ..data.dataset import EVAL_EPOCH, EpochBatchSampler, SkeletonDataset, make_loader
from ..errors import ConfigError, DataError


def enable_flush_denormal() -> None:
    """Flush denormal floats to zero in the calling thread (5-15x faster CPU training on skeleton
    data, measured).

    The flag is per thread and torch's intra-op (OpenMP) worker threads copy it when they are
    created, at the first parallel torch op; so the entry points that run models call this (through
    :func:`flushing_denormals`) before their first op. numpy's float limits are computed first:
    computed under flush-to-zero they warn.
    """
    for dt in (np.float16, np.float32, np.float64):
        np.finfo(dt).smallest_subnormal  # noqa: B018
    torch.set_flush_denormal(True)


def flushes_denormals() -> bool:
    """Whether the calling thread flushes float32 denormals to zero (FTZ or DAZ is on)."""
    tiny = np.array([1], dtype=np.uint32).view(np.float32)  # the smallest float32 denormal
    return bool((tiny * np.float32(1.0))[0] == 0)


@contextlib.contextmanager
def flushing_denormals() -> Iterator[None]:
    """Flush denormals to zero in the calling thread for the duration of the block, then put the
    thread's previous state back, so callers' numpy code (and hypothesis) keep IEEE subnormals.

    Not done at import: importing the package changes no floating-point state. Threads created
    inside the block (torch's intra-op pool, if this is its first parallel op) keep the flag.
    """
    was_on = flushes_denormals()
    enable_flush_denormal()
    try:
        yield
    finally:
        if not was_on:
            torch.set_flush_denormal(False)


# --------------------------------------------------------------------------- data plumbing


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir:
        return Path(cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stgcn"


def is_pickle(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix.lower() in (".pkl", ".pickle")


def pickle_cache_dir(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the store converted from a pyskl pickle lives (keyed by path, size and mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    key = hashlib.sha1(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return _cache_root(cache_dir) / "pyskl" / f"{p.stem}-{key}"


def convert_pickle(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Convert a pyskl pickle into a prepared store once; later calls reuse the cache."""
    from ..data.store import open_store

    out = pickle_cache_dir(path, cache_dir)
    try:
        open_store(out)
        return out
    except Exception:  # noqa: BLE001 - no usable cache yet: (re)build it below
        pass
    from ..data.prepare import prepare

    out.parent.mkdir(parents=True, exist_ok=True)
    prepare("pyskl", str(path), str(out))
    return out


def open_data(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
    """A :class:`~stgcn.data.store.SkeletonStore` from a store directory or a pyskl pickle."""
    from ..data.store import open_store

    if not Path(path).exists():
        raise DataError("no such file or directory (expected a prepared store or a pyskl .pkl)", file=str(path))
    if is_pickle(path):
        return open_store(convert_pickle(path, cache_dir))
    return open_store(path)


def stream_spec(stream: str) -> dict:
    return {"name": "stream", "kind": stream}


def resolve_pipeline(specs: Sequence[dict], stream: str) -> list[dict]:
    """Fill the ``{name: stream}`` placeholder (appended when absent) with the chosen stream.

    The joint stream is the raw input, so its placeholder is dropped rather than run as a no-op.
    """
    out: list[dict] = []
    placed = False
    for spec in specs:
        if spec.get("name") == "stream" and len(spec) == 1:
            placed = True
            if stream != "joint":
                out.append(stream_spec(stream))
        else:
            out.append(dict(spec))
            placed = placed or spec.get("name") == "stream"
    if not placed and stream != "joint":
        out.append(stream_spec(stream))
    return out


def build_transform(specs: Sequence[dict], layout: Any, channels: Sequence[str] | None = None):
    """``stgcn.data.transforms.build_pipeline`` or None for an empty pipeline."""
    if not specs:
        return None
    from ..data.transforms import build_pipeline

    return build_pipeline([dict(s) for s in specs], layout, channels=list(channels) if channels else None)


def with_test_clips(specs: Sequence[dict], clips: int) -> tuple[list[dict], int]:
    """Put ``clips`` into the test pipeline. ``uniform_sample`` draws its clips itself (pyskl's
    ``num_clips``, reproducible test-mode offsets); other pipelines are run ``clips`` times with
    different seeds. Returns (specs, clips the dataset must draw)."""
    specs = [dict(s) for s in specs]
    for spec in specs:
        if spec.get("name") == "uniform_sample":
            spec["num_clips"] = int(clips)
            return specs, 1
    return specs, int(clips)


@torch.inference_mode()
def predict_scores(model: torch.nn.Module, loader, device: torch.device, *, amp: bool = False,
                   progress: bool = False, desc: str = "eval") -> np.ndarray:
    """Logits (N, K) in dataset order; multi-clip items are averaged over their clips."""
    from tqdm import tqdm

    from ..models import optimize_for_inference

    model.eval()
    model = optimize_for_inference(model)  # a fused copy (folded, channels-last); the model keeps training
    n = len(loader.dataset)
    out: np.ndarray | None = None
    bar = tqdm(total=n, desc=desc, unit="sample", leave=False, disable=not progress, dynamic_ncols=True)
    for x, _, pos in loader:
        x = x.to(device, non_blocking=True)
        clips = x.shape[1] if x.ndim == 6 else 1
        if clips > 1:
            x = x.flatten(0, 1)  # (N*clips, C, T, V, M)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
            logits = model(x)
        logits = logits.float().view(-1, clips, logits.shape[-1]).mean(1)
        if out is None:
            out = np.zeros((n, logits.shape[-1]), dtype=np.float32)
        out[pos.numpy()] = logits.cpu().numpy()
        bar.update(len(pos))
    bar.close()
    if out is None:
        raise DataError("evaluation split is empty")
    return out


# --------------------------------------------------------------------------- score files


def save_scores(path: str | os.PathLike, names: Sequence[str], scores: np.ndarray, labels: np.ndarray,
                class_names: Sequence[str]) -> None:
    """``.npz`` with ``names`` (str), ``scores`` (N, K) float32 logits, ``labels`` (N,) and
    ``class_names``; loads with ``allow_pickle=False``."""
    from ..checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, names=np.asarray(list(names), dtype=str), scores=np.asarray(scores, dtype=np.float32),
             labels=np.asarray(labels, dtype=np.int64), class_names=np.asarray(list(class_names), dtype=str))
    atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- class subsets


def load_class_subset(name_or_file: str) -> list[str]:
    """Class names from a text file (one per line) or a shipped list (``kinetics-motion``)."""
    p = Path(name_or_file)
    if p.is_file():
        text = p.read_text(encoding="utf-8")
    else:
        res = resources.files("stgcn") / "resources" / f"{name_or_file}-classes.txt"
        if not res.is_file():
            raise ConfigError(f"--classes {name_or_file!r}: no such file and no shipped class list "
                              "(shipped: kinetics-motion)")
        text = res.read_text(encoding="utf-8")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ConfigError(f"--classes {name_or_file!r}: the list is empty")
    return names


# --------------------------------------------------------------------------- evaluate a checkpoint


@dataclass
class EvalResult:
    metrics: dict
    names: list[str]
    scores: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    confusion: np.ndarray
    per_class: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)


def _layout_joints(name: str) -> int:
    from ..graph import get_layout

    return get_layout(name).num_joints


def evaluate(checkpoint: str | os.PathLike, data: str | os.PathLike, split: str, *, clips: int | None = None,
             classes: str | Sequence[str] | None = None, out: str | os.PathLike | None = None,
             batch_size: int = 32, num_workers: int = 2, device: str = "auto", progress: bool = True,
             cache_dir: str | None = None) -> EvalResult:
    """Score ``checkpoint`` on ``split`` of ``data``.

    ``clips`` overrides the number of test clips saved in the checkpoint. ``classes`` (a list of
    names, a file, or ``"kinetics-motion"``) restricts evaluation to samples of those classes and
    predicts the argmax among the subset's logits only. With ``out``, writes ``metrics.json``,
    ``scores.npz``, ``per_class.csv``, ``confusion.png`` and ``report.md`` there.
    """
    with flushing_denormals():
        return _evaluate(checkpoint, data, split, clips=clips, classes=classes, out=out, batch_size=batch_size,
                         num_workers=num_workers, device=device, progress=progress, cache_dir=cache_dir)


def _evaluate(checkpoint, data, split, *, clips, classes, out, batch_size, num_workers, device, progress,
              cache_dir) -> EvalResult:
    from ..checkpoint import load_model
    from .distributed import resolve_device

    model, meta = load_model(checkpoint)
    dev = resolve_device(device)
    model.to(dev)
    store = open_data(data, cache_dir)
    dmeta = meta.get("data", {})
    layout = dmeta.get("layout") or meta.get("layout") or store.layout
    if _layout_joints(layout) != _layout_joints(store.layout):
        raise DataError(f"the checkpoint expects layout {layout!r} ({_layout_joints(layout)} joints) but the "
                        f"data uses {store.layout!r} ({_layout_joints(store.layout)} joints)", file=str(data))
    class_names = list(meta.get("class_names") or store.class_names)
    if len(class_names) != model.num_classes:
        raise DataError(f"checkpoint has {model.num_classes} outputs but {len(class_names)} class names")
    idx = np.asarray(store.split(split), dtype=np.int64)
    labels_all = np.asarray(store.labels)[idx]
    # Store labels index the store's class list; map them into the checkpoint's by name.
    store_names = list(store.class_names)
    if store_names != class_names:
        pos = {n: i for i, n in enumerate(class_names)}
        missing = sorted({store_names[l] for l in labels_all if l >= 0 and store_names[l] not in pos})
        if missing:
            raise DataError(f"split {split!r} has classes the checkpoint does not know: {missing[:10]}",
                            file=str(data))
        labels_all = np.array([pos[store_names[l]] if l >= 0 else -1 for l in labels_all], dtype=np.int64)
    if (labels_all < 0).any():
        raise DataError(f"split {split!r} has {(labels_all < 0).sum()} samples without a label", file=str(data))

    subset_cols = None
    if classes is not None:
        subset = load_class_subset(classes) if isinstance(classes, str) else list(classes)
        pos = {n: i for i, n in enumerate(class_names)}
        unknown = [n for n in subset if n not in pos]
        if unknown:
            raise ConfigError(f"--classes: {len(unknown)} names are not classes of the checkpoint: {unknown[:10]}")
        subset_cols = np.array([pos[n] for n in subset], dtype=np.int64)
        keep = np.isin(labels_all, subset_cols)
        if not keep.any():
            raise DataError(f"split {split!r} has no sample of the {len(subset)} requested classes", file=str(data))
        idx, labels_all = idx[keep], labels_all[keep]

    n_clips = int(clips or dmeta.get("test_clips", 1))
    specs, ds_clips = with_test_clips(dmeta.get("test_pipeline", []), n_clips)
    transform = build_transform(specs, layout, getattr(store, "channels", None))
    ds = SkeletonDataset(store, idx, transform, seed=int(dmeta.get("seed", 0)), clips=ds_clips)
    ds.labels = labels_all
    sampler = EpochBatchSampler(batch_size)
    sampler.set_order(range(len(ds)), EVAL_EPOCH)
    loader = make_loader(ds, sampler, num_workers, seed=0, persistent=False)
    scores = predict_scores(model, loader, dev, amp=True, progress=progress)
    labels = labels_all
    names = [store.names[i] for i in idx]
    eval_classes = class_names
    if subset_cols is not None:
        # argmax among the subset's logits only; labels re-indexed into the subset
        scores = scores[:, subset_cols]
        remap = {int(c): i for i, c in enumerate(subset_cols)}
        labels = np.array([remap[int(l)] for l in labels], dtype=np.int64)
        eval_classes = [class_names[c] for c in subset_cols]
    result = summarize_scores(scores, labels, eval_classes, names)
    result.metrics.update({"checkpoint": str(checkpoint), "data": str(data), "split": split, "clips": n_clips,
                           "classes": None if classes is None else (classes if isinstance(classes, str)
                                                                    else "custom"),
                           "restricted_argmax": subset_cols is not None})
    if out is not None:
        write_eval_outputs(Path(out), result, title=f"Evaluation of {Path(checkpoint).name} on {split}")
    return result


def summarize_scores(scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                     names: Sequence[str]) -> EvalResult:
    cm = M.confusion_matrix(labels, scores.argmax(1), len(class_names))
    stats = M.per_class_stats(cm)
    return EvalResult(metrics=M.summarize(scores, labels), names=list(names), scores=scores, labels=labels,
                      class_names=list(class_names), confusion=cm, per_class=stats)


def per_class_csv(result: EvalResult) -> str:
    lines = ["class,support,recall,precision"]
    for i, name in enumerate(result.class_names):
        s = result.per_class
        lines.append(f"\"{name}\",{int(s['support'][i])},{s['recall'][i]:.4f},{s['precision'][i]:.4f}")
    return "\n".join(lines) + "\n"


def write_eval_outputs(out: Path, result: EvalResult, title: str = "Evaluation") -> dict:
    from ..checkpoint import atomic_write_text
    from ..plots import plot_confusion
    from ..report import eval_report

    out.mkdir(parents=True, exist_ok=True)
    files = {"metrics": out / "metrics.json", "scores": out / "scores.npz", "per_class": out / "per_class.csv",
             "confusion": out / "confusion.png", "report": out / "report.md"}
    atomic_write_text(files["metrics"], json.dumps(result.metrics, indent=2) + "\n")
    save_scores(files["scores"], result.names, result.scores, result.labels, result.class_names)
    atomic_write_text(files["per_class"], per_class_csv(result))
    plot_confusion(result.confusion, result.class_names, files["confusion"], title=f"{title}: confusion matrix")
    atomic_write_text(files["report"], eval_report(result, title))
    result.files = {k: str(v) for k, v in files.items()}
    return result.files
