"""``stgcn bench model``: our ST-GCN vs a plain formulation of the official math, in one process.

The plain model below is written from the official code (yysijie/st-gcn ``net/st_gcn.py`` and
``net/utils/tgcn.py``: block order, one ``einsum('nkctv,kvw->nctw')`` per layer,
``nn.Dropout(inplace=True)``), gets the same weights and the same input. Measured, interleaved
(plain, ours, plain, ours, ...):

* forward: eval mode under ``torch.no_grad()``; ours is ``optimize_for_inference(model)`` (the fused
  copy: batch norms folded, channels-last, see ``STGCN.fuse``), and with ``--precision fp32,bf16`` the
  same fused model in bf16 too, in the same interleaved run;
* training step: forward in train mode, cross-entropy, backward, SGD (momentum 0.9, wd 1e-4) step;
  with ``--precision ...,bf16`` also ours under CPU bf16 autocast (``train.precision=bf16``).

Every function is called untimed ``1 + 1 + WARMUP_ROUNDS`` times first (warm-up, peak memory, then
interleaved rounds), so that both are timed in their steady state: the plain formulation's first
calls are slower while the allocator's heap grows to its working set (measured at OpenPose N=8,
T=150, 1 thread: 5.6, 6.0, 6.7, 7.5 samples/s over its first four calls, ours 8.8 then 11). What
moved its rate between runs afterwards was the allocator (next paragraph), not the shape order.

Each shape runs in a fresh process (spawned; ``--same-process`` runs them all in this one) whose
glibc allocator keeps the memory it frees (``MALLOC_MMAP_THRESHOLD_``, :data:`KEEP_FREED_MEMORY`;
``--system-malloc`` leaves glibc's defaults). With the defaults every block above glibc's mmap
threshold (at most 32 MB) is mapped for one call and unmapped after it, so each call faults in and
zeroes its temporaries again, and on this VM that cost varies from run to run and within a run:
the plain forward at NTU N=8, T=150, 2 threads took 0.59-1.53 s per call over six fresh processes
(the ratio 1.48-2.30x, whatever the shape order), with the memory kept 0.54-0.76 s over four
processes, steady within each (1.47-1.70x).
The plain formulation's (N, K*C, T, V) temporaries are what it maps; ours allocates a third as much,
so the defaults moved the ratio, not only the rates.

Reported per shape: samples/s of both and the ratio, peak memory (torch CPU allocator peak above the
start level, replayed from profiler memory events; CUDA: ``max_memory_allocated``), the fraction of
this machine's float32 peak (analytic FLOPs of the plain formulation from ``FlopCounterMode`` ÷ time,
against :func:`~stgcn.bench.common.fp32_peak_gflops` measured in the same run), the ratio ceiling
(the ratio an exact formulation of the same FLOPs would reach running at that peak: plain time ÷
(FLOPs ÷ peak); ours does the same FLOPs, within 1 %) and the max abs difference of eval logits.

With ``--checkpoint CKPT --data STORE --split S`` the accuracy cost of each precision on real data
comes first: ``stgcn eval``'s scores of the split in each precision, top-1 of each, top-1 agreement
with fp32 and the max abs logit difference (:func:`accuracy_cost`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import torch
import torch.nn.functional as F
from torch import nn

from .common import emit, fp32_peak_gflops, interleaved, machine_info, median, peak_alloc_bytes

SHAPES = [  # (layout, N, T, M)
    ("ntu-rgb+d", 8, 150, 2),
    ("ntu-rgb+d", 16, 300, 2),
    ("openpose", 8, 150, 2),
    ("openpose", 16, 300, 2),
]
QUICK_SHAPES = [("ntu-rgb+d", 2, 16, 2), ("openpose", 2, 12, 1)]
WARMUP_ROUNDS = 2  # interleaved untimed rounds after the warm-up and peak-memory calls (see above)


class PlainBlock(nn.Module):
    def __init__(self, c_in, c_out, k, stride, residual, dropout):
        super().__init__()
        self.k = k

        class _G(nn.Module):
            pass

        self.gcn = _G()
        self.gcn.conv = nn.Conv2d(c_in, c_out * k, 1)
        self.tcn = nn.Sequential(nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                                 nn.Conv2d(c_out, c_out, (9, 1), (stride, 1), (4, 0)), nn.BatchNorm2d(c_out),
                                 nn.Dropout(dropout, inplace=True))
        if not residual:
            self.res = "none"
        elif c_in == c_out and stride == 1:
            self.res = "identity"
        else:
            self.res = "conv"
            self.residual = nn.Sequential(nn.Conv2d(c_in, c_out, 1, (stride, 1)), nn.BatchNorm2d(c_out))

    def forward(self, x, A):
        res = 0 if self.res == "none" else (x if self.res == "identity" else self.residual(x))
        y = self.gcn.conv(x)
        n, kc, t, v = y.shape
        y = torch.einsum("nkctv,kvw->nctw", y.view(n, self.k, kc // self.k, t, v), A)
        return F.relu(self.tcn(y) + res)


class PlainSTGCN(nn.Module):
    """The official ST-GCN (net/st_gcn.py) math written plainly; same parameter names as ours."""

    def __init__(self, ours: nn.Module) -> None:
        super().__init__()
        cfg = ours.cfg
        v, c = ours.layout.num_joints, cfg.in_channels
        self.register_buffer("A", ours.A.clone())
        k = self.A.shape[0]
        self.data_bn = nn.BatchNorm1d(v * c)
        blocks, c_in = [], c
        for i, (c_out, s) in enumerate(zip(cfg.channels, cfg.strides, strict=True)):
            blocks.append(PlainBlock(c_in, c_out, k, s, cfg.first_residual if i == 0 else True,
                                     cfg.dropout if (i > 0 or cfg.first_dropout) else 0.0))
            c_in = c_out
        self.st_gcn_networks = nn.ModuleList(blocks)
        self.edge_importance = nn.ParameterList([nn.Parameter(torch.ones_like(self.A)) for _ in blocks])
        self.fcn = nn.Conv2d(c_in, cfg.num_classes, 1)
        self.load_state_dict(ours.state_dict())

    def forward(self, x):
        n, c, t, v, m = x.shape
        x = self.data_bn(x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t))
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        for blk, imp in zip(self.st_gcn_networks, self.edge_importance, strict=True):
            x = blk(x, self.A * imp)
        x = F.avg_pool2d(x, x.shape[2:]).view(n, m, -1, 1, 1).mean(dim=1)
        return self.fcn(x).flatten(1)


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics so that eval exercises the BN folding."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.1)
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g))


def ort_int8(fused: nn.Module, x: torch.Tensor):
    """The fused model exported and statically quantised by ONNX Runtime (``stgcn export --precision
    int8``), as a callable on tensors; calibrated on random inputs of ``x``'s shape (for timing only:
    its accuracy on real data is what ``stgcn export`` reports)."""
    import tempfile
    from pathlib import Path

    import onnxruntime as ort

    from ..export.onnx import export_onnx

    with tempfile.TemporaryDirectory(prefix="stgcn-bench-") as d:
        g = torch.Generator().manual_seed(1)
        calib = [torch.randn(x.shape, generator=g).numpy() for _ in range(2)]
        path = Path(d) / "int8.onnx"
        export_onnx(fused, path, num_persons=x.shape[4], precision="int8", calibration=calib, repeat=1,
                    timing_frames=8, example_frames=min(32, x.shape[2]))
        so = ort.SessionOptions()
        so.intra_op_num_threads = torch.get_num_threads()
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda t: torch.from_numpy(sess.run(["logits"], {"skeleton": t.numpy()})[0])


def _flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def bench_shape(layout, n, t, m, *, repeats, device, amp, compile_, peak, num_classes=60,
                precisions=("fp32",)) -> dict:
    from ..models import create_model, optimize_for_inference

    torch.manual_seed(0)
    ours = create_model("stgcn-official", layout=layout, num_classes=num_classes).to(device)
    _randomize_bn(ours)
    plain = PlainSTGCN(ours).to(device)
    v = ours.layout.num_joints
    x = torch.randn(n, 3, t, v, m, device=device)
    y = torch.randint(0, num_classes, (n,), device=device)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        ours = ours.to(memory_format=torch.channels_last)
    fused = optimize_for_inference(ours)
    run_ours = torch.compile(ours) if compile_ else ours
    run_fused = torch.compile(fused) if compile_ else fused
    reduced = {p: optimize_for_inference(ours, p) for p in precisions if p not in ("fp32", "int8")}
    if "int8" in precisions:
        reduced["int8"] = ort_int8(fused, x)

    def autocast():
        return torch.autocast("cuda", dtype=torch.float16, enabled=amp and cuda)

    # -- exactness: eval logits of both on the same weights and input --------------------------
    plain.eval()
    with torch.no_grad():
        diff = float((fused(x) - plain(x)).abs().max())
        scale = float(plain(x).abs().max())
        diffs = {p: float((r(x) - plain(x)).abs().max()) for p, r in reduced.items()}

    def fwd(model):
        def f():
            with torch.no_grad(), autocast():
                return model(x)
        return f

    def make_step(model, bf16=False):
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)

        def f():
            # bf16: the CPU autocast of `--set train.precision=bf16` (engine/training.py)
            with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else autocast():
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return f

    out = {"layout": layout, "shape": [n, 3, t, v, m], "logits_max_abs_diff": diff, "logits_max_abs": scale,
           "logits_max_abs_diff_by_precision": diffs}
    flops_fwd = _flops(lambda: plain(x))
    for mode in ("forward", "train_step"):
        if mode == "forward":
            plain.eval()
            fns = {"plain": fwd(plain), "ours": fwd(run_fused)} | {f"ours_{p}": fwd(r) for p, r in reduced.items()}
            flops = flops_fwd
        else:
            ours.train()
            plain.train()
            fns = {"plain": make_step(plain), "ours": make_step(run_ours)}
            if "bf16" in reduced and not cuda:
                fns["ours_bf16"] = make_step(run_ours, bf16=True)
            flops = _flops(fns["plain"])
        res = _measure(fns, n, repeats, flops, peak, cuda, sync)
        res["analytic_gflop"] = flops / 1e9
        out[mode] = res
    return out


def _measure(fns: dict, n: int, repeats: int, flops: float, peak: float, cuda: bool, sync) -> dict:
    """Peak memory of one call of each function, then their interleaved times after
    ``WARMUP_ROUNDS`` untimed rounds: samples/s, GFLOP/s, the ratio of each of ours to the plain
    formulation and the ratio ceiling at ``peak``."""
    mem = {}
    for k, f in fns.items():
        f()  # warm-up (and compile)
        if cuda:
            sync()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            f()
            sync()
            mem[k] = torch.cuda.max_memory_allocated() - base
        else:
            mem[k] = peak_alloc_bytes(f)
    times = interleaved(fns, repeats, warmup=WARMUP_ROUNDS, sync=sync)
    res = {}
    for k, ts in times.items():
        sec = median(ts)
        res[k] = {"samples_per_s": n / sec, "median_s": sec, "times_s": ts, "peak_mem_mb": mem[k] / 2 ** 20,
                  "gflops": flops / sec / 1e9, "fraction_of_peak": flops / sec / 1e9 / peak}
    res["ratio"] = res["ours"]["samples_per_s"] / res["plain"]["samples_per_s"]
    res["ratio_ceiling"] = 1.0 / res["plain"]["fraction_of_peak"]
    for p in (k[5:] for k in fns if k.startswith("ours_")):
        res[f"ratio_{p}"] = res[f"ours_{p}"]["samples_per_s"] / res["plain"]["samples_per_s"]
    return res


def accuracy_cost(checkpoint: str, data: str, split: str, precisions: list[str]) -> dict:
    """Per precision on ``split`` of ``data``: top-1, top-1 agreement with fp32 and the max abs logit
    difference to fp32, from ``stgcn eval``'s scores (the checkpoint's test pipeline and clips)."""
    import numpy as np

    from ..engine.evaluate import evaluate

    runs = {p: evaluate(checkpoint, data, split, precision=p, progress=False)
            for p in dict.fromkeys(["fp32", *precisions])}
    ref = runs["fp32"]
    out = {"checkpoint": str(checkpoint), "data": str(data), "split": split, "samples": len(ref.labels),
           "precisions": {}}
    for p, r in runs.items():
        out["precisions"][p] = {
            "top1": float(r.metrics["top1"]),
            "top1_agreement_with_fp32": float(np.mean(r.scores.argmax(1) == ref.scores.argmax(1))),
            "logits_max_abs_diff_vs_fp32": float(np.abs(r.scores - ref.scores).max()),
        }
    out["logits_max_abs"] = float(np.abs(ref.scores).max())
    return out


def _accuracy_lines(acc: dict) -> list[str]:
    lines = [f"accuracy cost on {acc['data']} {acc['split']} ({acc['samples']} samples, {acc['checkpoint']}; "
             f"|logits| ≤ {acc['logits_max_abs']:.2f}):"]
    for p, d in acc["precisions"].items():
        lines.append(f"  {p:5s} top-1 {100 * d['top1']:6.2f}%  agreement with fp32 "
                     f"{100 * d['top1_agreement_with_fp32']:6.2f}%  "
                     f"max abs logit diff {d['logits_max_abs_diff_vs_fp32']:.2e}")
    return lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per model (default 5, 3 at T=300)")
    p.add_argument("--quick", action="store_true", help="tiny shapes (smoke test)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (AMP fp16 + channels-last on cuda)")
    p.add_argument("--compile", action="store_true", help="torch.compile our model (CUDA; slow to compile on CPU)")
    p.add_argument("--no-amp", action="store_true", help="no autocast on cuda")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, 1 with --quick)")
    p.add_argument("--shapes", default=None, help="subset, e.g. 'ntu-rgb+d:8:150:2,openpose:16:300:2'")
    p.add_argument("--precision", default="fp32", help="inference precisions to time, comma-separated: fp32,bf16,int8 "
                                                       "(fp32 always runs; int8 is ONNX Runtime's, see stgcn export; "
                                                       "fp32 and bf16 are also scored with --checkpoint)")
    p.add_argument("--same-process", action="store_true",
                   help="run every shape in this process (default: each in a fresh one, so that no shape's "
                        "rate depends on the shapes before it)")
    p.add_argument("--system-malloc", action="store_true",
                   help="leave glibc's allocator at its defaults in the shape processes (default: it keeps "
                        "freed memory, so no call pays for mapping its temporaries again)")
    p.add_argument("--checkpoint", help="with --data and --split: score each precision on real data first")
    p.add_argument("--data", help="prepared store of the checkpoint's layout")
    p.add_argument("--split", help="split of --data to score, e.g. xsub_test")


#: The environment of a benchmark process: glibc serves every block from its heap and keeps what is
#: freed (no per-call mmap/munmap), as a long-running process reaches its steady state; other C
#: libraries ignore it.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(4 << 30)}


def _bench_shape_here(threads: int, layout: str, n: int, t: int, m: int, kwargs: dict) -> dict:
    torch.set_num_threads(threads)
    return bench_shape(layout, n, t, m, **kwargs) | {
        "pid": os.getpid(), "malloc_env": {k: os.environ[k] for k in KEEP_FREED_MEMORY if k in os.environ}}


def bench_shape_isolated(layout: str, n: int, t: int, m: int, *, fresh_process: bool = True,
                         keep_freed_memory: bool = True, **kwargs) -> dict:
    """:func:`bench_shape` in a freshly spawned process (this process's thread count; with
    :data:`KEEP_FREED_MEMORY` in its environment unless ``keep_freed_memory=False``), or here with
    ``fresh_process=False``; the result records the process id and the allocator settings it ran with."""
    threads = torch.get_num_threads()
    if not fresh_process:
        return _bench_shape_here(threads, layout, n, t, m, kwargs)
    saved = {k: os.environ.pop(k) for k in KEEP_FREED_MEMORY if k in os.environ}
    if keep_freed_memory:
        os.environ.update(KEEP_FREED_MEMORY)
    try:  # the child copies os.environ when it starts, at the first submit
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(_bench_shape_here, threads, layout, n, t, m, kwargs).result()
    finally:
        for k in KEEP_FREED_MEMORY:
            os.environ.pop(k, None)
        os.environ.update(saved)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but CUDA is not available")
    from ..runtime import usable_precision

    precisions = [usable_precision(p) for p in args.precision.split(",") if p]
    precisions = list(dict.fromkeys(p for p in precisions if p != "fp32"))  # fp32 always runs; a fallback is fp32
    if args.same_process and args.system_malloc:
        raise ConfigError("--system-malloc sets the allocator of the shape processes; with --same-process "
                          "there are none (this process keeps the allocator it started with): choose one")
    if (args.checkpoint, args.data, args.split).count(None) not in (0, 3):
        raise ConfigError("the accuracy cost needs --checkpoint, --data and --split together")
    if args.threads or args.quick:
        torch.set_num_threads(args.threads or 1)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    if args.shapes:
        shapes = [(s.split(":")[0], *map(int, s.split(":")[1:])) for s in args.shapes.split(",")]
    peak = fp32_peak_gflops(256 if args.quick else 2048, device=args.device)
    result = {"machine": machine_info(), "device": args.device, "fp32_peak_gflops": peak,
              "warmup_rounds": WARMUP_ROUNDS,
              "isolation": "this process" if args.same_process else "a fresh process per shape",
              "allocator": "this process's" if args.same_process else
              "glibc defaults" if args.system_malloc else f"glibc keeping freed memory ({KEEP_FREED_MEMORY})",
              "memory": "torch CPU allocator peak above start (profiler memory events)"
              if args.device == "cpu" else "torch.cuda.max_memory_allocated above start",
              "flops": "FlopCounterMode on the plain formulation (same math for both)", "shapes": []}
    lines = [f"fp32 peak {peak:.1f} GFLOP/s (one core's best of a matmul and a 9x1 conv, x threads); "
             f"threads {torch.get_num_threads()}; shapes run in {result['isolation']}, allocator "
             f"{result['allocator']}; "
             f"load {result['machine']['load_avg_1m']}"]
    if args.checkpoint:
        result["accuracy"] = accuracy_cost(args.checkpoint, args.data, args.split,
                                           [p for p in precisions if p != "int8"])
        lines += _accuracy_lines(result["accuracy"])
    for layout, n, t, m in shapes:
        reps = args.repeats or (1 if args.quick else (3 if t >= 300 else 5))
        r = bench_shape_isolated(layout, n, t, m, fresh_process=not args.same_process,
                                 keep_freed_memory=not args.system_malloc, repeats=reps,
                                 device=args.device, amp=not args.no_amp, compile_=args.compile, peak=peak,
                                 precisions=precisions)
        r["repeats"] = reps
        result["shapes"].append(r)
        lines.append(f"{layout} N={n} T={t} M={m}: eval logits max abs diff {r['logits_max_abs_diff']:.2e} "
                     f"(|logits| ≤ {r['logits_max_abs']:.2f}), {reps} interleaved repeats, medians")
        for mode in ("forward", "train_step"):
            d = r[mode]
            pl, us = d["plain"], d["ours"]
            lines.append(f"  {mode:10s} plain {pl['samples_per_s']:7.2f}/s ours {us['samples_per_s']:7.2f}/s "
                         f"ratio {d['ratio']:.2f}x | peak mem plain {d['plain']['peak_mem_mb']:.0f} MB ours "
                         f"{d['ours']['peak_mem_mb']:.0f} MB | of fp32 peak plain "
                         f"{100 * d['plain']['fraction_of_peak']:.0f}% ours {100 * d['ours']['fraction_of_peak']:.0f}% "
                         f"(ceiling {d['ratio_ceiling']:.2f}x)")
            for p in (k[5:] for k in d if k.startswith("ours_")):
                q = d[f"ours_{p}"]
                mem = "n/a (onnxruntime)" if p == "int8" else f"{q['peak_mem_mb']:.0f} MB"  # torch's allocator only
                lines.append(f"  {'':10s} ours {p} {q['samples_per_s']:7.2f}/s ratio {d[f'ratio_{p}']:.2f}x "
                             f"({q['samples_per_s'] / us['samples_per_s']:.2f}x fp32) | peak mem {mem}"
                             + (f" | max abs logit diff vs plain {r['logits_max_abs_diff_by_precision'][p]:.2e}"
                                if mode == "forward" else " (autocast)"))
    emit(result, args.json, lines)
    return 0
