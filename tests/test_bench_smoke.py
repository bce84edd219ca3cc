"""Smoke test of ``stgcn bench model`` and ``stgcn bench stream`` through the CLI entry point.

Benchmarks are not tests: nothing here asserts a wall-clock time, only that the reports have their
fields and that our model and the plain formulation (or ONNX Runtime) agree on the logits.
"""

import json

import pytest

from stgcn.cli import main


def _run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_bench_model_quick_json(capsys):
    r = _run_json(capsys, ["bench", "model", "--quick", "--json"])
    assert r["sgemm_peak_gflops"] > 0 and r["memory"] and r["flops"]
    assert r["shapes"]
    for s in r["shapes"]:
        assert s["logits_max_abs_diff"] < 1e-4
        for mode in ("forward", "train_step"):
            d = s[mode]
            assert d["ratio"] > 0 and d["analytic_gflop"] > 0
            for who in ("plain", "ours"):
                for key in ("samples_per_s", "median_s", "peak_mem_mb", "fraction_of_peak"):
                    assert key in d[who]
                assert d[who]["peak_mem_mb"] > 0


def test_bench_stream_quick_json(capsys):
    r = _run_json(capsys, ["bench", "stream", "--quick", "--json", "--threads", "1"])
    assert len(r["cases"]) == 3  # the demo model and the official network on two layouts
    for c in r["cases"]:
        assert {"torch_eager", "torch_fused"} <= set(c["paths"])
        for d in c["paths"].values():
            assert d["median_ms"] > 0 and d["p90_ms"] >= d["median_ms"] * 0.999
        for diff in c["max_abs_diff_vs_eager"].values():
            assert diff < 1e-4
        if c["onnxruntime"] is not None:
            assert {"ort", "ort_fused"} <= set(c["paths"])


def test_bench_model_rejects_cuda_without_gpu(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["bench", "model", "--quick", "--device", "cuda"]) == 2
