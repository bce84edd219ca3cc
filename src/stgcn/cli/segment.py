"""``stgcn segment``: per-person action segments of an untrimmed skeleton sequence, online.

    stgcn segment INPUT --checkpoint CKPT [--out segments.json] [--labels gt.csv]
    stgcn segment --benchmark utkinect --out DIR [--data PATH] [--recipe small] [--methods class]

INPUT is a ``.npy`` array (T, V, C) or (M, T, V, C), a UTKinect ``joints_sSS_eEE.txt[.gz]``
recording, or any file ``stgcn.load_sample`` reads. Each person (array index) is segmented frame
by frame as a live stream would be; the JSON holds ``people``: person -> list of ``{label, start,
end, score, decided_at}`` (0-based inclusive frames; ``decided_at`` is the frame whose window
decided the segment), and a timeline picture is written beside it. ``--labels`` (a CSV of
``label,start,end``) adds the segmentation metrics and the ground truth to the picture.

The segmenter's settings come from the checkpoint (``meta["segmenter"]``, which the benchmark
calibrates and writes into ``DIR/segmenter.pt``, with its temporal head when it chose one);
``--set key=value`` overrides them (``--set head=false``: without the head).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from . import add_precision_argument

UTK_SEQUENCE = re.compile(r"^joints_s\d\d_e\d\d\.txt(\.gz)?$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="action segments {label, start, end} per person of an untrimmed sequence",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", help="skeleton sequence (.npy (T,V,C)/(M,T,V,C), UTKinect joints file, "
                                            "or any load_sample file)")
    p.add_argument("--checkpoint", help="stgcn checkpoint (a benchmark's segmenter.pt carries calibrated settings)")
    p.add_argument("--out", help="segments JSON to write (the timeline picture goes beside it, .png); with "
                                 "--benchmark the output folder")
    p.add_argument("--labels", help="ground truth: CSV of label,start,end (0-based inclusive frames)")
    p.add_argument("--format", help="reader of INPUT when its name does not tell (see stgcn.load_sample)")
    p.add_argument("--fps", type=float, help="frame rate for delays in seconds (default: the input's frame ids, "
                                             "else the segmenter's calibration rate, else 30)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a segmenter setting (window, stride, lookahead, smoothing, threshold, "
                        "background, background_weight, hysteresis, min_length, min_fraction, class_lengths, "
                        "head)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    add_precision_argument(p)
    g = p.add_argument_group("benchmark")
    g.add_argument("--benchmark", choices=["utkinect"], help="run the UTKinect untrimmed benchmark into --out")
    g.add_argument("--data", help="UTKinect folder (default: ../shared/data/utkinect_action3d, else bundled)")
    g.add_argument("--recipe", default="small", help="training recipe (default small)")
    g.add_argument("--epochs", type=int, help="override the recipe's epochs")
    g.add_argument("--train-set", dest="train_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe setting for the benchmark's trainings (repeatable)")
    g.add_argument("--methods", default="windows",
                   help="comma-separated: windows (a model of windows labelled frame-wise, noAction included), "
                        "class (trimmed clips + a noAction class of transition pieces), threshold (trimmed clips, "
                        "a calibrated confidence threshold); the best out-of-fold one is kept (default windows)")
    g.add_argument("--window", type=int, default=12, help="windows method: rows per window (default 12)")
    g.add_argument("--lookahead", type=int,
                   help="windows method: the window ending at row t labels row t - LOOKAHEAD (default 3; 0 with "
                        "--causal)")
    g.add_argument("--causal", action="store_true",
                   help="train causal models (temporal convolutions over past frames only), no look-ahead")
    g.add_argument("--window-stride", type=int, default=2,
                   help="windows method: a training window every N rows of the recordings (default 2)")
    g.add_argument("--no-head", dest="head", action="store_false",
                   help="no temporal head (by default a causal temporal head over the window probabilities is "
                        "trained on the training recordings' frame labels and kept when it scores better "
                        "out-of-fold)")
    g.add_argument("--head-members", type=int,
                   help="temporal heads trained side by side and averaged (an ensemble in one head; default "
                        "HeadTraining's)")
    g.add_argument("--max-delay", type=float, default=1.0, help="mean decision delay allowed in calibration (s)")
    p.set_defaults(func=run)


def _config(meta: dict, overrides: list[str], model=None):
    import yaml

    from ..errors import ConfigError
    from ..inference.segmenter import SegmenterConfig

    doc = SegmenterConfig.for_model(meta, model).to_json()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        doc[key.strip()] = yaml.safe_load(value)
    try:
        return SegmenterConfig.from_json(doc, where="--set" if overrides else "checkpoint meta 'segmenter'")
    except TypeError as exc:
        raise ConfigError(f"segmenter settings: {exc}") from None


def load_input(path: Path, format: str | None):
    from ..data.formats.kinect import read_utkinect_sequence
    from ..data.streams import load_sequence

    if format is None and UTK_SEQUENCE.match(path.name):
        return read_utkinect_sequence(path)
    return load_sequence(path, format)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    if args.benchmark:
        return _benchmark(args)
    if not args.input or not args.checkpoint:
        raise ConfigError("give INPUT and --checkpoint (or --benchmark utkinect --out DIR)")
    return _segment(args)


def _segment(args: argparse.Namespace) -> int:
    import sys

    import torch

    from ..inference.predictor import Predictor
    from ..inference.segmenter import OnlineSegmenter, present_frames

    torch.set_num_threads(max(1, args.threads))
    predictor = Predictor.from_checkpoint(args.checkpoint, precision=args.precision)
    config = _config(predictor.meta, args.overrides, predictor.model)
    if not predictor.meta.get("segmenter") and not args.overrides:
        print("note: the checkpoint carries no calibrated segmenter settings (meta['segmenter']); using the "
              "defaults. `stgcn segment --benchmark utkinect` writes a calibrated segmenter.pt", file=sys.stderr)
    path = Path(args.input)
    sample = load_input(path, args.format)
    truth = None
    if args.labels:
        from ..data.streams import read_segments_csv

        truth = read_segments_csv(args.labels, predictor.class_names, sample.num_frames)
    people = sample.keypoint  # (M, T, V, C)
    present = [present_frames(p) for p in people]
    online = OnlineSegmenter(predictor, config)
    for t in range(sample.num_frames):
        online.update(t, {str(m): people[m, t] for m in range(len(people)) if present[m][t]})
    online.finish()
    found = {str(m): online.tracks[str(m)].decided if str(m) in online.tracks else [] for m in range(len(people))}
    times = _times(sample, args.fps, config.fps)
    doc = _document(path, args.checkpoint, config, found, times, online.latencies_ms)
    doc["precision"] = predictor.precision
    if truth is not None:
        doc["metrics"] = _metrics(found, truth, predictor.class_names, sample.num_frames, times)
        doc["ground_truth"] = [s.to_json() for s in truth]
    _print(doc, config)
    if args.out:
        _write(Path(args.out), doc, found, truth, predictor.class_names, sample.num_frames)
    return 0


def _times(sample, fps: float | None, default_fps: float | None = None):
    """Seconds of each frame: ``--fps`` when given, else the file's own frame ids (UTKinect), else
    the rate the segmenter was calibrated at, else 30 fps."""
    import numpy as np

    from ..data.formats.kinect import UTK_FPS

    ids = (sample.meta or {}).get("frame_ids")
    if fps is None and ids is not None and len(ids) == sample.num_frames:
        return np.asarray(ids, dtype=np.float64) / float(sample.meta.get("fps", UTK_FPS))
    return np.arange(sample.num_frames) / float(fps or default_fps or 30.0)


def _document(path, checkpoint, config, found, times, latencies) -> dict:
    import numpy as np

    lat = np.asarray(latencies or [0.0])
    return {"input": str(path), "checkpoint": str(checkpoint),
            "segmenter": {**config.to_json(), "lookahead_s": config.lookahead_s},
            "num_frames": int(len(times)), "people": {k: [d.to_json(times) for d in v] for k, v in found.items()},
            "latency_ms": {"updates": len(latencies), "median": round(float(np.median(lat)), 3),
                           "p95": round(float(np.percentile(lat, 95)), 3), "max": round(float(lat.max()), 3)}}


def _metrics(found, truth, class_names, num_frames, times) -> dict:
    from ..segmentation import SegmentationScores, matches, to_frames

    true = to_frames(truth, num_frames, class_names)
    out = {}
    for key, decided in found.items():
        pred = to_frames([d.segment for d in decided], num_frames, class_names)
        scores = SegmentationScores()
        m = scores.add(pred, true)
        delays = [float(times[decided[i].decided_at] - times[truth[j].end]) for i, j in matches(pred, true, 0.5)]
        m["delay_after_truth_s"] = sum(delays) / len(delays) if delays else None
        out[key] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in m.items()}
    return out


def _print(doc: dict, config) -> None:
    for key, segs in doc["people"].items():
        print(f"person {key}: {len(segs)} segments")
        for s in segs:
            print(f"  {s['label']:<14} {s['start']:>6}-{s['end']:<6} score {s['score']:.2f}  "
                  f"decided at frame {s['decided_at']} (+{s['delay_s']:.2f} s)")
    for key, m in (doc.get("metrics") or {}).items():
        print(f"person {key} vs --labels: frame-wise {m['accuracy']:.1f}%  edit {m['edit']:.1f}  "
              f"F1@10 {m['f1@10']:.1f}  F1@25 {m['f1@25']:.1f}  F1@50 {m['f1@50']:.1f}")
    print(config.describe_lookahead() + " (a frame is labelled by the window ending that many frames later)")
    lat = doc["latency_ms"]
    print(f"latency per update (window input + model + decisions): median {lat['median']:.2f} ms, "
          f"p95 {lat['p95']:.2f} ms over {lat['updates']} frames")


def _write(out: Path, doc: dict, found, truth, class_names, num_frames: int) -> None:
    from ..atomic import atomic_write_text
    from ..plots import plot_timeline

    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for key, decided in found.items():
        rows.append((f"person {key}", [d.segment for d in decided]))
        if truth is not None:
            rows.append(("ground truth", truth))
    plot_timeline(rows, class_names, num_frames, out.with_suffix(".png"),
                  title=f"Segments of {Path(doc['input']).name}")
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out} and {out.with_suffix('.png')}")


def _benchmark(args: argparse.Namespace) -> int:
    from ..engine.segment_benchmark import METHODS, BenchmarkSettings, run_benchmark
    from ..errors import ConfigError

    if not args.out:
        raise ConfigError("--benchmark needs --out DIR")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ConfigError(f"--methods: {bad or args.methods!r} not in {list(METHODS)}")
    from ..engine.temporal_head import HeadTraining

    s = BenchmarkSettings(out=Path(args.out), data=args.data, recipe=args.recipe, overrides=list(args.train_overrides),
                          head=(HeadTraining(**({} if args.head_members is None else {"members": args.head_members}))
                                if args.head else None),
                          epochs=args.epochs, methods=methods, max_delay_s=args.max_delay, threads=max(1, args.threads),
                          window=args.window, window_stride=args.window_stride, causal=args.causal,
                          lookahead=args.lookahead if args.lookahead is not None else (0 if args.causal else 3))
    run_benchmark(s)
    return 0
