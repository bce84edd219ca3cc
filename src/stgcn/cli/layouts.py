"""``stgcn layouts``: the built-in skeleton layouts, models and partition strategies."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("layouts", help="list skeleton layouts, partition strategies and models")
    p.add_argument("layout", nargs="?", help="show one layout (name or YAML path) in detail")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..graph import STRATEGIES, get_layout, list_layouts
    from ..models import describe_models

    if args.layout:
        lay = get_layout(args.layout)
        print(f"{lay.name}: {lay.num_joints} joints, center {lay.center} ({lay.joint_names[lay.center]})")
        print(lay.description)
        dims = {2: "2D image keypoints (x, y, confidence)", 3: "3D metric (x, y, z)"}.get(lay.dims, "unknown")
        print(f"coordinates: {dims}; aliases: {', '.join(lay.aliases) or '-'}; "
              f"official input normalisation: {lay.normalization}")
        for i, n in enumerate(lay.joint_names):
            print(f"  {i:2d} {n:<20} parent {int(lay.parents[i]):2d} ({lay.joint_names[lay.parents[i]]})")
        return 0
    print("layouts:")
    for name in list_layouts():
        lay = get_layout(name)
        print(f"  {name:<14} V={lay.num_joints:<3} {lay.dims or '?'}D  {lay.description}")
    print("strategies: " + ", ".join(STRATEGIES))
    print("models:")
    for name, doc in describe_models().items():
        print(f"  {name:<15} {doc}")
    return 0
