"""Helpers shared by the benchmarks: interleaved timing, the machine's matmul peak, peak memory."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                sync: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each function, measured A, B, A, B, ... so that machine noise hits all alike."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        for f in fns.values():
            f()
            sync()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            sync()
            t0 = time.perf_counter()
            f()
            sync()
            times[k].append(time.perf_counter() - t0)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def fp32_peak_gflops(n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """An upper bound of this machine's float32 throughput (GFLOP/s) at the current thread count.

    CUDA: the best of ``repeats`` (n×n)·(n×n) matmuls. CPU: one core's best rate, of that matmul
    and of a channels-last (9×1) convolution (oneDNN's direct convolution, ST-GCN's temporal
    convolution), times the thread count (perfect scaling). One thread is probed because a probe
    with all threads on a loaded machine measured the load (66 GFLOP/s with 2 threads at load 4.8,
    where one core alone ran 245). The matmul alone understates the peak here: torch's float32
    ``torch.mm`` is MKL's sgemm, 75 GFLOP/s per core on this project's AMD CPU, where oneDNN's
    convolution runs 245-260, so a model on oneDNN showed more than 100 % of that "peak"."""
    import torch
    import torch.nn.functional as F

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def best(fn, reps: int) -> float:
        fn()
        sync()
        t = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            sync()
            t = min(t, time.perf_counter() - t0)
        return t

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    if device != "cpu":
        return 2 * n ** 3 / best(lambda: a @ b, repeats) / 1e9
    threads = torch.get_num_threads()
    frames = max(16, n * 150 // 2048)  # (16, 64, 150, 18) at n = 2048: 3.2 GFLOP
    x = torch.randn(16, 64, frames, 18).relu_().contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 64, 9, 1)
    torch.set_num_threads(1)
    try:
        rate = max(2 * n ** 3 / best(lambda: a @ b, repeats),
                   2 * x.numel() * 64 * 9 / best(lambda: F.conv2d(x, w, None, 1, (4, 0)), 3 * repeats))
    finally:
        torch.set_num_threads(threads)
    return rate * threads / 1e9


def peak_alloc_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes held by torch's CPU allocator during ``fn()`` above the level at its start, from the
    profiler's memory events (allocations and frees replayed in time order)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [(e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort()
    cur = peak = 0
    for _, nbytes in events:
        cur += nbytes
        peak = max(peak, cur)
    return peak


def machine_info() -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def emit(result: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(lines))
