"""Predictor: raw clips through the checkpoint's data contract (layout, persons, Kinetics
normalisation, test pipeline), prepared input through its own methods, top-k output, official
checkpoints, OpenPose folders, "nobody there" and the predict CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stgcn.checkpoint import save_model
from stgcn.data.sample import Sample
from stgcn.errors import CheckpointError, DataError, LayoutError, ShapeError
from stgcn.graph import get_layout
from stgcn.inference.mapping import map_keypoints
from stgcn.inference.pose import Person
from stgcn.inference.predictor import Predictor, predict_openpose_folder
from stgcn.models import create_model

NAMES = ["walk", "wave", "clap", "sit"]


def tiny(layout: str, data: dict | None = None, classes=NAMES) -> Predictor:
    model = create_model("stgcn-tiny", layout=layout, num_classes=len(classes))
    p = Predictor(model, {"class_names": list(classes), "layout": layout, "data": data or {}})
    p.unfused = model  # the predictor runs a fused copy, which save_model refuses; tests save this one
    return p


def mp_person(w=340, h=256, seed=0, score=0.9) -> Person:
    rng = np.random.default_rng(seed)
    kp = np.concatenate([rng.uniform(0, w, (33, 1)), rng.uniform(0, h, (33, 1)), np.full((33, 1), score)], 1)
    world = rng.normal(0, 0.3, (33, 3))
    return Person(keypoints=kp.astype(np.float32), box=np.array([0, 0, w, h], np.float32), score=score,
                  world=world.astype(np.float32))


def test_topk_is_sorted_probabilities_with_names():
    p = tiny("kinect-v1")
    x = np.random.default_rng(0).normal(size=(3, 20, 20, 1)).astype(np.float32)
    top = p(x, topk=3)
    assert len(top) == 3 and all(n in NAMES for n, _ in top)
    scores = [s for _, s in top]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    full = p.probabilities(x)
    assert top[0] == (NAMES[int(full.argmax())], pytest.approx(float(full.max())))


def test_sample_input_and_layout_check():
    p = tiny("kinect-v1")
    s = Sample(keypoint=np.random.default_rng(1).normal(size=(1, 12, 20, 3)).astype(np.float32), name="s")
    assert len(p(s)) == 4
    bad = Sample(keypoint=np.zeros((1, 12, 15, 3), np.float32) + 1, name="florence")
    with pytest.raises(LayoutError, match="kinect-v1"):
        p(bad)


def test_people_2d_kinetics_contract():
    p = tiny("openpose", {"normalization": "kinetics", "num_persons": 2, "test_pipeline": [{"name": "center",
                                                                                             "value": 0.5}]})
    a, b = mp_person(seed=1), mp_person(seed=2)
    raw = p.people_clip([[a, None, a], [b, b, None]], "mediapipe")
    x = p.prepare(raw, image_size=(340, 256))[0]
    assert x.shape == (3, 3, 18, 2)
    op = map_keypoints(a.keypoints, "mediapipe", "openpose", score_channel=True)
    np.testing.assert_allclose(x[0, 0, :, 0], op[:, 0] / 340 - 0.5, atol=1e-6)
    np.testing.assert_allclose(x[1, 2, :, 0], op[:, 1] / 256 - 0.5, atol=1e-6)
    np.testing.assert_allclose(x[2, 0, :, 0], op[:, 2])
    assert not x[:, 1, :, 0].any() and not x[:, 2, :, 1].any()  # missing frames stay zero
    with pytest.raises(ShapeError, match="image-size"):
        p.prepare(p.people_clip([[a]], "mediapipe"))


def test_people_3d_use_world_and_test_pipeline():
    p = tiny("kinect-v1", {"test_pipeline": [{"name": "pad_to", "length": 16, "mode": "zero"}], "num_persons": 2})
    a = mp_person()
    with pytest.warns(UserWarning, match="centre"):
        raw = p.people_clip([[a] * 5], "mediapipe")
    x = p.prepare(raw)[0]
    assert x.shape == (3, 16, 20, 2)  # padded by the checkpoint's pipeline, M from the contract
    assert not x[:, 5:].any() and not x[..., 1].any()
    assert x[2, 0, :, 0].min() > 1.0  # depth in front of the camera, Kinect-like
    no_world = Person(keypoints=a.keypoints, box=a.box, score=0.9)
    with pytest.raises(LayoutError, match="world"):
        p.people_clip([[no_world]], "mediapipe")


def test_layout_mismatch_is_a_clear_error():
    p = tiny("coco")
    with pytest.raises(LayoutError, match="checkpoint's layout is 'coco'"):
        p.check_source("mediapipe")
    tiny("openpose").check_source("body25")


def test_from_checkpoint_round_trip(tmp_path):
    p = tiny("kinect-v1", {"clip_len": 32})
    with pytest.raises(CheckpointError, match="fused for inference"):
        save_model(tmp_path / "m.pt", p.model, p.meta)  # the predictor runs a fused copy
    model = create_model("stgcn-tiny", layout="kinect-v1", num_classes=len(NAMES))
    p = Predictor(model, {"class_names": NAMES, "layout": "kinect-v1", "data": {"clip_len": 32}})
    save_model(tmp_path / "m.pt", model, p.meta)
    q = Predictor.from_checkpoint(tmp_path / "m.pt")
    x = np.random.default_rng(0).normal(size=(3, 10, 20, 1)).astype(np.float32)
    np.testing.assert_allclose(q.probabilities(x), p.probabilities(x), rtol=1e-6)
    assert [n for n, _ in q(x)] == [n for n, _ in p(x)] and q.contract.clip_len == 32


def test_official_checkpoint_gets_kinetics_labels_and_contract(tmp_path):
    model = create_model("stgcn-official", layout="openpose", num_classes=400)
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "official.pt")
    p = Predictor.from_checkpoint(tmp_path / "official.pt", official=True)
    assert len(p.class_names) == 400 and p.class_names[0] == "abseiling"
    assert p.contract.normalization == "kinetics" and p.contract.clip_len == 300
    assert p.contract.num_persons == 2 and p.contract.test_pipeline == ({"name": "center", "value": 0.5},)
    # built once: what convert-official writes is what --official uses
    from stgcn.compat import convert_official

    convert_official(tmp_path / "official.pt", tmp_path / "converted.pt", layout="openpose")
    assert Predictor.from_checkpoint(tmp_path / "converted.pt").contract == p.contract
    # the official input: pixels / frame size, minus 0.5, zero where undetected
    clip = np.zeros((3, 2, 18, 1), np.float32)
    clip[:, 0, 0, 0] = [170, 64, 0.8]
    clip[:, 0, 1, 0] = [340, 256, 0.0]  # not detected: zeros whatever its coordinates
    x = p.prepare(clip, image_size=(340, 256))[0]
    np.testing.assert_allclose(x[:, 0, 0, 0], [0.0, -0.25, 0.8])
    np.testing.assert_array_equal(x[:, 0, 1, 0], [0, 0, 0])
    np.testing.assert_array_equal(x[:2, 1], 0)  # an empty frame stays empty
    assert x.shape[-1] == 2  # the second person slot of the official feeder


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
    answer = predict_openpose_folder(p, tmp_path / "op", topk=2, image_size=(340, 256))
    assert len(answer.top) == 2 and not answer.nobody and answer.person_frames == answer.frames == 6
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


# -- raw clips go through the contract; prepared input has its own methods ------------------------

PIPE = [{"name": "center"}, {"name": "uniform_sample", "clip_len": 8, "test_mode": True}]


def raw(t=21, m=1, seed=3):
    return (np.random.default_rng(seed).normal(size=(3, t, 20, m)) + 2).astype(np.float32)


def test_raw_array_gets_the_test_pipeline():
    """`Predictor(open_store(D).get(i))` is a raw clip: the checkpoint's test pipeline runs on it."""
    from stgcn.data.transforms import build_pipeline

    p = tiny("kinect-v1", {"test_pipeline": PIPE, "num_persons": 1})
    x = raw()
    ref = build_pipeline(PIPE, get_layout("kinect-v1"))(x, np.random.default_rng(0))
    np.testing.assert_allclose(p.logits(x), p.logits_prepared(ref)[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(p.logits(x), p.logits_prepared(x)[0], atol=1e-3)  # skipping it gives another answer
    assert p.prepare(x).shape == (1, 3, 8, 20, 1)
    with pytest.raises(ShapeError, match="logits_prepared"):
        p(x[None])  # a batch is not a raw clip


def test_no_phantom_person_for_a_one_person_model():
    p = tiny("kinect-v1", {"num_persons": 1})
    assert p.prepare(raw(m=1)).shape[-1] == 1
    two = tiny("kinect-v1", {"num_persons": 2})
    x = two.prepare(raw(m=1))
    assert x.shape[-1] == 2 and not x[..., 1].any()  # an M = 2 model's empty slot, as in its store


def test_test_clips_are_averaged_as_eval_averages_them():
    p = tiny("kinect-v1", {"test_pipeline": [{"name": "uniform_sample", "clip_len": 4, "test_mode": True}],
                           "test_clips": 3})
    x = raw(t=40)
    prepared = p.prepare(x)
    assert prepared.shape[0] == 3
    np.testing.assert_allclose(p.logits(x), p.logits_prepared(prepared).mean(0), rtol=1e-6)


def test_clip_in_another_layout_is_refused_by_table():
    """An MSR Action3D model (20 joints, its own order) refuses a UTKinect (kinect-v1) clip."""
    p = tiny("msr-action3d")
    s = Sample(keypoint=raw().transpose(3, 1, 2, 0), name="walk", meta={"layout": "kinect-v1"})
    with pytest.raises(LayoutError, match=r"sample 'walk' is in layout 'kinect-v1'.*expects layout 'msr-action3d'"):
        p(s)
    with pytest.raises(LayoutError, match="kinect-v1"):
        p(raw(), layout="kinect-v1")
    assert len(p(raw())) == 4  # an array of unknown layout: only its joint count is checked


def test_channels_must_be_the_trained_ones():
    p = tiny("kinect-v1")
    s2d = Sample(keypoint=np.ones((1, 5, 20, 2), np.float32), score=np.ones((1, 5, 20), np.float32), name="2d")
    with pytest.raises(ShapeError, match=r"channels \['x', 'y', 'score'\].*\['x', 'y', 'z'\]"):
        p(s2d)


def test_custom_layout_checkpoint_needs_no_yaml(tmp_path):
    f = tmp_path / "toy5.yaml"
    f.write_text("joints: [a, b, c, d, e]\nedges: [[a, b], [b, c], [c, d], [d, e]]\ncenter: c\ndims: 3\n")
    lay = get_layout(str(f))
    model = create_model("stgcn-tiny", layout=lay.ref, num_classes=2)
    from stgcn.contract import DataContract

    c = DataContract(layout=lay, num_persons=1, channels=("x", "y", "z"), in_channels=3)
    save_model(tmp_path / "toy.pt", model, {"class_names": ["a", "b"], "data": c.to_dict()})
    f.unlink()  # from another folder, the YAML is not there
    q = Predictor.from_checkpoint(tmp_path / "toy.pt")
    assert q.layout == lay and len(q(np.ones((3, 6, 5, 1), np.float32))) == 2


def test_nobody_in_an_openpose_folder(tmp_path, capsys):
    from stgcn.cli import main

    write_openpose(tmp_path / "op", 10, body25=False)
    for f in range(1, 10):  # the person is in the first frame only
        (tmp_path / "op" / f"clip_{f:012d}_keypoints.json").write_text('{"people": []}')
    p = tiny("openpose", {"normalization": "kinetics", "min_frames": 3})
    answer = predict_openpose_folder(p, tmp_path / "op", image_size=(340, 256))
    assert answer.nobody and answer.top == [] and (answer.person_frames, answer.frames) == (1, 10)
    save_model(tmp_path / "m.pt", p.unfused, p.meta)
    assert main(["predict", str(tmp_path / "op"), "--checkpoint", str(tmp_path / "m.pt"),
                 "--image-size", "340x256"]) == 0
    out = capsys.readouterr().out
    assert "nobody there" in out and not any(n in out for n in NAMES)


def test_predict_video_nobody_with_a_blank_video(tmp_path, capsys, monkeypatch):
    """A video in which the pose source finds nobody: "nobody there", not a confident label."""
    pytest.importorskip("av")
    pytest.importorskip("scipy")
    from demo_support import FakePose, make_small_video
    from stgcn.cli import main
    from stgcn.inference import pose as pose_module
    from stgcn.inference.predictor import predict_video

    video = make_small_video(tmp_path / "blank.mp4")
    p = tiny("kinect-v1", {"num_persons": 1, "test_pipeline": [{"name": "center"}]})
    answer = predict_video(p, video, pose=FakePose(empty=range(40)))
    assert answer.nobody and answer.frames == 40 and answer.person_frames == 0
    save_model(tmp_path / "m.pt", p.unfused, p.meta)
    monkeypatch.setattr(pose_module, "MediaPipePose", lambda **kw: FakePose(empty=range(40)))
    assert main(["predict", str(video), "--checkpoint", str(tmp_path / "m.pt")]) == 0
    assert "nobody there: a person in 0 of 40 frames" in capsys.readouterr().out
    # and someone there: a label
    assert not predict_video(p, video, pose=FakePose()).nobody


def test_predict_cli_format_and_reader_options(tmp_path, capsys):
    """A raw dataset file whose name does not tell its format: --format (and --set for reader options)."""
    from stgcn.cli import main

    rng = np.random.default_rng(0)
    f = tmp_path / "recording.txt"  # MSR Action3D text, not named aAA_sSS_eEE_skeleton3D.txt
    f.write_text("\n".join(" ".join(f"{v:.4f}" for v in (*rng.uniform(0, 1, 3), 1.0)) for _ in range(20 * 6)))
    p = tiny("msr-action3d")
    save_model(tmp_path / "msr.pt", p.unfused, p.meta)
    assert main(["predict", str(f), "--checkpoint", str(tmp_path / "msr.pt")]) == 2  # cannot tell
    assert "--format" in capsys.readouterr().err
    assert main(["predict", str(f), "--checkpoint", str(tmp_path / "msr.pt"), "--format", "msr-action3d",
                 "--set", "zero_frames=keep", "--topk", "2"]) == 0
    out = capsys.readouterr().out
    assert sum(n in out for n in NAMES) == 2
    # the same file read as UTKinect-ordered data would be refused: another layout
    k = tiny("kinect-v1")
    save_model(tmp_path / "k.pt", k.unfused, k.meta)
    assert main(["predict", str(f), "--checkpoint", str(tmp_path / "k.pt"), "--format", "msr-action3d"]) == 2
    assert "layout 'msr-action3d'" in capsys.readouterr().err


def test_predict_cli_store_sample_is_a_raw_clip(tmp_path, capsys):
    from stgcn.cli import main
    from stgcn.data.store import open_store
    from test_train import CLASSES, make_store

    store = open_store(make_store(tmp_path / "s", n=8))
    p = tiny("kinect-v1", {"test_pipeline": PIPE}, classes=CLASSES)
    save_model(tmp_path / "m.pt", p.unfused, p.meta)
    assert main(["predict", f"{tmp_path / 's'}#3", "--checkpoint", str(tmp_path / "m.pt"), "--topk", "1"]) == 0
    out = capsys.readouterr().out
    assert p(store.get(3), 1)[0][0] in out.splitlines()[1] and "(label:" in out
    msr = tiny("msr-action3d", {"test_pipeline": PIPE}, classes=CLASSES)
    save_model(tmp_path / "msr.pt", msr.unfused, msr.meta)
    assert main(["predict", f"{tmp_path / 's'}#3", "--checkpoint", str(tmp_path / "msr.pt")]) == 2
    assert "kinect-v1" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.video
def test_predict_blank_video_with_mediapipe_is_nobody(tmp_path, capsys):
    """`stgcn predict blank.mp4` used to answer "waveHands 0.9900"."""
    pytest.importorskip("mediapipe")
    pytest.importorskip("scipy")
    from demo_support import make_small_video
    from stgcn.cli import main

    video = make_small_video(tmp_path / "blank.mp4")  # grey frames written with PyAV
    p = tiny("kinect-v1", {"num_persons": 1, "test_pipeline": [{"name": "center"}]})
    save_model(tmp_path / "m.pt", p.unfused, p.meta)
    assert main(["predict", str(video), "--checkpoint", str(tmp_path / "m.pt")]) == 0
    out = capsys.readouterr().out
    assert "nobody there: a person in 0 of 40 frames" in out and not any(n in out for n in NAMES)
