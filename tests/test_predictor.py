"""Predictor: the checkpoint's data contract (layout, Kinetics normalisation, test pipeline),
top-k output, official checkpoints, OpenPose folders and the predict CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stgcn.checkpoint import save_model
from stgcn.data.sample import Sample
from stgcn.errors import CheckpointError, DataError, LayoutError, ShapeError
from stgcn.inference.mapping import map_keypoints
from stgcn.inference.pose import Person
from stgcn.inference.predictor import DataContract, Predictor, normalize_kinetics, predict_openpose_folder
from stgcn.models import create_model

NAMES = ["walk", "wave", "clap", "sit"]


def tiny(layout: str, data: dict | None = None, classes=NAMES) -> Predictor:
    model = create_model("stgcn-tiny", layout=layout, num_classes=len(classes))
    return Predictor(model, {"class_names": list(classes), "layout": layout, "data": data or {}})


def mp_person(w=340, h=256, seed=0, score=0.9) -> Person:
    rng = np.random.default_rng(seed)
    kp = np.concatenate([rng.uniform(0, w, (33, 1)), rng.uniform(0, h, (33, 1)), np.full((33, 1), score)], 1)
    world = rng.normal(0, 0.3, (33, 3))
    return Person(keypoints=kp.astype(np.float32), box=np.array([0, 0, w, h], np.float32), score=score,
                  world=world.astype(np.float32))


def test_topk_is_sorted_probabilities_with_names():
    p = tiny("kinect-v1")
    x = np.random.default_rng(0).normal(size=(3, 20, 20, 2)).astype(np.float32)
    top = p(x, topk=3)
    assert len(top) == 3 and all(n in NAMES for n, _ in top)
    scores = [s for _, s in top]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    full = p.probabilities(x)[0]
    assert top[0] == (NAMES[int(full.argmax())], pytest.approx(float(full.max())))


def test_sample_input_and_layout_check():
    p = tiny("kinect-v1")
    s = Sample(keypoint=np.random.default_rng(1).normal(size=(1, 12, 20, 3)).astype(np.float32), name="s")
    assert len(p(s)) == 4
    bad = Sample(keypoint=np.zeros((1, 12, 15, 3), np.float32) + 1, name="florence")
    with pytest.raises(LayoutError, match="kinect-v1"):
        p(bad)


def test_kinetics_normalisation():
    arr = np.zeros((3, 2, 18, 1), np.float32)
    arr[:, 0, 0, 0] = [170, 64, 0.8]
    arr[:, 0, 1, 0] = [340, 256, 0.0]  # not detected: zeros whatever its coordinates
    out = normalize_kinetics(arr, (340, 256))
    np.testing.assert_allclose(out[:, 0, 0, 0], [0.0, -0.25, 0.8])
    np.testing.assert_array_equal(out[:, 0, 1, 0], [0, 0, 0])
    np.testing.assert_array_equal(out[:2, 1], 0)  # an empty frame stays empty


def test_people_to_input_2d_kinetics_contract():
    p = tiny("openpose", {"normalization": "kinetics", "num_persons": 2})
    a, b = mp_person(seed=1), mp_person(seed=2)
    x = p.people_to_input([[a, None, a], [b, b, None]], (340, 256), "mediapipe")
    assert x.shape == (3, 3, 18, 2)
    op = map_keypoints(a.keypoints, "mediapipe", "openpose", score_channel=True)
    np.testing.assert_allclose(x[0, 0, :, 0], op[:, 0] / 340 - 0.5, atol=1e-6)
    np.testing.assert_allclose(x[1, 2, :, 0], op[:, 1] / 256 - 0.5, atol=1e-6)
    np.testing.assert_allclose(x[2, 0, :, 0], op[:, 2])
    assert not x[:, 1, :, 0].any() and not x[:, 2, :, 1].any()  # missing frames stay zero
    with pytest.raises(ShapeError, match="image-size"):
        p.people_to_input([[a]], None, "mediapipe")


def test_people_to_input_3d_uses_world_and_test_pipeline():
    p = tiny("kinect-v1", {"test_pipeline": [{"name": "pad_to", "length": 16, "mode": "zero"}]})
    a = mp_person()
    with pytest.warns(UserWarning, match="centre"):
        x = p.people_to_input([[a] * 5], (340, 256), "mediapipe")
    assert x.shape == (3, 16, 20, 2)  # padded by the checkpoint's pipeline, M from the contract
    assert not x[:, 5:].any() and not x[..., 1].any()
    assert x[2, 0, :, 0].min() > 1.0  # depth in front of the camera, Kinect-like
    no_world = Person(keypoints=a.keypoints, box=a.box, score=0.9)
    with pytest.raises(LayoutError, match="world"):
        p.people_to_input([[no_world]], (340, 256), "mediapipe")


def test_layout_mismatch_is_a_clear_error():
    p = tiny("coco")
    with pytest.raises(LayoutError, match="checkpoint's layout is 'coco'"):
        p.check_source("mediapipe")
    tiny("openpose").check_source("body25")


def test_contract_from_training_meta():
    meta = {"layout": "kinect-v1", "data": {"layout": "kinect-v1", "test_pipeline": [{"name": "center"}],
                                             "in_channels": 3, "store_meta": {"channels": ["x", "y", "z"]}}}
    c = DataContract.from_meta(meta)
    assert c.world and c.pipeline == [{"name": "center"}] and c.channels == ["x", "y", "z"]
    assert not DataContract.from_meta({"layout": "openpose", "data": {"normalization": "kinetics"}}).world


def test_from_checkpoint_round_trip(tmp_path):
    p = tiny("kinect-v1", {"clip_len": 32})
    with pytest.raises(CheckpointError, match="fused for inference"):
        save_model(tmp_path / "m.pt", p.model, p.meta)  # the predictor runs a fused copy
    model = create_model("stgcn-tiny", layout="kinect-v1", num_classes=len(NAMES))
    p = Predictor(model, {"class_names": NAMES, "layout": "kinect-v1", "data": {"clip_len": 32}})
    save_model(tmp_path / "m.pt", model, p.meta)
    q = Predictor.from_checkpoint(tmp_path / "m.pt")
    x = np.random.default_rng(0).normal(size=(3, 10, 20, 2)).astype(np.float32)
    np.testing.assert_allclose(q.probabilities(x), p.probabilities(x), rtol=1e-6)
    assert [n for n, _ in q(x)] == [n for n, _ in p(x)] and q.contract.clip_len == 32


def test_official_checkpoint_gets_kinetics_labels_and_contract(tmp_path):
    model = create_model("stgcn-official", layout="openpose", num_classes=400)
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "official.pt")
    p = Predictor.from_checkpoint(tmp_path / "official.pt", official=True)
    assert len(p.class_names) == 400 and p.class_names[0] == "abseiling"
    assert p.contract.normalization == "kinetics" and p.contract.clip_len == 300


def write_openpose(folder, frames: int, body25: bool = True):
    folder.mkdir()
    v = 25 if body25 else 18
    rng = np.random.default_rng(0)
    for f in range(frames):
        kp = np.concatenate([rng.uniform(50, 300, (v, 2)), np.full((v, 1), 0.8)], 1)
        doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": kp.ravel().tolist()}]}
        (folder / f"clip_{f:012d}_keypoints.json").write_text(json.dumps(doc))


def test_openpose_folder(tmp_path):
    write_openpose(tmp_path / "op", 6)
    p = tiny("openpose", {"normalization": "kinetics"})
    assert len(predict_openpose_folder(p, tmp_path / "op", topk=2, image_size=(340, 256))) == 2
    with pytest.raises(LayoutError):
        predict_openpose_folder(tiny("kinect-v1"), tmp_path / "op")
    (tmp_path / "op" / "clip_000000000003_keypoints.json").write_text("{not json")
    with pytest.raises(DataError, match="clip_000000000003"):
        predict_openpose_folder(p, tmp_path / "op", image_size=(340, 256))


def test_predict_cli_on_openpose_folder(tmp_path, capsys):
    from stgcn.cli import main

    write_openpose(tmp_path / "op", 5, body25=False)
    save_model(tmp_path / "m.pt", create_model("stgcn-tiny", layout="openpose", num_classes=len(NAMES)),
               {"class_names": NAMES, "layout": "openpose", "data": {"normalization": "kinetics"}})
    assert main(["predict", str(tmp_path / "op"), "--checkpoint", str(tmp_path / "m.pt"), "--topk", "2",
                 "--image-size", "340x256"]) == 0
    out = capsys.readouterr().out
    assert "OpenPose folder" in out and sum(n in out for n in NAMES) == 2
    assert main(["predict", str(tmp_path / "op"), "--checkpoint", str(tmp_path / "m.pt")]) == 2  # no image size


def test_openpose_folder_gap_is_an_empty_frame(tmp_path):
    from stgcn.inference.pose import OpenPoseFolderSource

    write_openpose(tmp_path / "op", 5)
    (tmp_path / "op" / "clip_000000000002_keypoints.json").unlink()
    src = OpenPoseFolderSource(tmp_path / "op")
    frames = list(src)
    assert src.layout == "body25" and [len(f) for f in frames] == [1, 1, 0, 1, 1]
