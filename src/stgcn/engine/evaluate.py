"""Evaluation: score a checkpoint on a split, with multi-clip averaging and class subsets.

Opening the data lives in :mod:`stgcn.data.store` (``open_data``), the pipelines in
:mod:`stgcn.data.pipeline`, score files in :mod:`stgcn.fusion`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .. import metrics as M
from ..data.dataset import EVAL_EPOCH, EpochBatchSampler, SkeletonDataset, make_loader
from ..data.pickle_cache import open_data
from ..data.pipeline import build_transform, with_test_clips
from ..errors import ConfigError, DataError
from ..fusion import save_scores
from ..runtime import default_workers, flushing_denormals, torch_threads


@torch.inference_mode()
def predict_scores(model: torch.nn.Module, loader, device: torch.device, *, amp: bool = False,
                   progress: bool = False, desc: str = "eval", precision: str = "fp32") -> np.ndarray:
    """Logits (N, K) in dataset order; multi-clip items are averaged over their clips. ``precision``
    of the fused copy that scores (:func:`stgcn.models.optimize_for_inference`)."""
    from tqdm import tqdm

    from ..models import optimize_for_inference

    model.eval()
    model = optimize_for_inference(model, precision)  # a fused copy (folded, channels-last); the model keeps training
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


def evaluate(checkpoint: str | os.PathLike, data: str | os.PathLike, split: str, *, clips: int | None = None,
             classes: str | Sequence[str] | None = None, out: str | os.PathLike | None = None,
             batch_size: int = 32, num_workers: int | None = None, device: str = "auto", progress: bool = True,
             cache_dir: str | None = None, precision: str = "fp32") -> EvalResult:
    """Score ``checkpoint`` on ``split`` of ``data``.

    With ``classes``, only samples of those classes are scored and the prediction is the argmax
    among the subset's logits (the paper's Kinetics-Motion protocol). ``stgcn eval`` takes its
    options from this signature.

    Args:
        checkpoint: stgcn checkpoint (.pt).
        data: Prepared store directory or pyskl .pkl.
        split: Split to score (e.g. xsub_test).
        clips: Test clips per sample (default: the training recipe's, recorded in the checkpoint).
        classes: Class subset: a file with one name per line, kinetics-motion, or a list of names.
        out: Directory for metrics.json, scores.npz, per_class.csv, confusion.png and report.md
            (checked to be writable before the evaluation starts).
        batch_size: Clips per forward pass.
        num_workers: DataLoader worker processes (default: chosen from the cores this process may use).
        device: auto, cpu, cuda or cuda:N.
        progress: Show a progress bar.
        cache_dir: Where a pyskl pickle is converted into a store (default ~/.cache/stgcn).
        precision: Inference precision, fp32 or bf16 (bf16 falls back to fp32 with a warning where
            the CPU lacks avx512_bf16/AMX).
    """
    from ..atomic import writable_dir

    if clips is not None and clips < 1:
        raise ConfigError(f"clips must be >= 1, found {clips}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, found {batch_size}")
    if out is not None:
        writable_dir(out, what="out")
    workers = default_workers() if num_workers is None else num_workers
    with flushing_denormals(), torch_threads(0, workers):
        return _evaluate(checkpoint, data, split, clips=clips, classes=classes, out=out, batch_size=batch_size,
                         num_workers=workers, device=device, progress=progress, cache_dir=cache_dir,
                         precision=precision)


def _evaluate(checkpoint, data, split, *, clips, classes, out, batch_size, num_workers, device, progress,
              cache_dir, precision="fp32") -> EvalResult:
    from ..checkpoint import load_model
    from ..contract import DataContract
    from .distributed import resolve_device

    model, meta = load_model(checkpoint)
    contract = DataContract.from_meta(meta, model, source=str(checkpoint))
    dev = resolve_device(device)
    model.to(dev)
    store = open_data(data, cache_dir, contract.layout.ref)
    contract.check_layout(store.joint_layout(), f"the data {data}")  # by table, not joint count
    layout = contract.layout
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

    n_clips = int(clips or contract.test_clips)
    specs, ds_clips = with_test_clips(contract.test_pipeline, n_clips)
    transform = build_transform(specs, layout, getattr(store, "channels", None))
    ds = SkeletonDataset(store, idx, transform, seed=contract.seed, clips=ds_clips)
    ds.labels = labels_all
    sampler = EpochBatchSampler(batch_size)
    sampler.set_order(range(len(ds)), EVAL_EPOCH)
    loader = make_loader(ds, sampler, num_workers, seed=0, persistent=False)
    scores = predict_scores(model, loader, dev, amp=True, progress=progress, precision=precision)
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
                           "restricted_argmax": subset_cols is not None, "precision": precision})
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
