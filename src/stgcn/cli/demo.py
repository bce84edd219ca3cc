"""``stgcn demo VIDEO --checkpoint CKPT --out OUT.mp4`` (per-window predictions in OUT.json beside it;
``--json PATH`` moves them, ``--no-json`` skips them) and ``stgcn demo --camera 0``."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_precision_argument, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="pose + action recognition on a video or a camera, with an overlay video",
                       description="Estimate poses (MediaPipe, offline), track people, recognise actions on a "
                                   "sliding window and write an H.264 mp4 with skeletons, labels and per-joint "
                                   "attention. Without VIDEO or --camera the bundled clip (ta_chi.mp4) is used.")
    p.add_argument("video", nargs="?", help="input video file (default: the bundled demo clip)")
    p.add_argument("--camera", help="camera index or device (e.g. 0 or /dev/video0) instead of a file")
    p.add_argument("--checkpoint", help="stgcn checkpoint (or an official one with --official); default: the "
                                        "shipped model (`stgcn models`)")
    p.add_argument("--official", action="store_true",
                   help="the checkpoint is the official Kinetics-400 ST-GCN (yysijie/st-gcn)")
    p.add_argument("--out", help="overlay video to write (.mp4)")
    p.add_argument("--json", dest="json_out", metavar="PATH",
                   help="per-window predictions per person (.json; default: beside --out, OUT.json)")
    p.add_argument("--no-json", action="store_true", help="do not write the per-window predictions")
    p.add_argument("--window", type=int, help="frames per window (default: from the checkpoint, else 64)")
    p.add_argument("--stride", type=int, help="frames between predictions (default: window / 4)")
    p.add_argument("--max-people", type=int, default=2, help="people to follow (default 2)")
    p.add_argument("--detect-every", type=int, default=15,
                   help="frames between searches for another person (default 15)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--topk", type=positive_int, default=5, help="labels to show (default 5)")
    p.add_argument("--smoothing", choices=["ema", "mean", "none"], default="ema")
    p.add_argument("--no-window", action="store_true", help="do not open a display window (camera mode)")
    add_precision_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..inference.demo import bundled_video, can_show_window, run_demo
    from .shipped import checkpoint_or_shipped

    if args.camera is not None and args.video is not None:
        raise ConfigError("give a video file or --camera, not both")
    if args.json_out and args.no_json:
        raise ConfigError("give --json PATH or --no-json, not both")
    json_out = None if args.no_json else args.json_out or (str(Path(args.out).with_suffix(".json"))
                                                           if args.out else None)
    video = None if args.camera is not None else (args.video or bundled_video())
    # a camera run with neither a window nor a file would run until Ctrl-C and leave nothing
    shows = args.camera is not None and not args.no_window and can_show_window()
    if not shows and not args.out and not json_out:
        raise ConfigError("nothing to write: give --out OUT.mp4 and/or --json OUT.json"
                          + ("" if video is not None else " (no window: --no-window or no display)"))
    from ..atomic import writable_file

    for path, what in ((args.out, "--out"), (args.json_out, "--json")):
        if path:
            writable_file(path, what=what)  # before the video is read, not after it
    result = run_demo(video=video, camera=args.camera, checkpoint=checkpoint_or_shipped(args, "demo"), out=args.out,
                      json_out=json_out, window=args.window, stride=args.stride,
                      no_window=args.no_window or args.camera is None, max_frames=args.max_frames,
                      max_people=args.max_people, detect_every=args.detect_every, topk=args.topk,
                      smoothing=args.smoothing, official=args.official, precision=args.precision,
                      progress=True)
    print(result.summary())
    return 130 if result.interrupted else 0
