"""stgcn eval (metrics, outputs, class subsets, clips) and stgcn fuse (npz/csv/npy, name matching)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from faults import Evil, full_disk
from stgcn.errors import ConfigError, DataError, WriteError
from test_train import CLASSES, make_store, tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from stgcn.engine import train

    root = tmp_path_factory.mktemp("ev")
    store = make_store(root / "store", n=36)
    return store, train(tiny_config(store, root / "run", epochs=1))


def test_eval_matches_training_scores_and_writes_outputs(run, tmp_path):
    from stgcn.engine import evaluate

    store, res = run
    ev = evaluate(res.best_checkpoint, store, "val", out=tmp_path / "e", num_workers=0, progress=False)
    z = np.load(res.out / "val_scores.npz")
    # best == final after one epoch, so eval reproduces the training-time validation scores
    np.testing.assert_allclose(ev.scores, z["scores"], rtol=1e-5, atol=1e-5)
    assert ev.names == list(z["names"]) and ev.metrics["top1"] == pytest.approx(res.metrics["final"]["top1"])
    for f in ("metrics.json", "scores.npz", "per_class.csv", "confusion.png", "report.md"):
        assert (tmp_path / "e" / f).is_file()
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["num_samples"] == len(ev.names)


def test_eval_class_subset_restricts_samples_and_argmax(run, tmp_path):
    from stgcn.engine import evaluate

    store, res = run
    full = evaluate(res.best_checkpoint, store, "val", num_workers=0, progress=False)
    f = tmp_path / "sub.txt"
    f.write_text("kick\nwave\n")
    sub = evaluate(res.best_checkpoint, store, "val", classes=str(f), num_workers=0, progress=False)
    keep = np.isin(full.labels, [0, 1])
    assert sub.class_names == ["kick", "wave"] and len(sub.names) == keep.sum()
    np.testing.assert_allclose(sub.scores, full.scores[keep][:, [1, 0]], rtol=1e-6)
    assert (sub.labels == np.where(full.labels[keep] == 1, 0, 1)).all()
    with pytest.raises(ConfigError, match="not classes"):
        evaluate(res.best_checkpoint, store, "val", classes=["jump"], num_workers=0, progress=False)


def test_kinetics_motion_list_is_shipped():
    from stgcn.engine.evaluate import load_class_subset

    names = load_class_subset("kinetics-motion")
    assert len(names) == 30 and "belly dancing" in names


def test_eval_cli_with_clips(run, tmp_path, capsys):
    from stgcn.cli import main

    store, res = run
    rc = main(["eval", "--checkpoint", str(res.best_checkpoint), "--data", str(store), "--split", "val",
               "--clips", "3", "--workers", "0", "--out", str(tmp_path / "c")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "wave" in out
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["clips"] == 3


def _npz(path, names, scores, labels):
    np.savez(path, names=np.array(names), scores=np.asarray(scores, np.float32), labels=np.asarray(labels))


def test_fuse_matches_by_name_and_weights(tmp_path):
    from stgcn.fusion import fuse

    a = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    b = np.array([[0.0, 3.0], [0.0, 2.0], [5.0, 0.0]])
    _npz(tmp_path / "a.npz", ["x", "y", "z"], a, [1, 1, 0])
    _npz(tmp_path / "b.npz", ["z", "x", "y"], b[[2, 0, 1]], [0, 1, 1])  # another order
    r = fuse([tmp_path / "a.npz", tmp_path / "b.npz"], [1.0, 2.0])
    from stgcn.metrics import softmax

    np.testing.assert_allclose(r.scores, softmax(a) + 2 * softmax(b))
    assert r.metrics["top1"] == 1.0
    # a CSV from another model (already probabilities) and a bare npy in the first file's order
    (tmp_path / "rgb.csv").write_text("name,p0,p1,label\ny,0.1,0.9,1\nx,0.5,0.5,1\nz,1.0,0.0,0\n")
    np.save(tmp_path / "flow.npy", np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]))
    r = fuse([tmp_path / "a.npz", tmp_path / "rgb.csv", tmp_path / "flow.npy"])
    np.testing.assert_allclose(r.scores[0], softmax(a)[0] + [0.5, 0.5] + [0.0, 1.0])


def test_fuse_lists_unmatched_names(tmp_path):
    from stgcn.fusion import fuse

    _npz(tmp_path / "a.npz", ["x", "y"], np.zeros((2, 2)), [0, 1])
    _npz(tmp_path / "b.npz", ["x", "w"], np.zeros((2, 2)), [0, 1])
    with pytest.raises(DataError, match=r"missing here: \['y'\].*not in .*\['w'\]"):
        fuse([tmp_path / "a.npz", tmp_path / "b.npz"])
    _npz(tmp_path / "c.npz", ["x", "y"], np.zeros((2, 3)), [0, 1])
    with pytest.raises(DataError, match="3 classes"):
        fuse([tmp_path / "a.npz", tmp_path / "c.npz"])


def test_fuse_cli(tmp_path, capsys):
    from stgcn.cli import main

    _npz(tmp_path / "a.npz", ["x", "y"], [[1.0, 0.0], [0.0, 1.0]], [0, 1])
    _npz(tmp_path / "b.npz", ["y", "x"], [[0.0, 1.0], [1.0, 0.0]], [1, 0])
    rc = main(["fuse", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--weights", "1", "0.5",
               "--out", str(tmp_path / "f.npz")])
    assert rc == 0 and "top-1 100.00%" in capsys.readouterr().out
    assert np.load(tmp_path / "f.npz")["scores"].shape == (2, 2)
    assert main(["fuse", str(tmp_path / "a.npz"), str(tmp_path / "missing.npz")]) == 2


def test_classes_constant():
    assert CLASSES == ["wave", "kick", "still"]


def test_eval_compares_layouts_by_table(run, tmp_path):
    """A checkpoint of one 20-joint order on a store of another is refused (joint counts are equal)."""
    from stgcn.checkpoint import load_model, save_model
    from stgcn.contract import DataContract
    from stgcn.engine import evaluate
    from stgcn.errors import LayoutError
    from stgcn.graph import get_layout
    from stgcn.models import create_model

    store, res = run
    _, meta = load_model(res.best_checkpoint)
    c = DataContract.from_meta(meta)
    msr = dataclasses.replace(c, layout=get_layout("msr-action3d"))
    save_model(tmp_path / "msr.pt", create_model("stgcn-tiny", layout="msr-action3d", num_classes=3),
               {**meta, "layout": "msr-action3d", "data": msr.to_dict()})
    with pytest.raises(LayoutError, match="'kinect-v1'.*'msr-action3d'"):
        evaluate(tmp_path / "msr.pt", store, "val", num_workers=0, progress=False)


def test_custom_layout_yaml_works_from_another_folder(tmp_path, monkeypatch):
    """A store and a checkpoint of a custom YAML layout keep its table, not its (relative) path."""
    from stgcn.cli import main
    from stgcn.data.prepare import prepare
    from stgcn.data.store import open_store
    from stgcn.engine import evaluate, train

    work = tmp_path / "work"
    (work / "clips").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["name,label,split"]
    for i in range(12):
        np.save(work / "clips" / f"c{i}.npy", rng.normal(size=(1, 10 + i, 5, 3)).astype(np.float32))
        rows.append(f"c{i},{i % 2},{'train' if i % 3 else 'val'}")
    (work / "clips" / "labels.csv").write_text("\n".join(rows) + "\n")
    (work / "toy5.yaml").write_text("joints: [a, b, c, d, e]\nedges: [[a, b], [b, c], [c, d], [d, e]]\n"
                                    "center: c\ndims: 3\n")
    monkeypatch.chdir(work)
    prepare("arrays", "clips", "store", layout="toy5.yaml", progress=False, workers=1)
    cfg = tiny_config(work / "store", work / "run", epochs=1)
    cfg.data.test_pipeline = [{"name": "uniform_sample", "clip_len": 8, "test_mode": True}]
    res = train(cfg)
    meta_text = (work / "store" / "meta.json").read_text()
    assert "toy5.yaml" not in meta_text and json.loads(meta_text)["layout"] == "toy5"
    (work / "toy5.yaml").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ev = evaluate(res.best_checkpoint, work / "store", "val", num_workers=0, progress=False)
    assert ev.metrics["num_samples"] == 4
    assert open_store(work / "store").joint_layout().name == "toy5"
    assert main(["predict", f"{work / 'store'}#0", "--checkpoint", str(res.best_checkpoint)]) == 0


def test_pyskl_conversion_honours_the_layout_and_caches_per_layout(tmp_path):
    """A 20-joint pickle is converted in the layout asked for; another layout is another cache."""
    from stgcn.data.formats.pyskl import write_pyskl
    from stgcn.data.pickle_cache import open_data, pickle_cache_dir

    rng = np.random.default_rng(0)
    anns = [{"frame_dir": f"v{i}", "label": i % 2, "keypoint": rng.random((1, 8, 20, 3)).astype(np.float32)}
            for i in range(4)]
    pkl = tmp_path / "v20.pkl"
    write_pyskl(pkl, anns, {"train": ["v0", "v1", "v2"], "val": ["v3"]})
    keys = {pickle_cache_dir(pkl, tmp_path, lay) for lay in (None, "kinect-v1", "msr-action3d")}
    assert len(keys) == 3
    unknown = open_data(pkl, tmp_path)
    assert unknown.joint_layout() is None  # 20 joints: no guess
    assert open_data(pkl, tmp_path, "kinect-v1").joint_layout().name == "kinect-v1"
    assert open_data(pkl, tmp_path, "msr-action3d").joint_layout().name == "msr-action3d"


def test_pyskl_training_with_layout(tmp_path):
    """`stgcn train --data v20.pkl --layout kinect-v1` (it used to say: unknown layout 'unknown')."""
    from stgcn.data.formats.pyskl import write_pyskl
    from stgcn.engine import train
    from stgcn.errors import LayoutError

    rng = np.random.default_rng(0)
    anns = [{"frame_dir": f"v{i}", "label": i % 2, "keypoint": rng.random((1, 12, 20, 3)).astype(np.float32)}
            for i in range(8)]
    pkl = tmp_path / "v20.pkl"
    write_pyskl(pkl, anns, {"train": [f"v{i}" for i in range(6)], "val": ["v6", "v7"]})
    cfg = tiny_config(pkl, tmp_path / "run", epochs=1)
    cfg.data.cache_dir = str(tmp_path / "cache")
    with pytest.raises(LayoutError, match="--layout"):
        train(cfg)
    cfg.data.layout = "kinect-v1"
    res = train(cfg)
    from stgcn.checkpoint import load_model

    assert load_model(res.best_checkpoint)[1]["layout"] == "kinect-v1"


def test_score_file_with_pickled_objects_is_refused(tmp_path):
    from stgcn.fusion import fuse

    marker = tmp_path / "pwned"
    good = tmp_path / "a.npz"
    np.savez(good, scores=np.eye(2), names=np.array(["x", "y"]), labels=np.arange(2))
    bad = tmp_path / "b.npz"
    np.savez(bad, scores=np.eye(2), names=np.array([Evil(marker), "y"], dtype=object), labels=np.arange(2))
    with pytest.raises(DataError, match=r"b\.npz.*cannot read scores"):
        fuse([good, bad])
    assert not marker.exists()


@pytest.mark.parametrize("name", ["metrics.json", "scores.npz", "per_class.csv", "confusion.png", "report.md"])
def test_full_disk_while_writing_eval_outputs_keeps_previous_file(tmp_path, monkeypatch, name):
    from stgcn.engine.evaluate import summarize_scores, write_eval_outputs

    labels = np.arange(12) % 3

    def result(seed):
        scores = np.random.default_rng(seed).normal(size=(12, 3)).astype(np.float32)
        return summarize_scores(scores, labels, ["a", "b", "c"], [f"s{i}" for i in range(12)])

    write_eval_outputs(tmp_path, result(1), title="first")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    full_disk(monkeypatch, name)
    with pytest.raises(WriteError, match=rf"could not write {tmp_path / name}: No space left on device"):
        write_eval_outputs(tmp_path, result(2), title="second")
    monkeypatch.undo()
    assert (tmp_path / name).read_bytes() == before[name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)  # no temporary file
    write_eval_outputs(tmp_path, result(2), title="second")
    assert "second" in (tmp_path / "report.md").read_text()
