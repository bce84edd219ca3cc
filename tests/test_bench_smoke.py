"""Smoke test of ``stgcn bench model`` and ``stgcn bench stream`` through the CLI entry point.

Benchmarks are not tests: nothing here asserts a wall-clock time, only that the reports have their
fields and that our model and the plain formulation (or ONNX Runtime) agree on the logits.
"""

import json
import os

import pytest

from stgcn.bench import model as bench_model
from stgcn.cli import main


def _run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_bench_model_quick_json(capsys):
    r = _run_json(capsys, ["bench", "model", "--quick", "--json"])
    assert r["fp32_peak_gflops"] > 0 and r["memory"] and r["flops"] and r["warmup_rounds"] >= 1
    assert r["shapes"] and r["isolation"] == "a fresh process per shape"
    pids = [s["pid"] for s in r["shapes"]]  # each shape measured in its own process, none in this one
    assert len(set(pids)) == len(pids) and os.getpid() not in pids
    assert all(s["malloc_env"] == bench_model.KEEP_FREED_MEMORY for s in r["shapes"])
    assert "MALLOC_MMAP_THRESHOLD_" not in os.environ  # set for the children only
    for s in r["shapes"]:
        assert s["logits_max_abs_diff"] < 1e-4
        for mode in ("forward", "train_step"):
            d = s[mode]
            assert d["ratio"] > 0 and d["analytic_gflop"] > 0
            assert d["ratio_ceiling"] == pytest.approx(1 / d["plain"]["fraction_of_peak"])
            for who in ("plain", "ours"):
                for key in ("samples_per_s", "median_s", "peak_mem_mb", "fraction_of_peak"):
                    assert key in d[who]
                assert d[who]["peak_mem_mb"] > 0


def test_bench_model_same_process(capsys):
    r = _run_json(capsys, ["bench", "model", "--quick", "--json", "--same-process", "--shapes", "openpose:2:12:1"])
    assert r["isolation"] == "this process" and [s["pid"] for s in r["shapes"]] == [os.getpid()]
    assert r["shapes"][0]["logits_max_abs_diff"] < 1e-4


def test_bench_model_system_malloc(capsys, monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")  # the user's own setting: not passed on, restored
    r = _run_json(capsys, ["bench", "model", "--quick", "--json", "--system-malloc", "--shapes", "openpose:2:12:1"])
    assert r["allocator"] == "glibc defaults" and r["shapes"][0]["malloc_env"] == {}
    assert r["shapes"][0]["pid"] != os.getpid() and os.environ["MALLOC_MMAP_THRESHOLD_"] == "65536"


def test_bench_model_rejects_system_malloc_in_the_same_process(capsys):
    assert main(["bench", "model", "--quick", "--same-process", "--system-malloc"]) == 2
    assert "--system-malloc" in capsys.readouterr().err


def test_bench_stream_quick_json(capsys):
    r = _run_json(capsys, ["bench", "stream", "--quick", "--json", "--threads", "1"])
    assert len(r["cases"]) == 3  # the demo model and the official network on two layouts
    for c in r["cases"]:
        assert {"torch_eager", "torch_fused"} <= set(c["paths"])
        for d in c["paths"].values():
            assert d["median_ms"] > 0 and d["p90_ms"] >= d["median_ms"] * 0.999
        for path, diff in c["max_abs_diff_vs_eager"].items():
            # bf16: 8 mantissa bits; int8: calibrated on one random input; |logits| < 1 here
            assert diff < {"torch_bf16": 2e-2, "ort_int8": 0.2}.get(path, 1e-4)
        if c["onnxruntime"] is not None:
            assert {"ort", "ort_fused", "ort_int8"} <= set(c["paths"])


def test_bench_model_rejects_cuda_without_gpu(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["bench", "model", "--quick", "--device", "cuda"]) == 2


def test_bench_model_precisions_and_accuracy_cost(capsys, tmp_path):
    """``--precision fp32,bf16`` times both fused forms beside the plain one; with a checkpoint and a
    store it scores the split in each precision (top-1, agreement with fp32, logit difference)."""
    from stgcn import runtime
    from stgcn.engine.training import train
    from test_train import make_store, tiny_config

    if runtime.missing_cpu_feature("bf16"):
        pytest.skip(f"this CPU lacks {runtime.missing_cpu_feature('bf16')}")
    store = make_store(tmp_path / "store", n=16)
    ckpt = train(tiny_config(store, tmp_path / "run", epochs=1)).best_checkpoint
    r = _run_json(capsys, ["bench", "model", "--quick", "--json", "--precision", "fp32,bf16,int8",
                           "--checkpoint", str(ckpt), "--data", str(store), "--split", "val"])
    acc = r["accuracy"]
    assert acc["samples"] == 4 and set(acc["precisions"]) == {"fp32", "bf16"}  # int8: stgcn export reports it
    assert acc["precisions"]["fp32"]["top1_agreement_with_fp32"] == 1.0
    assert acc["precisions"]["fp32"]["logits_max_abs_diff_vs_fp32"] == 0.0
    bf16 = acc["precisions"]["bf16"]
    assert 0 <= bf16["top1"] <= 1 and 0 < bf16["logits_max_abs_diff_vs_fp32"] < 0.05 * acc["logits_max_abs"] + 0.05
    for s in r["shapes"]:
        assert s["forward"]["ratio_bf16"] > 0 and s["forward"]["ratio_int8"] > 0
        assert s["train_step"]["ratio_bf16"] > 0 and "ratio_int8" not in s["train_step"]  # autocast; no int8 training
        assert s["logits_max_abs_diff_by_precision"]["int8"] < 0.1 * s["logits_max_abs"] + 1e-2
        assert s["logits_max_abs_diff_by_precision"]["bf16"] < 0.05 * s["logits_max_abs"] + 1e-2
    assert main(["bench", "model", "--quick", "--checkpoint", str(ckpt)]) == 2  # --data and --split missing
