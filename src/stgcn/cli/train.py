"""``stgcn train``: train a model on a prepared store or a pyskl pickle (DDP under torchrun).

Every option is a field of :class:`stgcn.engine.config.RunConfig`, declared once there:
``--train.epochs 3``, ``--optimizer.lr 1e-3``, ``--data.train_pipeline '[...]'`` (help from the
field docstrings). ``--recipe NAME|FILE`` gives the starting values, ``--config FILE`` (a YAML
config, e.g. a run's ``config.yaml`` or what ``--print_config`` printed) sets many at once,
``--set key=value`` is the same as ``--key=value``, and the most used fields have short spellings
(``ALIASES``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from . import add_config_verb, parse_error

# Short spellings of the most used fields (README, scripts); the field's type and help apply.
ALIASES: dict[str, str] = {
    "--data": "data.path",
    "--layout": "data.layout",
    "--train-split": "data.train_split",
    "--val-split": "data.val_split",
    "--workers": "data.num_workers",
    "--model": "model.name",
    "--strategy": "model.strategy",
    "--epochs": "train.epochs",
    "--batch-size": "train.batch_size",
    "--seed": "train.seed",
    "--device": "train.device",
    "--out": "train.out",
    "--resume": "train.resume",
    "--init": "train.init",
}
FLAGS = {"--resume"}  # short spellings of a true/false field: given alone, they mean true

DESCRIPTION = ("Train ST-GCN. Multi-GPU / multi-node: torchrun --nproc_per_node=N [--nnodes ...] -m stgcn train ... "
               "(DistributedDataParallel; only rank 0 writes files).")


def expand_argv(argv: list[str], aliases: dict[str, str] = ALIASES, flags: set[str] = FLAGS) -> list[str]:
    """Short spellings and ``--set key=value`` as the parser's ``--section.field`` options."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name == "--set":
            from ..engine.config import override_args

            out += override_args([value if eq else next(it, "")])
        elif name in flags and not eq:
            out.append(f"--{aliases[name]}=true")
        elif name in aliases:
            out.append(f"--{aliases[name]}" + (f"={value}" if eq else ""))
        else:
            out.append(arg)
    return out


def _take(argv: list[str], option: str) -> tuple[str | None, list[str]]:
    """The value of the last ``option VALUE`` / ``option=VALUE`` in argv, and argv without them."""
    value, rest, it = None, [], iter(argv)
    for arg in it:
        name, eq, v = arg.partition("=")
        if name == option:
            value = v if eq else next(it, "")
        else:
            rest.append(arg)
    return value, rest


def run_parser(prog: str, description: str, add_options: Callable | None = None):
    """The parser of a verb that takes a :class:`RunConfig`: its fields, ``--config``, ``--set``
    (documentation only: :func:`expand_argv` rewrites it) and the verb's own options."""
    from jsonargparse import ActionConfigFile

    from ..engine.config import config_parser

    short = ", ".join(f"{a} = --{k}" for a, k in ALIASES.items())
    p = config_parser(prog=prog, description=description, epilog=f"Short spellings: {short}.")
    p.add_argument("--config", action=ActionConfigFile, help="YAML file of settings (e.g. a run's config.yaml)")
    p.add_argument("--set", type=str, metavar="KEY=VALUE",
                   help="same as --KEY=VALUE, e.g. --set optimizer.lr=1e-3 (repeatable)")
    if add_options is not None:
        add_options(p)
    return p


def parse_run(argv: list[str], *, prog: str, description: str = "", default_recipe: str,
              defaults: dict | None = None, add_options: Callable | None = None):
    """(validated RunConfig, namespace) from a verb's arguments: the recipe, then ``defaults``
    (dotted keys), then the command line in order."""
    import argparse as _argparse

    from ..engine.config import load_recipe, namespace_to_config

    recipe, argv = _take(expand_argv(argv), "--recipe")
    base = load_recipe(recipe or default_recipe)
    for key, value in (defaults or {}).items():
        section, _, leaf = key.partition(".")
        setattr(getattr(base, section), leaf, value)
    p = run_parser(prog, description, add_options)
    try:
        ns = p.parse_args(argv, namespace=p.parse_object(base.to_dict()))
    except _argparse.ArgumentError as exc:
        raise parse_error(prog, exc) from None
    return namespace_to_config(ns).validate(""), ns


def _train_options(p) -> None:
    p.add_argument("--streams", type=str, metavar="LIST",
                   help="comma-separated streams (joint,bone,joint-motion,bone-motion): one model each in "
                        "OUT/<stream>/, fused into OUT/fused_scores.npz")
    p.add_argument("--stream-weights", type=str, metavar="LIST", help="fusion weights for --streams (default: equal)")


def register(sub: argparse._SubParsersAction) -> None:
    add_config_verb(sub, "train", help="train a model (checkpoints, metrics, curves, report in --out)", run=run)


def _streams(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _weights(text: str | None) -> list[float] | None:
    from ..errors import ConfigError

    if not text:
        return None
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        raise ConfigError(f"--stream-weights {text!r}: expected numbers") from None


def _print_fused(summary: dict, out: str) -> None:
    """Each model's and the fused top-1/top-5 of train_streams / train_ensemble."""
    for name, m in summary.get("streams", summary.get("members", {})).items():
        print(f"{name:>12}: top-1 {100 * m['top1']:.2f}%  top-5 {100 * m['top5']:.2f}%")
    if "fused" in summary:
        f = summary["fused"]
        print(f"{'fused':>12}: top-1 {100 * f['top1']:.2f}%  top-5 {100 * f['top5']:.2f}%  -> {out}/fused_scores.npz")


def run(argv: list[str]) -> int:
    from ..engine import distributed as D
    from ..engine.training import train, train_ensemble, train_streams

    cfg, ns = parse_run(argv, prog="stgcn train", description=DESCRIPTION, default_recipe="paper",
                        add_options=_train_options)
    info = D.init_distributed(cfg.train.device)
    try:
        if ns.streams:
            summary = train_streams(cfg, _streams(ns.streams), weights=_weights(ns.stream_weights))
        elif cfg.train.ensemble > 1:
            summary = train_ensemble(cfg)
        if ns.streams or cfg.train.ensemble > 1:
            if info.is_main:
                _print_fused(summary, cfg.train.out)
            D.barrier(info)
            return 0
        res = train(cfg)
        if info.is_main:
            f, b = res.metrics["final"], res.metrics["best"]
            print(f"final (epoch {f['epoch']}): top-1 {100 * f['top1']:.2f}%  top-5 {100 * f['top5']:.2f}%  "
                  f"mean class {100 * f['mean_class_acc']:.2f}%")
            print(f"best  (epoch {b['epoch']}): top-1 {100 * b['top1']:.2f}%")
            print(f"report: {res.files.get('report')}   checkpoint: {res.best_checkpoint}")
        # The other ranks leave train() after the last epoch while rank 0 still evaluates and
        # writes; a gloo rank aborted once at exit in a test run (SIGABRT, "terminate called
        # without an active exception"), most likely the group torn down under a working peer, so
        # every rank waits here first. Only on success: a rank that failed must not wait for one
        # that cannot come.
        D.barrier(info)
        return 0
    finally:
        D.cleanup(info)
