import json
import time
from pathlib import Path

import numpy as np
import pytest

from faults import bounded
from stgcn.data import load_sample, open_source
from stgcn.data.formats.kinetics import read_kinetics
from stgcn.errors import ConfigError, DataError


def _person(rng, s=0.5):
    return {"pose": rng.uniform(0, 1, 36).round(3).tolist(), "score": [s] * 18}


def _clip(path, frames=5, people=(0.9, 0.2, 0.6), label="abseiling", li=0, gap=None):
    rng = np.random.default_rng(0)
    data = [{"frame_index": t + 1, "skeleton": [_person(rng, s) for s in people]}
            for t in range(frames) if t != gap]
    path.write_text(json.dumps({"data": data, "label": label, "label_index": li}))
    return path


def test_read_selection_and_score(tmp_path):
    p = _clip(tmp_path / "abc.json")
    s = read_kinetics(p)
    assert s.keypoint.shape == (2, 5, 18, 2) and s.score.shape == (2, 5, 18)
    assert np.allclose(s.score[:, 0, 0], [0.9, 0.6])  # the two most confident people
    assert s.label == 0 and s.to_array().shape == (3, 5, 18, 2)
    f = read_kinetics(p, person_selection="frame")
    assert np.allclose(f.score[:, 0, 0], [0.9, 0.6])
    assert load_sample(p).keypoint.shape == (2, 5, 18, 2)


def test_padding_modes_and_missing_frames(tmp_path):
    p = _clip(tmp_path / "x.json", frames=4, gap=1)
    s = read_kinetics(p, pad_to=10, pad_mode="loop")
    assert s.keypoint.shape[1] == 10 and np.array_equal(s.keypoint[:, 4], s.keypoint[:, 0])
    assert not s.keypoint[:, 1].any()  # absent frame stays empty
    z = read_kinetics(p, pad_to=10, pad_mode="zero")
    assert not z.keypoint[:, 4:].any()
    with pytest.raises(DataError, match="pad_mode"):
        read_kinetics(p, pad_to=10, pad_mode="mirror")


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("{}", "missing key 'data'"),
    ('{"data": [{"frame_index": 1}]}', "frame_index' and 'skeleton"),
    ('{"data": [{"frame_index": 1, "skeleton": [{"pose": [1, 2], "score": [1]}]}]}', "expected 36"),
    ('{"data": [{"frame_index": 0, "skeleton": []}]}', "frame_index"),
    ('{"data": []}', "no frame"),
    ('{"data": [', "not valid JSON"),
])
def test_bad_json(tmp_path, text, match):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(DataError, match=match):
        read_kinetics(p)


def test_label_outside_class_list(tmp_path):
    p = _clip(tmp_path / "c.json", label="unknown")
    with pytest.raises(DataError, match="not in the class list"):
        read_kinetics(p, class_names=["abseiling"])


def test_source(tmp_path):
    for split in ("train", "val"):
        (tmp_path / f"kinetics_{split}").mkdir()
        _clip(tmp_path / f"kinetics_{split}" / f"{split}1.json", li=1, label="b")
        labels = {f"{split}1": {"has_skeleton": True, "label": "b", "label_index": 1},
                  f"{split}2": {"has_skeleton": False, "label": "a", "label_index": 0},
                  f"{split}3": {"has_skeleton": True, "label": "a", "label_index": 0}}
        (tmp_path / f"kinetics_{split}_label.json").write_text(json.dumps(labels))
    src = open_source("kinetics", str(tmp_path), pad_to=8)
    assert src.class_names == ["a", "b"] and src.split_names == ["train", "val"]
    assert len(src.items) == 2 and len(src.rejects) == 4
    from stgcn.data import load_item
    s = load_item(src.items[0])
    assert s.keypoint.shape == (2, 8, 18, 2) and s.label == 1


def test_huge_integer_is_a_named_error(tmp_path):
    p = _clip(tmp_path / "c.json")
    doc = json.loads(p.read_text())
    doc["data"][0]["skeleton"][0]["pose"][0] = 10 ** 400  # json writes all 401 digits
    p.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="integer of 401 digits") as info:
        read_kinetics(p)
    assert str(p) in str(info.value)


@pytest.mark.parametrize("option, match", [({"pad_mode": "x"}, "pad_mode='x': expected one of 'loop', 'zero'"),
                                           ({"person_selection": "best"}, "person_selection='best'"),
                                           ({"max_persons": 0}, "max_persons=0")])
def test_bad_reader_options_are_refused_before_any_file_is_read(tmp_path, option, match):

    with pytest.raises(ConfigError, match=match):
        open_source("kinetics", str(tmp_path / "nowhere"), **option)


def _kinetics_root(tmp_path: Path, labels: dict) -> Path:
    (tmp_path / "kinetics_train").mkdir()
    (tmp_path / "kinetics_train_label.json").write_text(json.dumps(labels))
    return tmp_path


@pytest.mark.parametrize("entry, match", [
    ({"label": "a", "label_index": 0}, "needs 'has_skeleton' and 'label_index'"),
    ({"has_skeleton": True, "label": "a", "label_index": "0"}, "label_index must be an integer"),
    ({"has_skeleton": True, "label": "a", "label_index": True}, "label_index must be an integer"),
    ("not a dict", "needs 'has_skeleton'"),
])
def test_kinetics_label_file_errors_name_file_and_clip(tmp_path, entry, match):
    root = _kinetics_root(tmp_path, {"ok1": {"has_skeleton": True, "label": "a", "label_index": 0},
                                     "clipXYZ": entry})
    with pytest.raises(DataError, match=match) as info:
        open_source("kinetics", str(root))
    assert info.value.file == str(root / "kinetics_train_label.json") and info.value.record == "clipXYZ"


def test_kinetics_label_file_conflicting_class_names(tmp_path):
    root = _kinetics_root(tmp_path, {"c1": {"has_skeleton": True, "label": "a", "label_index": 0},
                                     "c2": {"has_skeleton": True, "label": "b", "label_index": 0}})
    with pytest.raises(DataError, match="names both 'a' and 'b'") as info:
        open_source("kinetics", str(root))
    assert info.value.record == "c2" and "kinetics_train_label.json" in info.value.file


def test_kinetics_label_file_not_json(tmp_path):
    (tmp_path / "kinetics_val_label.json").write_text('{"c1": ')
    with pytest.raises(DataError, match="not valid JSON") as info:
        open_source("kinetics", str(tmp_path))
    assert info.value.file.endswith("kinetics_val_label.json")


def test_kinetics_frame_index_beyond_bound_is_rejected_before_allocating(tmp_path):
    p = tmp_path / "k.json"
    p.write_text(json.dumps({"data": [{"frame_index": 10**9, "skeleton": []}]}))
    t0 = time.perf_counter()
    with pytest.raises(DataError, match=r"frame_index must be an integer in 1\.\.100000"):
        read_kinetics(p)
    assert time.perf_counter() - t0 < 1.0


def test_kinetics_persons_times_frames_is_bounded(tmp_path):
    p = tmp_path / "k.json"
    p.write_text(json.dumps({"data": [{"frame_index": 100_000, "skeleton": [0] * 20_000}]}))
    assert bounded("read_kinetics(p)", p).startswith("RESULT StgcnError")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_numbers_are_rejected_with_their_record(tmp_path, literal):
    pose = ", ".join(["0.5"] * 35 + [literal])
    k = tmp_path / "k.json"
    score = ", ".join(["0.5"] * 18)
    k.write_text(f'{{"data": [{{"frame_index": 1, "skeleton": [{{"pose": [{pose}], "score": [{score}]}}]}}]}}')
    with pytest.raises(DataError, match="NaN or infinite") as info:
        read_kinetics(k)
    assert info.value.record.startswith("data[0].skeleton[0]")
