"""The C tokeniser of NTU .skeleton files: float() bit for bit, and the same Samples as the numpy path."""

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stgcn.data.formats import ntu
from stgcn.errors import DataError

fast = pytest.importorskip("stgcn.data.formats._ntu_fast", reason="C extension not built")


def tokenize(data: bytes):
    cap = len(data) // 2 + 1
    vals, starts, kinds = np.empty(cap), np.empty(cap, np.int64), np.empty(cap, np.uint8)
    n, bad, nonfinite = fast.tokenize(data, vals, starts, kinds)
    return vals[:n], starts[:n], kinds[:n], bad, nonfinite


def as_bits(x: float) -> bytes:
    return np.float64(x).tobytes()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_values_bit_identical_to_float_on_generated_files(seed):
    text = ntu.synthesize_skeleton_text(60, 2, np.random.default_rng(seed)).encode()
    vals, starts, kinds, bad, nonfinite = tokenize(text)
    toks = text.split()
    assert bad == -1 and nonfinite == 0 and len(vals) == len(toks)
    assert vals.tobytes() == np.array([float(t) for t in toks]).tobytes()
    assert [text[s:s + len(t)] for s, t in zip(starts.tolist(), toks, strict=True)] == toks


TRICKY = [b"-0", b"+0", b"0", b"-0.0", b"1e-05", b"1.5E+3", b"1E5", b"12345678901234567890",
          b"0.12345678901234567890", b"-98765432109876543210.5", b".5", b"5.", b"-.5", b"+5.", b"007",
          b"72057594037927936", b"9999999999999999999", b"18446744073709551617", b"9007199254740993",
          b"1e22", b"1e23", b"123456789e-30", b"0e999", b"1e-400", b"4.9e-324", b"2.2250738585072014e-308",
          b"1.7976931348623157e308", b"0.000000000000000000000000012345", b"1234567.1234567",
          b"3.014159E-07", b"-1.000000E-06", b"99999999.99999999"]


@pytest.mark.parametrize("tok", TRICKY)
def test_tricky_tokens(tok):
    vals, _, kinds, bad, nonfinite = tokenize(b" \n" + tok + b"\r\n")
    assert bad == -1 and nonfinite == 0 and len(vals) == 1
    assert as_bits(vals[0]) == as_bits(float(tok)), tok
    assert kinds[0] == (1 if tok.lstrip(b"+-").isdigit() else 0)


@pytest.mark.parametrize("tok", [b"nan", b"-nan", b"NaN", b"inf", b"-Infinity", b"1e999", b"-1e400000"])
def test_nonfinite_tokens(tok):
    vals, _, kinds, bad, nonfinite = tokenize(tok)
    assert bad == -1 and nonfinite == 1 and kinds[0] == 2
    assert as_bits(vals[0]) == as_bits(float(tok))


@pytest.mark.parametrize("tok", [b"x", b"1x", b"1.2.3", b"--1", b"+", b".", b"-.", b"1e", b"1e+", b"0x10",
                                 b"1\x002", b"nanx", b"1_0", b"\xff"])
def test_non_numeric_token_gives_its_offset(tok):
    data = b"1 2.5\n3 " + tok + b" 4 x"
    vals, starts, kinds, bad, _ = tokenize(data)
    assert bad == 8 and kinds[3] == 3 and np.isnan(vals[3])
    assert vals[4] == 4.0 and starts[4] == 9 + len(tok) and kinds[5] == 3


def test_empty_and_output_buffer_checks():
    assert tokenize(b"")[0].size == 0 and tokenize(b" \n\t ")[0].size == 0
    with pytest.raises(ValueError, match="needed"):
        fast.tokenize(b"1 2 3 4", np.empty(2), np.empty(4, np.int64), np.empty(4, np.uint8))
    with pytest.raises(BufferError):
        fast.tokenize(b"1", bytes(8), bytes(8), bytes(1))  # read-only output


def _samples_equal(a, b):
    assert a.name == b.name and a.label == b.label and a.meta == b.meta
    assert a.keypoint.dtype == b.keypoint.dtype and np.array_equal(a.keypoint, b.keypoint)


@pytest.fixture
def no_extension(monkeypatch):
    def use(on: bool):
        monkeypatch.setattr(ntu, "_ntu_fast", fast if on else None)
    return use


@pytest.mark.parametrize("selection", ["official", "energy"])
def test_fast_and_fallback_give_identical_samples(tmp_path, no_extension, selection):
    rng = np.random.default_rng(5)
    # Frames without bodies, then two bodies; a 20-digit field (the exact slow path).
    text = ntu.synthesize_skeleton_text(40, 2, rng).split("\n", 1)[1]
    text = "43\n0\n0\n0\n" + text.replace(" 0 1 1 1 1 0 ", " 0 1 1 1 1 0.12345678901234567890 ", 1)
    p = tmp_path / "S001C002P003R001A007.skeleton"
    p.write_text(text)
    no_extension(True)
    a, sa = ntu.read_ntu(p, body_selection=selection), ntu.read_ntu_skeleton(p)
    no_extension(False)
    b, sb = ntu.read_ntu(p, body_selection=selection), ntu.read_ntu_skeleton(p)
    _samples_equal(a, b)
    assert np.array_equal(sa.bodies_per_frame, sb.bodies_per_frame) and len(sa.bodies) == len(sb.bodies)
    for x, y in zip(sa.bodies, sb.bodies, strict=True):
        assert x.body_id == y.body_id and type(x.body_id) is int
        for f in ("frames", "slots", "fields", "joints"):
            assert getattr(x, f).tobytes() == getattr(y, f).tobytes() and getattr(x, f).shape == getattr(y, f).shape


def test_exact_body_ids_beyond_float64(no_extension):
    text = ntu.synthesize_skeleton_text(3, 1, np.random.default_rng(0))
    body_id = text.split("\n")[2].split()[0]
    # Two IDs one apart share a float64; a signed one, a 20-digit one (object ids) and a short one.
    for new in ("72057594037927937", "72057594037927938", "+72057594037927937", "12", "123456789012345678901"):
        lines = text.split("\n")
        lines[30] = lines[30].replace(body_id, new, 1)  # second frame's body
        changed = "\n".join(lines).encode()
        no_extension(True)
        a = ntu.parse_ntu_skeleton(changed)
        no_extension(False)
        b = ntu.parse_ntu_skeleton(changed)
        assert [x.body_id for x in a.bodies] == [y.body_id for y in b.bodies] == [int(body_id), int(new)]


BAD = [
    (lambda t: t[: len(t) // 2], "ends|truncated|unexpected"),
    (lambda t: t.replace("\n25\n", "\n24\n", 1), "24 joints"),
    (lambda t: t.replace("\n25\n", "\n25.0\n", 1), "joint count must be an integer"),
    (lambda t: t.replace("0 1 1 1 1 0", "0 1 x 1 1 0", 1), "not a number: b'x'"),
    (lambda t: t.replace(" 2\n", " nan\n", 1), "NaN"),
    (lambda t: t.replace(" 2\n", " 1e999\n", 1), "NaN or infinite"),
    (lambda t: "1000000000\n" + t.split("\n", 1)[1], "claims 1000000000 frames"),
    (lambda t: t.replace("\n1\n", "\n100000000\n", 1), "claims 100000000 bodies"),
    (lambda t: t.replace("\n1\n", "\n-1\n", 1), "negative body count"),
    (lambda t: t.replace("\n1\n", "\n1.0\n", 1), "body count must be an integer"),
    (lambda t: t + "5\n", "unexpected tokens"),
    (lambda t: "", "empty"),
]


@pytest.mark.parametrize("mutate, match", BAD)
def test_errors_match_the_fallback(no_extension, mutate, match):
    text = mutate(ntu.synthesize_skeleton_text(4, 1, np.random.default_rng(1))).encode()
    errs = []
    for on in (True, False):
        no_extension(on)
        with pytest.raises(DataError, match=match) as ei:
            ntu.skeleton_to_sample(ntu.parse_ntu_skeleton(text, "f.skeleton"))
        errs.append(str(ei.value))
    assert errs[0] == errs[1]


def test_underscore_token_takes_the_float_path():
    text = ntu.synthesize_skeleton_text(2, 1, np.random.default_rng(3))
    odd = text.replace("0 1 1 1 1 0", "0 1 1_0 1 1 0", 1).encode()
    assert ntu.parse_ntu_skeleton(odd).bodies[0].fields[0, 2] == 10.0


_VALID = ntu.synthesize_skeleton_text(2, 1, np.random.default_rng(0))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | st.builds(lambda i, b: _VALID[:i].encode() + b + _VALID[i:].encode(),
                                            st.integers(0, len(_VALID)), st.binary(max_size=12)))
def test_fuzz_fast_path_gives_a_sample_or_data_error(raw):
    assert ntu._ntu_fast is not None
    vals, starts, kinds, bad, nonfinite = tokenize(raw)
    toks = raw.split()
    assert len(vals) == len(toks)
    for v, k, t in zip(vals.tolist(), kinds.tolist(), toks, strict=True):
        if k != 3:
            assert as_bits(v) == as_bits(float(t))
    with contextlib.suppress(DataError):
        ntu.skeleton_to_sample(ntu.parse_ntu_skeleton(raw, "fuzz.skeleton"))


# ---- walk_xyz: read_ntu's path (counts walked in C, x, y, z kept) --------------------------------


needs_walk = pytest.mark.skipif(not hasattr(fast, "walk_xyz"), reason="walk_xyz is built only with SSE2")


def walk(data: bytes, bodies_cap: int | None = None):
    counts, ids, vals = ntu._xyz_buffers(len(data))
    if bodies_cap is not None:  # smaller output buffers than the file needs
        ids, vals = np.empty(bodies_cap, np.int64), np.empty(bodies_cap * ntu._XYZ_VALUES)
    status, frames, bodies = fast.walk_xyz(data, counts, ids, vals)
    return status, counts[:frames].copy(), ids[:bodies].copy(), vals[:bodies * ntu._XYZ_VALUES].copy()


def reference_walk(data: bytes):
    """The same outputs from the token list (tokenize + Python), to compare with."""
    vals, _, kinds, bad, nonfinite = tokenize(data)
    toks = data.split()
    assert bad == -1 and nonfinite == 0
    pos, counts, ids, rows = 1, [], [], []
    for _ in range(int(toks[0])):
        nb = int(toks[pos])
        counts.append(nb)
        pos += 1
        for _ in range(nb):
            ids.append(int(toks[pos]))
            joints = vals[pos + 11:pos + 11 + 300].reshape(25, 12)[:, :3]
            rows.append(np.concatenate([vals[pos + 1:pos + 10], joints.reshape(-1)]))
            pos += 311
    assert pos == len(toks)
    return counts, ids, np.concatenate(rows) if rows else np.empty(0)


@needs_walk
def test_walk_xyz_matches_the_token_list():
    rng = np.random.default_rng(7)
    for frames, bodies in ((1, 1), (37, 2), (64, 3), (5, 0)):
        text = ntu.synthesize_skeleton_text(frames, bodies, rng).encode()
        status, counts, ids, vals = walk(text)
        ref_counts, ref_ids, ref_vals = reference_walk(text)
        assert status == 0 and counts.tolist() == ref_counts and ids.tolist() == ref_ids
        assert vals.tobytes() == ref_vals.tobytes()  # bit for bit, as float()


@needs_walk
@pytest.mark.parametrize("sep", [b" ", b"\t", b"\r\n", b"  \n\x0b\x0c "])
def test_walk_xyz_any_whitespace_and_block_boundaries(sep):
    # Tokens of every length straddle the 64-byte blocks of the whitespace bitmap somewhere.
    text = ntu.synthesize_skeleton_text(9, 2, np.random.default_rng(8)).encode()
    text = sep.join(text.split()) + sep
    status, counts, ids, vals = walk(text)
    ref = reference_walk(text)
    assert status == 0 and counts.tolist() == ref[0] and ids.tolist() == ref[1] and vals.tobytes() == ref[2].tobytes()


@needs_walk
def test_walk_xyz_plain_token_shapes_in_unused_fields():
    text = ntu.synthesize_skeleton_text(2, 1, np.random.default_rng(9))
    lines = text.split("\n")
    for odd in ("5.", ".5", "-.5", "+5", "-0", "007", "123456789012345", "1E-07"):  # float() reads all
        row = lines[4].split()
        row[5] = odd  # colorX of the first joint: not kept, only checked
        changed = "\n".join(lines[:4] + [" ".join(row)] + lines[5:]).encode()
        assert walk(changed)[0] == 0, odd
    for bad in ("5-", "1.2.3", "--1", "+", ".", "1x", "nan", "inf", "1_0", "0x10", "1\x002"):
        row = lines[4].split()
        row[5] = bad
        changed = "\n".join(lines[:4] + [" ".join(row)] + lines[5:]).encode()
        assert walk(changed)[0] == 1, bad  # not plain: the full tokeniser decides


@needs_walk
@pytest.mark.parametrize("mutate, match", BAD)
def test_walk_xyz_leaves_bad_files_to_the_full_path(tmp_path, no_extension, mutate, match):
    text = mutate(ntu.synthesize_skeleton_text(4, 1, np.random.default_rng(1))).encode()
    if text:
        assert walk(text)[0] == 1
    p = tmp_path / "S001C001P001R001A001.skeleton"
    p.write_bytes(text)
    errs = []
    for on in (True, False):
        no_extension(on)
        with pytest.raises(DataError, match=match) as ei:
            ntu.read_ntu(p)
        errs.append(str(ei.value))
    assert errs[0] == errs[1]


@needs_walk
def test_walk_xyz_body_ids_and_capacity():
    text = ntu.synthesize_skeleton_text(3, 2, np.random.default_rng(2))
    body_id = text.split("\n")[2].split()[0]
    for new, ok in (("72057594037927937", True), ("-12", True), ("+7", True),
                    ("1234567890123456789", False), ("1.0", False), ("1e3", False)):
        changed = text.replace(body_id, new, 1).encode()
        status, _, ids, _ = walk(changed)
        assert status == (0 if ok else 1), new
        if ok:
            assert ids[0] == int(new)  # exact, beyond float64's 2**53
    status, *_ = walk(text.encode(), bodies_cap=5)  # 6 bodies in the file
    assert status == 1
    assert walk(text.encode(), bodies_cap=6)[0] == 0
    with pytest.raises(BufferError):
        fast.walk_xyz(text.encode(), bytes(8), bytes(8), bytes(8))  # read-only output


@needs_walk
def test_read_ntu_takes_the_walk_and_equals_the_full_parse(tmp_path, monkeypatch):
    rng = np.random.default_rng(11)
    text = ntu.synthesize_skeleton_text(50, 3, rng).split("\n", 1)[1]
    p = tmp_path / "S002C003P004R001A009.skeleton"
    p.write_text("52\n0\n0\n" + text)
    calls = []
    monkeypatch.setattr(ntu, "_parse_c", lambda *a, **k: calls.append(1))  # must not be needed
    walked = ntu._load(p, xyz_only=True)
    assert not calls
    monkeypatch.undo()
    full = ntu.read_ntu_skeleton(p)
    assert walked.num_frames == full.num_frames == 52
    assert walked.bodies_per_frame.tolist() == full.bodies_per_frame.tolist()
    for x, y in zip(walked.bodies, full.bodies, strict=True):
        assert x.body_id == y.body_id and type(x.body_id) is int
        assert x.frames.tolist() == y.frames.tolist() and x.slots.tolist() == y.slots.tolist()
        assert x.fields.tobytes() == y.fields.tobytes() and x.joints.tobytes() == y.xyz.copy().tobytes()
    for sel in ("official", "energy"):
        _samples_equal(ntu.skeleton_to_sample(walked, body_selection=sel),
                       ntu.skeleton_to_sample(full, body_selection=sel))


@needs_walk
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.builds(lambda i, b: _VALID[:i].encode() + b + _VALID[i:].encode(),
                 st.integers(0, len(_VALID)), st.binary(max_size=8))
       | st.builds(lambda i, j: _VALID[:i].encode() + _VALID[j:].encode(),
                   st.integers(0, len(_VALID)), st.integers(0, len(_VALID))))
def test_fuzz_walk_xyz_is_exact_or_declines(raw):
    status, counts, ids, vals = walk(raw)
    if status == 0:  # whatever it accepts, the token list reads the same way
        ref = reference_walk(raw)
        assert counts.tolist() == ref[0] and ids.tolist() == ref[1] and vals.tobytes() == ref[2].tobytes()
