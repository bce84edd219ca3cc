"""``stgcn export CKPT --onnx OUT.onnx [--opset 17] [--precision int8 --calibration STORE]``: ONNX with
dynamic batch, time and person axes, fp32 or statically quantised int8."""

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
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="fp32 (default), or int8: ONNX Runtime static quantisation calibrated on --calibration")
    p.add_argument("--calibration", metavar="STORE", help="int8: prepared store of the checkpoint's layout to take "
                                                          "activation ranges from (use its training split)")
    p.add_argument("--calibration-split", help="int8: split of --calibration (default: all samples)")
    p.add_argument("--calibration-samples", type=int, default=64, help="int8: clips to calibrate on (default 64); "
                                                                       "up to 1024 others check the agreement")
    p.add_argument("--check-split", help="int8: split of --calibration to check the agreement on (e.g. the test "
                                         "split; default: clips of --calibration-split not calibrated on)")
    p.add_argument("--min-agreement", type=float, default=0.99,
                   help="int8: top-1 agreement with fp32 required on the held-out clips (default 0.99)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import writable_file
    from ..errors import ConfigError
    from ..export.onnx import export_checkpoint

    if (args.precision == "int8") != (args.calibration is not None):
        raise ConfigError("--precision int8 and --calibration STORE go together")
    writable_file(args.onnx, what="--onnx")  # before the export, not after it
    report = export_checkpoint(args.checkpoint, args.onnx, opset=args.opset, timing_frames=args.frames,
                               tolerance=args.tolerance, precision=args.precision, calibration=args.calibration,
                               calibration_split=args.calibration_split,
                               calibration_samples=args.calibration_samples, check_split=args.check_split,
                               min_agreement=args.min_agreement)
    print(report.summary())
    return 0
