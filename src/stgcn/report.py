"""Markdown reports a user can open after a run (``report.md``)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _pct(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * float(v):.1f}%"


def per_class_table(result) -> str:
    s = result.per_class
    lines = ["| class | samples | recall (accuracy) | precision |", "| --- | ---: | ---: | ---: |"]
    for i, name in enumerate(result.class_names):
        lines.append(f"| {name} | {int(s['support'][i])} | {_pct(s['recall'][i])} | {_pct(s['precision'][i])} |")
    return "\n".join(lines)


def _top_confusions(result, n: int = 5) -> str:
    cm = np.array(result.confusion, dtype=np.int64)
    np.fill_diagonal(cm, 0)
    flat = np.argsort(cm, axis=None)[::-1][:n]
    rows = [(int(cm.flat[f]), *np.unravel_index(f, cm.shape)) for f in flat if cm.flat[f] > 0]
    if not rows:
        return "No confusions."
    return "\n".join(f"- {c} × **{result.class_names[i]}** predicted as **{result.class_names[j]}**"
                     for c, i, j in rows)


def train_report(cfg, metrics: dict, history: list[dict], result) -> str:
    f, b = metrics["final"], metrics["best"]
    last = history[-1] if history else {}
    lines = [
        f"# Training report — {cfg.model.name} ({cfg.model.strategy}, stream {cfg.data.stream})",
        "",
        f"Data `{cfg.data.path}` (layout `{cfg.data.layout}`), trained on `{cfg.data.train_split}`, "
        f"validated on `{cfg.data.val_split}` ({metrics['num_val_samples']} samples). Recipe "
        f"`{cfg.recipe or 'custom'}`: {cfg.optimizer.name} lr {cfg.optimizer.lr}, {cfg.scheduler.name} schedule, "
        f"{cfg.train.epochs} epochs, batch {cfg.train.batch_size}, seed {cfg.train.seed}.",
        "",
        "## Metrics",
        "",
        "| | epoch | top-1 | top-5 | mean class accuracy |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| final | {f['epoch']} | {_pct(f['top1'])} | {_pct(f['top5'])} | {_pct(f['mean_class_acc'])} |",
        f"| best (by top-1) | {b.get('epoch')} | {_pct(b.get('top1'))} | {_pct(b.get('top5'))} | "
        f"{_pct(b.get('mean_class_acc'))} |",
        "",
        f"Training time {metrics['train_time_s']:.0f} s ({metrics.get('samples_per_s') or 0:.0f} samples/s); "
        f"last epoch loss {last.get('loss', float('nan')):.4f}, train accuracy {_pct(last.get('train_acc'))}.",
        "The best checkpoint is selected on the validation split, so its accuracy is optimistic; "
        "report the final one when the validation split is also the test split.",
        "",
        "## Curves",
        "",
        "![training curves](curves.png)",
        "",
        "## Confusion matrix (final model)",
        "",
        *_confusion_section(result),
        "## Per-class results (final model)",
        "",
        per_class_table(result),
        "",
        "## Files",
        "",
        "- `checkpoints/final.pt` — the final model, the one scored above "
        "(`stgcn predict/demo/export --checkpoint ...`)",
        "- `checkpoints/best.pt` — the epoch with the best validation top-1 (picked on the validation split)",
        "- `checkpoints/last.pt` — full training state (`stgcn train ... --resume`)",
        "- `metrics.json`, `log.csv`, `val_scores.npz` (per-sample logits, for `stgcn fuse`), `config.yaml`",
        "",
    ]
    return "\n".join(lines)


def _confusion_section(result) -> list[str]:
    return ["![confusion matrix](confusion.png)", "", "Most frequent confusions:", "", _top_confusions(result), ""]


def eval_report(result, title: str = "Evaluation") -> str:
    m = result.metrics
    extra = ""
    if m.get("restricted_argmax"):
        extra = (f"\nRestricted to the class subset `{m.get('classes')}` ({len(result.class_names)} classes): only "
                 "samples of these classes are scored, and the prediction is the argmax over the subset's logits.\n")
    lines = [
        f"# {title}",
        "",
        f"Split `{m.get('split')}` of `{m.get('data')}`, {m['num_samples']} samples, {m.get('clips', 1)} clip(s) "
        "per sample (logits averaged).",
        extra,
        "| top-1 | top-5 | mean class accuracy |",
        "| ---: | ---: | ---: |",
        f"| {_pct(m['top1'])} | {_pct(m['top5'])} | {_pct(m['mean_class_acc'])} |",
        "",
        *_confusion_section(result),
        per_class_table(result),
        "",
    ]
    return "\n".join(lines)
