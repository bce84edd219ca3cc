"""Smoke test of `stgcn bench data` at tiny sizes (benchmarks are not tests: no time is asserted)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from stgcn.bench import data as bench


def test_bench_data_runs_and_reports_every_part(tmp_path, capsys):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    args = p.parse_args(["--clips", "12", "--ntu-files", "1", "--loader-clips", "8", "--loader-batches", "2",
                         "--batch-size", "2", "--frames", "20", "--model-steps", "1", "--workers", "1",
                         "--tmp", str(tmp_path), "--json"])
    assert bench.run(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["prepare_memory"]["available"], res["prepare_memory"]
    assert res["prepare_memory"]["clips"] == 12 and res["prepare_memory"]["peak_mb"] > 0
    assert res["loader"]["batch_shape"] == [2, 3, 20, 25, 2] and res["loader"]["samples_per_s"] > 0
    if res["parse"]["available"]:
        assert res["parse"]["max_abs_diff"] < 1e-5 and res["parse"]["ratio"] > 0
    assert list(tmp_path.iterdir()) == []  # scratch data removed


def test_plain_reference_parser_reads_a_skeleton_file(tmp_path):
    lines = ["2"]
    for f in range(2):
        lines += ["1", "72057594037931101 0 1 1 1 1 0 0.1 0.2 2", "25"]
        lines += [f"{f + j * 0.01} {j} {2.5} 1 2 3 4 0 0 0 1 2" for j in range(25)]
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text("\n".join(lines) + "\n")
    x = bench.plain_read_ntu(path)
    assert x.shape == (3, 2, 25, 2) and not x[..., 1].any()
    np.testing.assert_allclose(x[:, 1, 3, 0], [1.03, 3, 2.5])
