"""Fine-tuning (train.init): weights that fit are the checkpoint's, the classifier is kept or
replaced, a frozen backbone does not move (BatchNorm statistics included), the backbone's own
learning rate, bit-identical resume, official checkpoints, and refused checkpoints."""

from __future__ import annotations

import copy
import io
import json
import shutil
import subprocess
import sys
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import stgcn
from stgcn.data.prepare import prepare_source
from stgcn.data.sample import Sample
from stgcn.data.sources import SourceItem
from stgcn.engine import train
from stgcn.engine.finetune import classifier_keys, load_init, read_init
from stgcn.errors import CheckpointError, ConfigError, LayoutError
from stgcn.graph import get_layout
from test_compat import random_official_state_dict
from test_train import make_store, tiny_config

HEAD = {"fcn.weight", "fcn.bias"}


class LayoutSource:
    """A learnable synthetic source in any layout: class c raises joint c, 2D with a score or 3D."""

    def __init__(self, layout: str, classes: list[str], n: int, dims: int = 3):
        self.name, self.layout, self.class_names = "synthetic", layout, list(classes)
        self.split_names, self.meta, self.rejects = ["train", "val"], {}, []
        self.dims, self.num_joints = dims, get_layout(layout).num_joints
        self.items = [SourceItem(f"{layout}{i:03d}", f"/syn/{i}", i % len(classes),
                                 ("val",) if i % 4 == 3 else ("train",), "synthetic") for i in range(n)]

    def load(self, item: SourceItem) -> Sample:
        rng = np.random.default_rng(zlib.crc32(item.name.encode()))
        t = 12 + rng.integers(0, 6)
        kp = rng.normal(scale=0.1, size=(1, t, self.num_joints, self.dims)).astype(np.float32) + 0.5
        kp[0, :, item.label + 2, 1] += 0.3 * np.sin(np.linspace(0, 6, t)).astype(np.float32) + 0.3
        score = np.full((1, t, self.num_joints), 0.9, np.float32) if self.dims == 2 else None
        return Sample(keypoint=kp, score=score, label=item.label, name=item.name)


def layout_store(path: Path, layout: str, classes: list[str], n: int = 16, dims: int = 3) -> Path:
    src = LayoutSource(layout, classes, n, dims)
    prepare_source(src, path, workers=1, loader=src.load, progress=False, source_info={"format": "synthetic"})
    return path


def finetune_config(data: Path, out: Path, init: Path | None, **train_kw):
    cfg = tiny_config(data, out, epochs=train_kw.pop("epochs", 2))
    cfg.train.init = str(init) if init else None
    cfg.scheduler.name = "constant"  # lr ratios readable at any step
    for k, v in train_kw.items():
        section, _, key = k.partition("__")
        setattr(getattr(cfg, section), key, v)
    return cfg.validate()


def model_sd(path: Path) -> dict:
    ck = torch.load(path, weights_only=True)
    return ck["state_dict"] if "state_dict" in ck else ck["model"]


def assert_same(a: dict, b: dict, keys) -> None:
    for k in keys:
        assert torch.equal(a[k].to(b[k].dtype), b[k]), k


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("ft") / "store", n=32)  # kinect-v1, wave/kick/still


@pytest.fixture(scope="module")
def pretrained(store, tmp_path_factory) -> Path:
    """A tiny model trained two epochs on ``store``: the checkpoint the tests start from."""
    out = tmp_path_factory.mktemp("ft") / "pre"
    return train(tiny_config(store, out, epochs=2)).best_checkpoint


@pytest.fixture(scope="module")
def other_classes(tmp_path_factory) -> Path:
    """kinect-v1 too, with four other classes."""
    return layout_store(tmp_path_factory.mktemp("ft") / "other", "kinect-v1", ["a", "b", "c", "d"])


# --------------------------------------------------------------------------- what is loaded


def _fresh(classes: int):
    torch.manual_seed(123)
    return stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=classes, in_channels=3)


def test_same_classes_load_everything_and_keep_the_classifier(pretrained):
    ck = model_sd(pretrained)
    model = _fresh(3)
    report = load_init(model, read_init(pretrained), layout=get_layout("kinect-v1"),
                       class_names=["wave", "kick", "still"], strategy="spatial", stream="joint", channels=None)
    assert report.not_loaded == [] and report.unused == []
    assert report.classifier.startswith("kept")
    assert_same(ck, model.state_dict(), model.state_dict())


def test_other_classes_replace_the_classifier_and_load_the_rest(pretrained):
    ck, fresh = model_sd(pretrained), _fresh(4).state_dict()
    model = _fresh(4)
    report = load_init(model, read_init(pretrained), layout=get_layout("kinect-v1"),
                       class_names=["a", "b", "c", "d"], strategy="spatial", stream="bone", channels=None)
    sd = model.state_dict()
    assert {k for k, _ in report.not_loaded} == HEAD == classifier_keys(model)
    assert "replaced (4 classes here, 3 in the checkpoint)" in report.classifier
    assert_same(ck, sd, [k for k in sd if k not in HEAD])
    assert_same(fresh, sd, HEAD)  # the run's own fresh classifier
    assert any("stream 'joint'" in n for n in report.notes)

    # the same count under other names is another task too
    model3 = _fresh(3)
    r3 = load_init(model3, read_init(pretrained), layout=get_layout("kinect-v1"), class_names=["x", "kick", "still"],
                   strategy="spatial", stream="joint", channels=None)
    assert "class 0 is 'wave' there, 'x' here" in r3.classifier
    assert not torch.equal(model3.fcn.weight, ck["fcn.weight"])


def test_shape_mismatch_is_listed_with_both_shapes(pretrained):
    torch.manual_seed(0)
    model = stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=3, channels=[16, 16, 48])
    report = load_init(model, read_init(pretrained), layout=get_layout("kinect-v1"),
                       class_names=["wave", "kick", "still"], strategy="spatial", stream="joint", channels=None)
    why = dict(report.not_loaded)
    assert why["st_gcn_networks.2.tcn.2.weight"] == \
        "shape (32, 32, 3, 1) in the checkpoint, (48, 48, 3, 1) in this model"
    assert "st_gcn_networks.0.gcn.conv.weight" in report.loaded


# --------------------------------------------------------------------------- end to end


def test_finetune_other_classes_end_to_end_through_the_cli(pretrained, other_classes, tmp_path):
    out = tmp_path / "ft"
    r = subprocess.run([sys.executable, "-m", "stgcn", "train", "--recipe", "small", "--model", "stgcn-tiny",
                        "--data", str(other_classes), "--out", str(out), "--init", str(pretrained), "--epochs", "1",
                        "--set", "model.kwargs={}", "--set", "data.num_workers=0", "--set", "train.progress=false",
                        "--set", "train.tensorboard=false", "--train.freeze_backbone_epochs", "1",
                        # the checkpoint reads x, y, z: keep the input at 3 channels (no concat_streams)
                        "--set", "data.train_pipeline=[{name: center}, {name: resample, clip_len: 32}]",
                        "--set",
                        "data.test_pipeline=[{name: center}, {name: resample, clip_len: 32, test_mode: true}]"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "init: " in r.stdout and "classifier replaced (4 classes here, 3 in the checkpoint)" in r.stdout
    info = json.loads((out / "init.json").read_text())
    assert {d["key"] for d in info["not_loaded"]} == HEAD
    assert info["sha256"] and info["kind"] == "stgcn"
    best = torch.load(out / "checkpoints" / "best.pt", weights_only=True)
    assert best["meta"]["class_names"] == ["a", "b", "c", "d"]
    assert best["meta"]["config"]["train"]["init"] == str(pretrained)
    # frozen for its one epoch: the backbone (BatchNorm statistics too) is the checkpoint's
    ck = model_sd(pretrained)
    assert_same(ck, best["state_dict"], [k for k in best["state_dict"] if k not in HEAD])
    assert not torch.equal(best["state_dict"]["fcn.bias"], torch.zeros(4))


def _snapshots(monkeypatch) -> list[dict]:
    """Every mid-epoch last.pt a run writes (train.checkpoint_every), as written."""
    from stgcn.engine import state as state_mod

    seen, save = [], state_mod.RunState.save

    def spy(self, path, cfg):
        save(self, path, cfg)
        if self.step:
            seen.append({"epoch": self.epoch, "step": self.step, "bytes": Path(path).read_bytes()})

    monkeypatch.setattr(state_mod.RunState, "save", spy)
    return seen


def test_freeze_then_backbone_lr_then_full_and_resume_is_bit_identical(pretrained, other_classes, tmp_path,
                                                                       monkeypatch):
    # epoch 1 frozen, epoch 2 backbone at 0.1 x lr, epoch 3 all at lr; checkpoints inside epochs
    kw = dict(train__freeze_backbone_epochs=1, optimizer__backbone_lr_scale=0.1, optimizer__backbone_lr_epochs=2,
              train__checkpoint_every=1, train__batch_size=4)
    snaps = _snapshots(monkeypatch)
    full = train(finetune_config(other_classes, tmp_path / "full", pretrained, epochs=3, **kw))
    full_snaps = list(snaps)
    ck = model_sd(pretrained)
    backbone = [k for k in ck if k not in HEAD]

    one = train(finetune_config(other_classes, tmp_path / "one", pretrained, epochs=1, **kw))
    after1 = torch.load(one.last_checkpoint, weights_only=True)
    assert_same(ck, after1["model"], backbone)  # frozen: weights and running statistics as loaded
    first = torch.load(io.BytesIO(full_snaps[0]["bytes"]), weights_only=True)
    assert (full_snaps[0]["epoch"], full_snaps[0]["step"]) == (0, 1)
    assert_same(ck, first["model"], backbone)
    assert not torch.equal(first["model"]["fcn.weight"], after1["model"]["fcn.weight"])  # the classifier learns
    lrs = [g["lr"] for g in after1["optimizer"]["param_groups"]]
    assert lrs[1] == pytest.approx(0.1 * lrs[0])  # epoch 2 is next: the backbone at 0.1 x

    end = torch.load(full.last_checkpoint, weights_only=True)
    lrs = [g["lr"] for g in end["optimizer"]["param_groups"]]
    assert lrs[1] == pytest.approx(lrs[0])
    assert not torch.equal(end["model"]["st_gcn_networks.0.gcn.conv.weight"], ck["st_gcn_networks.0.gcn.conv.weight"])
    assert not torch.equal(end["model"]["data_bn.running_mean"], ck["data_bn.running_mean"])

    # resumed at the end of the frozen epoch, and from inside the frozen and the scaled epochs
    part = train(finetune_config(other_classes, tmp_path / "one", pretrained, epochs=3, train__resume=True, **kw))
    _assert_bit_identical(full.last_checkpoint, part.last_checkpoint)
    for snap in (next(s for s in full_snaps if s["epoch"] == 0), next(s for s in full_snaps if s["epoch"] == 1)):
        out = tmp_path / f"mid{snap['epoch']}"
        (out / "checkpoints").mkdir(parents=True)
        (out / "checkpoints" / "last.pt").write_bytes(snap["bytes"])
        res = train(finetune_config(other_classes, out, pretrained, epochs=3, train__resume=True, **kw))
        _assert_bit_identical(full.last_checkpoint, res.last_checkpoint)


def _assert_bit_identical(a_path: Path, b_path: Path) -> None:
    a, b = torch.load(a_path, weights_only=True), torch.load(b_path, weights_only=True)
    assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for ga, gb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(ga[k], gb[k]) for k in ga if torch.is_tensor(ga[k]))
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]


# --------------------------------------------------------------------------- official checkpoints


def official_keys(layout: str, classes: int) -> list:
    """The official model's state_dict key list (shared/reference for Kinetics, when there; else ours,
    which test_compat checks equal to it)."""
    from conftest import SHARED

    ref = SHARED / "reference" / "official-model.json"
    if layout == "openpose" and classes == 400 and ref.is_file():
        return json.loads(ref.read_text())["kinetics400_state_dict"]
    m = stgcn.create_model("stgcn-official", layout=layout, num_classes=classes)
    return [(k, list(v.shape), str(v.dtype)) for k, v in m.state_dict().items()]


@pytest.fixture(scope="module")
def kinetics_official(tmp_path_factory) -> Path:
    """An official-format Kinetics-400 checkpoint with random weights, as DataParallel saved them."""
    sd = random_official_state_dict(official_keys("openpose", 400), "openpose", seed=3)
    path = tmp_path_factory.mktemp("official") / "st_gcn.kinetics.pt"
    torch.save(OrderedDict(("module." + k, v) for k, v in sd.items()), path)
    return path


def test_official_kinetics_checkpoint_fine_tuned_on_an_openpose_store(kinetics_official, tmp_path):
    store = layout_store(tmp_path / "op", "openpose", ["jump", "sit", "wave"], n=12, dims=2)
    cfg = finetune_config(store, tmp_path / "run", kinetics_official, epochs=1, train__freeze_backbone_epochs=1)
    cfg.model.name = "stgcn-official"
    res = train(cfg)
    info = json.loads((res.out / "init.json").read_text())
    assert info["kind"] == "official"
    assert {d["key"] for d in info["not_loaded"]} == HEAD
    assert info["classifier"] == "replaced (3 classes here, 400 in the checkpoint)"
    official = {k.removeprefix("module."): v for k, v in torch.load(kinetics_official, weights_only=True).items()}
    best = model_sd(res.best_checkpoint)
    # every weight but the classifier is the official one (float64 -> float32, exactly representable), unmoved
    assert_same(official, best, [k for k in best if k not in HEAD])
    assert best["fcn.weight"].shape == (3, 256, 1, 1)


def test_official_checkpoint_of_another_layout_is_refused_before_training(tmp_path):
    # NTU (25 joints) on an openpose store; NTU on body25: same joint count, another graph
    ntu = tmp_path / "ntu.pt"
    torch.save(random_official_state_dict(official_keys("ntu-rgb+d", 60), "ntu-rgb+d"), ntu)
    for layout in ("openpose", "body25"):
        match = f"graph A is that of ntu-rgb\\+d \\(strategy 'spatial'\\), not of layout '{layout}'"
        store = layout_store(tmp_path / layout, layout, ["a", "b"], n=8, dims=2)
        out = tmp_path / f"run_{layout}"
        with pytest.raises(CheckpointError, match=match):
            train(finetune_config(store, out, ntu, epochs=1))
        assert not (out / "checkpoints" / "last.pt").exists()


# --------------------------------------------------------------------------- refused


def test_stgcn_checkpoint_of_another_layout_is_refused(pretrained, tmp_path):
    store = layout_store(tmp_path / "openni", "openni-15", ["a", "b"], n=8)
    with pytest.raises(LayoutError, match="layout 'kinect-v1', this run trains on layout 'openni-15'"):
        train(finetune_config(store, tmp_path / "run", pretrained, epochs=1))
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize("damage", ["truncated", "text", "missing", "train-state"])
def test_damaged_or_wrong_file_is_refused_before_any_data(pretrained, tmp_path, damage):
    bad = tmp_path / "bad.pt"
    if damage == "truncated":
        bad.write_bytes(pretrained.read_bytes()[:5000])
    elif damage == "text":
        bad.write_text("not a checkpoint\n")
    elif damage == "train-state":
        shutil.copy(pretrained.parent / "last.pt", bad)
    # data.path does not exist: the checkpoint is refused before the data is opened
    cfg = finetune_config(tmp_path / "no-such-store", tmp_path / "run", bad, epochs=1)
    match = {"truncated": "not a readable torch checkpoint", "text": "not a checkpoint",
             "missing": "checkpoint not found", "train-state": "a training state .* --resume"}[damage]
    with pytest.raises(CheckpointError, match=match):
        train(cfg)


def test_cli_error_is_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"weights": torch.zeros(3)}, bad)
    r = subprocess.run([sys.executable, "-m", "stgcn", "train", "--data", str(tmp_path / "none"), "--init", str(bad),
                        "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert f"stgcn train: error: {bad}: neither an stgcn checkpoint" in r.stderr


def test_config_fields_cli_spellings_and_checks(pretrained):
    from stgcn.cli.train import parse_run

    cfg, _ = parse_run(["--init", str(pretrained), "--set", "train.freeze_backbone_epochs=2",
                        "--optimizer.backbone_lr_scale", "0.1", "--set", "optimizer.backbone_lr_epochs=3"],
                       prog="stgcn train", default_recipe="small")
    assert (cfg.train.init, cfg.train.freeze_backbone_epochs) == (str(pretrained), 2)
    assert (cfg.optimizer.backbone_lr_scale, cfg.optimizer.backbone_lr_epochs) == (0.1, 3)
    c = copy.deepcopy(cfg)
    c.train.init = None
    with pytest.raises(ConfigError, match="train.init: must name a checkpoint"):
        c.validate()
    c = copy.deepcopy(cfg)
    c.optimizer.backbone_lr_scale = 0
    with pytest.raises(ConfigError, match="backbone_lr_scale: must be > 0"):
        c.validate()


def test_resume_refuses_a_changed_init(pretrained, store, tmp_path):
    train(finetune_config(store, tmp_path / "r", None, epochs=1))
    with pytest.raises(ConfigError, match="train.init differs"):
        train(finetune_config(store, tmp_path / "r", pretrained, epochs=2, train__resume=True))


# --------------------------------------------------------------------------- real data (shared)


@pytest.mark.slow
def test_florence_model_fine_tuned_on_sbu(shared, tmp_path):
    """Florence 3D and SBU share the openni-15 layout: 9 classes, 1 person -> 8 classes, 2 persons."""
    from stgcn.data.prepare import prepare

    flo, sbu = tmp_path / "florence", tmp_path / "sbu"
    prepare("florence3d", str(shared / "data" / "florence3d"), flo, progress=False)
    prepare("sbu", str(shared / "data" / "sbu_kinect_interaction"), sbu, progress=False)

    def cfg(data, out, init=None, epochs=2, **kw):
        c = finetune_config(data, out, init, epochs=epochs, **kw)
        c.data.train_split, c.data.val_split = "fold1_train", "fold1_test"
        return c.validate()

    pre = train(cfg(flo, tmp_path / "pre", epochs=3))
    frozen = train(cfg(sbu, tmp_path / "frozen", pre.best_checkpoint, epochs=1, train__freeze_backbone_epochs=1))
    ck, got = model_sd(pre.best_checkpoint), model_sd(frozen.best_checkpoint)
    assert_same(ck, got, [k for k in got if k not in HEAD])
    assert got["fcn.weight"].shape[0] == 8
    info = json.loads((frozen.out / "init.json").read_text())
    assert info["classifier"] == "replaced (8 classes here, 9 in the checkpoint)"
    assert any("channels" not in n for n in info["notes"]) or info["notes"] == []

    tuned = train(cfg(sbu, tmp_path / "tuned", pre.best_checkpoint, epochs=3, optimizer__backbone_lr_scale=0.5))
    assert tuned.metrics["final"]["top1"] > 1 / 8  # it learns SBU (chance 12.5 %)
    model, meta = stgcn.load_model(tuned.best_checkpoint)
    assert meta["data"]["num_persons"] == 2 and meta["class_names"][0] == "approaching"


@pytest.mark.slow
def test_two_process_ddp_freezes_then_thaws(pretrained, other_classes, tmp_path):
    """Under torchrun the backbone is frozen for epoch 1 and trained in epoch 2 (DDP wrapped again
    with the parameters that need a gradient), agreeing with one process."""
    import os

    args = ["-m", "stgcn", "train", "--recipe", "small", "--model", "stgcn-tiny", "--data", str(other_classes),
            "--init", str(pretrained), "--epochs", "2", "--batch-size", "4", "--train.freeze_backbone_epochs", "1",
            "--set", "model.kwargs={}", "--set", "model.dropout=0.0", "--set", "data.num_workers=0",
            "--set", "train.progress=false", "--set", "train.tensorboard=false", "--set", "optimizer.name=sgd",
            "--set", "scheduler.name=constant", "--set", "scheduler.warmup_epochs=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], check=True, env=env,
                   capture_output=True, timeout=300)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        *args, "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("init: ") == 1  # rank 0 reports
    a, b = (model_sd(tmp_path / run / "checkpoints" / "last.pt") for run in ("one", "two"))
    ck = model_sd(pretrained)
    assert not torch.equal(b["st_gcn_networks.0.gcn.conv.weight"], ck["st_gcn_networks.0.gcn.conv.weight"])
    keys = [k for k, v in a.items() if v.is_floating_point() and "running" not in k]
    diff = torch.cat([(a[k] - b[k]).flatten() for k in keys]).norm()
    assert diff / torch.cat([a[k].flatten() for k in keys]).norm() < 0.1


def test_shipped_weights_by_name():
    """``--init stgcn.utkinect``: the shipped model (kinect-v1), sha256 checked, on a kinect-v1 store."""
    from stgcn.models.pretrained import get_pretrained, list_pretrained

    if "stgcn.utkinect" not in list_pretrained():
        pytest.skip("no shipped weights in this build")
    shipped = get_pretrained("stgcn.utkinect")
    src = read_init("stgcn.utkinect")
    assert src.path == shipped.file and src.sha256 == shipped.sha256
    ck = torch.load(shipped.file, weights_only=True)
    torch.manual_seed(0)
    model = stgcn.create_model(ck["model_config"]["name"], params=ck["model_config"]["params"])
    model.reset_classifier(3)
    report = load_init(model, src, layout=get_layout("kinect-v1"), class_names=["wave", "kick", "still"],
                       strategy="spatial", stream="joint", channels=None)
    assert {k for k, _ in report.not_loaded} == HEAD and "replaced (3 classes here, 10" in report.classifier
    assert_same(ck["state_dict"], model.state_dict(), [k for k in ck["state_dict"] if k not in HEAD])
