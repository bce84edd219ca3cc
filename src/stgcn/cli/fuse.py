"""``stgcn fuse``: weighted fusion of score files matched by sample name (paper Table 5)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fuse", help="fuse score files (streams, RGB/flow models) and print top-1/top-5",
        description="Fuse score files by sample name: .npz from stgcn train/eval (names, scores, labels), .csv "
                    "(name, score columns; optional header with a 'label' column) or a bare .npy (N, K) in the "
                    "order of the first named file. Each input is softmaxed unless already probabilities.")
    p.add_argument("scores", nargs="+", metavar="SCORES")
    p.add_argument("--weights", nargs="+", type=float, metavar="W", help="one weight per file (default: equal)")
    p.add_argument("--out", metavar="FILE", help="write the fused scores (.npz)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import writable_file
    from ..fusion import fuse, save_scores

    if args.out:
        writable_file(args.out, what="--out")
    res = fuse(args.scores, args.weights)
    print(f"fused {len(args.scores)} files, {len(res.names)} samples, weights {args.weights or 'equal'}")
    if res.metrics is not None:
        print(f"top-1 {100 * res.metrics['top1']:.2f}%  top-5 {100 * res.metrics['top5']:.2f}%  "
              f"mean class {100 * res.metrics['mean_class_acc']:.2f}%")
    else:
        print("no labels in the inputs: accuracy not computed")
    if args.out:
        import numpy as np

        labels = res.labels if res.labels is not None else np.full(len(res.names), -1)
        save_scores(args.out, res.names, res.scores, labels, res.class_names or [])
        print(f"written {args.out}")
    return 0
