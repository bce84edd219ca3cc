"""``stgcn train``: train a model on a prepared store or a pyskl pickle (DDP under torchrun)."""

from __future__ import annotations

import argparse


def add_run_arguments(p: argparse.ArgumentParser, *, default_recipe: str, default_out: str) -> None:
    """Options shared by ``train`` and ``ablation``."""
    p.add_argument("--data", required=True, metavar="PATH", help="prepared store directory or pyskl .pkl")
    p.add_argument("--layout", metavar="NAME_OR_FILE", help="skeleton layout (default: the store's)")
    p.add_argument("--train-split", metavar="NAME", help="training split (default: inferred from the store)")
    p.add_argument("--val-split", metavar="NAME", help="validation split (default: inferred from the store)")
    p.add_argument("--recipe", default=default_recipe, metavar="NAME_OR_FILE",
                   help=f"shipped recipe (paper, official-kinetics, official-ntu, pyskl, small) or a YAML file "
                        f"(default: {default_recipe})")
    p.add_argument("--epochs", type=int, metavar="N")
    p.add_argument("--batch-size", type=int, metavar="N", help="global batch size")
    p.add_argument("--out", default=default_out, metavar="DIR")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe setting, e.g. --set optimizer.lr=0.05 (repeatable)")
    p.add_argument("--workers", type=int, metavar="N", help="DataLoader worker processes (default 2)")
    p.add_argument("--device", metavar="DEV", help="auto (default), cpu, cuda, cuda:N")


def build_config(args: argparse.Namespace):
    """Recipe + command-line options + ``--set`` overrides, validated."""
    from ..engine.config import apply_overrides, load_recipe

    cfg = load_recipe(args.recipe)
    cfg.data.path = str(args.data)
    if args.layout:
        cfg.data.layout = args.layout
    if args.train_split:
        cfg.data.train_split = args.train_split
    if args.val_split:
        cfg.data.val_split = args.val_split
    for attr, section, key in (("epochs", "train", "epochs"), ("batch_size", "train", "batch_size"),
                               ("seed", "train", "seed"), ("workers", "data", "num_workers"),
                               ("device", "train", "device"), ("model", "model", "name"),
                               ("strategy", "model", "strategy")):
        val = getattr(args, attr, None)
        if val is not None:
            setattr(getattr(cfg, section), key, val)
    cfg.train.out = str(args.out)
    if getattr(args, "resume", False):
        cfg.train.resume = True
    return apply_overrides(cfg, args.overrides)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a model (checkpoints, metrics, curves, report in --out)",
        description="Train ST-GCN. Multi-GPU / multi-node: torchrun --nproc_per_node=N [--nnodes ...] "
                    "-m stgcn train ... (DistributedDataParallel; only rank 0 writes files).")
    add_run_arguments(p, default_recipe="paper", default_out="runs/train")
    p.add_argument("--model", metavar="NAME", help="stgcn, stgcn-official, tcn, local-conv, stgcn-tiny")
    p.add_argument("--strategy", metavar="NAME", help="uniform, distance, distance-star, spatial")
    p.add_argument("--seed", type=int, metavar="N")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    p.add_argument("--streams", metavar="LIST",
                   help="comma-separated streams (joint,bone,joint-motion,bone-motion): one model each in "
                        "DIR/<stream>/, fused into DIR/fused_scores.npz")
    p.add_argument("--stream-weights", metavar="LIST", help="fusion weights for --streams (default: equal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..runtime import flushing_denormals

    # flush-to-zero before the first torch op, so that torch's intra-op threads inherit it
    with flushing_denormals():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..engine import distributed as D
    from ..engine.training import train, train_streams
    from ..errors import ConfigError

    cfg = build_config(args)
    info = D.init_distributed(cfg.train.device)
    try:
        if args.streams:
            streams = [s.strip() for s in args.streams.split(",") if s.strip()]
            weights = None
            if args.stream_weights:
                try:
                    weights = [float(w) for w in args.stream_weights.split(",")]
                except ValueError:
                    raise ConfigError(f"--stream-weights {args.stream_weights!r}: expected numbers") from None
            summary = train_streams(cfg, streams, weights=weights)
            if info.is_main:
                for s, m in summary["streams"].items():
                    print(f"{s:>12}: top-1 {100 * m['top1']:.2f}%  top-5 {100 * m['top5']:.2f}%")
                if "fused" in summary:
                    f = summary["fused"]
                    print(f"{'fused':>12}: top-1 {100 * f['top1']:.2f}%  top-5 {100 * f['top5']:.2f}%  "
                          f"-> {cfg.train.out}/fused_scores.npz")
            return 0
        res = train(cfg)
        if info.is_main:
            f, b = res.metrics["final"], res.metrics["best"]
            print(f"final (epoch {f['epoch']}): top-1 {100 * f['top1']:.2f}%  top-5 {100 * f['top5']:.2f}%  "
                  f"mean class {100 * f['mean_class_acc']:.2f}%")
            print(f"best  (epoch {b['epoch']}): top-1 {100 * b['top1']:.2f}%")
            print(f"report: {res.files.get('report')}   checkpoint: {res.best_checkpoint}")
        return 0
    finally:
        D.cleanup(info)
