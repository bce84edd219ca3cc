"""Figures for runs: training curves, confusion matrix, ablation bars (matplotlib, Agg backend).

Every figure is saved atomically at dpi 120 with a title, labelled axes and a tight layout.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np

DPI = 120


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    from .checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _plt().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_curves(history: Sequence[dict], path: str | os.PathLike, title: str = "Training") -> None:
    """Loss (left) and accuracies (right) per epoch from ``log.csv``-style rows."""
    plt = _plt()
    ep = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(ep, [r["loss"] for r in history], marker="o", ms=3, label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy loss")
    ax1.set_title("Loss")
    ax1.grid(alpha=0.3)
    lr_ax = ax1.twinx()
    lr_ax.plot(ep, [r["lr"] for r in history], color="tab:gray", ls="--", lw=1, label="learning rate")
    lr_ax.set_ylabel("learning rate")
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = lr_ax.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=8)

    ax2.plot(ep, [100 * r["train_acc"] for r in history], marker="o", ms=3, label="train top-1")
    # mean class accuracy is dashed and unmarked: on balanced splits it lies on top of val top-1
    for key, lab, style in (("val_top1", "val top-1", dict(marker="o", ms=3, lw=2)),
                            ("val_top5", "val top-5", dict(marker="o", ms=3)),
                            ("val_mean_class_acc", "val mean class", dict(ls="--", lw=1.2))):
        pts = [(r["epoch"], 100 * r[key]) for r in history if r.get(key) is not None]
        if pts:
            ax2.plot(*zip(*pts, strict=True), label=lab, **style)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (%)")
    ax2.set_ylim(0, 100)
    ax2.set_title("Accuracy")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], path: str | os.PathLike,
                   title: str = "Confusion matrix") -> None:
    """Row-normalised confusion matrix (each true class sums to 100%), counts printed when small."""
    plt = _plt()
    cm = np.asarray(cm, dtype=np.float64)
    k = len(class_names)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    size = min(22.0, max(5.0, 0.38 * k + 2.5))
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label("fraction of the true class")
    font = max(4, min(9, int(220 / max(k, 1))))
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(class_names, rotation=60, ha="right", fontsize=font)
    ax.set_yticklabels(class_names, fontsize=font)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=font,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)


def plot_ablation(rows: Sequence[dict], path: str | os.PathLike, title: str = "Ablation (paper Table 1)") -> None:
    """Grouped bars of top-1/top-5 (mean ± std over seeds); rows have label, top1, top1_std, top5, top5_std."""
    plt = _plt()
    labels = [r["label"] for r in rows]
    x = np.arange(len(rows))
    w = 0.38
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(rows) + 2), 4.5))
    for off, key, color in ((-w / 2, "top1", "tab:blue"), (w / 2, "top5", "tab:orange")):
        vals = [100 * r[key] for r in rows]
        errs = [100 * r.get(f"{key}_std", 0.0) for r in rows]
        bars = ax.bar(x + off, vals, w, yerr=errs, capsize=3, color=color, label=key.replace("top", "top-"))
        for b, v in zip(bars, vals, strict=True):
            ax.text(b.get_x() + b.get_width() / 2, v + 1, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=20, ha="right")
    ax.set_ylabel("accuracy (%)  (mean ± std over seeds)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def plot_timeline(rows: Sequence[tuple[str, Sequence]], class_names: Sequence[str], num_frames: int,
                  path: str | os.PathLike, title: str = "Action segments", fps: float | None = None) -> None:
    """One horizontal row per entry of ``rows`` (``(name, segments)``; segments with ``label``,
    ``start``, ``end``, inclusive frames, and optionally ``score``), one colour per class, white for
    "no action"; a segment with a score is drawn more opaque the higher it is.

    The one timeline picture of the package: ``stgcn segment`` (prediction beside the ground truth),
    the demo and ``stgcn serve`` (each person's segments beside their window labels,
    :func:`window_spans`). With ``fps`` the axis is in seconds, else in frames.
    """
    from matplotlib.patches import Patch

    plt = _plt()
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    colour = {name: cmap(i % cmap.N) for i, name in enumerate(class_names)}
    scale = 1.0 / fps if fps else 1.0
    fig, ax = plt.subplots(figsize=(12, 0.6 * max(1, len(rows)) + 1.6))
    for y, (_, segments) in enumerate(rows):
        for s in segments:
            score = getattr(s, "score", None)
            ax.barh(y, (s.end - s.start + 1) * scale, left=s.start * scale, height=0.7,
                    color=colour.get(s.label, "black"), edgecolor="none",
                    alpha=1.0 if score is None else 0.35 + 0.65 * float(score))
    ax.set_yticks(range(max(1, len(rows))), [name for name, _ in rows] or ["nobody"])
    ax.set_ylim(-0.6, max(1, len(rows)) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(0, num_frames * scale)
    ax.set_xlabel("time (s)" if fps else "frame")
    ax.set_title(title + ("" if rows else ": nobody there"))
    used = [n for n in class_names if any(s.label == n for _, segs in rows for s in segs)]
    if used:
        ax.legend(handles=[Patch(color=colour[n], label=n) for n in used], loc="upper center",
                  bbox_to_anchor=(0.5, -0.35 if len(rows) < 3 else -0.15), ncol=min(len(used), 6), fontsize=8,
                  frameon=False)
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)


def window_spans(windows: Sequence[dict]) -> list:
    """Window labels as segments for :func:`plot_timeline`: each window's top-1 label (rows
    ``{"start", "frame", "label", "score"}``) over the frames since the previous window's end (its
    whole span for the first one, or after a gap)."""
    from .segmentation import Segment

    out, prev = [], None
    for w in windows:
        begin = w["start"] if prev is None or prev < w["start"] else prev + 1
        if begin <= w["frame"]:
            out.append(Segment(w["label"], int(begin), int(w["frame"]), float(w["score"])))
        prev = w["frame"]
    return out


def plot_cv(runs: Sequence[dict], path: str | os.PathLike, title: str = "Cross-validation") -> None:
    """Top-1 per fold: a bar at the mean over seeds, one dot per seed, a line at the overall mean;
    ``runs`` have fold, seed, status and top1 (``stgcn cv``'s ``cv.json`` rows)."""
    plt = _plt()
    done = [r for r in runs if r["status"] == "done"]
    folds = list(dict.fromkeys(r["fold"] for r in runs))
    x = np.arange(len(folds))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(folds) + 3), 4.2))
    means = []
    for i, f in enumerate(folds):
        acc = [100 * r["top1"] for r in done if r["fold"] == f]
        means.append(np.mean(acc) if acc else np.nan)
        ax.plot([i] * len(acc), acc, "o", color="black", ms=3, zorder=3)
    ax.bar(x, np.nan_to_num(means), 0.7, color="tab:blue", alpha=0.7, label="mean over seeds")
    if done:
        overall = 100 * float(np.mean([r["top1"] for r in done]))
        ax.axhline(overall, color="tab:red", lw=1.2, ls="--", label=f"mean {overall:.1f} %")
    ax.set_xticks(x)
    ax.set_xticklabels(folds, rotation=60 if len(folds) > 8 else 0, ha="right" if len(folds) > 8 else "center",
                       fontsize=8)
    ax.set_xlabel("fold (test group)")
    ax.set_ylabel("top-1 (%)  (dots: seeds)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
