"""stgcn.bench.model's measurement: untimed warm-up rounds before the interleaved timed ones, and
the ratio ceiling."""

import pytest

from stgcn.bench import model as bench_model


def test_measure_times_only_after_the_warmup_rounds(monkeypatch):
    calls = []
    fns = {"plain": lambda: calls.append("plain"), "ours": lambda: calls.append("ours")}
    timed = []
    real = bench_model.interleaved

    def interleaved(fns_, repeats, warmup, sync):
        timed.append((repeats, warmup))
        return real(fns_, repeats, warmup=warmup, sync=sync)

    monkeypatch.setattr(bench_model, "interleaved", interleaved)
    res = bench_model._measure(fns, n=4, repeats=3, flops=1e9, peak=10.0, cuda=False, sync=lambda: None)
    assert timed == [(3, bench_model.WARMUP_ROUNDS)] and bench_model.WARMUP_ROUNDS >= 1
    # one warm-up call, one peak-memory call, the warm-up rounds, the timed rounds; interleaved
    assert calls.count("plain") == calls.count("ours") == 2 + bench_model.WARMUP_ROUNDS + 3
    assert calls[-6:] == ["plain", "ours"] * 3
    assert len(res["plain"]["times_s"]) == 3
    # the ceiling: plain's time over the time of its FLOPs at the peak (1 GFLOP at 10 GFLOP/s = 0.1 s)
    assert res["ratio_ceiling"] == pytest.approx(res["plain"]["median_s"] / 0.1)
