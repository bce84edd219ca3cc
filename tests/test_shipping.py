"""stgcn.shipping: `stgcn models NAME --reproduce` builds weights + card from the bundled data (here
with a one-epoch tiny recipe instead of the shipped model's, so that it runs in seconds)."""

from __future__ import annotations

import json

import pytest

from stgcn.checkpoint import safe_load
from stgcn.models import pretrained as shipped_models
from stgcn.models.pretrained import PretrainedConfig, get_spec, sha256_file

TINY = """
model: {name: stgcn-tiny, strategy: spatial, edge_importance: true, dropout: 0.0}
data:
  train_pipeline: [{name: center}, {name: uniform_sample, clip_len: 16}]
  test_pipeline: [{name: center}, {name: uniform_sample, clip_len: 16, test_mode: true}]
  num_workers: 0
optimizer: {name: adam, lr: 0.003}
train: {epochs: 2, batch_size: 32, progress: false}
"""


@pytest.fixture
def package_dir(tmp_path, monkeypatch):
    """The package's pretrained folder, moved to a temporary one."""
    target = tmp_path / "package"
    monkeypatch.setattr(shipped_models, "pretrained_dir", lambda: target)
    monkeypatch.setattr("stgcn.shipping.pretrained_dir", lambda: target)
    return target


def test_reproduce_writes_weights_and_card(tmp_path, package_dir, capsys):
    from stgcn.cli import main
    from stgcn.engine.evaluate import evaluate

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY)
    out = tmp_path / "build"
    assert main(["models", "stgcn.utkinect", "--reproduce", "--recipe", str(recipe), "--out", str(out),
                 "--install", "--workers", "0"]) == 0
    spec = get_spec("stgcn.utkinect")
    cfg = PretrainedConfig.from_card(spec, package_dir)
    assert cfg.verified_path() == package_dir / spec.file and sha256_file(out / spec.file) == cfg.sha256
    assert cfg.command == f"stgcn models stgcn.utkinect --reproduce --recipe {recipe} --install"
    assert f"sha256 {cfg.sha256}" in capsys.readouterr().out
    # evaluated once, after the last epoch: the file is the final model, not an epoch picked on the test split
    metrics = json.loads((out / "train" / "metrics.json").read_text())
    assert metrics["best"]["epoch"] == metrics["final"]["epoch"] == 2
    assert cfg.training["config"]["train"]["eval_every"] == 2 and cfg.training["threads"] == 1
    ckpt = safe_load(cfg.file)
    assert ckpt["model_config"]["name"] == "stgcn-tiny" and ckpt["meta"]["pretrained"] == spec.name
    assert "store_meta" not in ckpt["meta"]["data"] and "config" not in ckpt["meta"]
    ev = evaluate(cfg.file, out / "data", spec.test_split, num_workers=0, progress=False)
    assert int((ev.scores.argmax(1) == ev.labels).sum()) == cfg.accuracy["correct"]
    assert cfg.label_names == tuple(ev.class_names) and cfg.accuracy["total"] == 99
    assert (package_dir / f"{spec.name}.md").read_text().count(cfg.sha256) == 1
