"""The shipped model as the default ``--checkpoint`` of ``demo``, ``predict`` and ``serve``."""

from __future__ import annotations

import argparse
import sys


def checkpoint_or_shipped(args: argparse.Namespace, verb: str) -> str:
    """``args.checkpoint``, or the default shipped model's file (sha256 checked), said on stderr."""
    from ..errors import ConfigError
    from ..models.pretrained import get_pretrained

    if args.checkpoint:
        return args.checkpoint
    if getattr(args, "official", False):
        raise ConfigError("--official needs --checkpoint (the official file you downloaded)")
    cfg = get_pretrained()
    a = cfg.accuracy
    print(f"stgcn {verb}: no --checkpoint given: using the shipped model {cfg.name} ({cfg.layout}, "
          f"{len(cfg.label_names)} classes, top-1 {100 * a['top1']:.1f} % on {cfg.spec.dataset} {a['split']}; "
          f"`stgcn models {cfg.name}` shows its card)", file=sys.stderr)
    return str(cfg.verified_path())
