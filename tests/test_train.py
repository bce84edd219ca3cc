"""Training end to end on a tiny synthetic store: run-directory files, determinism, NaN stop,
lock file, config errors, streams + fusion."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from faults import full_disk, temp_files
from stgcn.checkpoint import load_model
from stgcn.data.prepare import prepare_source
from stgcn.data.sample import Sample
from stgcn.data.sources import SourceItem
from stgcn.data.store import open_store
from stgcn.engine.config import RunConfig, apply_overrides
from stgcn.errors import CheckpointError, ConfigError, StgcnError, WriteError

CLASSES = ["wave", "kick", "still"]


def Item(name: str, path: str, label: int, splits: tuple[str, ...]) -> SourceItem:  # noqa: N802
    return SourceItem(name, path, label, splits, "synthetic")


def synthetic_sample(item: Item) -> Sample:
    """A learnable clip: class 0 swings the right hand, class 1 the right foot, class 2 barely moves."""
    seed = zlib.crc32(item.name.encode())
    rng = np.random.default_rng(seed)
    t = 16 + seed % 9
    base = np.random.default_rng(0).normal(scale=0.3, size=(1, 1, 20, 3)).astype(np.float32)  # one body
    base = base + rng.normal(scale=0.1, size=(1, 1, 20, 3)).astype(np.float32)
    kp = np.repeat(base, t, axis=1) + rng.normal(scale=0.05, size=(1, t, 20, 3)).astype(np.float32)
    phase = np.sin(np.linspace(0, 4 * np.pi, t) + rng.uniform(0, 6)).astype(np.float32)
    joint = {0: 11, 1: 19, 2: None}[item.label]  # kinect-v1: 11 = right hand, 19 = right foot
    if joint is not None:
        kp[0, :, joint, 1] += 0.8 + 0.4 * phase  # raised and swinging
    return Sample(keypoint=kp, label=item.label, name=item.name)


class SyntheticSource:
    def __init__(self, n: int):
        self.name = "synthetic"
        self.layout = "kinect-v1"
        self.class_names = list(CLASSES)
        self.split_names = ["train", "val"]
        self.meta = {}
        self.rejects = []
        self.items = [Item(f"s{i:03d}", f"/syn/{i}", i % 3, ("val",) if i % 4 == 3 else ("train",))
                      for i in range(n)]


def make_store(path: Path, n: int = 48) -> Path:
    prepare_source(SyntheticSource(n), path, workers=1, loader=synthetic_sample, progress=False,
                   source_info={"format": "synthetic"})
    return path


def tiny_config(data: Path, out: Path, **train) -> RunConfig:
    cfg = RunConfig()
    cfg.recipe = "test"
    cfg.model.name = "stgcn-tiny"
    cfg.data.path = str(data)
    cfg.data.train_pipeline = [{"name": "stream"}, {"name": "uniform_sample", "clip_len": 12}]
    cfg.data.test_pipeline = [{"name": "stream"}, {"name": "uniform_sample", "clip_len": 12, "test_mode": True}]
    cfg.data.num_workers = 0
    cfg.optimizer.name = "adam"
    cfg.optimizer.lr = 0.01
    cfg.scheduler.name = "cosine"
    cfg.train.epochs = 3
    cfg.train.batch_size = 8
    cfg.train.out = str(out)
    cfg.train.progress = False
    cfg.train.tensorboard = False
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg.validate()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("syn") / "store")


@pytest.fixture(scope="module")
def finished_run(store_dir, tmp_path_factory):
    from stgcn.engine import train

    out = tmp_path_factory.mktemp("run") / "run"
    cfg = tiny_config(store_dir, out, epochs=4, tensorboard=True)
    return train(cfg)


def test_run_directory_has_every_file(finished_run):
    out = finished_run.out
    for name in ("config.yaml", "checkpoints/last.pt", "checkpoints/best.pt", "metrics.json", "log.csv",
                 "curves.png", "confusion.png", "val_scores.npz", "report.md"):
        assert (out / name).is_file(), name
    assert not (out / ".lock").exists()
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["final"]) >= {"top1", "top5", "mean_class_acc", "epoch"} and m["final"]["epoch"] == 4
    assert 1 <= m["best"]["epoch"] <= 4 and m["best"]["top1"] >= m["final"]["top1"]
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].split(",")[:3] == ["epoch", "loss", "lr"] and len(rows) == 5
    assert "samples_per_s" in rows[0]
    z = np.load(out / "val_scores.npz", allow_pickle=False)
    assert z["scores"].shape == (len(z["names"]), 3) and list(z["class_names"]) == CLASSES
    report = (out / "report.md").read_text()
    assert "curves.png" in report and "confusion.png" in report and "| wave |" in report
    if (out / "tensorboard").exists():
        assert any(p.name.startswith("events") for p in (out / "tensorboard").iterdir())


def test_training_reduces_the_loss(finished_run):
    h = finished_run.history
    assert h[-1]["loss"] < h[0]["loss"] and h[-1]["train_acc"] > 1 / 3


def test_best_checkpoint_loads_for_inference(finished_run):
    from stgcn.checkpoint import load_model

    model, meta = load_model(finished_run.best_checkpoint)
    assert meta["class_names"] == CLASSES and meta["layout"] == "kinect-v1" and meta["stream"] == "joint"
    assert meta["in_channels"] == 3 and meta["data"]["test_pipeline"][-1]["name"] == "uniform_sample"
    x = torch.zeros(2, 3, 12, 20, 1)
    assert model(x).shape == (2, 3)


def test_checkpoint_records_the_data_contract(finished_run, store_dir):
    """Training writes the whole contract: the layout's table, M from the store, channels, clip length."""
    from stgcn.checkpoint import load_model
    from stgcn.contract import DataContract
    from stgcn.graph import get_layout

    model, meta = load_model(finished_run.best_checkpoint)
    c = DataContract.from_meta(meta, model)
    store = open_store(store_dir)
    train_lengths = store.lengths[store.split("train")]
    assert isinstance(meta["data"]["layout"], dict) and c.layout == get_layout("kinect-v1")
    assert c.num_persons == 1 == store.get(0).shape[3]  # the store's person slots, not a default of 2
    assert c.channels == ("x", "y", "z") and c.in_channels == 3
    assert c.clip_len == int(train_lengths.max()) and c.min_frames >= 1
    assert c.test_pipeline == ({"name": "uniform_sample", "clip_len": 12, "test_mode": True},)


def test_layout_of_another_order_is_refused(store_dir, tmp_path):
    """--layout msr-action3d on a kinect-v1 store: both have 20 joints, they are not the same skeleton."""
    from stgcn.engine import train
    from stgcn.errors import LayoutError

    cfg = tiny_config(store_dir, tmp_path / "r", epochs=1)
    cfg.data.layout = "msr-action3d"
    with pytest.raises(LayoutError, match="msr-action3d.*kinect-v1"):
        train(cfg)


def test_seeded_runs_are_identical(store_dir, tmp_path):
    from stgcn.engine import train

    a = train(tiny_config(store_dir, tmp_path / "a", epochs=1))
    b = train(tiny_config(store_dir, tmp_path / "b", epochs=1))
    sa = torch.load(a.last_checkpoint, weights_only=True)["model"]
    sb = torch.load(b.last_checkpoint, weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_workers_do_not_change_the_result(store_dir, tmp_path):
    from stgcn.engine import train

    a = train(tiny_config(store_dir, tmp_path / "a", epochs=1))
    cfg = tiny_config(store_dir, tmp_path / "b", epochs=1)
    cfg.data.num_workers = 2
    b = train(cfg)
    sa = torch.load(a.last_checkpoint, weights_only=True)["model"]
    sb = torch.load(b.last_checkpoint, weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(store_dir, tmp_path):
    from stgcn.engine import train
    from stgcn.engine.training import TrainingDivergedError

    out = tmp_path / "nan"
    train(tiny_config(store_dir, out, epochs=1))
    before = (out / "checkpoints" / "last.pt").read_bytes()
    cfg = tiny_config(store_dir, out, epochs=3, resume=True)
    cfg.optimizer.name = "sgd"
    cfg.optimizer.lr = 1e30  # diverges at once
    cfg.scheduler.name = "constant"
    with pytest.raises(ConfigError):  # a changed optimiser cannot resume
        train(cfg)
    cfg = tiny_config(store_dir, tmp_path / "nan2", epochs=3)
    cfg.optimizer.name = "sgd"
    cfg.optimizer.lr = 1e30
    cfg.optimizer.nesterov = False
    cfg.scheduler.name = "constant"
    with pytest.raises(TrainingDivergedError, match=r"epoch \d+, step \d+"):
        train(cfg)
    assert (out / "checkpoints" / "last.pt").read_bytes() == before
    assert not (tmp_path / "nan2" / ".lock").exists()


def test_nan_exit_code_is_nonzero(store_dir, tmp_path):
    from stgcn.cli import main

    rc = main(["train", "--data", str(store_dir), "--recipe", "small", "--model", "stgcn-tiny", "--epochs", "1",
               "--out", str(tmp_path / "o"), "--set", "optimizer.lr=1e30", "--set", "optimizer.name=sgd",
               "--set", "scheduler.name=constant", "--set", "data.num_workers=0", "--set", "train.progress=false",
               "--set", "train.tensorboard=false", "--set", "model.kwargs={}", "--set", "train.batch_size=8"])
    assert rc != 0


def test_live_lock_refuses_and_stale_lock_is_taken_over(store_dir, tmp_path):

    from stgcn.engine import train
    from stgcn.engine.runlock import RunLock, RunLockedError

    out = tmp_path / "locked"
    holder = RunLock(out)  # a live run
    holder.acquire()
    try:
        with pytest.raises(RunLockedError, match=f"in use .*{socket.gethostname()}:{os.getpid()}"):
            train(tiny_config(store_dir, out, epochs=1))
    finally:
        holder.release()
    assert not (out / "checkpoints").exists()
    (out / ".lock").write_text(f"{socket.gethostname()}:999999999\n")  # left by a killed run
    train(tiny_config(store_dir, out, epochs=1))
    again = RunLock(out)  # the finished run let go of it
    again.acquire()
    again.release()


def test_existing_run_needs_resume_or_overwrite(store_dir, tmp_path):
    from stgcn.engine import train

    out = tmp_path / "r"
    train(tiny_config(store_dir, out, epochs=1))
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_config(store_dir, out, epochs=1))
    train(tiny_config(store_dir, out, epochs=1, overwrite=True))


def test_split_inference_and_errors(store_dir, tmp_path):
    from stgcn.engine import train
    from stgcn.engine.training import resolve_splits

    s = open_store(store_dir)
    assert resolve_splits(s, "", "") == ("train", "val")
    cfg = tiny_config(store_dir, tmp_path / "x", epochs=1)
    cfg.data.val_split = "nope"
    with pytest.raises(StgcnError, match="nope"):
        train(cfg)


def test_streams_train_and_fuse(store_dir, tmp_path):
    from stgcn.engine import train_streams

    cfg = tiny_config(store_dir, tmp_path / "streams", epochs=1)
    summary = train_streams(cfg, ["joint", "bone"])
    out = tmp_path / "streams"
    assert (out / "joint" / "checkpoints" / "best.pt").is_file() and (out / "bone" / "val_scores.npz").is_file()
    assert (out / "fused_scores.npz").is_file() and 0 <= summary["fused"]["top1"] <= 1
    from stgcn.checkpoint import load_model

    _, meta = load_model(out / "bone" / "checkpoints" / "best.pt")
    assert meta["stream"] == "bone" and {"name": "stream", "kind": "bone"} in meta["data"]["test_pipeline"]


def _softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_seed_ensemble_trains_members_with_their_seeds_and_averages_their_softmax(store_dir, tmp_path):
    import yaml

    from stgcn.engine import train_ensemble
    from stgcn.engine.training import MEMBER_SEED_STEP

    out = tmp_path / "ens"
    cfg = tiny_config(store_dir, out, epochs=1, seed=3, ensemble=2)
    summary = train_ensemble(cfg)
    seeds = [yaml.safe_load((out / m / "config.yaml").read_text())["train"]["seed"] for m in ("m0", "m1")]
    assert seeds == [3, 3 + MEMBER_SEED_STEP] and list(summary["members"]) == ["m0", "m1"]
    # the fused scores against the mean of the members' softmax, computed here from their own files
    z = [np.load(out / m / "val_scores.npz") for m in ("m0", "m1")]
    probs = (_softmax(z[0]["scores"]) + _softmax(z[1]["scores"])) / 2
    with np.load(out / "fused_scores.npz") as f:
        fused_pred = f["scores"].argmax(1)
    assert np.array_equal(fused_pred, probs.argmax(1))
    assert summary["fused"]["top1"] == pytest.approx(float((probs.argmax(1) == z[0]["labels"]).mean()))
    assert json.loads((out / "fused_metrics.json").read_text())["fused"] == summary["fused"]
    # member 0 is the plain run of that seed: the same final scores as train() with seed 3
    from stgcn.engine import train

    single = train(tiny_config(store_dir, tmp_path / "single", epochs=1, seed=3))
    with np.load(single.files["scores"]) as s1:
        assert np.allclose(s1["scores"], z[0]["scores"], atol=1e-5)
    # the run directory predicts as one model: the Predictor's probabilities are the fused scores
    from stgcn.inference.predictor import Predictor

    predictor, store = Predictor.from_checkpoint(out), open_store(store_dir)
    with np.load(out / "fused_scores.npz") as f:
        fused = dict(zip(f["names"].tolist(), f["scores"], strict=True))
    assert len(fused) > 0
    for name, row in fused.items():  # fuse sums w_i p_i with weights 1: the mean is row / k
        assert np.allclose(predictor.probabilities(store.get(store.names.index(name))), row / 2, atol=1e-5)


def test_cli_train_runs_a_seed_ensemble(store_dir, tmp_path, capsys):
    from stgcn.cli import main
    from stgcn.engine.config import dump_yaml

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(dump_yaml(tiny_config(store_dir, tmp_path / "unused", epochs=1)))
    out = tmp_path / "cli-ens"
    assert main(["train", "--data", str(store_dir), "--recipe", str(recipe), "--out", str(out),
                 "--set", "train.ensemble=2"]) == 0
    printed = capsys.readouterr().out
    with np.load(out / "fused_scores.npz") as f:
        top1 = float((f["scores"].argmax(1) == f["labels"]).mean())
    assert "m0: top-1" in printed and "m1: top-1" in printed
    assert f"fused: top-1 {100 * top1:.2f}%" in printed


def test_seed_ensemble_is_refused_where_it_would_train_one_model(store_dir, tmp_path):
    from stgcn.engine import train, train_ensemble, train_streams

    with pytest.raises(ConfigError, match="train_ensemble"):
        train(tiny_config(store_dir, tmp_path / "a", epochs=1, ensemble=2))
    with pytest.raises(ConfigError, match="do not combine"):
        train_streams(tiny_config(store_dir, tmp_path / "b", epochs=1, ensemble=2), ["joint", "bone"])
    with pytest.raises(ConfigError, match="at least 2 members"):
        train_ensemble(tiny_config(store_dir, tmp_path / "c", epochs=1))
    with pytest.raises(ConfigError, match="train.ensemble: must be >= 1"):
        tiny_config(store_dir, tmp_path / "d", epochs=1, ensemble=0)
    assert not any((tmp_path / d).exists() for d in "abc")


def test_set_override_reaches_the_run(store_dir, tmp_path):
    from stgcn.engine import train

    cfg = apply_overrides(tiny_config(store_dir, tmp_path / "o", epochs=1), ["optimizer.lr=0.002"])
    res = train(cfg)
    import yaml

    saved = yaml.safe_load((res.out / "config.yaml").read_text())
    assert saved["optimizer"]["lr"] == 0.002 and saved["data"]["train_split"] == "train"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_bf16_training_runs_the_forward_under_cpu_autocast(store_dir, tmp_path, monkeypatch, precision):
    """``train.precision=bf16``: the training forward under ``torch.autocast("cpu", bfloat16)``, the
    weights and the checkpoint in float32; fp32 (the default) without autocast."""
    from stgcn import runtime
    from stgcn.engine import train, training

    if precision == "bf16" and runtime.missing_cpu_feature("bf16"):
        pytest.skip(f"this CPU lacks {runtime.missing_cpu_feature('bf16')}")
    seen = []
    real = training.F.cross_entropy

    def spy(logits, y, **kw):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return real(logits, y, **kw)

    monkeypatch.setattr(training.F, "cross_entropy", spy)
    res = train(apply_overrides(tiny_config(store_dir, tmp_path / "o", epochs=1), [f"train.precision={precision}"]))
    want = (True, torch.bfloat16) if precision == "bf16" else (False,)
    assert seen and all(s[:len(want)] == want for s in seen)
    ck = torch.load(res.out / "checkpoints" / "last.pt", weights_only=True)
    sd = ck.get("state_dict") or ck["model"]
    assert all(v.dtype != torch.bfloat16 for v in sd.values())


def _disk_cfg(store: Path, out: Path, epochs: int, resume: bool = False):

    # a step schedule (not cosine) so that growing the epochs of a finished run keeps its trajectory;
    # checkpoint_every leaves a mid-epoch last.pt to resume from
    c = tiny_config(store, out, epochs=epochs, resume=resume, checkpoint_every=2)
    c.scheduler.name = "step"
    c.scheduler.milestones = [1]
    return c


@pytest.fixture(scope="module")
def disk_runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(store, a finished 2-epoch run, a finished 1-epoch run whose files are the 'previous versions')."""
    from stgcn.engine import train

    root = tmp_path_factory.mktemp("fulldisk")
    store = make_store(root / "store", n=48)
    train(_disk_cfg(store, root / "ref", 2))
    train(_disk_cfg(store, root / "one", 1))
    return store, root / "ref", root / "one"


def _without(text: str, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in json.loads(text).items() if k not in keys}


def _log_without_times(path: Path) -> list[list[str]]:
    rows = [ln.split(",") for ln in path.read_text().splitlines()]
    cols = [i for i, c in enumerate(rows[0]) if c not in ("time_s", "samples_per_s")]
    return [[r[i] for i in cols] for r in rows]


def _assert_same_as_uninterrupted(ref: Path, out: Path) -> None:
    a = torch.load(ref / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    # every file of the run is there and complete (timings aside)
    assert _log_without_times(out / "log.csv") == _log_without_times(ref / "log.csv")
    timing = ("train_time_s", "samples_per_s")
    assert _without((out / "metrics.json").read_text(), timing) == _without((ref / "metrics.json").read_text(), timing)
    for png in ("curves.png", "confusion.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(out / "val_scores.npz", allow_pickle=False) as got, np.load(ref / "val_scores.npz") as want:
        assert np.array_equal(got["scores"], want["scores"])
    assert (out / "report.md").read_text().endswith("`config.yaml`\n")
    assert yaml_epochs(out / "config.yaml") == 2
    load_model(out / "checkpoints" / "best.pt")
    assert not temp_files(out) and not (out / ".lock").exists()


def yaml_epochs(path: Path) -> int:
    import yaml

    return yaml.safe_load(path.read_text())["train"]["epochs"]


@pytest.mark.parametrize("name", ["config.yaml", "log.csv", "metrics.json", "val_scores.npz", "curves.png",
                                  "confusion.png", "report.md"])
def test_full_disk_during_train_keeps_previous_file_and_resume_finishes(disk_runs, tmp_path, monkeypatch, name):
    from stgcn.checkpoint import safe_load
    from stgcn.engine import train

    store, ref, one = disk_runs
    out = tmp_path / "run"
    shutil.copytree(one, out)  # a finished 1-epoch run, continued to 2 epochs
    before = (out / name).read_bytes()
    hits = full_disk(monkeypatch, name)
    with pytest.raises(WriteError, match=rf"could not write {out / name}: No space left on device; the previous "
                                         r"file \(if any\) is unchanged") as err:
        train(_disk_cfg(store, out, 2, resume=True))
    assert err.value.errno == errno.ENOSPC and hits == [out / name]
    monkeypatch.undo()
    assert (out / name).read_bytes() == before  # the previous version, not half of the new one
    assert not temp_files(out)
    assert not (out / ".lock").exists()
    assert safe_load(out / "checkpoints" / "last.pt")["epoch"] in (1, 2)  # still a valid resume point

    # space freed: the same command continues and ends where an uninterrupted run ends
    train(_disk_cfg(store, out, 2, resume=True))
    _assert_same_as_uninterrupted(ref, out)


def test_full_disk_on_best_checkpoint_during_train(disk_runs, tmp_path, monkeypatch):
    from stgcn.checkpoint import safe_load
    from stgcn.engine import train

    store, ref, _ = disk_runs
    out = tmp_path / "run"
    full_disk(monkeypatch, "best.pt")  # first written at the end of epoch 1
    with pytest.raises(CheckpointError, match=r"best\.pt: No space left on device"):
        train(_disk_cfg(store, out, 2))
    monkeypatch.undo()
    assert not (out / "checkpoints" / "best.pt").exists()
    assert not temp_files(out) and not (out / ".lock").exists()
    state = safe_load(out / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step"]) == (0, 4)  # the last mid-epoch checkpoint before the failure

    train(_disk_cfg(store, out, 2, resume=True))
    _assert_same_as_uninterrupted(ref, out)
    a = safe_load(ref / "checkpoints" / "best.pt")["state_dict"]
    b = safe_load(out / "checkpoints" / "best.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_full_disk_through_the_train_cli_is_exit_2_naming_the_file(disk_runs, tmp_path, monkeypatch, capsys):
    from stgcn.cli import main

    store, _, _ = disk_runs
    full_disk(monkeypatch, "config.yaml")  # the run's first file
    rc = main(["train", "--data", str(store), "--out", str(tmp_path / "run"), "--model", "stgcn-tiny",
               "--epochs", "1", "--set", "data.num_workers=0", "--set", "train.progress=false"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"stgcn train: error: could not write {tmp_path / 'run' / 'config.yaml'}: No space left")
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "config.yaml").exists() and not temp_files(tmp_path)
