"""Cross-validation as the literature runs it: every fold of a dataset's protocol, several seeds.

``run_cv(cfg, "loso", out, seeds=range(3))`` trains one model (or one per stream, fused) for each
(fold, seed) into ``<out>/<fold>/seed<k>/`` and writes one report into ``<out>``:

* ``cv.md`` — mean ± std over seeds and over folds, the per-fold table, the published figure;
* ``cv.json`` — every run's metrics and the summary; ``cv.png`` — per-fold accuracies;
* ``confusion.png`` — the confusion matrix pooled over every fold and seed;
* ``config.yaml`` — the resolved settings every run started from (each run also writes its own).

The protocol table is :mod:`stgcn.data.protocols`. Every fold is checked before any training
starts (splits present in the store, a test clip, no test class absent from the training split).
Finished runs are reused and an interrupted one resumes, so the same command continues after a
crash; a run locked by another process (a second ``stgcn cv`` on the same ``--out``) is left to it
and reported as pending.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data.protocols import Fold, Protocol, get_protocol
from ..errors import ConfigError, DataError
from .config import RunConfig, dump_yaml


@dataclass
class CVRun:
    fold: str
    seed: int
    status: str
    """done, or pending (not finished: another process holds it)."""
    top1: float | None = None
    top5: float | None = None
    mean_class_acc: float | None = None
    num_test: int = 0
    train_time_s: float | None = None
    wall_s: float | None = None
    out: str = ""


@dataclass
class CVResult:
    dataset: str
    protocol: str
    runs: list[CVRun]
    summary: dict
    files: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- checks


def check_protocol(store, protocol: Protocol, folds: Sequence[Fold]) -> None:
    """Raise :class:`DataError` naming the protocol and fold when a fold cannot be trained or
    scored: a split the store lacks, no training or test clip, unlabelled clips, or a test class
    that the training split does not have."""
    labels = np.asarray(store.labels)
    class_names = list(store.class_names)
    where = f"protocol {protocol.name!r}"
    for f in folds:
        idx = {}
        for part, split in (("training", f.train), ("test", f.test)):
            if split not in store.splits:
                raise DataError(f"{where}, fold {f.name!r}: the store has no split {split!r} (it was prepared "
                                "before this protocol existed: run `stgcn prepare` again)", file=str(store.path))
            idx[part] = np.asarray(store.split(split), dtype=np.int64)
            if len(idx[part]) == 0:
                raise DataError(f"{where}, fold {f.name!r}: the {part} split {split!r} has no clip",
                                file=str(store.path))
            if (labels[idx[part]] < 0).any():
                raise DataError(f"{where}, fold {f.name!r}: the {part} split {split!r} has clips without a "
                                "label", file=str(store.path))
        missing = sorted(set(labels[idx["test"]].tolist()) - set(labels[idx["training"]].tolist()))
        if missing:
            names = [class_names[c] if c < len(class_names) else str(c) for c in missing]
            raise DataError(f"{where}, fold {f.name!r}: classes {names} are in the test split {f.test!r} but "
                            f"missing from the training split {f.train!r}", file=str(store.path))


def select_folds(protocol: Protocol, names: Sequence[str] | None) -> list[Fold]:
    """The folds to run: all of them, or those named (in protocol order)."""
    if not names:
        return list(protocol.folds)
    wanted = list(dict.fromkeys(names))
    for n in wanted:
        protocol.fold(n)  # raises naming the protocol's folds
    return [f for f in protocol.folds if f.name in wanted]


# --------------------------------------------------------------------------- runs


def _members(base: RunConfig, streams: Sequence[str]) -> list[str]:
    """The sub-runs of one (fold, seed) run whose scores are fused: its streams, or its seed
    ensemble's members (``train.ensemble``); one name: a single model in the run directory."""
    from .training import member_names

    if len(streams) > 1 and base.train.ensemble > 1:
        raise ConfigError("--streams and train.ensemble > 1 do not combine: choose one kind of ensemble")
    return member_names(base) or list(streams)


def _run_files(run_dir: Path, streams: Sequence[str]) -> tuple[Path, Path]:
    """(marker of a finished run, its test scores); ``streams``: the run's fused sub-runs."""
    if len(streams) > 1:
        return run_dir / "fused_metrics.json", run_dir / "fused_scores.npz"
    return run_dir / "metrics.json", run_dir / "val_scores.npz"


def run_config(base: RunConfig, fold: Fold, seed: int, run_dir: Path, streams: Sequence[str]) -> RunConfig:
    """The settings of one (fold, seed) run: ``base`` with the fold's splits, the seed and its directory."""
    cfg = copy.deepcopy(base)
    cfg.data.train_split, cfg.data.val_split = fold.train, fold.test
    cfg.train.seed = int(seed)
    cfg.train.out = str(run_dir)
    cfg.train.resume = True  # continues an interrupted run, starts one that has no checkpoint
    if len(streams) == 1:
        cfg.data.stream = streams[0]
    return cfg.validate()


def _train_one(cfg: RunConfig, streams: Sequence[str], weights, store) -> None:
    from .training import train, train_ensemble, train_streams

    if cfg.train.ensemble > 1:
        train_ensemble(cfg, store=store)
    elif len(streams) > 1:
        train_streams(cfg, list(streams), weights=weights, store=store)
    else:
        train(cfg, store=store)


def _read_run(fold: str, seed: int, run_dir: Path, streams: Sequence[str]) -> CVRun:
    from .. import metrics as M
    from ..fusion import load_scores

    marker, scores_path = _run_files(run_dir, streams)
    if not marker.exists():
        return CVRun(fold, seed, "pending", out=str(run_dir))
    sf = load_scores(scores_path)
    m = M.summarize(sf.scores, sf.labels)
    times = [run_dir / s / "metrics.json" for s in streams] if len(streams) > 1 else [marker]
    train_time = sum(json.loads(p.read_text()).get("train_time_s") or 0.0 for p in times if p.exists())
    wall_file = run_dir / "cv_wall.json"
    wall = json.loads(wall_file.read_text())["wall_s"] if wall_file.exists() else None
    return CVRun(fold, seed, "done", m["top1"], m["top5"], m["mean_class_acc"], m["num_samples"],
                 round(train_time, 2), wall, str(run_dir))


def run_cv(base: RunConfig, protocol: str, out: str | os.PathLike, *, seeds: Sequence[int] = (0, 1, 2),
           folds: Sequence[str] | None = None, streams: Sequence[str] | None = None,
           stream_weights: Sequence[float] | None = None, store=None) -> CVResult:
    """Train every (fold, seed) of ``protocol`` on ``base.data.path`` (runs finished in ``out`` are
    reused) and write the report; see the module docstring."""
    from ..checkpoint import atomic_write_text
    from ..data.pickle_cache import open_data
    from .runlock import RunLockedError

    if store is None:
        store = open_data(base.data.path, base.data.cache_dir)
    dataset = str(store.meta.get("name") or "")
    proto = get_protocol(dataset, protocol)
    chosen = select_folds(proto, folds)
    check_protocol(store, proto, chosen)
    streams = list(streams or [base.data.stream])
    members = _members(base, streams)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("cv needs at least one seed")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_yaml(base))
    for fold in chosen:
        for seed in seeds:
            run_dir = out / fold.name / f"seed{seed}"
            if not _run_files(run_dir, members)[0].exists():
                print(f"[cv] {dataset} {proto.name} fold {fold.name} seed {seed} -> {run_dir}", flush=True)
                t0 = time.perf_counter()
                try:
                    _train_one(run_config(base, fold, seed, run_dir, streams), streams, stream_weights, store)
                except RunLockedError:
                    print(f"[cv] {run_dir} is being trained by another process: left to it", flush=True)
                else:
                    atomic_write_text(run_dir / "cv_wall.json",
                                      json.dumps({"wall_s": round(time.perf_counter() - t0, 1)}) + "\n")
    # read at the end: runs another process finished meanwhile count too
    runs = [_read_run(f.name, seed, out / f.name / f"seed{seed}", members) for f in chosen for seed in seeds]
    result = CVResult(dataset, proto.name, runs, summarize(runs, [f.name for f in chosen], seeds))
    result.files = write_report(result, proto, base, out, members, store)
    return result


# --------------------------------------------------------------------------- summary and report


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summarize(runs: Sequence[CVRun], folds: Sequence[str], seeds: Sequence[int]) -> dict:
    """Per fold (mean ± std over seeds), per seed (mean over folds: the protocol's accuracy for that
    seed), and overall: mean over every run, std over the per-seed accuracies and over the per-fold
    means. Computed on finished runs; ``complete`` says whether every run is finished."""
    done = [r for r in runs if r.status == "done"]
    out: dict = {"runs": len(runs), "done": len(done), "complete": len(done) == len(runs), "folds": {},
                 "seeds": {}}
    for f in folds:
        acc = [r.top1 for r in done if r.fold == f]
        if acc:
            m, s = _mean_std(acc)
            out["folds"][f] = {"top1": m, "top1_std": s, "runs": len(acc),
                               "num_test": next(r.num_test for r in done if r.fold == f)}
    for seed in seeds:
        acc = [r.top1 for r in done if r.seed == seed]
        if len(acc) == len(folds):  # a seed counts once all its folds are in
            out["seeds"][str(seed)] = float(np.mean(acc))
    if done:
        fold_means = [v["top1"] for v in out["folds"].values()]
        seed_means = list(out["seeds"].values())
        out["top1"] = float(np.mean([r.top1 for r in done]))
        out["top5"] = float(np.mean([r.top5 for r in done]))
        out["mean_class_acc"] = float(np.mean([r.mean_class_acc for r in done]))
        out["top1_std_seeds"] = _mean_std(seed_means)[1] if len(seed_means) > 1 else None
        out["top1_std_folds"] = _mean_std(fold_means)[1] if len(fold_means) > 1 else None
        out["train_time_s"] = round(sum(r.train_time_s or 0.0 for r in done), 1)
        walls = [r.wall_s for r in done if r.wall_s is not None]
        out["wall_s_per_run"] = round(float(np.mean(walls)), 1) if walls else None
    return out


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _models_text(base: RunConfig, streams: Sequence[str]) -> str:
    """What one run is: a model, fused streams, or a seed ensemble (``streams`` as :func:`_members`)."""
    if base.train.ensemble > 1:
        return (f"stream {base.data.stream}, a seed ensemble of {base.train.ensemble} models per run "
                "(softmax scores averaged)")
    return f"stream(s) {', '.join(streams)}{' (fused)' if len(streams) > 1 else ''}"


def markdown(result: CVResult, protocol: Protocol, base: RunConfig, streams: Sequence[str]) -> str:
    s = result.summary
    seeds = sorted({r.seed for r in result.runs})
    lines = [f"# Cross-validation: {result.dataset}, protocol `{protocol.name}`", "",
             f"{protocol.description}.", "",
             f"Data `{base.data.path}`; recipe `{base.recipe or 'custom'}` ({base.model.name}, {base.train.epochs} "
             f"epochs, {base.optimizer.name} lr {base.optimizer.lr}); {_models_text(base, streams)}; seeds {seeds}. "
             "Accuracy of the final model of each run on its test split (no epoch chosen on it); resolved "
             "settings in `config.yaml`.", ""]
    if not s["complete"]:
        lines += [f"**Incomplete: {s['done']} of {s['runs']} runs finished** (run the same command again).", ""]
    if s["done"]:
        std_s, std_f = s.get("top1_std_seeds"), s.get("top1_std_folds")
        lines += [f"**top-1 {_pct(s['top1'])} %** ± {_pct(std_s)} over seeds (std of the per-seed means over "
                  f"folds), ± {_pct(std_f)} over folds (std of the per-fold means over seeds); top-5 "
                  f"{_pct(s['top5'])} %, mean class accuracy {_pct(s['mean_class_acc'])} %. Training time "
                  f"{s['train_time_s']:.0f} s in all"
                  + (f", {s['wall_s_per_run']:.0f} s wall per run." if s.get("wall_s_per_run") else "."), ""]
    if protocol.reference:
        lines += [f"Published on this protocol: {protocol.reference}.", ""]
    lines += ["| fold | test clips | " + " | ".join(f"seed {k}" for k in seeds) + " | mean ± std |",
              "| --- | ---: | " + " | ".join("---:" for _ in seeds) + " | ---: |"]
    by = {(r.fold, r.seed): r for r in result.runs}
    for f in dict.fromkeys(r.fold for r in result.runs):
        cells = [_pct(by[(f, k)].top1) if by[(f, k)].status == "done" else "pending" for k in seeds]
        st = s["folds"].get(f)
        agg = f"{_pct(st['top1'])} ± {_pct(st['top1_std'])}" if st else "–"
        n = st["num_test"] if st else "–"
        lines.append(f"| {f} | {n} | " + " | ".join(cells) + f" | {agg} |")
    seed_cells = [_pct(s["seeds"].get(str(k))) for k in seeds]
    lines += ["| **mean over folds** | | " + " | ".join(seed_cells) + f" | {_pct(s.get('top1'))} |", "",
              "![per-fold accuracy](cv.png)", "", "![pooled confusion](confusion.png)", ""]
    return "\n".join(lines)


def _pooled_confusion(runs: Sequence[CVRun], streams: Sequence[str], num_classes: int) -> np.ndarray:
    from .. import metrics as M
    from ..fusion import load_scores

    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for r in runs:
        if r.status == "done":
            sf = load_scores(_run_files(Path(r.out), streams)[1])
            cm += M.confusion_matrix(sf.labels, sf.scores.argmax(1), num_classes)
    return cm


def write_report(result: CVResult, protocol: Protocol, base: RunConfig, out: Path, streams: Sequence[str],
                 store) -> dict:
    from ..checkpoint import atomic_write_text
    from ..plots import plot_confusion, plot_cv

    files = {"report": out / "cv.md", "json": out / "cv.json", "plot": out / "cv.png",
             "confusion": out / "confusion.png", "config": out / "config.yaml"}
    doc = {"dataset": result.dataset, "protocol": protocol.name, "description": protocol.description,
           "reference": protocol.reference, "streams": list(streams), "ensemble": base.train.ensemble,
           "summary": result.summary,
           "runs": [asdict(r) for r in result.runs]}
    atomic_write_text(files["json"], json.dumps(doc, indent=2) + "\n")
    atomic_write_text(files["report"], markdown(result, protocol, base, streams))
    plot_cv([asdict(r) for r in result.runs], files["plot"],
            title=f"{result.dataset} {protocol.name}: top-1 per fold")
    class_names = list(store.class_names)
    plot_confusion(_pooled_confusion(result.runs, streams, len(class_names)), class_names, files["confusion"],
                   title=f"{result.dataset} {protocol.name}: confusion pooled over folds and seeds")
    return {k: str(v) for k, v in files.items()}
