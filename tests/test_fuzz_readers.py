"""Whatever bytes a reader gets, only a valid Sample or a StgcnError comes out."""

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stgcn.data import Sample
from stgcn.data.formats.arrays import read_labels_csv, read_npy
from stgcn.data.formats.kinetics import read_kinetics
from stgcn.data.formats.ntu import parse_ntu_skeleton, skeleton_to_sample, synthesize_skeleton_text
from stgcn.data.formats.openpose import read_openpose
from stgcn.errors import StgcnError

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_VALID_NTU = synthesize_skeleton_text(2, 1, np.random.default_rng(0))
numbers = st.one_of(st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.text(max_size=3), st.none(), st.booleans())


def _ok(fn):
    try:
        out = fn()
    except StgcnError:
        return
    assert isinstance(out, Sample)


@SETTINGS
@given(st.data())
def test_ntu_text(data):
    text = _VALID_NTU
    # Mutations of a valid file reach far deeper than random text.
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 20)))
        text = text[:i] + data.draw(st.text(alphabet="0123456789.-eE \nxnaNI\r\t", max_size=8)) + text[j:]

    def run():
        return skeleton_to_sample(parse_ntu_skeleton(text.encode(), "fuzz.skeleton"))
    _ok(run)


@SETTINGS
@given(st.binary(max_size=200))
def test_ntu_bytes(raw):
    _ok(lambda: skeleton_to_sample(parse_ntu_skeleton(raw, "fuzz.skeleton")))


def _person():
    return st.fixed_dictionaries({"pose": st.lists(numbers, min_size=0, max_size=37),
                                  "score": st.lists(numbers, min_size=17, max_size=18)})


kinetics_doc = st.one_of(
    st.fixed_dictionaries({"data": st.lists(st.fixed_dictionaries({
        "frame_index": st.one_of(st.integers(-1, 6), numbers),
        "skeleton": st.lists(_person(), max_size=3)}), max_size=4),
        "label_index": st.one_of(st.integers(-2, 3), numbers)}),
    st.dictionaries(st.text(max_size=5), numbers, max_size=3),
    st.lists(numbers, max_size=3),
)


@SETTINGS
@given(kinetics_doc, st.sampled_from([None, 4]))
def test_kinetics_json(doc, pad):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "k.json"
        p.write_text(json.dumps(doc))
        _ok(lambda: read_kinetics(p, pad_to=pad, class_names=["a", "b"]))


openpose_doc = st.one_of(
    st.fixed_dictionaries({"people": st.lists(st.fixed_dictionaries({
        "pose_keypoints_2d": st.one_of(st.lists(st.floats(-10, 1000, width=32), min_size=54, max_size=54),
                                       st.lists(numbers, max_size=76))}), max_size=3)}),
    st.dictionaries(st.text(max_size=5), numbers, max_size=2),
)


@SETTINGS
@given(st.lists(openpose_doc, min_size=1, max_size=3))
def test_openpose_json(docs):
    with tempfile.TemporaryDirectory() as d:
        for t, doc in enumerate(docs):
            (Path(d) / f"v_{t:012d}_keypoints.json").write_text(json.dumps(doc))
        _ok(lambda: read_openpose(d, to_coco18=True, image_size=(100, 50)))


@SETTINGS
@given(st.text(alphabet="name,label,splt01\n\"ab-x ", max_size=80))
def test_labels_csv(text):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "labels.csv"
        p.write_text(text)
        try:
            rows, classes = read_labels_csv(p)
        except StgcnError:
            return
        assert all(lab is None or 0 <= lab < max(len(classes), 1) for _, lab, _ in rows)


@SETTINGS
@given(st.lists(st.integers(0, 4), min_size=0, max_size=5), st.sampled_from(["f4", "f8", "i2", "u1", "c8", "?"]),
       st.booleans())
def test_npy_arrays(shape, dtype, poison):
    arr = np.zeros(shape, dtype=dtype)
    if poison and arr.size and arr.dtype.kind == "f":
        arr.flat[0] = np.nan
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "a.npy"
        np.save(p, arr)
        _ok(lambda: read_npy(p))
