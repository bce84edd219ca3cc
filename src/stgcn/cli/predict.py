"""``stgcn predict INPUT --checkpoint CKPT [--topk 5]``: top-k labels for one skeleton or video.

INPUT is a skeleton file (any format ``stgcn.data.load_sample`` reads), an OpenPose output folder
(``*_keypoints.json``), a prepared store sample (``STORE_DIR#index`` or ``STORE_DIR --index I``) or a
video file (poses by MediaPipe).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import positive_int

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="top-k actions for a skeleton file, OpenPose folder, store sample or video",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("input", help="skeleton file, OpenPose folder, STORE_DIR#index, or video")
    p.add_argument("--checkpoint", required=True, help="stgcn checkpoint (or an official one with --official)")
    p.add_argument("--official", action="store_true",
                   help="the checkpoint is the official Kinetics-400 ST-GCN (layout openpose, Kinetics labels)")
    p.add_argument("--topk", type=positive_int, default=5, help="labels to show (default 5)")
    p.add_argument("--index", type=int, help="sample index when INPUT is a prepared store")
    p.add_argument("--image-size", help="WIDTHxHEIGHT of the frames of an OpenPose folder (Kinetics models)")
    p.add_argument("--max-people", type=int, default=2, help="people to follow in a video (default 2)")
    p.set_defaults(func=run)


def _size(text: str | None) -> tuple[int, int] | None:
    from ..errors import ConfigError

    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--image-size: expected WIDTHxHEIGHT such as 340x256, found {text!r}") from None
    return w, h


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError, DataError
    from ..inference.predictor import Predictor, predict_openpose_folder, predict_video

    predictor = Predictor.from_checkpoint(args.checkpoint, official=args.official)
    text, index = args.input, args.index
    if "#" in text and not Path(text).exists():
        text, _, idx = text.rpartition("#")
        try:
            index = int(idx)
        except ValueError:
            raise ConfigError(f"{args.input}: expected STORE_DIR#index with an integer index") from None
    path = Path(text)
    truth = None
    if index is not None:
        from ..data.store import open_store

        store = open_store(path)
        if not 0 <= index < len(store):
            raise DataError(f"index {index} out of range: the store has {len(store)} samples", file=str(path))
        x = predictor.finish(store.get(index), raw=False)
        top = predictor(x, args.topk)
        label = int(store.labels[index])
        if label >= 0:
            names = store.class_names or predictor.class_names
            truth = names[label] if label < len(names) else str(label)
        what = f"{path}#{index} ({store.names[index]})"
    elif path.is_dir() and any(path.glob("*_keypoints.json")):
        top = predict_openpose_folder(predictor, path, args.topk, image_size=_size(args.image_size))
        what = f"OpenPose folder {path}"
    elif path.is_dir():
        raise ConfigError(f"{path} is a directory: give a store sample as {path}#INDEX (or --index), or an "
                          "OpenPose folder with *_keypoints.json files")
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        top = predict_video(predictor, path, args.topk, max_people=args.max_people)
        what = f"video {path}"
    else:
        from ..data import load_sample

        sample = load_sample(path)
        if args.image_size:
            sample.meta["image_size"] = _size(args.image_size)
        top = predictor(sample, args.topk)
        what = f"{path}"
    print(what + (f" (label: {truth})" if truth else ""))
    width = max(len(n) for n, _ in top)
    for name, score in top:
        print(f"  {name:<{width}}  {score:.4f}")
    return 0
