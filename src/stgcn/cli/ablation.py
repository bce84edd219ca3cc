"""``stgcn ablation``: the paper's Table 1 (graph and partition settings) on a dataset, several seeds.

The training options are those of ``stgcn train`` (the fields of the run config); the recipe
defaults to ``small`` and ``--out`` to ``runs/ablation``.
"""

from __future__ import annotations

import argparse

from . import add_config_verb

DESCRIPTION = ("Train every Table 1 setting with the same recipe and several seeds; writes ablation.md "
               "(mean ± std top-1/top-5) and ablation.png. Finished runs in --out are reused.")


def register(sub: argparse._SubParsersAction) -> None:
    add_config_verb(sub, "ablation", help="paper Table 1: TCN, local conv, partition strategies, edge importance",
                    run=run)


def _options(p) -> None:
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="number of seeds (0..N-1)")
    p.add_argument("--settings", type=str, metavar="LIST",
                   help="comma-separated subset of: tcn,local-conv,uniform,distance-star,distance,spatial,spatial-imp")


def run(argv: list[str]) -> int:
    from ..ablation import run_ablation
    from ..engine import distributed as D
    from ..errors import ConfigError
    from .train import parse_run

    base, ns = parse_run(argv, prog="stgcn ablation", description=DESCRIPTION, default_recipe="small",
                         defaults={"train.out": "runs/ablation"}, add_options=_options)
    if ns.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, found {ns.seeds}")
    settings = [s.strip() for s in ns.settings.split(",")] if ns.settings else None
    out = base.train.out
    info = D.init_distributed(base.train.device)
    try:
        rows = run_ablation(base, out, seeds=range(ns.seeds), settings=settings)
        D.barrier(info)  # every rank done before the group is torn down (see cli/train.py)
    finally:
        D.cleanup(info)
    if info.is_main:
        for r in rows:
            print(f"{r.label:<24} top-1 {100 * r.top1:5.1f} ± {100 * r.top1_std:4.1f}   "
                  f"top-5 {100 * r.top5:5.1f} ± {100 * r.top5_std:4.1f}")
        print(f"written {out}/ablation.md and {out}/ablation.png")
    return 0
