"""``stgcn eval``: score a checkpoint on a split (top-1/5, mean class accuracy, per class, confusion).

The options are the parameters of :func:`stgcn.engine.evaluate.evaluate` (help from its
docstring), read by jsonargparse.
"""

from __future__ import annotations

import argparse

from . import add_config_verb, parse_error

ALIASES = {"--batch-size": "batch_size", "--workers": "num_workers"}  # spellings of earlier releases


def register(sub: argparse._SubParsersAction) -> None:
    add_config_verb(sub, "eval", help="evaluate a checkpoint on a split", run=run)


def parser():
    from jsonargparse import ArgumentParser, set_parsing_settings

    from ..engine.evaluate import evaluate

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    p = ArgumentParser(prog="stgcn eval", exit_on_error=False, description=evaluate.__doc__.split("\n\n")[1],
                       epilog="Short spellings: " + ", ".join(f"{a} = --{k}" for a, k in ALIASES.items()) + ".")
    p.add_function_arguments(evaluate, as_group=False, skip={"progress"})
    return p


def run(argv: list[str]) -> int:
    from ..engine.evaluate import evaluate
    from .train import expand_argv

    p = parser()
    try:
        ns = p.parse_args(expand_argv(argv, ALIASES, set()))
    except argparse.ArgumentError as exc:
        raise parse_error("stgcn eval", exc) from None
    res = evaluate(**ns.as_dict())
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
    if ns.out:
        print(f"written to {ns.out}: " + ", ".join(sorted(res.files)))
    return 0
