"""Ablation (paper Table 1): every setting builds and trains; table, JSON and chart are written;
finished runs are reused."""

from __future__ import annotations

import json

from stgcn.ablation import SETTINGS, run_ablation, run_config
from test_train import make_store, tiny_config


def test_settings_map_to_models(tmp_path):
    base = tiny_config(tmp_path, tmp_path / "o")
    base.model.name = "stgcn"
    got = {k: run_config(base, k, 0, tmp_path) for k in SETTINGS}
    assert got["tcn"].model.name == "tcn" and got["local-conv"].model.name == "local-conv"
    assert got["distance-star"].model.strategy == "distance-star"
    assert [k for k, c in got.items() if c.model.edge_importance] == ["spatial-imp"]
    assert got["spatial"].train.out.endswith("spatial/seed0")


def test_ablation_runs_and_writes_table(tmp_path, capsys):
    store = make_store(tmp_path / "store", n=24)
    base = tiny_config(store, tmp_path / "unused", epochs=1)
    base.model.kwargs = {"channels": [8, 8], "strides": [1, 2]}
    out = tmp_path / "abl"
    rows = run_ablation(base, out, seeds=[0, 1])
    assert [r.key for r in rows] == list(SETTINGS)
    assert all(0 <= r.top1 <= 1 and len(r.runs) == 2 for r in rows)
    md = (out / "ablation.md").read_text()
    assert "| Baseline TCN |" in md and "| ST-GCN + Imp. |" in md and "±" in md
    assert (out / "ablation.png").stat().st_size > 1000
    data = json.loads((out / "ablation.json").read_text())
    assert data[-1]["label"] == "ST-GCN + Imp." and data[-1]["paper_kinetics_top1"] == 0.307
    # a second call reuses the finished runs
    mtime = (out / "spatial" / "seed0" / "metrics.json").stat().st_mtime_ns
    run_ablation(base, out, seeds=[0, 1], settings=["spatial"])
    assert (out / "spatial" / "seed0" / "metrics.json").stat().st_mtime_ns == mtime
