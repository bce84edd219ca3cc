"""``stgcn bench stream``: latency of one prediction for a live window (1 person, T=64) through

* ``torch_eager``: the model as trained (eval mode) under ``no_grad``;
* ``torch_fused``: ``optimize_for_inference(model)`` (batch norms folded, channels-last; what
  ``Predictor`` runs) under ``inference_mode``, and ``torch_bf16``: the same fused model in bf16
  (``optimize_for_inference(model, "bf16")``, ``--precision bf16``) where the CPU has it;
* ``ort``: ONNX Runtime on the exported unfused graph (``torch.onnx.export(dynamo=False, opset 17)``,
  dynamic N and T), and ``ort_fused``: ONNX Runtime on the exported fused model (what ``stgcn export``
  writes), and ``ort_int8``: that file statically quantised (``stgcn export --precision int8``; calibrated
  on random input, so its logit difference here says nothing of real data),

interleaved, reported as ms per prediction (median and p90), with max abs logit differences.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings

import numpy as np
import torch

from .common import emit, interleaved, machine_info, median, quantile

# (label, model name, model kwargs, layout, frames): the model `make demo` trains (the `small` recipe's
# half-width ST-GCN on the Kinect v1 layout) and the full-width official network on both layouts.
SMALL_CHANNELS = [32, 32, 32, 64, 64, 64, 128, 128, 128]
CASES = [
    ("demo model (small recipe)", "stgcn", {"channels": SMALL_CHANNELS}, "kinect-v1", 64),
    ("stgcn-official", "stgcn-official", {}, "kinect-v1", 64),
    ("stgcn-official", "stgcn-official", {}, "openpose", 64),
]


def _export(model: torch.nn.Module, example: torch.Tensor, path: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), path, dynamo=False, opset_version=17, input_names=["skeleton"],
                          output_names=["logits"],
                          dynamic_axes={"skeleton": {0: "batch", 2: "frames"}, "logits": {0: "batch"}})


def bench_case(layout: str, frames: int, repeats: int, num_classes: int = 60, model_name: str = "stgcn-official",
               model_kwargs: dict | None = None, label: str | None = None) -> dict:
    from ..models import create_model, optimize_for_inference

    torch.manual_seed(0)
    model = create_model(model_name, layout=layout, num_classes=num_classes, **(model_kwargs or {})).eval()
    fused = optimize_for_inference(model)
    v = model.layout.num_joints
    from ..runtime import missing_cpu_feature

    bf16 = None if missing_cpu_feature("bf16") else optimize_for_inference(model, "bf16")
    x = torch.randn(1, 3, frames, v, 1)

    def eager():
        with torch.no_grad():
            return model(x)

    def run_fused():
        with torch.inference_mode():
            return fused(x)

    fns = {"torch_eager": eager, "torch_fused": run_fused}
    if bf16 is not None:
        def run_bf16():
            with torch.inference_mode():
                return bf16(x)
        fns["torch_bf16"] = run_bf16
    ref = eager()
    diffs = {k: float((f() - ref).abs().max()) for k, f in fns.items() if k != "torch_eager"}
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    tmpdir = tempfile.mkdtemp(prefix="stgcn-bench-")
    if ort is not None:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = torch.get_num_threads()
        xn = x.numpy()
        for name, m in (("ort", model), ("ort_fused", fused)):
            path = os.path.join(tmpdir, f"{name}.onnx")
            _export(m, torch.randn(2, 3, 37, v, 1), path)  # another shape: the axes must be dynamic
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            fns[name] = (lambda s=sess: s.run(["logits"], {"skeleton": xn})[0])
            diffs[name] = float(np.abs(fns[name]() - ref.numpy()).max())
            os.unlink(path)
        from .model import ort_int8

        int8 = ort_int8(fused, x)  # `stgcn export --precision int8`, calibrated here on random input
        fns["ort_int8"] = lambda: int8(x)
        diffs["ort_int8"] = float((int8(x) - ref).abs().max())
    os.rmdir(tmpdir)
    times = interleaved(fns, repeats, warmup=3)
    res = {k: {"median_ms": 1e3 * median(ts), "p90_ms": 1e3 * quantile(ts, 0.9)} for k, ts in times.items()}
    return {"label": label or model_name, "model": model_name, "layout": layout,
            "shape": [1, 3, frames, v, 1], "repeats": repeats, "paths": res,
            "max_abs_diff_vs_eager": diffs, "onnxruntime": ort.__version__ if ort is not None else None}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--repeats", type=int, default=None, help="timed predictions per path (default 50)")
    p.add_argument("--quick", action="store_true", help="short window and few repeats (smoke test)")
    p.add_argument("--threads", type=int, default=None, help="torch/ORT threads (default: torch's)")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 50)
    result = {"machine": machine_info(), "cases": []}
    lines = [f"threads {torch.get_num_threads()}; load {result['machine']['load_avg_1m']}; {repeats} interleaved "
             "predictions per path"]
    for label, name, kwargs, layout, frames in CASES:
        r = bench_case(layout, 16 if args.quick else frames, repeats, model_name=name, model_kwargs=kwargs,
                       label=label)
        result["cases"].append(r)
        lines.append(f"{label}, {layout} {tuple(r['shape'])}:")
        for k, d in r["paths"].items():
            diff = r["max_abs_diff_vs_eager"].get(k)
            lines.append(f"  {k:12s} median {d['median_ms']:7.2f} ms  p90 {d['p90_ms']:7.2f} ms"
                         + ("" if diff is None else f"  max abs diff vs eager {diff:.1e}"))
    emit(result, args.json, lines)
    return 0
