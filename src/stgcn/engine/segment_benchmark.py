"""The UTKinect untrimmed-stream benchmark: train on the training subjects, segment the test
subjects' whole recordings online.

Protocol (cross-subject, as the clip benchmark): subjects 1, 3, 5, 7, 9 train, 2, 4, 6, 8, 10 test.

1. A store per method, with nothing of the test subjects in its training split:
   ``windows`` (default): every ``window_stride``-th window of ``window`` rows of the training
   subjects' recordings, labelled by the row ``lookahead`` before its end (transitions as an
   extra "noAction" class), i.e. a model trained for frame-wise labels;
   ``class``: their trimmed action clips plus transition pieces as "noAction";
   ``threshold``: their trimmed action clips only (background where the smoothed top probability
   is below a calibrated threshold).
2. One model on all training subjects and, for calibration, one per training subject left out.
3. Calibration on the training subjects only: each left-out subject's recordings are scored by
   the model that did not see them (out-of-fold), and the segmenter's settings are chosen on those
   (``stgcn.inference.segment_calibration.calibrate``, mean decision delay <= ``max_delay_s``).
3b. With ``head`` (default; methods with a "noAction" class): a causal temporal head
   (:mod:`stgcn.models.temporal_head`) over those out-of-fold window probabilities, trained on the
   recordings' frame labels; the segmenter is calibrated again on the probabilities of heads that
   did not see the subject either (one head per training subject left out), and the variant with
   the better out-of-fold objective is kept. The head kept is trained on all training subjects.
4. Test: the full model and the calibrated segmenter over the test subjects' 10 untrimmed
   recordings, frame by frame as the live path; frame-wise accuracy (transitions as background),
   edit, F1@{10,25,50}, delays, and the latency of one update (window input + model + decisions).

With several methods (and the head), the variant with the best out-of-fold objective is kept
(never a test figure); the report gives the test figures of every variant.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..segmentation import BACKGROUND
from .temporal_head import HeadTraining

TRAIN_SUBJECTS = (1, 3, 5, 7, 9)
TEST_SUBJECTS = (2, 4, 6, 8, 10)
METHODS = ("windows", "class", "threshold")
BACKGROUND_CLASS = "noAction"


@dataclass
class BenchmarkSettings:
    out: Path
    data: str | None = None
    """UTKinect folder (default: ../shared/data/utkinect_action3d, else the bundled copy)."""
    recipe: str = "small"
    overrides: list[str] = field(default_factory=list)
    """``--set key=value`` for the recipe."""
    epochs: int | None = None
    methods: tuple[str, ...] = ("windows",)
    window: int = 12
    """``windows`` method: rows per window (the model's clip length)."""
    lookahead: int = 3
    """``windows`` method: the window ending at row t labels row t - lookahead."""
    window_stride: int = 2
    """``windows`` method: every how many rows of the training recordings a training window ends."""
    window_epochs: int = 10
    """``windows`` method: epochs when ``epochs`` is not given (its ~3,500 windows need fewer passes
    than the recipe's 100 clips)."""
    causal: bool = False
    """Train causal models (temporal convolutions over past frames only) and stream with no
    look-ahead: the window ending at row t labels row t."""
    head: HeadTraining | None = field(default_factory=HeadTraining)
    """Also train and calibrate a temporal head with these settings, kept when it scores better
    out-of-fold (None: window probabilities straight to the segmenter)."""
    max_delay_s: float = 1.0
    threads: int = 1
    """torch threads for training and scoring (1 is fastest on a small, busy CPU)."""
    log: Callable[[str], None] = print


# ------------------------------------------------------------------------------------------- store


def _splits(subject: int) -> tuple[str, ...]:
    if subject not in TRAIN_SUBJECTS:
        return ("xsub_test",)
    folds = tuple(f"f{s}_val" if s == subject else f"f{s}_train" for s in TRAIN_SUBJECTS)
    return ("xsub_train",) + folds


def background_pieces(stream, length: int) -> list[tuple[int, int]]:
    """Row ranges cutting each transition of ``stream`` into pieces of about ``length`` rows
    (pieces under 5 rows, the shortest action, are left out)."""
    frames = stream.frame_labels()
    bg = np.concatenate([[False], frames == BACKGROUND, [False]])
    edges = np.flatnonzero(np.diff(bg.astype(np.int8)))
    out = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        cuts = np.linspace(a, b, max(1, round((b - a) / length)) + 1).astype(int)
        out += [(int(lo), int(hi) - 1) for lo, hi in zip(cuts[:-1], cuts[1:], strict=True) if hi - lo >= 5]
    return out


def _item(stream, lo: int, hi: int, label: int, name: str):
    """A clip of rows ``lo..hi`` of a UTKinect recording (read by frame ids, as the clip reader does)."""
    from ..data.sources import SourceItem

    ids = stream.sample.meta["frame_ids"]
    return SourceItem(name, stream.meta["file"], label, _splits(stream.meta["subject"]), "utkinect",
                      {"start": float(ids[lo]), "end": float(ids[hi]), "dedupe": True})


def method_items(method: str, s: BenchmarkSettings, num_actions: int) -> list:
    """Training clips of a method beyond the trimmed segments: transition pieces (``class``) or
    every ``window_stride``-th window of the recordings labelled by its decided frame (``windows``;
    the test subjects' windows, at a stride of 8, only measure the model)."""
    from ..data.streams import utkinect_streams

    items = []
    streams = utkinect_streams(s.data)
    if method == "class":
        train = [st for st in streams if st.meta["subject"] in TRAIN_SUBJECTS]
        length = int(np.median([g.length for st in train for g in st.segments]))
        for st in train:
            items += [_item(st, lo, hi, num_actions, f"{st.name}_{BACKGROUND_CLASS}{k}")
                      for k, (lo, hi) in enumerate(background_pieces(st, length))]
    elif method == "windows":
        for st in streams:
            labels = np.where(st.frame_labels() == BACKGROUND, num_actions, st.frame_labels())
            step = s.window_stride if st.meta["subject"] in TRAIN_SUBJECTS else 8
            items += [_item(st, max(0, t - s.window + 1), t, int(labels[t - s.lookahead]), f"{st.name}_t{t}")
                      for t in range(s.lookahead, st.num_frames, step)]
    return items


def build_store(method: str, s: BenchmarkSettings) -> Path:
    """The store a method trains on, with the cross-subject and fold splits."""
    from ..data.prepare import prepare_source
    from ..data.sources import DatasetSource, open_source
    from ..data.store import open_store

    src = open_source("utkinect", s.data)
    names = list(src.class_names)
    # trimmed segments; the test subjects' ones only measure the classifier (split xsub_test)
    items = [] if method == "windows" else [replace(it, splits=_splits(int(it.name[1:3]))) for it in src.items]
    items += method_items(method, s, len(names))
    if method != "threshold":
        names.append(BACKGROUND_CLASS)
    path = s.out / method / "data"
    try:
        open_store(path)
    except Exception:  # noqa: BLE001 - not prepared yet (or incomplete): prepare resumes/rebuilds it
        splits = ["xsub_train", "xsub_test"] + [f"f{k}_{p}" for k in TRAIN_SUBJECTS for p in ("train", "val")]
        prepare_source(DatasetSource("utkinect", "kinect-v1", names, items, splits, [], src.meta), path,
                       workers=1, progress=False)
    n_train = sum("xsub_train" in it.splits for it in items)
    s.log(f"{method}: store {path}: {n_train} training clips of the training subjects, classes {names}")
    return path


# ------------------------------------------------------------------------------------------ models


def train_model(store: Path, split: str, val: str, out: Path, s: BenchmarkSettings, clip_len: int | None) -> Path:
    """Train with the recipe (its ``uniform_sample`` set to ``clip_len`` frames when given); returns
    the final model, ``final.pt``."""
    from ..checkpoint import load_model
    from ..engine import train
    from ..engine.config import apply_overrides, load_recipe

    final = out / "checkpoints" / "final.pt"
    # Without label smoothing (``small`` has it since the third accuracy round): the calibrated
    # thresholds and the temporal head read these probabilities, and every figure in
    # docs/segmentation.md was measured with unsmoothed window models; --set overrides it.
    cfg = apply_overrides(load_recipe(s.recipe), ["train.label_smoothing=0", *s.overrides])
    if s.epochs or clip_len is not None:
        cfg.train.epochs = s.epochs or s.window_epochs
    if clip_len is not None:
        for spec in cfg.data.train_pipeline + cfg.data.test_pipeline:
            if spec["name"] in ("uniform_sample", "resample"):
                spec["clip_len"] = clip_len
    if s.causal:
        cfg.model.kwargs = {**cfg.model.kwargs, "causal": True}
    if final.exists():
        _, meta = load_model(final)
        if meta.get("epoch") == cfg.train.epochs:
            return final
    cfg.data.path, cfg.data.train_split, cfg.data.val_split = str(store), split, val
    cfg.train.out, cfg.train.overwrite = str(out), True
    cfg.train.eval_every = cfg.train.epochs  # one evaluation, after the last epoch (nothing is picked)
    cfg.train.num_threads, cfg.train.progress, cfg.train.tensorboard = s.threads, False, False
    t0 = time.perf_counter()
    res = train(cfg.validate())
    s.log(f"trained {out.name} on {split}: {res.metrics['final']['top1']:.1%} top-1 on {val} "
          f"({time.perf_counter() - t0:.0f} s)")
    return res.files["final"]


def _predictor(path: Path, threads: int):
    import torch

    from ..inference.predictor import Predictor

    torch.set_num_threads(threads)
    return Predictor.from_checkpoint(path)


# ------------------------------------------------------------------------------------- one method


def run_method(method: str, s: BenchmarkSettings) -> list[dict]:
    """Train, calibrate out-of-fold and test one method; returns its variants (without and, for a
    method with a "noAction" class and ``s.head``, with the temporal head): results and paths."""
    from ..data.streams import utkinect_streams
    from ..inference.segment_calibration import GRID, calibrate, class_lengths, window_probabilities
    from ..inference.segmenter import SegmenterConfig

    store = build_store(method, s)
    clip_len = s.window if method == "windows" else None
    full = train_model(store, "xsub_train", "xsub_test", s.out / method / "full", s, clip_len)
    folds = {subj: train_model(store, f"f{subj}_train", f"f{subj}_val", s.out / method / f"fold{subj}", s, clip_len)
             for subj in TRAIN_SUBJECTS}
    train = utkinect_streams(s.data, subjects=TRAIN_SUBJECTS)
    names = _predictor(full, s.threads).class_names
    cache: dict[int, list[np.ndarray]] = {}

    def oof(window: int) -> list[np.ndarray]:
        if window not in cache:
            t0 = time.perf_counter()
            by_name = {}
            for subj, ckpt in folds.items():
                mine = [st for st in train if st.meta["subject"] == subj]
                by_name.update(zip([st.name for st in mine],
                                   window_probabilities(_predictor(ckpt, s.threads), mine, window), strict=True))
            cache[window] = [by_name[st.name] for st in train]
            s.log(f"{method}: out-of-fold windows of {window} frames scored ({time.perf_counter() - t0:.0f} s)")
        return cache[window]

    grid = dict(GRID)
    if method == "windows":  # the model was trained for this window and look-ahead
        start = SegmenterConfig(window=s.window, lookahead=s.lookahead, smoothing=1, threshold=0.0, hysteresis=2,
                                min_length=3, background=BACKGROUND_CLASS, class_lengths=class_lengths(train, names))
        grid["window"], grid["lookahead"] = (s.window,), (s.lookahead,)
    else:
        start = SegmenterConfig(window=16, lookahead=4, smoothing=3, threshold=0.0 if method == "class" else 0.5,
                                hysteresis=2, min_length=3, class_lengths=class_lengths(train, names),
                                background=BACKGROUND_CLASS if method == "class" else None)
    config, calib, trials = calibrate(train, oof, names, start=(start, plain(start)), max_delay_s=s.max_delay_s,
                                      grid=grid, log=lambda m: s.log(f"{method}: {m}"))
    test = utkinect_streams(s.data, subjects=TEST_SUBJECTS)
    test_probs = window_probabilities(_predictor(full, s.threads), test, config.window)
    common = {"checkpoint": full, "streams": test, "names": names}
    variants = [_variant(method, config, calib, trials, test, test_probs, None, common)]
    if s.head is not None and config.background is not None:
        variants.append(_head_variant(method, config, train, oof(config.window), test, test_probs, s, common))
    return variants


def _variant(name: str, config, calib: dict, trials: list, test, test_probs, head, common: dict) -> dict:
    """Test figures of calibrated settings (``head``: test probabilities already refined by it)."""
    from ..inference.segment_calibration import evaluate, objective

    metrics, per_stream = evaluate(config.replace(head=False), test, test_probs, common["names"])
    return {"method": name, "config": config, "calibration": calib, "calibration_objective": objective(calib),
            "trials": trials, "test": metrics, "per_stream": per_stream, "head": head, **common}


def plain(config):
    """Settings that label every frame by its own top class (one of the calibration's starts: its
    coordinate ascent ends in a local optimum, which depends on where it starts)."""
    return config.replace(smoothing=1, threshold=0.0, hysteresis=1, min_length=1, background_weight=1.0,
                          min_fraction=0.0)


def frame_targets(stream, names: Sequence[str]) -> np.ndarray:
    """(T,) class indices of ``names`` per frame, the transitions as the "noAction" class."""
    frames = stream.frame_labels()
    return np.where(frames == BACKGROUND, list(names).index(BACKGROUND_CLASS), frames)


def _head_variant(method: str, config, train, oof_probs: list[np.ndarray], test, test_probs, s: BenchmarkSettings,
                  common: dict) -> dict:
    """The temporal head: calibrated on the probabilities of heads that did not see the subject,
    tested with the head trained on every training subject."""
    from ..inference.segment_calibration import GRID, calibrate
    from .temporal_head import fit_head

    t0 = time.perf_counter()
    labels = [frame_targets(st, common["names"]) for st in train]
    refined: list[np.ndarray | None] = [None] * len(train)
    for subj in TRAIN_SUBJECTS:
        mine = [i for i, st in enumerate(train) if st.meta["subject"] == subj]
        rest = [i for i, st in enumerate(train) if st.meta["subject"] != subj]
        head = fit_head([oof_probs[i] for i in rest], [labels[i] for i in rest], config.lookahead, s.head)
        for i in mine:
            refined[i] = head.probabilities(oof_probs[i])
    s.log(f"{method}+head: 5 out-of-fold heads of {s.head.members} member(s) trained "
          f"({time.perf_counter() - t0:.0f} s)")
    grid = {**GRID, "window": (config.window,), "lookahead": (config.lookahead,)}
    # from the plain settings and from those calibrated for the windows alone
    cfg, calib, trials = calibrate(train, lambda _: refined, common["names"], start=(plain(config), config),
                                   max_delay_s=s.max_delay_s, grid=grid, log=lambda m: s.log(f"{method}+head: {m}"))
    head = fit_head(oof_probs, labels, config.lookahead, s.head)
    return _variant(f"{method}+head", cfg.replace(head=True), calib, trials, test,
                    [head.probabilities(p) for p in test_probs], head, common)


# ------------------------------------------------------------------------------------------ the run


def row_rate(streams: Sequence) -> float:
    """Skeleton rows per second over ``streams`` (UTKinect records only tracked frames)."""
    rows = sum(st.num_frames for st in streams)
    seconds = sum(float(st.times[-1] - st.times[0]) for st in streams)
    return rows / seconds


def measure_latency(checkpoint: Path, stream, threads: int) -> dict:
    """Per-update latency of the live path over one recording with a checkpoint's calibrated
    settings: window input, model, temporal head, decisions."""
    from ..inference.segmenter import OnlineSegmenter, SegmenterConfig

    predictor = _predictor(checkpoint, threads)
    online = OnlineSegmenter(predictor, SegmenterConfig.for_model(predictor.meta, predictor.model))
    person = stream.sample.keypoint[0]
    for t in range(len(person)):
        online.update(t, {"0": person[t]})
    online.finish()
    lat = np.asarray(online.latencies_ms[5:])  # the first calls warm up torch
    return {"stream": stream.name, "updates": int(lat.size), "median_ms": float(np.median(lat)),
            "p95_ms": float(np.percentile(lat, 95)), "max_ms": float(lat.max()), "threads": threads}


def run_benchmark(s: BenchmarkSettings) -> dict:
    """Every method of ``s.methods``, the better one (out-of-fold) saved as ``segmenter.pt``."""
    from ..atomic import atomic_write_text
    from ..runtime import flushing_denormals

    unknown = [m for m in s.methods if m not in METHODS]
    if unknown or not s.methods:
        raise ConfigError(f"benchmark methods {list(s.methods)}: each must be one of {list(METHODS)}")
    if s.causal and s.lookahead != 0:
        raise ConfigError(f"a causal benchmark streams with no look-ahead; found lookahead {s.lookahead}")
    s.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with flushing_denormals():
        results = [v for m in s.methods for v in run_method(m, s)]
        best = max(results, key=lambda r: r["calibration_objective"])
        _save_segmenter(s.out / "segmenter.pt", best, s)
        latency = measure_latency(s.out / "segmenter.pt", best["streams"][0], s.threads)
    summary = {"protocol": "UTKinect-Action3D untrimmed recordings, cross-subject: subjects 1,3,5,7,9 train "
                           "(trimmed clips; calibration out-of-fold), 2,4,6,8,10 test (10 whole recordings)",
               "recipe": s.recipe, "overrides": list(s.overrides), "epochs": s.epochs, "window_epochs": s.window_epochs,
               "window_stride": s.window_stride, "causal": s.causal, "chosen": best["method"],
               "head": None if s.head is None else asdict(s.head),
               "max_delay_s": s.max_delay_s, "latency": latency, "wall_time_s": round(time.perf_counter() - t0, 1),
               "methods": {r["method"]: _method_summary(r) for r in results}}
    _write_streams(s.out / "streams", best)
    atomic_write_text(s.out / "metrics.json", json.dumps(summary, indent=1) + "\n")
    atomic_write_text(s.out / "report.md", report(summary))
    for r in results:
        method, plus, _ = r["method"].partition("+")
        atomic_write_text(s.out / method / f"calibration_trials{'_head' if plus else ''}.json",
                          json.dumps(r["trials"], indent=1) + "\n")
    s.log(report(summary))
    return summary


def _method_summary(r: dict) -> dict:
    from ..checkpoint import load_model

    _, meta = load_model(r["checkpoint"])
    clip = (meta.get("val_metrics") or {}).get("top1")
    return {"config": r["config"].to_json(), "calibration": _round(r["calibration"]),
            "calibration_objective": round(r["calibration_objective"], 2), "test": _round(r["test"]),
            "test_clip_top1": None if clip is None else round(100 * clip, 2),
            "per_stream": {p.name: _round(p.scores) for p in r["per_stream"]}, "checkpoint": str(r["checkpoint"])}


def _round(d: dict) -> dict:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}


def _save_segmenter(path: Path, best: dict, s: BenchmarkSettings) -> None:
    """The chosen variant's window model with its settings (and temporal head) in the meta."""
    from ..checkpoint import load_model, save_model

    model, meta = load_model(best["checkpoint"])
    rate = row_rate(best["streams"])
    config = best["config"].replace(fps=round(rate, 2))
    head = {} if best["head"] is None else {"segmenter_head": best["head"].to_meta()}
    save_model(path, model, {**meta, "segmenter": config.to_json(), **head,
                             "segmenter_benchmark": {"chosen": best["method"], "recipe": s.recipe,
                                                     "test": _round(best["test"])}})


def _write_streams(folder: Path, best: dict) -> None:
    """Per test recording: predicted segments (JSON), ground truth (CSV), timeline (PNG)."""
    from ..atomic import atomic_write_text
    from ..data.streams import write_segments_csv
    from ..plots import plot_timeline

    folder.mkdir(parents=True, exist_ok=True)
    for st, res in zip(best["streams"], best["per_stream"], strict=True):
        segs = [d.segment for d in res.decided]
        doc = {"stream": st.name, "people": {"0": [{**d.segment.to_json(), "decided_at": d.decided_at}
                                                   for d in res.decided]},
               "metrics": _round(res.scores), "ground_truth": [g.to_json() for g in st.segments]}
        atomic_write_text(folder / f"{st.name}.json", json.dumps(doc, indent=1) + "\n")
        write_segments_csv(folder / f"{st.name}.csv", st.segments)
        plot_timeline([("predicted", segs), ("ground truth", st.segments)], best["names"], st.num_frames,
                      folder / f"{st.name}.png", title=f"UTKinect {st.name} (test subject {st.meta['subject']})")


def report(summary: dict) -> str:
    """The benchmark's report (Markdown)."""
    lines = ["# UTKinect untrimmed-stream segmentation", "", summary["protocol"] + ".", "",
             f"Recipe `{summary['recipe']}`" + (f" with {summary['overrides']}" if summary["overrides"] else "")
             + (f", {summary['epochs']} epochs" if summary["epochs"] else "") + f"; chosen method: "
             f"**{summary['chosen']}** (better out-of-fold objective on the training subjects).", "",
             "| method | model top-1 on test clips | frame-wise | edit | F1@10 | F1@25 | F1@50 | decision delay | "
             "delay after true end | segments | calibration objective (train, out-of-fold) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, m in summary["methods"].items():
        t = m["test"]
        clip = "" if m["test_clip_top1"] is None else f"{m['test_clip_top1']:.1f} %"
        lines.append(f"| {name} | {clip} | {t['accuracy']:.1f} % | {t['edit']:.1f} | {t['f1@10']:.1f} | "
                     f"{t['f1@25']:.1f} | {t['f1@50']:.1f} | {t['delay_s']:.2f} s | {t['delay_after_truth_s']:.2f} s | "
                     f"{t['segments']} | {m['calibration_objective']:.1f} |")
    lines += ["", "Frame errors (share of all test frames): " + "; ".join(
        f"{name}: action frames predicted as no action {m['test']['missed_action_frames']:.1f} %, no-action "
        f"frames predicted as an action {m['test']['false_action_frames']:.1f} %, action frames predicted as "
        f"another action {m['test']['wrong_action_frames']:.1f} %"
        for name, m in summary["methods"].items()) + "."]
    lat = summary["latency"]
    lines += ["", f"Latency per update (window input + model + decisions, {lat['threads']} thread, over the "
              f"{lat['updates']} frames of {lat['stream']}): median {lat['median_ms']:.2f} ms, p95 "
              f"{lat['p95_ms']:.2f} ms, max {lat['max_ms']:.2f} ms.", "",
              "Settings chosen per method (frames of the recording):", ""]
    for name, m in summary["methods"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k}={v}" for k, v in m["config"].items() if v is not None))
    lines += ["", f"Wall time {summary['wall_time_s'] / 60:.1f} min. Decision delay: time from a segment's last "
              "frame to the frame whose window decided it; delay after true end: the same from the end of the "
              "true segment it matches at IoU >= 0.5.", ""]
    return "\n".join(lines)
