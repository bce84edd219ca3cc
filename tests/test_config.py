"""Recipes and overrides: every shipped recipe loads and builds its pipelines; errors name the file
and the key."""

from __future__ import annotations

import pytest

from stgcn.engine.config import RunConfig, apply_overrides, dump_yaml, from_dict, list_recipes, load_recipe
from stgcn.errors import ConfigError


def test_shipped_recipes():
    assert set(list_recipes()) >= {"paper", "official-kinetics", "official-ntu", "pyskl", "small"}


@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_loads_and_builds(name):
    from stgcn.data.pipeline import resolve_pipeline, with_test_clips
    from stgcn.data.transforms import build_pipeline
    from stgcn.models import create_model

    cfg = load_recipe(name)
    assert cfg.recipe == name and cfg.description
    for stream in ("joint", "bone-motion"):
        build_pipeline(resolve_pipeline(cfg.data.train_pipeline, stream), "ntu-rgb+d")
        specs, _ = with_test_clips(resolve_pipeline(cfg.data.test_pipeline, stream), cfg.data.test_clips)
        build_pipeline(specs, "ntu-rgb+d")
    create_model(cfg.model.name, layout="ntu-rgb+d", num_classes=60, strategy=cfg.model.strategy,
                 edge_importance=cfg.model.edge_importance, dropout=cfg.model.dropout, **cfg.model.kwargs)
    assert from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()  # config.yaml round trip
    assert dump_yaml(cfg)


def test_paper_and_official_values():
    p = load_recipe("paper")
    assert p.optimizer.lr == 0.01 and p.scheduler.milestones[:2] == [10, 20] and p.scheduler.gamma == 0.1
    k = load_recipe("official-kinetics")
    assert (k.optimizer.lr, k.optimizer.nesterov, k.optimizer.weight_decay) == (0.1, True, 1e-4)
    assert k.scheduler.milestones == [20, 30, 40, 50] and k.train.epochs == 50 and k.train.batch_size == 256
    n = load_recipe("official-ntu")
    assert n.scheduler.milestones == [10, 50] and n.train.epochs == 80 and n.train.batch_size == 64
    y = load_recipe("pyskl")
    assert y.scheduler.name == "cosine" and y.optimizer.weight_decay == 5e-4 and y.data.test_clips == 10


def test_overrides_are_type_checked():
    cfg = apply_overrides(load_recipe("small"), ["optimizer.lr=0.05", "scheduler.milestones=[5, 8]",
                                                 "train.epochs=7", "model.dropout=null"])
    assert cfg.optimizer.lr == 0.05 and cfg.scheduler.milestones == [5, 8] and cfg.train.epochs == 7
    assert cfg.model.dropout is None
    with pytest.raises(ConfigError, match=r"optimizer\.lr.*float.*fast"):
        apply_overrides(RunConfig(), ["optimizer.lr=fast"])
    with pytest.raises(ConfigError, match="unknown key 'optimizer.lrr'"):
        apply_overrides(RunConfig(), ["optimizer.lrr=1"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(RunConfig(), ["optimizer.lr"])
    with pytest.raises(ConfigError, match=r"train\.epochs.*>= 1"):
        apply_overrides(RunConfig(), ["train.epochs=0"])
    with pytest.raises(ConfigError, match=r"train\.epochs.*int.*2\.5"):
        apply_overrides(RunConfig(), ["train.epochs=2.5"])


@pytest.mark.parametrize("value", ["1e-3", "1E-3", "0.001", "1.0e-3"])
def test_numbers_are_read_the_way_people_write_them(value, tmp_path):
    # YAML 1.1 reads 1e-3 as a string; the field's type decides
    assert apply_overrides(RunConfig(), [f"optimizer.lr={value}"]).optimizer.lr == 0.001
    f = tmp_path / "r.yaml"
    f.write_text(f"optimizer: {{lr: {value}}}\n")
    assert load_recipe(str(f)).optimizer.lr == 0.001


@pytest.mark.parametrize("item, match", [
    ("train.seed=-1", r"train\.seed: must be in \[0, 2\*\*63\), found -1"),
    ("model.dropout=1.5", r"model\.dropout: must be in \[0, 1\) or null, found 1\.5"),
    ("train.num_threads=-2", r"train\.num_threads: must be >= 0"),
    ("data.num_workers=-1", r"data\.num_workers: must be >= 0 or null"),
    ("train.precision=fp16", r"train\.precision: must be fp32 or bf16, found 'fp16'"),
    ("train=3", r"unknown key 'train'"),
])
def test_out_of_range_values_are_refused_naming_the_key(item, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(RunConfig(), [item])


def test_recipe_file_errors_name_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimizer:\n  lr: 0.1\n  momentun: 0.9\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*optimizer.*momentun"):
        load_recipe(str(bad))
    bad.write_text("train:\n  batch_size: big\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.batch_size"):
        load_recipe(str(bad))
    bad.write_text("train: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train.*expected a mapping"):
        load_recipe(str(bad))
    bad.write_text("scheduler: {name: poly}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*scheduler\.name"):
        load_recipe(str(bad))
    bad.write_text("a: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_recipe(str(bad))
    with pytest.raises(ConfigError, match="shipped recipes"):
        load_recipe("no-such-recipe")
    good = tmp_path / "mine.yaml"
    good.write_text("optimizer: {lr: 0.5}\ntrain: {epochs: 2}\n")
    assert load_recipe(str(good)).optimizer.lr == 0.5


@pytest.mark.parametrize("where", ["recipe", "override"])
def test_yaml_python_tags_are_refused(tmp_path, where):
    marker = tmp_path / "pwned"
    tag = f'!!python/object/apply:os.system ["touch {marker}"]'
    if where == "recipe":
        f = tmp_path / "bad.yaml"
        f.write_text(f"optimizer:\n  lr: {tag}\n")
        with pytest.raises(ConfigError, match=r"bad\.yaml.*invalid YAML"):
            load_recipe(str(f))
    else:
        with pytest.raises(ConfigError, match="optimizer.lr"):
            apply_overrides(RunConfig(), [f"optimizer.lr={tag}"])
    assert not marker.exists()
