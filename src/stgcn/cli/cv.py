"""``stgcn cv``: every fold of a dataset's standard protocol, several seeds, one report."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from .train import add_run_arguments

    p = sub.add_parser(
        "cv", help="a dataset's protocol: every fold x several seeds, mean ± std, per-fold table",
        description="Cross-validation as the literature runs it (e.g. UTKinect loso, Florence 3D loao, SBU "
                    "5fold): trains every (fold, seed) into OUT/<fold>/seed<k>/ and writes OUT/cv.md, cv.json, "
                    "cv.png, confusion.png and config.yaml. Finished runs are reused and an interrupted one "
                    "resumes: run the same command again after a crash. The protocols of a store are listed "
                    "by `stgcn cv --data D --list`.")
    add_run_arguments(p, default_recipe="small", default_out="runs/cv")
    p.add_argument("--protocol", metavar="NAME", help="protocol of the store's dataset (see --list)")
    p.add_argument("--list", action="store_true", help="list the protocols of the store's dataset and exit")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="number of seeds (0..N-1, default 3)")
    p.add_argument("--folds", metavar="LIST", help="comma-separated subset of the protocol's folds")
    p.add_argument("--streams", metavar="LIST",
                   help="comma-separated streams (joint,bone,joint-motion,bone-motion): one model each per run, "
                        "fused")
    p.add_argument("--stream-weights", metavar="LIST", help="fusion weights for --streams (default: equal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.evaluate import flushing_denormals

    # flush-to-zero before the first torch op, so that torch's intra-op threads inherit it
    with flushing_denormals():
        return _run(args)


def _list(args: argparse.Namespace) -> int:
    from ..data.protocols import protocols_for
    from ..engine.evaluate import open_data

    store = open_data(args.data)
    name = store.meta.get("name")
    table = protocols_for(str(name))
    if not table:
        print(f"dataset {name!r} has no protocol table")
        return 1
    for p in table.values():
        print(f"{p.name:<10} {len(p.folds):>3} fold(s)  {p.description}")
    return 0


def _csv(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _run(args: argparse.Namespace) -> int:
    from ..engine.cv import run_cv
    from ..errors import ConfigError
    from .train import build_config

    if args.list:
        return _list(args)
    if not args.protocol:
        raise ConfigError("--protocol is required (see `stgcn cv --data D --list`)")
    if args.train_split or args.val_split:
        raise ConfigError("--train-split/--val-split do not apply: the protocol sets every fold's splits")
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, found {args.seeds}")
    weights = None
    if args.stream_weights:
        try:
            weights = [float(w) for w in _csv(args.stream_weights)]
        except ValueError:
            raise ConfigError(f"--stream-weights {args.stream_weights!r}: expected numbers") from None
    base = build_config(args)
    res = run_cv(base, args.protocol, args.out, seeds=range(args.seeds), folds=_csv(args.folds) or None,
                 streams=_csv(args.streams) or None, stream_weights=weights)
    s = res.summary
    if s["done"]:
        std_s = "–" if s.get("top1_std_seeds") is None else f"{100 * s['top1_std_seeds']:.1f}"
        std_f = "–" if s.get("top1_std_folds") is None else f"{100 * s['top1_std_folds']:.1f}"
        print(f"{res.dataset} {res.protocol}: top-1 {100 * s['top1']:.1f}% ± {std_s} over seeds, ± {std_f} over "
              f"folds ({s['done']} of {s['runs']} runs)")
    print(f"written {res.files['report']}")
    return 0 if s["complete"] else 3
