"""``stgcn models``: the shipped weights (name, layout, classes, accuracy, size); ``stgcn models NAME``
prints a model card; ``stgcn models NAME --reproduce [--install]`` rebuilds it from the bundled data."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the shipped pretrained models, show a card, or rebuild one",
                       description="Without NAME: the shipped models. With NAME: its model card. With --reproduce: "
                                   "prepare the bundled data, train with the model's recipe and seed (evaluated "
                                   "once, after the last epoch), write the weights and card under --out and, with "
                                   "--install, into the package (stgcn/resources/pretrained/).")
    p.add_argument("name", nargs="?", help="a shipped model (e.g. stgcn.utkinect)")
    p.add_argument("--reproduce", action="store_true", help="rebuild the model from the bundled data")
    p.add_argument("--recipe", metavar="NAME_OR_FILE", help="with --reproduce: another recipe than the model's")
    p.add_argument("--out", metavar="DIR", help="with --reproduce: working folder (default runs/pretrained/NAME)")
    p.add_argument("--install", action="store_true", help="with --reproduce: copy the result into the package")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="data loader workers (default 2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..models.pretrained import get_pretrained, get_spec, list_pretrained

    if (args.recipe or args.out or args.install) and not args.reproduce:
        raise ConfigError("--recipe, --out and --install go with --reproduce")
    if args.reproduce:
        if not args.name:
            raise ConfigError("--reproduce needs a model NAME (`stgcn models` lists them)")
        return _reproduce(args)
    if args.name:
        from ..shipping import card_markdown

        print(card_markdown(get_pretrained(get_spec(args.name).name)))
        return 0
    rows = [("name", "layout", "classes", "top-1 (test)", "size", "data")]
    for name in list_pretrained():
        c = get_pretrained(name)
        a = c.accuracy
        rows.append((name, c.layout, str(len(c.label_names)), f"{100 * a['top1']:.1f} % ({a['correct']}/{a['total']})",
                     f"{c.size_bytes / 1e6:.1f} MB", c.spec.dataset))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from ..models.pretrained import get_spec
    from ..shipping import reproduce

    spec = get_spec(args.name)
    cfg = reproduce(spec.name, args.out or f"runs/pretrained/{spec.name}", recipe=args.recipe, install=args.install,
                    num_workers=args.workers)
    a = cfg.accuracy
    print(f"{cfg.name}: top-1 {100 * a['top1']:.1f} % ({a['correct']}/{a['total']}) on {a['split']}, "
          f"{cfg.size_bytes / 1e6:.2f} MB, sha256 {cfg.sha256}")
    print(f"weights: {cfg.file}")
    return 0
