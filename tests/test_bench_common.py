"""stgcn.bench.common: the float32 peak the benchmarks compare against."""

import math

import pytest
import torch
import torch.nn.functional as F

from stgcn.bench import common


def test_fp32_peak_includes_the_convolution_probe(monkeypatch):
    """On the CPU the peak is the best of the matmul and a channels-last (9×1) convolution (oneDNN),
    probed on one thread: the matmul alone (MKL's sgemm on AMD) understated it 3×."""
    seen = []
    real_conv = F.conv2d

    def conv2d(x, w, *args):
        seen.append((x.is_contiguous(memory_format=torch.channels_last), tuple(w.shape), torch.get_num_threads()))
        return real_conv(x, w, *args)

    monkeypatch.setattr(F, "conv2d", conv2d)
    peak = common.fp32_peak_gflops(128, repeats=2)
    assert math.isfinite(peak) and peak > 0
    assert seen and all(s == (True, (64, 64, 9, 1), 1) for s in seen)


N = 128
MM_FLOPS = 2 * N ** 3
CONV_FLOPS = 2 * (16 * 64 * 16 * 18) * 64 * 9  # the probe at N = 128: (16, 64, 16, 18), 64 -> 64, 9 taps


@pytest.mark.parametrize("mm_s, conv_s, expected", [(1.0, 1000.0, MM_FLOPS), (1.0, 1.0, CONV_FLOPS),
                                                     (1e-3, 1.0, max(MM_FLOPS * 1e3, CONV_FLOPS))])
def test_fp32_peak_is_the_best_probe(monkeypatch, mm_s, conv_s, expected):
    """A fake clock that each probe call advances by a set time: the peak is the faster probe's rate."""
    clock = [0.0]
    real_conv, real_mm = F.conv2d, torch.Tensor.__matmul__

    def conv2d(*args):
        clock[0] += conv_s
        return real_conv(*args)

    def matmul(a, b):
        clock[0] += mm_s
        return real_mm(a, b)

    monkeypatch.setattr(common.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(F, "conv2d", conv2d)
    monkeypatch.setattr(torch.Tensor, "__matmul__", matmul)
    threads = torch.get_num_threads()
    # one core probed, times the threads; the thread count is restored
    assert common.fp32_peak_gflops(N, repeats=2) == pytest.approx(expected * threads / 1e9)
    assert torch.get_num_threads() == threads
