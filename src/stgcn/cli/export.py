"""``stgcn export CKPT --onnx OUT.onnx [--opset 17]``: ONNX with dynamic batch, time and person axes."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (checked against onnxruntime)",
                       description="Export a checkpoint to ONNX at its data contract's person slots, with dynamic "
                                   "batch, frame and person axes and the contract in the metadata, then run the "
                                   "file with onnxruntime on an input of another batch size, length and person "
                                   "count, print the max abs difference to torch and the latency of both.")
    p.add_argument("checkpoint", help="stgcn checkpoint (.pt)")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="output file (written atomically)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--frames", type=int, default=64, help="frames of the timing input (default 64)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference allowed (default 1e-4)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import writable_file
    from ..export.onnx import export_checkpoint

    writable_file(args.onnx, what="--onnx")  # before the export, not after it
    report = export_checkpoint(args.checkpoint, args.onnx, opset=args.opset, timing_frames=args.frames,
                               tolerance=args.tolerance)
    print(report.summary())
    return 0
