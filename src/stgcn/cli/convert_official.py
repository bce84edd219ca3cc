"""``stgcn convert-official IN OUT --layout NAME``: an official checkpoint as an stgcn checkpoint."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert-official", help="convert a checkpoint of the official ST-GCN code",
                       description="Write the weights of an official ST-GCN checkpoint (yysijie/st-gcn) in our "
                                   "checkpoint format, with class names and the data contract.")
    p.add_argument("src", help="official .pt/.pth file")
    p.add_argument("dst", help="output checkpoint")
    p.add_argument("--layout", required=True, help="graph layout of the checkpoint (openpose, ntu-rgb+d, ...)")
    p.add_argument("--strategy", default="spatial")
    p.add_argument("--labels", help="text file with one class name per line (default: Kinetics-400 for "
                                    "400-class openpose models)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import writable_file
    from ..compat import convert_official
    from ..errors import ConfigError

    writable_file(args.dst, what="OUT")

    names = None
    if args.labels:
        try:
            with open(args.labels, encoding="utf-8") as f:
                names = [ln.strip() for ln in f if ln.strip()]
        except (OSError, UnicodeDecodeError) as exc:  # a missing or binary file is bad input, not a crash
            raise ConfigError(f"--labels {args.labels}: cannot read the class names: "
                              f"{getattr(exc, 'strerror', None) or exc}") from exc
    model = convert_official(args.src, args.dst, layout=args.layout, strategy=args.strategy, class_names=names)
    print(f"wrote {args.dst}: stgcn-official, layout {model.layout.name}, {model.num_classes} classes")
    return 0
