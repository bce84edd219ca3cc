import os
import pickle
import subprocess

import numpy as np
import pytest

from faults import Evil
from stgcn.data import load_item, load_sample, open_source
from stgcn.data.formats.pyskl import load_pyskl, read_pyskl, write_pyskl
from stgcn.data.safe_pickle import safe_loads
from stgcn.errors import DataError


def _anns(n=3, v=17):
    rng = np.random.default_rng(0)
    return [{"frame_dir": f"clip{i}", "label": i % 2, "total_frames": 6, "img_shape": (480, 640),
             "keypoint": rng.random((2, 6, v, 2)).astype(np.float32),
             "keypoint_score": rng.random((2, 6, v)).astype(np.float32)} for i in range(n)]


def test_roundtrip_and_source(tmp_path):
    p = tmp_path / "ann.pkl"
    write_pyskl(p, _anns(), {"xsub_train": ["clip0", "clip1"], "xsub_val": ["clip2"]})
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    split, anns = load_pyskl(p)
    assert split["xsub_val"] == ["clip2"] and len(anns) == 3
    s = read_pyskl(p, name="clip1")
    assert s.keypoint.shape == (2, 6, 17, 2) and s.label == 1 and s.meta["img_shape"] == [480, 640]
    assert load_sample(p).name == "clip0"
    src = open_source("pyskl", str(p))
    assert src.layout == "coco" and src.split_names == ["xsub_train", "xsub_val"]
    assert load_item(src.items[2]).meta["splits"] == ["xsub_val"]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_malicious_pickle_refused(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"split": {}, "annotations": [{"frame_dir": "x", "keypoint": _Evil(marker)}]}))
    with pytest.raises(DataError, match=r"(posix|nt|os)\.system") as ei:
        read_pyskl(p)
    assert str(p) in str(ei.value)
    assert not marker.exists()
    with pytest.raises(DataError, match="builtins.eval"):
        safe_loads(pickle.dumps(_EvalEvil()))
    with pytest.raises(DataError, match="subprocess"):
        safe_loads(pickle.dumps(subprocess.Popen))


@pytest.mark.parametrize("doc, match", [
    ({"split": {}, "annotations": [{"label": 1}]}, r"annotations\[0\].*frame_dir|lacks"),
    ({"split": {"a": ["zzz"]}, "annotations": []}, "unknown frame_dir"),
    ({"nothing": 1}, "annotations"),
    ({"split": {}, "annotations": [{"frame_dir": "a", "keypoint": np.zeros((2, 3))}]}, "keypoint"),
])
def test_wrong_keys(tmp_path, doc, match):
    p = tmp_path / "bad.pkl"
    p.write_bytes(pickle.dumps(doc))
    with pytest.raises(DataError, match=match):
        read_pyskl(p)


def test_garbage_bytes():
    with pytest.raises(DataError, match="pickle"):
        safe_loads(b"\x80\x04not a pickle")


def test_layout_option_and_joint_count(tmp_path):
    p = tmp_path / "v20.pkl"
    write_pyskl(p, _anns(v=20), {})
    assert open_source("pyskl", str(p)).layout == "unknown"  # 20 joints: kinect-v1 or msr-action3d?
    assert open_source("pyskl", str(p), layout="msr-action3d").layout == "msr-action3d"
    with pytest.raises(DataError, match="20 joints; layout 'coco' has 17"):
        open_source("pyskl", str(p), layout="coco")


@pytest.mark.parametrize("label", [10 ** 9, -1, "walk", True])
def test_label_is_bounded_before_allocating(tmp_path, label):
    from stgcn.data.formats.pyskl import MAX_CLASSES

    anns = _anns()
    anns[1]["label"] = label
    p = tmp_path / "big.pkl"
    write_pyskl(p, anns, {})
    with pytest.raises(DataError, match=f"0..{MAX_CLASSES - 1}") as info:
        open_source("pyskl", str(p))  # used to build a list of a billion class names
    assert "annotations[1]" in str(info.value)


@pytest.mark.parametrize("label", ["walk", 1.5, True])
def test_label_that_is_not_a_class_index_names_file_and_clip(tmp_path, label):
    anns = _anns()
    anns[1]["label"] = label
    p = tmp_path / "ann.pkl"
    write_pyskl(p, anns, {"train": ["clip0", "clip1", "clip2"]})
    with pytest.raises(DataError, match=r"ann\.pkl.*clip1.*is not a class index"):
        open_source("pyskl", str(p))


def test_pyskl_pickle_through_load_sample_and_open_source_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"split": {}, "annotations": [{"frame_dir": "x", "keypoint": Evil(marker)}]}))
    with pytest.raises(DataError, match="not allowed"):
        load_sample(p)
    with pytest.raises(DataError, match="not allowed"):
        open_source("pyskl", str(p))
    assert not marker.exists()
