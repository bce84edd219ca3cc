"""The shipped weights (stgcn.models.pretrained): the file matches its card (sha256, size, label
names, contract, accuracy on the bundled test split with tolerance 0), create_model(pretrained=True),
a damaged file is refused, and the CLI verbs use it when no --checkpoint is given."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import stgcn
from stgcn.checkpoint import safe_load
from stgcn.errors import CheckpointError, ConfigError
from stgcn.models.pretrained import (
    PretrainedConfig,
    get_pretrained,
    get_spec,
    list_pretrained,
    pretrained_dir,
    sha256_file,
)
from stgcn.shipping import card_markdown

NAME = "stgcn.utkinect"
MAX_BYTES = 5_000_000


@pytest.fixture(scope="module")
def utkinect_store(tmp_path_factory):
    from stgcn.data.prepare import prepare

    out = tmp_path_factory.mktemp("utk") / "data"
    prepare("utkinect", None, out)
    return out


def test_the_shipped_file_matches_its_card():
    cfg = get_pretrained(NAME)
    assert list_pretrained()[0] == NAME  # the default
    assert cfg.file == pretrained_dir() / f"{NAME}.pt"
    assert sha256_file(cfg.file) == cfg.sha256
    assert cfg.file.stat().st_size == cfg.size_bytes <= MAX_BYTES
    ckpt = safe_load(cfg.verified_path())
    assert ckpt["meta"]["class_names"] == list(cfg.label_names)
    assert ckpt["meta"]["data"] == cfg.data and ckpt["model_config"] == cfg.model_config
    assert all(v.dtype == torch.float32 for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert set(ckpt) == {"format", "version", "model_config", "state_dict", "meta"}  # no optimiser state
    assert cfg.layout == "kinect-v1" and cfg.contract.layout == stgcn.get_layout("kinect-v1")
    assert cfg.accuracy["total"] == 99 and 0 < cfg.accuracy["correct"] <= 99
    assert cfg.command == f"stgcn models {NAME} --reproduce --install"
    assert cfg.licence and cfg.paper and "Xia" in cfg.spec.attribution
    assert (pretrained_dir().parent / cfg.spec.data_provenance).is_file()
    # the Markdown card is generated from the JSON one: it is current
    assert (pretrained_dir() / f"{NAME}.md").read_text() == card_markdown(cfg)


def test_the_shipped_model_gives_its_card_accuracy(utkinect_store):
    from stgcn.engine.evaluate import evaluate

    cfg = get_pretrained(NAME)
    ev = evaluate(cfg.verified_path(), utkinect_store, cfg.accuracy["split"], num_workers=0, progress=False)
    correct = int((ev.scores.argmax(1) == ev.labels).sum())
    assert (correct, len(ev.labels)) == (cfg.accuracy["correct"], cfg.accuracy["total"])  # tolerance 0
    assert ev.metrics["top1"] == pytest.approx(cfg.accuracy["top1"], abs=1e-12)
    assert ev.metrics["top5"] == pytest.approx(cfg.accuracy["top5"], abs=1e-12)


def test_create_model_pretrained():
    cfg = get_pretrained(NAME)
    model = stgcn.create_model(NAME, pretrained=True)
    assert model.pretrained_cfg.sha256 == cfg.sha256 and not model.training
    state = safe_load(cfg.file)["state_dict"]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    # the architecture name picks its default shipped model; arguments that agree are fine
    same = stgcn.create_model("stgcn", pretrained=True, layout="kinect-v1", num_classes=10)
    assert same.pretrained_cfg.name == NAME
    # the shipped name without pretrained: its architecture, fresh weights
    fresh = stgcn.create_model(NAME)
    assert fresh.config == model.config
    assert any(not torch.equal(v, state[k]) for k, v in fresh.state_dict().items() if v.is_floating_point())
    with pytest.raises(ConfigError, match="num_classes"):
        stgcn.create_model(NAME, pretrained=True, num_classes=5)
    with pytest.raises(ConfigError, match="no shipped weights named 'tcn'"):
        stgcn.create_model("tcn", pretrained=True)
    with pytest.raises(ConfigError, match="stgcn models"):
        get_spec("nothing")


def test_predictor_from_pretrained_answers_like_eval(utkinect_store):
    from stgcn.data.store import open_store

    p = stgcn.Predictor.from_pretrained()
    store = open_store(utkinect_store)
    i = int(store.split("xsub_test")[0])
    top = p(store.get(i), 3, layout=store.joint_layout())
    assert len(top) == 3 and top[0][0] in p.class_names and p.contract.clip_len == get_pretrained().data["clip_len"]


def _copy_shipped(tmp_path):
    for f in pretrained_dir().iterdir():
        shutil.copyfile(f, tmp_path / f.name)
    return PretrainedConfig.from_card(get_spec(NAME), tmp_path)


def test_a_damaged_or_missing_file_is_a_clear_error(tmp_path):
    cfg = _copy_shipped(tmp_path)
    assert cfg.verified_path() == tmp_path / f"{NAME}.pt"
    data = bytearray(cfg.file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cfg.file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 .* differs from the card"):
        cfg.verified_path()
    cfg.file.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        cfg.verified_path()
    card = tmp_path / f"{NAME}.json"
    card.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot be read"):
        PretrainedConfig.from_card(get_spec(NAME), tmp_path)
    card.write_text(json.dumps({"card_version": 1, "name": "other"}))
    with pytest.raises(ConfigError, match="not a version-1 card"):
        PretrainedConfig.from_card(get_spec(NAME), tmp_path)


def test_models_verb_lists_and_shows_the_card(capsys):
    from stgcn.cli import main

    cfg = get_pretrained(NAME)
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "layout", "classes", "top-1", "(test)", "size", "data"]
    row = lines[1].split()
    assert row[:3] == [NAME, "kinect-v1", "10"] and f"({cfg.accuracy['correct']}/99)" in lines[1]
    assert f"{cfg.size_bytes / 1e6:.1f} MB" in lines[1]
    assert main(["models", NAME]) == 0
    out = capsys.readouterr().out
    assert cfg.sha256 in out and cfg.command in out and "walk" in out
    assert main(["models", "--install"]) == 2  # --install goes with --reproduce
    assert "--reproduce" in capsys.readouterr().err


def test_predict_without_checkpoint_uses_the_shipped_model(tmp_path, capsys):
    from stgcn.cli import main
    from stgcn.data import load_sample
    from stgcn.resources import resource_path

    sample = load_sample(resource_path("datasets", "utkinect", "joints_s02_e01.txt.gz"), format="utkinect",
                         start=252, end=390)
    arr = tmp_path / "clip.npy"
    np.save(arr, sample.keypoint[0])  # (T, V, C)
    assert main(["predict", str(arr), "--format", "npy", "--set", "layout=kinect-v1", "--topk", "2"]) == 0
    out, err = capsys.readouterr()
    assert f"using the shipped model {NAME}" in err
    labels = [ln.split()[0] for ln in out.splitlines()[1:]]
    assert len(labels) == 2 and set(labels) <= set(get_pretrained().label_names)
    assert main(["predict", str(arr), "--official"]) == 2
    assert "--official needs --checkpoint" in capsys.readouterr().err


def test_demo_without_checkpoint_uses_the_shipped_model(small_video, tmp_path, monkeypatch, capsys):
    pytest.importorskip("av")
    from demo_support import FakePose
    from stgcn.cli import main
    from stgcn.inference import pose as pose_module

    def factory(**kw):
        return FakePose()

    factory.layout = FakePose.layout
    monkeypatch.setattr(pose_module, "MediaPipePose", factory)
    assert main(["demo", str(small_video), "--json", str(tmp_path / "o.json")]) == 0
    assert f"using the shipped model {NAME}" in capsys.readouterr().err
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["layout"] == "kinect-v1" and doc["window"] == get_pretrained().data["clip_len"]
