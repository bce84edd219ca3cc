"""``stgcn eval``: score a checkpoint on a split (top-1/5, mean class accuracy, per class, confusion)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a checkpoint on a split",
        description="Evaluate a checkpoint. With --classes, only samples of those classes are scored and the "
                    "prediction is the argmax among the subset's logits (the paper's Kinetics-Motion protocol).")
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("--data", required=True, metavar="PATH", help="prepared store directory or pyskl .pkl")
    p.add_argument("--split", required=True, metavar="NAME")
    p.add_argument("--clips", type=int, metavar="N", help="test clips per sample (default: the training recipe's)")
    p.add_argument("--classes", metavar="FILE", help="class subset: a file with one name per line, or kinetics-motion")
    p.add_argument("--out", metavar="DIR", help="write metrics.json, scores.npz, per_class.csv, confusion.png, "
                                                "report.md here")
    p.add_argument("--batch-size", type=int, default=32, metavar="N")
    p.add_argument("--workers", type=int, default=2, metavar="N")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..runtime import flushing_denormals

    # flush-to-zero before the first torch op, so that torch's intra-op threads inherit it
    with flushing_denormals():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..engine.evaluate import evaluate
    from ..errors import ConfigError

    if args.clips is not None and args.clips < 1:
        raise ConfigError(f"--clips must be >= 1, found {args.clips}")
    res = evaluate(args.checkpoint, args.data, args.split, clips=args.clips, classes=args.classes, out=args.out,
                   batch_size=args.batch_size, num_workers=args.workers, device=args.device)
    m = res.metrics
    print(f"{m['num_samples']} samples, {len(res.class_names)} classes"
          + (" (argmax restricted to the subset)" if m.get("restricted_argmax") else ""))
    print(f"top-1 {100 * m['top1']:.2f}%  top-5 {100 * m['top5']:.2f}%  mean class {100 * m['mean_class_acc']:.2f}%")
    rec = res.per_class["recall"]
    width = max(len(n) for n in res.class_names)
    for i, name in enumerate(res.class_names):
        r = rec[i]
        print(f"  {name:<{width}}  {int(res.per_class['support'][i]):5d}  "
              + ("   –" if r != r else f"{100 * r:5.1f}%"))
    if args.out:
        print(f"written to {args.out}: " + ", ".join(sorted(res.files)))
    return 0
