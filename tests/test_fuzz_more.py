"""More property-based fuzzing: readers not fuzzed in test_fuzz_readers.py (restricted unpickler,
Kinect-style text tables, Kinetics label files, prepared-store index files, checkpoints).

Whatever the bytes, only a valid result or the package's own error comes out. No strategy draws
floats: importing stgcn.engine (done by other test modules at collection) sets flush-to-zero for
the process, and hypothesis refuses float strategies then (see tests/test_reliability.py).
Examples are derandomized, so every run tries the same cases.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from stgcn.data import Sample
from stgcn.data.formats import kinect
from stgcn.data.formats.kinetics import read_kinetics_labels
from stgcn.data.safe_pickle import safe_loads
from stgcn.data.store import FILES, MARKER, open_store
from stgcn.errors import CheckpointError, DataError, StgcnError

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

_VALID_PICKLE = pickle.dumps({"split": {"a": ["x"]}, "annotations": [
    {"frame_dir": "x", "label": 1, "keypoint": np.arange(12, dtype=np.float32).reshape(1, 2, 3, 2)}]}, protocol=4)


def _mutate(data, base: bytes) -> bytes:
    out = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(out)))
        j = data.draw(st.integers(i, min(len(out), i + 8)))
        out[i:j] = data.draw(st.binary(max_size=8))
    return bytes(out)


@SETTINGS
@given(st.data())
def test_restricted_unpickler_on_damaged_pickles(data):
    raw = _mutate(data, _VALID_PICKLE) if data.draw(st.booleans()) else data.draw(st.binary(max_size=120))
    try:
        safe_loads(raw, "fuzz.pkl")
    except DataError as exc:
        assert "fuzz.pkl" in str(exc)


_NUM = st.one_of(st.integers(-999, 999).map(str), st.sampled_from(["1.5", "-0.25", "nan", "inf", "1e999", "x", ""]))


@pytest.mark.parametrize("reader, cols, delim", [
    (kinect.read_msr_action3d, 4, " "), (kinect.read_kard, 3, " "), (kinect.read_florence, 3, " "),
    (kinect.read_sbu, 91, ","),
])
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(0, 45), cols_delta=st.integers(-1, 1), cells=st.lists(_NUM, min_size=0, max_size=8),
       junk=st.binary(max_size=6))
def test_kinect_text_tables(reader, cols, delim, rows, cols_delta, cells, junk):
    n = max(cols + cols_delta, 1)
    lines = []
    for r in range(rows):
        lines.append(delim.join(cells[(r + c) % len(cells)] if cells else "0" for c in range(n)))
    raw = "\n".join(lines).encode() + junk
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / ("a01_s01_e01_skeleton3D.txt" if reader is kinect.read_msr_action3d else "skeleton_pos.txt")
        p.write_bytes(raw)
        try:
            s = reader(p)
        except StgcnError:
            return
        assert isinstance(s, Sample) and np.isfinite(s.keypoint).all()


_ENTRY = st.one_of(
    st.fixed_dictionaries({"has_skeleton": st.one_of(st.booleans(), st.integers(0, 1)),
                           "label_index": st.one_of(st.integers(-2, 4), st.booleans(), st.text(max_size=2)),
                           "label": st.sampled_from(["a", "b", "c", 3])}),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2), st.integers(), st.none())


@SETTINGS
@given(st.one_of(st.dictionaries(st.text(max_size=6), _ENTRY, max_size=5), st.lists(st.integers(), max_size=3)),
       st.sampled_from([None, ["a", "b", "c"]]))
def test_kinetics_label_files(doc, classes):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "kinetics_train_label.json"
        p.write_text(json.dumps(doc))
        try:
            out = read_kinetics_labels(p, classes)
        except DataError as exc:
            assert exc.file == str(p)
            return
        assert all(isinstance(e["label_index"], int) for e in out.values())


@pytest.fixture(scope="module")
def store_files(tmp_path_factory):
    from stgcn.data.prepare import prepare_source
    from test_prepare import FakeSource, fake_load

    out = tmp_path_factory.mktemp("fz") / "s"
    prepare_source(FakeSource(6, bad_every=0), out, workers=1, loader=fake_load, progress=False)
    return {f: (out / f).read_bytes() for f in [*FILES, MARKER]}


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_store_index_files(store_files, data):
    files = dict(store_files)
    target = data.draw(st.sampled_from(["meta.json", "names.json", "splits.json", "offsets.npy", "labels.npy",
                                        "data.npy"]))
    how = data.draw(st.sampled_from(["bytes", "truncate", "array"]))
    if how == "bytes":  # anywhere, npy headers included
        files[target] = _mutate(data, files[target])
    elif how == "truncate":
        files[target] = files[target][: data.draw(st.integers(0, len(files[target])))]
    else:
        files[target] = _npy(np.array(data.draw(st.lists(st.integers(-3, 300), max_size=9)), dtype=np.int64))
    with tempfile.TemporaryDirectory() as d:
        for name, raw in files.items():
            (Path(d) / name).write_bytes(raw)
        try:
            s = open_store(d)
            for i in range(len(s)):
                x = s.get(i)
                assert x.ndim == 4 and x.dtype == np.float32
        except DataError:
            pass


@pytest.fixture(scope="module")
def checkpoint_bytes():
    import torch

    buf = io.BytesIO()
    torch.save({"format": "stgcn", "state_dict": {"w": torch.arange(4.0)}, "meta": {"a": [1, "x"]}}, buf)
    legacy = io.BytesIO()
    torch.save({"w": torch.arange(4.0)}, legacy, _use_new_zipfile_serialization=False)
    return buf.getvalue(), legacy.getvalue()


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=100, deadline=None, derandomize=True, phases=[Phase.generate],  # no slow shrinking
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_checkpoints(checkpoint_bytes, data):
    from stgcn.checkpoint import safe_load

    base = data.draw(st.sampled_from(checkpoint_bytes))
    raw = _mutate(data, base) if data.draw(st.booleans()) else base[: data.draw(st.integers(0, len(base)))]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.pt"
        p.write_bytes(raw)
        with contextlib.suppress(CheckpointError):
            safe_load(p)
