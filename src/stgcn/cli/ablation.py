"""``stgcn ablation``: the paper's Table 1 (graph and partition settings) on a dataset, several seeds."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from .train import add_run_arguments

    p = sub.add_parser(
        "ablation", help="paper Table 1: TCN, local conv, partition strategies, edge importance",
        description="Train every Table 1 setting with the same recipe and several seeds; writes ablation.md "
                    "(mean ± std top-1/top-5) and ablation.png. Finished runs in --out are reused.")
    add_run_arguments(p, default_recipe="small", default_out="runs/ablation")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="number of seeds (0..N-1)")
    p.add_argument("--settings", metavar="LIST",
                   help="comma-separated subset of: tcn,local-conv,uniform,distance-star,distance,spatial,spatial-imp")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..runtime import flushing_denormals

    # flush-to-zero before the first torch op, so that torch's intra-op threads inherit it
    with flushing_denormals():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..ablation import run_ablation
    from ..engine import distributed as D
    from ..errors import ConfigError
    from .train import build_config

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, found {args.seeds}")
    base = build_config(args)
    settings = [s.strip() for s in args.settings.split(",")] if args.settings else None
    info = D.init_distributed(base.train.device)
    try:
        rows = run_ablation(base, args.out, seeds=range(args.seeds), settings=settings)
    finally:
        D.cleanup(info)
    if info.is_main:
        for r in rows:
            print(f"{r.label:<24} top-1 {100 * r.top1:5.1f} ± {100 * r.top1_std:4.1f}   "
                  f"top-5 {100 * r.top5:5.1f} ± {100 * r.top5_std:4.1f}")
        print(f"written {args.out}/ablation.md and {args.out}/ablation.png")
    return 0
