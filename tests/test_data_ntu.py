import time

import numpy as np
import pytest

from ntu_synth import reference_parse, write_skeleton
from stgcn.data import load_sample, open_source
from stgcn.data.formats import ntu
from stgcn.data.formats.ntu import (
    XSUB60_TRAIN,
    missing_skeleton_samples,
    ntu_splits,
    parse_ntu_name,
    parse_ntu_skeleton,
    read_ntu,
    read_ntu_skeleton,
    synthesize_skeleton_text,
)
from stgcn.errors import DataError


def test_full_fidelity_matches_line_parser(tmp_path):
    p = write_skeleton(tmp_path, num_frames=15, num_bodies=2, seed=3)
    ref = reference_parse(p.read_text())
    skel = read_ntu_skeleton(p)
    assert skel.num_frames == 15 and len(skel.bodies) == 2
    for body in skel.bodies:
        for f, slot, joints in zip(body.frames, body.slots, body.joints, strict=True):
            rid, rj = ref[f][slot]
            assert rid == body.body_id  # 64-bit id, exact
            assert np.array_equal(np.array(rj), joints)  # bit-identical to float()
    assert skel.bodies[0].fields.shape == (15, 9)
    assert skel.bodies[0].joints.shape == (15, 25, 12)


def test_sample_label_meta_and_official_selection(tmp_path):
    p = write_skeleton(tmp_path, "S003C001P008R002A013", num_frames=10, num_bodies=3)
    s = read_ntu(p)
    assert s.keypoint.shape == (2, 10, 25, 3) and s.label == 12
    assert s.meta["camera"] == 1 and s.meta["performer"] == 8 and s.meta["setup"] == 3
    skel = read_ntu_skeleton(p)
    assert np.allclose(s.keypoint[1], skel.bodies[1].xyz)  # second listed body, not the third
    assert load_sample(p).keypoint.shape == (2, 10, 25, 3)


def test_energy_selection_drops_noise_and_picks_moving_bodies(tmp_path):
    rng = np.random.default_rng(0)
    text = synthesize_skeleton_text(30, 3, rng)
    p = tmp_path / "S001C001P001R001A050.skeleton"
    p.write_text(text)
    skel = read_ntu_skeleton(p)
    s = read_ntu(p, body_selection="energy")
    assert s.keypoint.shape == (2, 30, 25, 3)
    assert len(s.meta["selected_body_ids"]) == 2
    assert set(s.meta["selected_body_ids"]) <= {str(b.body_id) for b in skel.bodies}
    with pytest.raises(DataError, match="body_selection"):
        read_ntu(p, body_selection="nope")


def test_name_and_splits():
    info = parse_ntu_name("S017C003P020R002A060.skeleton")
    assert info == {"setup": 17, "camera": 3, "performer": 20, "replication": 2, "action": 60}
    assert ntu_splits(info, "ntu60") == ("xsub_val", "xview_train")
    assert ntu_splits(info, "ntu120") == ("xsub_val", "xset_val")
    assert 38 in XSUB60_TRAIN and parse_ntu_name("foo") is None
    assert len(missing_skeleton_samples("ntu60")) == 302
    assert len(missing_skeleton_samples("ntu120")) == 535


def test_source_skips_missing_and_reports(tmp_path):
    write_skeleton(tmp_path, "S001C002P005R002A008", num_frames=5)  # in the missing list
    write_skeleton(tmp_path, "S001C002P001R001A001", num_frames=5)
    write_skeleton(tmp_path, "S001C001P003R001A061", num_frames=5)  # NTU-120 class
    src = open_source("ntu60", str(tmp_path))
    assert [it.name for it in src.items] == ["S001C002P001R001A001"]
    assert len(src.rejects) == 2 and any("missing" in r for _, r in src.rejects)
    assert src.items[0].splits == ("xsub_train", "xview_train")
    src120 = open_source("ntu120", str(tmp_path))
    assert len(src120.items) == 2 and "xset_train" in src120.split_names


@pytest.mark.parametrize("mutate, match", [
    (lambda t: t[: len(t) // 2], "ends|truncated|unexpected"),
    (lambda t: t.replace("\n25\n", "\n24\n", 1), "24 joints"),
    (lambda t: t.replace("0 1 1 1 1 0", "0 1 x 1 1 0", 1), "not a number"),
    (lambda t: t.replace("\n", "\nnan ", 1)[:0] + t.replace(" 2\n", " nan\n", 1), "NaN"),
    (lambda t: "1000000000\n" + t.split("\n", 1)[1], "claims 1000000000 frames"),
    (lambda t: t + "5\n", "unexpected tokens"),
    (lambda t: "", "empty"),
])
def test_bad_files_name_line(tmp_path, mutate, match):
    text = synthesize_skeleton_text(4, 1, np.random.default_rng(1))
    p = tmp_path / "S001C001P001R001A001.skeleton"
    p.write_text(mutate(text))
    with pytest.raises(DataError, match=match) as ei:
        read_ntu(p)
    assert ei.value.file is not None and str(p) in str(ei.value)
    if match not in ("empty",):
        assert "line" in str(ei.value.record)


def test_huge_frame_claim_rejected_fast():
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="claims"):
        parse_ntu_skeleton(b"1000000000\n1\n", name="huge.skeleton")
    with pytest.raises(DataError, match="bodies"):
        parse_ntu_skeleton(b"1\n100000000\n", name="huge.skeleton")
    assert time.perf_counter() - t0 < 0.5


def test_no_body_file_is_an_error(tmp_path):
    p = tmp_path / "S001C001P001R001A001.skeleton"
    p.write_text("3\n0\n0\n0\n")
    assert read_ntu_skeleton(p).bodies == []
    with pytest.raises(DataError, match="no body"):
        read_ntu(p)


def test_crlf_and_long_tokens_take_exact_paths():
    text = synthesize_skeleton_text(3, 1, np.random.default_rng(2))
    a = parse_ntu_skeleton(text.encode(), "a")
    b = parse_ntu_skeleton(text.replace("\n", "\r\n").encode(), "b")
    assert np.array_equal(a.bodies[0].joints, b.bodies[0].joints)
    # 20 significant digits do not fit an int64: the token path must read them exactly as float().
    long = text.replace(" 0 1 1 1 1 0 ", " 0 1 1 1 1 0.12345678901234567890 ", 1)
    c = parse_ntu_skeleton(long.encode(), "c")
    assert c.bodies[0].fields[0, 5] == float("0.12345678901234567890")


@pytest.mark.parametrize("option, match", [({"body_selection": "x"}, "body_selection='x': expected one of"),
                                           ({"max_bodies": 0}, "max_bodies=0: expected a whole number")])
def test_bad_reader_options_are_refused_before_any_file_is_read(tmp_path, option, match):
    from stgcn.errors import ConfigError

    # the folder does not even exist: the options are checked first, once, not per clip
    with pytest.raises(ConfigError, match=match):
        open_source("ntu60", str(tmp_path / "nowhere"), **option)


def test_without_the_extension_the_numpy_path_is_said_once(tmp_path, monkeypatch, caplog, capsys):
    import logging

    from stgcn.cli import main

    text = ntu.synthesize_skeleton_text(20, 1, np.random.default_rng(0))
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text(text)
    with_c = ntu.read_ntu(path).to_array()
    monkeypatch.setattr(ntu, "_ntu_fast", None)
    monkeypatch.setattr(ntu, "_told", False)
    assert ntu.reader_backend().startswith("pure-Python/numpy path")
    with caplog.at_level(logging.INFO, logger="stgcn.data.formats.ntu"):
        arrays = [ntu.read_ntu(path).to_array() for _ in range(2)]
    assert [r.getMessage() for r in caplog.records].count(f"NTU reader: {ntu.reader_backend()}") == 1
    np.testing.assert_array_equal(arrays[0], with_c)  # the same values either way
    assert main(["prepare", "ntu60", str(tmp_path), "--out", str(tmp_path / "store"), "--no-progress"]) == 0
    assert capsys.readouterr().err.count("note: NTU reader: pure-Python/numpy path") == 1
