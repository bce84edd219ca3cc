"""stgcn cv: every (fold, seed) trained and summarised, reports written, finished runs reused,
bad protocols and folds refused before any training."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import yaml

from stgcn.cli import main
from stgcn.data import protocols as P
from stgcn.data.prepare import prepare_source
from stgcn.engine import cv
from stgcn.engine.runlock import RunLock
from stgcn.errors import ConfigError, DataError
from test_train import CLASSES, Item, synthetic_sample, tiny_config

GROUPS = ["g1", "g2", "g3"]


class GroupedSource:
    """18 synthetic clips in three groups of six (two per class); ``drop`` removes a class from a group."""

    def __init__(self, protocols, drop=None):
        self.name = "synthetic-cv"
        self.layout = "kinect-v1"
        self.class_names = list(CLASSES)
        self.meta, self.rejects = {}, []
        self.items = []
        for i in range(18):
            group, label = GROUPS[i % 3], (i // 3) % 3
            if drop == (group, label):
                continue
            self.items.append(Item(f"c{i:02d}", f"/syn/{i}", label, P.item_splits(protocols, group)))
        self.split_names = P.split_names(protocols)


@pytest.fixture
def protocols(monkeypatch):
    table = {"lgo": P.leave_one_out("lgo", GROUPS, GROUPS, "lgo_", "leave one group out", "99 % (somebody 2024)")}
    monkeypatch.setitem(P.PROTOCOLS, "synthetic-cv", table)
    return table


def make_store(path, protocols, **kw):
    prepare_source(GroupedSource(list(protocols.values()), **kw), path, workers=1, loader=synthetic_sample,
                   progress=False, source_info={"format": "synthetic"})
    return path


def base_config(store, tmp_path):
    cfg = tiny_config(store, tmp_path / "unused", epochs=1)
    cfg.model.kwargs = {"channels": [8, 8], "strides": [1, 2]}
    return cfg


def _accuracy(npz):
    with np.load(npz) as z:
        return float((z["scores"].argmax(1) == z["labels"]).mean())


def test_cv_trains_every_fold_and_seed_and_summarises(tmp_path, protocols):
    store = make_store(tmp_path / "store", protocols)
    out = tmp_path / "cv"
    res = cv.run_cv(base_config(store, tmp_path), "lgo", out, seeds=[0, 1])
    assert [(r.fold, r.seed, r.status) for r in res.runs] == [(g, s, "done") for g in GROUPS for s in (0, 1)]
    # the summary against the runs' own score files
    acc = {(g, s): _accuracy(out / g / f"seed{s}" / "val_scores.npz") for g in GROUPS for s in (0, 1)}
    seed_means = [np.mean([acc[(g, s)] for g in GROUPS]) for s in (0, 1)]
    fold_means = [np.mean([acc[(g, s)] for s in (0, 1)]) for g in GROUPS]
    s = res.summary
    assert s["complete"] and s["top1"] == pytest.approx(np.mean(list(acc.values())))
    assert s["top1_std_seeds"] == pytest.approx(np.std(seed_means, ddof=1))
    assert s["top1_std_folds"] == pytest.approx(np.std(fold_means, ddof=1))
    assert s["folds"]["g2"]["num_test"] == 6 and list(s["seeds"]) == ["0", "1"]
    cfg = json.loads((out / "g2" / "seed1" / "metrics.json").read_text())
    assert cfg["split"] == "lgo_g2_test"
    md = (out / "cv.md").read_text()
    assert "| g1 | 6 |" in md and "99 % (somebody 2024)" in md and "±" in md and "Incomplete" not in md
    assert (out / "cv.png").stat().st_size > 1000 and (out / "confusion.png").stat().st_size > 1000
    assert json.loads((out / "cv.json").read_text())["runs"][0]["fold"] == "g1"
    assert "lgo_g1_train" not in (out / "config.yaml").read_text()  # the base settings, before a fold's


def test_cv_reuses_finished_runs_and_resumes_the_rest(tmp_path, protocols, monkeypatch):
    store = make_store(tmp_path / "store", protocols)
    out = tmp_path / "cv"
    base = base_config(store, tmp_path)
    cv.run_cv(base, "lgo", out, seeds=[0], folds=["g1", "g3"])
    (out / "g3" / "seed0" / "metrics.json").unlink()  # as if killed after its last checkpoint
    trained = []
    train_module = importlib.import_module("stgcn.engine.training")
    real = train_module.train
    monkeypatch.setattr(train_module, "train", lambda cfg, store=None: trained.append(cfg.train.out) or
                        real(cfg, store=store))
    res = cv.run_cv(base, "lgo", out, seeds=[0], folds=["g1", "g3"])
    assert trained == [str(out / "g3" / "seed0")] and res.summary["complete"]
    assert [r.fold for r in res.runs] == ["g1", "g3"]


def test_cv_leaves_a_locked_run_pending(tmp_path, protocols):
    store = make_store(tmp_path / "store", protocols)
    out = tmp_path / "cv"
    busy = out / "g2" / "seed0"
    with RunLock(busy):  # held as another live process would hold it (an flock on its own descriptor)
        res = cv.run_cv(base_config(store, tmp_path), "lgo", out, seeds=[0])
    assert [r.status for r in res.runs] == ["done", "pending", "done"] and not res.summary["complete"]
    assert "Incomplete: 2 of 3 runs finished" in (out / "cv.md").read_text()
    assert "| g2 | – | pending |" in (out / "cv.md").read_text()


def test_cv_fuses_streams(tmp_path, protocols):
    store = make_store(tmp_path / "store", protocols)
    out = tmp_path / "cv"
    res = cv.run_cv(base_config(store, tmp_path), "lgo", out, seeds=[0], folds=["g1"], streams=["joint", "bone"])
    run = out / "g1" / "seed0"
    assert (run / "joint" / "metrics.json").exists() and (run / "bone" / "metrics.json").exists()
    assert res.runs[0].top1 == pytest.approx(_accuracy(run / "fused_scores.npz"))


def test_cv_runs_a_seed_ensemble_per_fold_and_seed(tmp_path, protocols):
    store = make_store(tmp_path / "store", protocols)
    out = tmp_path / "cv"
    base = base_config(store, tmp_path)
    base.train.ensemble = 2
    res = cv.run_cv(base, "lgo", out, seeds=[0, 1], folds=["g1"])
    for seed, r in zip((0, 1), res.runs, strict=True):
        run = out / "g1" / f"seed{seed}"
        assert (run / "m0" / "metrics.json").exists() and (run / "m1" / "metrics.json").exists()
        assert r.top1 == pytest.approx(_accuracy(run / "fused_scores.npz"))
        member_seeds = [yaml.safe_load((run / m / "config.yaml").read_text())["train"]["seed"] for m in ("m0", "m1")]
        assert member_seeds == [seed, seed + 1000]
    assert "a seed ensemble of 2 models per run" in (out / "cv.md").read_text()
    assert json.loads((out / "cv.json").read_text())["ensemble"] == 2
    with pytest.raises(ConfigError, match="do not combine"):
        cv.run_cv(base, "lgo", tmp_path / "cv2", seeds=[0], folds=["g1"], streams=["joint", "bone"])


def _no_training(monkeypatch):
    train_module = importlib.import_module("stgcn.engine.training")

    def fail(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(train_module, "train", fail)


def test_cv_refuses_bad_protocols_and_folds_before_training(tmp_path, protocols, monkeypatch):
    _no_training(monkeypatch)
    store = make_store(tmp_path / "store", protocols)
    base = base_config(store, tmp_path)
    with pytest.raises(DataError, match="no protocol 'loso' for dataset 'synthetic-cv'; its protocols: lgo"):
        cv.run_cv(base, "loso", tmp_path / "a")
    with pytest.raises(DataError, match="protocol 'lgo' has no fold 'g9'"):
        cv.run_cv(base, "lgo", tmp_path / "a", folds=["g9"])
    # a protocol the store was not prepared with (a fold added later), a fold without test clips
    monkeypatch.setitem(P.PROTOCOLS, "synthetic-cv", {"lgo": P.leave_one_out(
        "lgo", [*GROUPS, "g4"], [*GROUPS, "g4"], "lgo_", "d")})
    with pytest.raises(DataError, match="protocol 'lgo', fold 'g4': the store has no split 'lgo_g4_train'"):
        cv.run_cv(base, "lgo", tmp_path / "a")
    empty = {"lgo": P.leave_one_out("lgo", [*GROUPS, "g4"], [*GROUPS, "g4"], "lgo_", "d")}
    store2 = make_store(tmp_path / "store2", empty)
    with pytest.raises(DataError, match="protocol 'lgo', fold 'g4': the test split 'lgo_g4_test' has no clip"):
        cv.run_cv(base_config(store2, tmp_path), "lgo", tmp_path / "b")
    assert not (tmp_path / "b" / "g1").exists()  # nothing trained, not even the good folds


def test_cv_refuses_a_class_missing_from_a_training_fold(tmp_path, protocols, monkeypatch):
    _no_training(monkeypatch)
    # 'kick' (class 1) kept only in group g1: fold g1 tests it without training on it
    source_store = tmp_path / "store"
    prepare_source(_drop_two(protocols), source_store, workers=1, loader=synthetic_sample, progress=False,
                   source_info={"format": "synthetic"})
    with pytest.raises(DataError, match=r"protocol 'lgo', fold 'g1': classes \['kick'\] are in the test split "
                                        r"'lgo_g1_test' but missing from the training split 'lgo_g1_train'"):
        cv.run_cv(base_config(source_store, tmp_path), "lgo", tmp_path / "c")


def _drop_two(protocols):
    src = GroupedSource(list(protocols.values()))
    src.items = [it for it in src.items if not (it.label == 1 and it.splits[0] != "lgo_g1_test")]
    return src


def test_cli_cv_lists_protocols_and_reports_errors(tmp_path, protocols, capsys):
    store = make_store(tmp_path / "store", protocols)
    assert main(["cv", "--data", str(store), "--list"]) == 0
    out = capsys.readouterr().out
    assert "lgo" in out and "3 fold(s)  leave one group out" in out
    assert main(["cv", "--data", str(store), "--protocol", "nope"]) == 2
    assert "its protocols: lgo" in capsys.readouterr().err
    assert main(["cv", "--data", str(store), "--protocol", "lgo", "--train-split", "x"]) == 2
    assert "the protocol sets every fold's splits" in capsys.readouterr().err


def test_cli_cv_runs_a_fold(tmp_path, protocols, capsys):
    from stgcn.engine.config import dump_yaml

    store = make_store(tmp_path / "store", protocols)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(dump_yaml(base_config(store, tmp_path)))
    args = ["cv", "--data", str(store), "--protocol", "lgo", "--recipe", str(recipe), "--seeds", "1", "--folds", "g2",
            "--out", str(tmp_path / "cv")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "synthetic-cv lgo: top-1" in out and "(1 of 1 runs)" in out
    assert (tmp_path / "cv" / "g2" / "seed0" / "checkpoints" / "best.pt").exists()
