"""``stgcn predict INPUT --checkpoint CKPT [--topk 5]``: top-k labels for one skeleton or video.

INPUT is a skeleton file (any format ``stgcn.data.load_sample`` reads; ``--format`` when the name
does not tell, ``--set KEY=VALUE`` for reader options), an OpenPose output folder
(``*_keypoints.json``), a prepared store sample (``STORE_DIR#index`` or ``STORE_DIR --index I``) or
a video file (poses by MediaPipe). Every input is built by the checkpoint's data contract (layout,
person slots, test pipeline), as ``stgcn eval`` builds it; an input in another layout is refused.
A video or OpenPose folder in which no person was seen long enough gets "nobody there".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_precision_argument, positive_int

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="top-k actions for a skeleton file, OpenPose folder, store sample or video",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("input", help="skeleton file, OpenPose folder, STORE_DIR#index, or video")
    p.add_argument("--checkpoint", help="stgcn checkpoint, a seed-ensemble run directory (train.ensemble=k: "
                                        "its members' softmax averaged), or an official checkpoint with "
                                        "--official; default: the shipped model (`stgcn models`)")
    p.add_argument("--official", action="store_true",
                   help="the checkpoint is the official Kinetics-400 ST-GCN (layout openpose, Kinetics labels)")
    p.add_argument("--topk", type=positive_int, default=5, help="labels to show (default 5)")
    p.add_argument("--index", type=int, help="sample index when INPUT is a prepared store")
    p.add_argument("--format", help="format of a skeleton file: a reader of `stgcn prepare` such as msr-action3d, "
                                    "utkinect, sbu, ntu, kinetics, npy (default: from the file name)")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="reader option for a skeleton file (repeatable; e.g. --set start=12 --set end=40 "
                        "for a UTKinect segment)")
    p.add_argument("--image-size", help="WIDTHxHEIGHT of the frames of an OpenPose folder (Kinetics models)")
    p.add_argument("--max-people", type=int, default=2, help="people to follow in a video (default 2)")
    add_precision_argument(p)
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


def _store_sample(predictor, path: Path, index: int, topk: int) -> tuple[list, str]:
    """Top-k of a store sample (its layout checked against the model's) and how to name it."""
    from ..data.store import open_store
    from ..errors import DataError

    store = open_store(path)
    if not 0 <= index < len(store):
        raise DataError(f"index {index} out of range: the store has {len(store)} samples", file=str(path))
    top = predictor(store.get(index), topk, layout=store.joint_layout(), what=f"{path}#{index}")
    label, truth = int(store.labels[index]), None
    if label >= 0:
        names = store.class_names or predictor.class_names
        truth = names[label] if label < len(names) else str(label)
    return top, f"{path}#{index} ({store.names[index]})" + (f" (label: {truth})" if truth else "")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..inference.predictor import Predictor, predict_openpose_folder, predict_video
    from .prepare import parse_options
    from .shipped import checkpoint_or_shipped

    predictor = Predictor.from_checkpoint(checkpoint_or_shipped(args, "predict"), official=args.official,
                                         precision=args.precision)
    text, index = args.input, args.index
    if "#" in text and not Path(text).exists():
        text, _, idx = text.rpartition("#")
        try:
            index = int(idx)
        except ValueError:
            raise ConfigError(f"{args.input}: expected STORE_DIR#index with an integer index") from None
    path = Path(text)
    answer = None
    if index is not None:
        top, what = _store_sample(predictor, path, index, args.topk)
    elif path.is_dir() and any(path.glob("*_keypoints.json")):
        answer = predict_openpose_folder(predictor, path, args.topk, image_size=_size(args.image_size))
        top, what = answer.top, f"OpenPose folder {path}"
    elif path.is_dir():
        raise ConfigError(f"{path} is a directory: give a store sample as {path}#INDEX (or --index), or an "
                          "OpenPose folder with *_keypoints.json files")
    elif path.suffix.lower() in VIDEO_SUFFIXES and args.format is None:
        answer = predict_video(predictor, path, args.topk, max_people=args.max_people)
        top, what = answer.top, f"video {path}"
    else:
        from ..data import load_sample

        sample = load_sample(path, format=args.format, **parse_options(args.options))
        top = predictor(sample, args.topk, image_size=_size(args.image_size))
        what = f"{path}"
    print(what)
    if answer is not None and answer.nobody:
        print(f"  {answer.describe()}")
        return 0
    width = max(len(n) for n, _ in top)
    for name, score in top:
        print(f"  {name:<{width}}  {score:.4f}")
    return 0
