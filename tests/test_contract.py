"""The data contract: written at training, read back from new and old metas, and the one builder of
model inputs (layout by table, person slots, channels, normalisation, test pipeline and clips)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stgcn.contract import DEFAULT_PERSONS, DataContract, channel_names, check_layout, training_layout
from stgcn.data.dataset import SkeletonDataset
from stgcn.data.store import open_store
from stgcn.data.transforms import build_pipeline
from stgcn.errors import CheckpointError, LayoutError, ShapeError
from stgcn.graph import get_layout

KINECT = get_layout("kinect-v1")
PIPE = ({"name": "center"}, {"name": "uniform_sample", "clip_len": 8, "test_mode": True})


def contract(**kw) -> DataContract:
    args = dict(layout=KINECT, num_persons=1, channels=("x", "y", "z"), in_channels=3, test_pipeline=PIPE)
    return DataContract(**{**args, **kw})


def clip(t=13, m=1, v=20, c=3, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(c, t, v, m)) + 2).astype(np.float32)


def test_round_trip_through_json():
    c = contract(num_persons=2, clip_len=29, min_frames=5, test_clips=2, seed=3, stream="bone")
    doc = json.loads(json.dumps(c.to_dict()))
    assert isinstance(doc["layout"], dict) and doc["layout"]["joints"] == list(KINECT.joint_names)
    assert DataContract.from_meta({"data": doc}) == c


def test_old_metas_fill_what_they_can():
    # written by train before the contract: persons from the store meta it kept, no clip length
    old = {"layout": "kinect-v1", "data": {"layout": "kinect-v1", "test_pipeline": [{"name": "center"}],
                                          "in_channels": 3, "store_meta": {"channels": ["x", "y", "z"],
                                                                           "counts": {"persons": 1}}}}
    c = DataContract.from_meta(old)
    assert c.num_persons == 1 and c.world and c.channels == ("x", "y", "z") and c.clip_len is None
    assert c.test_pipeline == ({"name": "center"},) and c.min_frames == 1
    # nothing about persons at all: the stated default (1), not a phantom second person
    bare = DataContract.from_meta({"layout": "kinect-v1", "data": {}})
    assert bare.num_persons == DEFAULT_PERSONS == 1 and bare.channels == ("x", "y", "z")
    # an official conversion written before pipelines were recorded: the Kinetics centring is inferred
    conv = DataContract.from_meta({"layout": "openpose", "data": {"normalization": "kinetics", "num_persons": 2,
                                                                  "channels": ["x", "y", "score"], "clip_len": 300}})
    assert conv.test_pipeline == ({"name": "center", "value": 0.5},) and not conv.world
    with pytest.raises(CheckpointError, match="names no layout"):
        DataContract.from_meta({"data": {}})
    with pytest.raises(CheckpointError, match="cannot be read"):
        DataContract.from_meta({"data": {"layout": "gone/toy5.yaml"}})


def test_model_and_contract_must_agree_on_the_layout():
    from stgcn.models import create_model

    model = create_model("stgcn-tiny", layout="msr-action3d", num_classes=2)
    with pytest.raises(CheckpointError, match="msr-action3d"):
        DataContract.from_meta({"data": contract().to_dict()}, model)


def test_layout_is_compared_by_table():
    msr = get_layout("msr-action3d")
    with pytest.raises(LayoutError, match=r"'msr-action3d'.*'kinect-v1'.*joint 0 is 'left_shoulder'"):
        check_layout(KINECT, msr, "the clip")
    check_layout(KINECT, {**KINECT.to_dict(), "name": "a-copy"})  # same table, another name: accepted
    check_layout(KINECT, None)  # not known: not checked
    with pytest.raises(LayoutError, match="15 joints against 20"):
        contract().check_layout("openni-15")


def test_conform_fills_person_slots_and_checks_channels():
    c1, c2 = contract(), contract(num_persons=2)
    two = clip(m=2)
    assert c1.conform(two).shape[-1] == 1 and np.array_equal(c1.conform(two), two[..., :1])  # first M kept
    padded = c2.conform(clip(m=1))
    assert padded.shape[-1] == 2 and not padded[..., 1].any()  # zero slot, as the store pads
    with pytest.raises(LayoutError, match="15 joints"):
        c1.conform(clip(v=15))
    with pytest.raises(ShapeError, match=r"channels \['x', 'y', 'score'\]"):
        c1.conform(clip(), channels=["x", "y", "score"])
    with pytest.raises(ShapeError, match="2 channels"):
        c1.conform(clip(c=2))
    with pytest.raises(ShapeError, match="logits_prepared"):
        c1.conform(clip()[None])
    with pytest.raises(ShapeError, match="NaN"):
        c1.conform(np.full((3, 2, 20, 1), np.nan, np.float32))


def test_prepare_is_the_evaluation_pipeline(tmp_path):
    """prepare() of a store clip equals the item `stgcn eval` builds from the store."""
    from test_train import make_store

    store = open_store(make_store(tmp_path / "s", n=8))
    c = contract()
    tf = build_pipeline(list(PIPE), KINECT, channels=store.channels)
    ds = SkeletonDataset(store, None, tf, seed=0)
    for i in range(len(store)):
        x = c.prepare(store.get(i), layout=store.joint_layout())
        assert x.shape == (1, 3, 8, 20, 1)
        np.testing.assert_array_equal(x[0], ds[i][0].numpy())


def test_prepare_draws_the_test_clips():
    c = contract(test_pipeline=(*PIPE[:1], {**PIPE[1], "clip_len": 4}), test_clips=3)
    x = c.prepare(clip(t=30))
    assert x.shape == (3, 3, 4, 20, 1) and not np.array_equal(x[0], x[1])  # three different samplings


def test_kinetics_normalisation_of_pixels():
    c = contract(layout=get_layout("openpose"), channels=("x", "y", "score"), normalization="kinetics",
                 test_pipeline=())
    px = np.zeros((3, 1, 18, 1), np.float32)
    px[:, 0, 0, 0] = [170, 64, 0.8]
    px[:, 0, 1, 0] = [10, 10, 0.0]
    out = c.normalize(px, (340, 256))
    np.testing.assert_allclose(out[:, 0, 0, 0], [0.5, 0.25, 0.8])
    assert not out[:2, 0, 1].any()
    with pytest.raises(ShapeError, match="image size"):
        c.normalize(px)
    np.testing.assert_array_equal(c.normalize(out), out)  # fractions pass as they are


def test_for_training_reads_the_store(tmp_path):
    from test_train import make_store

    store = open_store(make_store(tmp_path / "s", n=8))
    train = store.split("train")
    c = DataContract.for_training(store, KINECT, train, PIPE, in_channels=3, test_clips=1, seed=7)
    lengths = store.lengths[train]
    assert c.num_persons == 1 and c.channels == ("x", "y", "z") and c.seed == 7
    assert c.clip_len == int(lengths.max())
    assert c.min_frames == max(1, min(int(lengths.min()) // 2, c.clip_len // 4))


def test_training_layout(tmp_path):
    from test_train import make_store

    store = open_store(make_store(tmp_path / "s", n=4))
    assert training_layout(None, store) == KINECT
    assert training_layout({**KINECT.to_dict(), "name": "copy"}, store).name == "copy"
    with pytest.raises(LayoutError, match="msr-action3d"):
        training_layout("msr-action3d", store, "D")  # 20 joints too, another order


def test_channel_names():
    assert channel_names(2, True) == ["x", "y", "score"]
    assert channel_names(3, False) == ["x", "y", "z"] and channel_names(2, False) == ["x", "y"]
