"""``stgcn bench {model,stream,data}``: measurements printed as ratios against a plain reference
formulation run side by side in the same process. Benchmarks are not tests."""

from __future__ import annotations

import argparse
import importlib

TARGETS = {
    "model": "Our model vs the plain official formulation: forward and training step.",
    "stream": "Latency of one live-window prediction through the demo path (torch and ONNX Runtime).",
    "data": "NTU parsing, streaming preparation memory and data-loader throughput.",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure speed against a plain reference formulation")
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name, help_text in TARGETS.items():
        try:
            mod = importlib.import_module(f"stgcn.bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"stgcn.bench.{name}":
                raise
            continue  # target not part of this build
        tp = targets.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(tp)
        tp.set_defaults(func=mod.run)
