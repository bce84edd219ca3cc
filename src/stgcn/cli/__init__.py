"""The ``stgcn`` command line: one module per verb, listed once in ``COMMANDS``.

Each module ``stgcn.cli.<module>`` defines ``register(subparsers)``, which adds its parser and sets
``func`` to a function taking the parsed namespace and returning an exit code. Modules are imported
only when listed, and heavy imports (torch, cv2, mediapipe) happen inside the command functions so
that ``stgcn --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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
}


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StgcnError as exc:
        print(f"stgcn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stgcn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
