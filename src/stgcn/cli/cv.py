"""``stgcn cv``: every fold of a dataset's standard protocol, several seeds, one report.

The training options are those of ``stgcn train`` (the fields of the run config); the recipe
defaults to ``small`` and ``--out`` to ``runs/cv``. The protocol sets every fold's splits.
"""

from __future__ import annotations

import argparse

from . import add_config_verb

DESCRIPTION = ("Cross-validation as the literature runs it (e.g. UTKinect loso, Florence 3D loao, SBU 5fold): "
               "trains every (fold, seed) into OUT/<fold>/seed<k>/ and writes OUT/cv.md, cv.json, cv.png, "
               "confusion.png and config.yaml. Finished runs are reused and an interrupted one resumes: run the "
               "same command again after a crash. The protocols of a store are listed by "
               "`stgcn cv --data D --list`.")


def register(sub: argparse._SubParsersAction) -> None:
    add_config_verb(sub, "cv", help="a dataset's protocol: every fold x several seeds, mean ± std, per-fold table",
                    run=run)


def _options(p) -> None:
    p.add_argument("--protocol", type=str, metavar="NAME", help="protocol of the store's dataset (see --list)")
    p.add_argument("--list", action="store_true", help="list the protocols of the store's dataset and exit")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="number of seeds (0..N-1, default 3)")
    p.add_argument("--folds", type=str, metavar="LIST", help="comma-separated subset of the protocol's folds")
    p.add_argument("--streams", type=str, metavar="LIST",
                   help="comma-separated streams (joint,bone,joint-motion,bone-motion): one model each per run, "
                        "fused")
    p.add_argument("--stream-weights", type=str, metavar="LIST", help="fusion weights for --streams (default: equal)")


def _csv(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _list(path: str) -> int:
    from ..data.pickle_cache import open_data
    from ..data.protocols import protocols_for

    store = open_data(path)
    name = store.meta.get("name")
    table = protocols_for(str(name))
    if not table:
        print(f"dataset {name!r} has no protocol table")
        return 1
    for p in table.values():
        print(f"{p.name:<10} {len(p.folds):>3} fold(s)  {p.description}")
    return 0


def run(argv: list[str]) -> int:
    from ..engine.cv import run_cv
    from ..errors import ConfigError
    from .train import parse_run

    if "--list" in argv:  # needs only the store; no recipe or protocol
        from .train import _take, expand_argv

        data, _ = _take(expand_argv(argv), "--data.path")
        if not data:
            raise ConfigError("--list needs --data STORE")
        return _list(data)
    if any(a.split("=")[0] in ("--train-split", "--val-split", "--data.train_split", "--data.val_split") for a in argv):
        raise ConfigError("--train-split/--val-split do not apply: the protocol sets every fold's splits")
    base, ns = parse_run(argv, prog="stgcn cv", description=DESCRIPTION, default_recipe="small",
                         defaults={"train.out": "runs/cv"}, add_options=_options)
    if not ns.protocol:
        raise ConfigError("--protocol is required (see `stgcn cv --data D --list`)")
    if ns.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, found {ns.seeds}")
    try:
        weights = [float(w) for w in _csv(ns.stream_weights)] or None
    except ValueError:
        raise ConfigError(f"--stream-weights {ns.stream_weights!r}: expected numbers") from None
    res = run_cv(base, ns.protocol, base.train.out, seeds=range(ns.seeds), folds=_csv(ns.folds) or None,
                 streams=_csv(ns.streams) or None, stream_weights=weights)
    s = res.summary
    if s["done"]:
        std_s = "–" if s.get("top1_std_seeds") is None else f"{100 * s['top1_std_seeds']:.1f}"
        std_f = "–" if s.get("top1_std_folds") is None else f"{100 * s['top1_std_folds']:.1f}"
        print(f"{res.dataset} {res.protocol}: top-1 {100 * s['top1']:.1f}% ± {std_s} over seeds, ± {std_f} over "
              f"folds ({s['done']} of {s['runs']} runs)")
    print(f"written {res.files['report']}")
    return 0 if s["complete"] else 3
