"""The ``stgcn`` command line: one module per verb, listed once in ``COMMANDS``.

Each module ``stgcn.cli.<module>`` defines ``register(subparsers)``, which adds its parser and sets
``func``. Two kinds of verb (docs/CONTRACTS.md, "Command line"):

- plain verbs declare their few options with argparse in ``register`` and get the parsed
  namespace: ``func(args) -> int``;
- verbs whose options are a typed config (train, ablation, eval) register with
  :func:`add_config_verb` and parse their own arguments with jsonargparse (options derived from the
  dataclass fields or the function signature, ``--config FILE``, ``--print_config``):
  ``func(argv) -> int``.

Every verb runs under flush-to-zero (:func:`stgcn.runtime.flushing_denormals`), set here before
the verb's first torch op so that torch's intra-op threads inherit it. Modules are imported only
when listed, and heavy imports (torch, cv2, mediapipe) happen inside the command functions so that
``stgcn --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from ..errors import StgcnError

# verb -> module under stgcn.cli
COMMANDS: dict[str, str] = {
    "layouts": "layouts",
    "prepare": "prepare",
    "train": "train",
    "eval": "evaluate",
    "fuse": "fuse",
    "ablation": "ablation",
    "cv": "cv",
    "quickstart": "quickstart",
    "predict": "predict",
    "demo": "demo",
    "export": "export",
    "convert-official": "convert_official",
    "bench": "bench",
    "segment": "segment",
    "models": "models",
    "serve": "serve",
}


def add_config_verb(sub: argparse._SubParsersAction, name: str, *, help: str,
                    run: Callable[[list[str]], int]) -> None:
    """Register a verb that parses its own arguments: ``run`` gets everything after the verb."""
    p = sub.add_parser(name, help=help, add_help=False, prefix_chars="\0")  # nothing is an option here
    p.set_defaults(func=run, own_argv=True)


def positive_int(text: str) -> int:
    """argparse type of a count that must be at least 1 (``--topk``, ``--window`` ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, found {value}")
    return value


def add_precision_argument(p: argparse.ArgumentParser, choices: tuple[str, ...] = ("fp32", "bf16")) -> None:
    """``--precision`` of the verbs that run a model for inference (one spelling for all of them)."""
    p.add_argument("--precision", choices=choices, default="fp32",
                   help="inference precision: " + ", ".join(choices) + " (default fp32, exact; bf16 needs "
                        "avx512_bf16 or AMX and falls back to fp32 with a warning; see README, Speed)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stgcn",
        description="Spatial Temporal Graph Convolutional Networks for skeleton-based action recognition.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"stgcn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module}":
                raise
            continue  # verb not implemented in this build
        mod.register(sub)
    return parser


def parse_error(prog: str, exc: Exception) -> StgcnError:
    """A parser's complaint (jsonargparse's ``ArgumentError``) as the package error the CLI prints."""
    from ..errors import ConfigError

    return ConfigError(" ".join(str(exc).split()) + f" (see {prog} --help)")


def main(argv: list[str] | None = None) -> int:
    from ..runtime import flushing_denormals

    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    own = getattr(args, "own_argv", False)
    if rest and not own:
        parser.parse_args(argv)  # argparse's own message for the unknown arguments, exit 2
    try:
        with flushing_denormals():
            return int(args.func(rest if own else args) or 0)
    except StgcnError as exc:
        print(f"stgcn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stgcn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
