"""NTU RGB+D 60 / 120 ``.skeleton`` files (Kinect v2, 25 joints, text).

The format is a tree of counts (frames -> bodies -> joints; the fields of each are listed in
BODY_FIELDS and JOINT_FIELDS below, in the order of the dataset's own reader, shahroudy/NTURGB-D
``Matlab/read_skeleton_file.m``). A straightforward reader calls ``float()`` once per token and
builds a dict per joint, which costs about 60 ms for a 300-frame two-body file. Here the whole
file is tokenised once and only the header counts (one per frame) are walked in Python; body and
joint blocks are sliced out of the token values without a loop per joint.

* With the C extension ``_ntu_fast`` (built by ``pip install``; optional), one pass over the bytes
  gives every token's float64 value (bit-identical to ``float(token)``), start offset and kind
  (plain integer, other number, nan/inf, not a number).
* :func:`read_ntu` (x, y, z only) first tries the extension's ``walk_xyz``, which walks the counts
  in C as well and checks the 9 joint fields it does not keep without converting them: half the
  time of tokenising (built with SSE2 only, i.e. on x86-64: elsewhere it would be no faster). It
  takes only well-formed files of plain numbers; anything else goes to the tokeniser below, which
  reads it exactly or names the problem, so both give the same result.
* Without it, numpy does the tokenising: every token is parsed as an *integer* by
  ``np.fromstring`` after the decimal points are deleted (integer parsing in C is an order of
  magnitude faster than float parsing), and the number of digits after each point is measured from
  the point positions; ``mantissa / 10**digits`` is correctly rounded, so values are bit-identical
  to ``float(token)``. Files this path cannot read exactly (tokens longer than int64 holds,
  non-numeric text, NaN) go through a token-by-token path, which also produces the precise error.

bodyIDs are 64-bit integers (beyond float64's 2**53): they are re-read exactly from the bytes.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..sample import Sample

try:  # the C tokeniser; the package works without it (numpy path below), only slower
    from . import _ntu_fast
except ImportError:  # pragma: no cover - depends on the build
    _ntu_fast = None

_log = logging.getLogger(__name__)
_told = False


def reader_backend() -> str:
    """Which NTU reader this installation runs: the C extension, or the numpy path and why."""
    if _ntu_fast is not None:
        return "C extension (stgcn.data.formats._ntu_fast)"
    return ("pure-Python/numpy path: the optional C extension stgcn.data.formats._ntu_fast is not built (no C "
            "compiler when stgcn was installed?); same values, slower")


def _tell_backend_once() -> None:
    """An info line, once per process, the first time a file is read without the extension."""
    global _told
    if not _told and _ntu_fast is None:
        _told = True
        _log.info("NTU reader: %s", reader_backend())

NUM_JOINTS = 25
BODY_FIELDS = ("bodyID", "clippedEdges", "handLeftConfidence", "handLeftState", "handRightConfidence",
               "handRightState", "isRestricted", "leanX", "leanY", "trackingState")
JOINT_FIELDS = ("x", "y", "z", "depthX", "depthY", "colorX", "colorY", "orientationW", "orientationX",
                "orientationY", "orientationZ", "trackingState")
_BODY_LEN = len(BODY_FIELDS) + 1 + NUM_JOINTS * len(JOINT_FIELDS)  # fields, joint count, joints
_JOINT_BLOCK = NUM_JOINTS * len(JOINT_FIELDS)

NAME_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")

# Training performers of the cross-subject protocols (Shahroudy et al., CVPR 2016, for NTU-60; Liu
# et al., TPAMI 2019, for NTU-120) and training cameras of cross-view (NTU-60).
XSUB60_TRAIN = frozenset((1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38))
XSUB120_TRAIN = XSUB60_TRAIN | frozenset((45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78,
                                          80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100,
                                          103))
XVIEW_TRAIN_CAMERAS = frozenset((2, 3))

# Noise-body filters of the widely used NTU denoising script (2s-AGCN / CTR-GCN
# get_raw_denoised_data.py): a body tracked for at most 11 frames, or one that is wider than 0.8 of
# its height in most frames (a chair, a wall), is not a person.
NOISE_MIN_FRAMES = 11
NOISE_SPREAD_RATIO = 0.8
NOISE_SPREAD_FRAC = 0.69754

_POW10 = 10.0 ** np.arange(0, 64)
_WS_LUT = np.zeros(256, dtype=bool)
_WS_LUT[[9, 10, 11, 12, 13, 32]] = True  # exactly the bytes that bytes.split() treats as whitespace
_MAX_DIGITS = 18  # an int64 holds every 18-digit integer
_EXACT = 2.0 ** 53  # every integer below this is exact in a float64
_P10 = 10 ** np.arange(_MAX_DIGITS + 1, dtype=np.int64)
_TOKEN_END = re.compile(rb"[^\t\n\v\f\r ]*")
# Kinds of tokens reported by _ntu_fast.tokenize.
_K_INT, _K_NONFINITE, _K_BAD = 1, 2, 3


@dataclass
class NTUBody:
    """One tracked body (one bodyID) of a file, at every frame where it appears.

    ``frames`` are 0-based frame indices, ``slots`` the body's position in that frame's list (0 =
    listed first), ``fields`` the 9 body fields after bodyID (float64 (n, 9), order of
    ``BODY_FIELDS[1:]``), ``joints`` float64 (n, 25, 12) in the order of ``JOINT_FIELDS``.
    """

    body_id: int
    frames: np.ndarray
    slots: np.ndarray
    fields: np.ndarray
    joints: np.ndarray

    @property
    def xyz(self) -> np.ndarray:
        return self.joints[:, :, :3]


@dataclass
class NTUSkeleton:
    """Everything an NTU ``.skeleton`` file holds, nothing dropped."""

    name: str
    num_frames: int
    bodies_per_frame: np.ndarray  # int64 (T,): the body count written in each frame header
    bodies: list[NTUBody] = field(default_factory=list)  # in order of first appearance

    @property
    def max_bodies_per_frame(self) -> int:
        return int(self.bodies_per_frame.max(initial=0))


def parse_ntu_name(name: str) -> dict | None:
    """``S001C002P003R002A013`` -> setup, camera, performer, replication, action (1-based) or None."""
    m = NAME_RE.search(Path(name).name)
    if m is None:
        return None
    setup, camera, performer, replication, action = (int(g) for g in m.groups())
    return {"setup": setup, "camera": camera, "performer": performer, "replication": replication,
            "action": action}


def ntu_splits(info: dict, benchmark: str = "ntu60") -> tuple[str, ...]:
    """The split names a sample belongs to under the standard protocols of ``benchmark``."""
    if benchmark == "ntu60":
        return ("xsub_train" if info["performer"] in XSUB60_TRAIN else "xsub_val",
                "xview_train" if info["camera"] in XVIEW_TRAIN_CAMERAS else "xview_val")
    if benchmark == "ntu120":
        return ("xsub_train" if info["performer"] in XSUB120_TRAIN else "xsub_val",
                "xset_train" if info["setup"] % 2 == 0 else "xset_val")
    raise DataError(f"unknown NTU benchmark {benchmark!r}; expected 'ntu60' or 'ntu120'")


def missing_skeleton_samples(benchmark: str = "ntu60") -> frozenset[str]:
    """Names listed as having missing or incomplete skeletons (excluded by convention)."""
    if benchmark not in ("ntu60", "ntu120"):
        raise DataError(f"unknown NTU benchmark {benchmark!r}; expected 'ntu60' or 'ntu120'")
    path = Path(__file__).resolve().parents[2] / "resources" / f"{benchmark}-samples-with-missing-skeletons.txt"
    # The lists start with two prose lines; only lines that are sample names count.
    return frozenset(line.strip() for line in path.read_text().splitlines() if NAME_RE.fullmatch(line.strip()))


# --------------------------------------------------------------------------------------------
# Tokenising


class _Tokens:
    """Numeric view of a whitespace-separated text: token k as int (headers) or float (values)."""

    def __init__(self, data: bytes, file: str):
        self.data = data
        self.file = file
        b = np.frombuffer(data, dtype=np.uint8)
        self._bytes = b
        ws = np.flatnonzero(b <= 32)
        # Bytes <= 32 that are not whitespace (NUL, other controls) stay inside tokens, so the token
        # fails to parse and is reported instead of silently splitting a number in two.
        ws = ws[_WS_LUT[b[ws]]]
        bounds = np.concatenate(([-1], ws, [len(b)]))
        gap = np.flatnonzero(np.diff(bounds) > 1)
        self.starts = bounds[gap] + 1
        self.ends = bounds[gap + 1]
        self.n = len(self.starts)
        self._newlines: np.ndarray | None = None
        self.fast = self._fast_parse()

    def _fast_parse(self) -> bool:
        data, b = self.data, self._bytes
        if self.n == 0 or int((self.ends - self.starts).max()) > _MAX_DIGITS:
            return False
        has_exp = data.find(b"e") >= 0 or data.find(b"E") >= 0
        stripped = data.replace(b".", b"")
        if has_exp:
            stripped = stripped.replace(b"e", b" ").replace(b"E", b" ")
        with warnings.catch_warnings():
            # np.fromstring warns and stops at the first unparsable token; the count check catches it.
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                ints = np.fromstring(stripped, dtype=np.int64, sep=" ")
            except ValueError:
                return False
        dots = np.flatnonzero(b == 46)
        dot_tok = np.searchsorted(self.starts, dots, side="right") - 1
        if len(dot_tok) and (np.diff(dot_tok) == 0).any():
            return False  # two points in one token ("1.2.3") would otherwise parse as 123
        mantissa_end = self.ends.copy()
        exp_val = None
        if has_exp:
            epos = np.flatnonzero((b == 101) | (b == 69))  # e or E
            etok = np.searchsorted(self.starts, epos, side="right") - 1
            if (np.diff(etok) == 0).any():
                return False
            mantissa_end[etok] = epos
            # Each exponent became an extra integer right after its mantissa in `ints`.
            if len(ints) != self.n + len(epos):
                return False
            extra = etok + np.arange(1, len(etok) + 1)
            keep = np.ones(len(ints), dtype=bool)
            keep[extra] = False
            exp_val = np.zeros(self.n, dtype=np.int64)
            exp_val[etok] = ints[extra]
            ints = ints[keep]
            if dot_tok.size and (dots > mantissa_end[dot_tok]).any():
                return False  # a point inside the exponent
        elif len(ints) != self.n:
            return False
        frac = np.zeros(self.n, dtype=np.int64)
        frac[dot_tok] = mantissa_end[dot_tok] - dots - 1
        self.ints = ints
        self.nonint = frac != 0
        power = frac
        if exp_val is not None:
            self.nonint |= exp_val != 0
            power = frac - exp_val
            if (np.abs(power) >= len(_POW10)).any():
                return False
        self.power = power
        return True

    def line_of(self, k: int) -> int:
        if self._newlines is None:
            self._newlines = np.flatnonzero(self._bytes == 10)
        pos = self.starts[min(k, self.n - 1)] if self.n else 0
        return int(np.searchsorted(self._newlines, pos)) + 1

    def token(self, k: int) -> bytes:
        return self.data[self.starts[k]:self.ends[k]]

    def error(self, k: int, reason: str, frame: int | None = None) -> DataError:
        rec = f"line {self.line_of(k)}" + ("" if frame is None else f" (frame {frame})")
        return DataError(reason, file=self.file, record=rec)

    def check_more(self, k: int, what: str, frame: int | None = None) -> None:
        if k >= self.n:
            raise DataError(f"file ends early: expected {what}", file=self.file,
                            record=f"line {self.line_of(self.n) + 1}" + ("" if frame is None else f" (frame {frame})"))

    def parse_int(self, k: int, what: str, frame: int | None = None) -> int:
        """``int()`` of the token: the exact rule for header counts (``25.0`` is not a joint count)."""
        tok = self.token(k)
        try:
            return int(tok)
        except ValueError:
            raise self.error(k, f"{what} must be an integer, found {tok[:40]!r}", frame) from None

    def int_at(self, k: int, what: str, frame: int | None = None) -> int:
        self.check_more(k, what, frame)
        if self.fast and not self.nonint[k]:
            return int(self.ints[k])
        return self.parse_int(k, what, frame)

    def ints_at(self, idx: np.ndarray, what: str) -> list[int]:
        if self.fast and not self.nonint[idx].any():
            return self.ints[idx].tolist()
        return [self.int_at(int(k), what) for k in idx]

    def floats(self, idx: np.ndarray) -> np.ndarray:
        """float64 values of the tokens at ``idx`` (any shape)."""
        if self.fast:
            p = self.power[idx]
            if (p >= 0).all():
                return self.ints[idx] / _POW10[p]
            return np.where(p >= 0, self.ints[idx] / _POW10[np.maximum(p, 0)],
                            self.ints[idx] * _POW10[np.maximum(-p, 0)])
        flat = idx.reshape(-1)
        toks = np.array([self.data[s:e] for s, e in zip(self.starts[flat], self.ends[flat], strict=True)],
                        dtype=object)
        try:
            return toks.astype(np.float64).reshape(idx.shape)
        except (ValueError, TypeError):
            pass
        # Only on bad input: find the first token that is not a number, to name its line.
        for j, tok in enumerate(toks):
            try:
                float(tok)
            except ValueError:
                raise self.error(int(flat[j]), f"not a number: {tok[:40]!r}") from None
        raise self.error(int(flat[0]), "unreadable numbers")


# --------------------------------------------------------------------------------------------
# Reading


def parse_ntu_skeleton(data: bytes, name: str = "<memory>") -> NTUSkeleton:
    """Parse the bytes of a ``.skeleton`` file. Raises :class:`DataError` naming line and frame."""
    _tell_backend_once()
    if _ntu_fast is not None:
        skel = _parse_c(data if isinstance(data, bytes | memoryview) else bytes(data), name)
        if skel is not None:
            return skel
    return _parse_numpy(bytes(data), name)


def _frame_count(tk: _Tokens) -> int:
    """The header's frame count, checked against the number of tokens (either tokeniser)."""
    if tk.n == 0:
        raise DataError("empty file", file=tk.file, record="line 1")
    num_frames = tk.int_at(0, "the frame count")
    # Every frame takes at least one token (its body count): a larger claim is a corrupt header,
    # rejected before anything is allocated from it.
    if num_frames < 0 or num_frames > tk.n - 1:
        raise DataError(f"header claims {num_frames} frames but the file holds only {tk.n} tokens",
                        file=tk.file, record="line 1")
    return num_frames


def _body_count_error(tk: _Tokens, pos: int, nb: int, t: int) -> DataError:
    """The error for frame ``t``'s body count ``nb`` (at token ``pos``): negative, or more bodies than
    the tokens left can hold (either tokeniser; the caller tests, in its own loop)."""
    if nb < 0:
        return tk.error(pos, f"negative body count {nb}", t)
    return tk.error(pos, f"frame claims {nb} bodies but the file ends before them "
                         f"(truncated file or corrupt count)", t)


def _parse_numpy(data: bytes, name: str) -> NTUSkeleton:
    """The path without the C extension (and for the odd token only ``float()`` reads, "1_0")."""
    tk = _Tokens(data, name)
    num_frames = _frame_count(tk)
    pos = 1
    body_pos: list[int] = []
    body_frame: list[int] = []
    body_slot: list[int] = []
    per_frame = np.zeros(num_frames, dtype=np.int64)
    for t in range(num_frames):
        nb = tk.int_at(pos, "the body count", frame=t)
        if nb < 0 or pos + 1 + nb * _BODY_LEN > tk.n:
            raise _body_count_error(tk, pos, nb, t)
        per_frame[t] = nb
        pos += 1
        for m in range(nb):
            nj = tk.int_at(pos + len(BODY_FIELDS), "the joint count", frame=t)
            if nj != NUM_JOINTS:
                raise tk.error(pos + len(BODY_FIELDS), f"body {m} has {nj} joints, expected {NUM_JOINTS}", t)
            body_pos.append(pos)
            body_frame.append(t)
            body_slot.append(m)
            pos += _BODY_LEN
    if pos != tk.n:
        raise tk.error(pos, f"{tk.n - pos} unexpected tokens after the last frame "
                            f"(frame or body count too small?)")
    skel = NTUSkeleton(name=name, num_frames=num_frames, bodies_per_frame=per_frame)
    if not body_pos:
        return skel
    bpos = np.asarray(body_pos, dtype=np.int64)
    ids = np.asarray(tk.ints_at(bpos, "bodyID"), dtype=object if not tk.fast else np.int64)
    fields = tk.floats(bpos[:, None] + np.arange(1, len(BODY_FIELDS)))
    joints = tk.floats(bpos[:, None] + (len(BODY_FIELDS) + 1) + np.arange(_JOINT_BLOCK))
    joints = joints.reshape(len(bpos), NUM_JOINTS, len(JOINT_FIELDS))
    if not np.isfinite(joints).all() or not np.isfinite(fields).all():
        bad = int(np.flatnonzero(~(np.isfinite(joints).all((1, 2)) & np.isfinite(fields).all(1)))[0])
        raise tk.error(int(bpos[bad]), "NaN or infinite value in this body", body_frame[bad])
    rows = np.arange(len(bpos))
    _add_bodies(skel, ids, np.asarray(body_frame, dtype=np.int64), np.asarray(body_slot, dtype=np.int64),
                fields, rows, joints, rows)
    return skel


class _CTokens(_Tokens):
    """Tokens of a text as ``_ntu_fast.tokenize`` reports them; same error helpers as ``_Tokens``."""

    def __init__(self, data: bytes | memoryview, file: str, vals: np.ndarray, starts: np.ndarray,
                 kinds: np.ndarray):
        self.data, self.file = data, file
        self.vals, self.starts, self.kinds = vals, starts, kinds
        self.n = len(vals)

    def line_of(self, k: int) -> int:
        pos = int(self.starts[min(k, self.n - 1)]) if self.n else 0
        return bytes(self.data[:pos]).count(b"\n") + 1  # only when raising: no newline index up front

    def token(self, k: int) -> bytes:
        s = int(self.starts[k])
        return bytes(self.data[s:_TOKEN_END.match(self.data, s).end()])

    def int_at(self, k: int, what: str, frame: int | None = None) -> int:
        self.check_more(k, what, frame)
        v = float(self.vals[k])
        if self.kinds[k] == _K_INT and abs(v) < _EXACT:
            return int(v)
        return self.parse_int(k, what, frame)  # int() semantics for everything else, as the numpy path

    def exact_ints(self, idx: np.ndarray, what: str) -> np.ndarray:
        """Integer values of the tokens at ``idx``: int64, or object where one exceeds int64."""
        kinds = self.kinds[idx]
        if (kinds != _K_INT).any():
            k = int(idx[np.flatnonzero(kinds != _K_INT)[0]])
            return np.asarray([self.int_at(k, what)])  # raises: only plain integers are int() == float()
        v = self.vals[idx]
        small = np.abs(v) < _EXACT
        out = np.where(small, v, 0.0).astype(np.int64)
        big = np.flatnonzero(~small)
        if big.size == 0:
            return out
        # Beyond 2**53 the float64 is not the integer: read the digits again, all tokens at once. The
        # window never passes the end of the buffer: a bodyID is followed by 300 more tokens.
        buf = np.frombuffer(self.data, dtype=np.uint8)
        cols = self.starts[idx[big]][:, None] + np.arange(_MAX_DIGITS + 1)
        d = buf.take(cols, mode="clip") - np.uint8(48)  # digits 0..9, anything else wraps to >= 10
        ndig = np.argmin(d < 10, axis=1)  # the first non-digit; 0 for a sign or 19+ digits
        simple = ndig > 0  # the others (a sign, more than 18 digits: a few tokens at most) go to int()
        pw = ndig[:, None] - 1 - np.arange(_MAX_DIGITS + 1)
        exact = (np.where(pw >= 0, d, 0) * _P10[np.maximum(pw, 0)]).sum(axis=1)
        if simple.all():
            out[big] = exact
            return out
        res = out.astype(object)
        for j, b in enumerate(big.tolist()):
            res[b] = int(exact[j]) if simple[j] else int(self.token(int(idx[b])))
        return res


_scratch = threading.local()
_SCRATCH_MAX = 1 << 22  # files up to 4 MiB reuse this thread's buffers; larger ones get their own


def _token_buffers(nbytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output buffers for ``tokenize``, reused from file to file: fresh memory costs a page fault per
    4 KiB (as much time as parsing those bytes), which would double the time of a file."""
    cap = nbytes // 2 + 1  # what tokenize needs
    bufs = getattr(_scratch, "bufs", None)
    if bufs is not None and len(bufs[2]) >= cap:
        return bufs
    if nbytes > _SCRATCH_MAX:
        return np.empty(cap), np.empty(cap, np.int64), np.empty(cap, np.uint8)
    cap = max(cap, 1 << 16, _SCRATCH_MAX // 2 + 1 if bufs is not None else 0)
    bufs = (np.empty(cap), np.empty(cap, np.int64), np.empty(cap, np.uint8))
    _scratch.bufs = bufs
    return bufs


def _read_file(path: Path) -> bytes | memoryview:
    """The bytes of a file; with the C tokeniser, a view of this thread's reusable buffer (a fresh
    bytes object per file costs a page fault per 4 KiB, a third of the time of a whole read)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if _ntu_fast is None or size >= _SCRATCH_MAX:
            return f.read()
        buf = getattr(_scratch, "file", None)
        if buf is None or len(buf) <= size:
            buf = _scratch.file = bytearray(max(size + 1, 1 << 20))
        view = memoryview(buf)
        n = 0
        while n <= size and (k := f.readinto(view[n:size + 1])):
            n += k
        if n > size:  # the file grew while being read
            return bytes(view[:n]) + f.read()
        return view[:n]


def _parse_c(data: bytes | memoryview, name: str, xyz_only: bool = False) -> NTUSkeleton | None:
    """The C tokeniser's path; None where only ``float()`` reads a token (the numpy path then does).
    ``xyz_only``: joints hold x, y, z only (for :func:`read_ntu`, a quarter of the copying)."""
    vals, starts, kinds = _token_buffers(len(data))
    n, bad, nonfinite = _ntu_fast.tokenize(data, vals, starts, kinds)
    # Views of this thread's buffers: nothing below keeps one (fancy indexing copies).
    tk = _CTokens(data, name, vals[:n], starts[:n], kinds[:n])
    if bad >= 0:
        try:
            float(bytes(_TOKEN_END.match(data, bad).group()))
            return None  # "1_0" and the like: valid for float(), not for the C parser
        except ValueError:
            pass
    num_frames = _frame_count(tk)
    fpos, nbs, pos = _walk_frames_c(tk, num_frames)
    bpos, body_frame, body_slot = _body_positions(tk, fpos, nbs)
    if pos != n:
        raise tk.error(pos, f"{n - pos} unexpected tokens after the last frame "
                            f"(frame or body count too small?)")
    skel = NTUSkeleton(name=name, num_frames=num_frames, bodies_per_frame=np.asarray(nbs, dtype=np.int64))
    if not len(bpos):
        return skel
    ids = tk.exact_ints(bpos, "bodyID")
    if bad >= 0 or nonfinite:
        _check_values_c(tk, bpos, body_frame, bad >= 0, nonfinite)
    # Rows of the token values starting at each position (no copy): a body's fields and joints are
    # one fancy index each, copied once, straight into the body they belong to.
    field_rows = np.lib.stride_tricks.sliding_window_view(tk.vals, len(BODY_FIELDS) - 1)
    if xyz_only:  # row r: the (25, 3) x, y, z of a joint block starting at token r
        joint_rows = np.lib.stride_tricks.as_strided(tk.vals, (n - _JOINT_BLOCK + 1, NUM_JOINTS, 3),
                                                     (8, 8 * len(JOINT_FIELDS), 8), writeable=False)
    else:
        joint_rows = np.lib.stride_tricks.sliding_window_view(tk.vals, _JOINT_BLOCK)
    _add_bodies(skel, ids, body_frame, body_slot, field_rows, bpos + 1, joint_rows, bpos + len(BODY_FIELDS) + 1)
    return skel


def _walk_frames_c(tk: _CTokens, num_frames: int) -> tuple[list[int], list[int], int]:
    """Walk the body counts: each frame's token position and body count, and the position after the
    last frame. Only the counts are read here; the bodies are checked at once by _body_positions."""
    n = tk.n
    fpos: list[int] = []
    nbs: list[int] = []
    vm, km = memoryview(tk.vals), memoryview(tk.kinds)  # Python scalars without numpy's boxing
    pos = 1
    try:
        for t in range(num_frames):
            if pos < n and km[pos] == _K_INT and 0.0 <= (v := vm[pos]) < _EXACT:
                nb = int(v)
            else:
                nb = tk.int_at(pos, "the body count", frame=t)
            if nb < 0 or pos + 1 + nb * _BODY_LEN > n:
                raise _body_count_error(tk, pos, nb, t)
            fpos.append(pos)
            nbs.append(nb)
            pos += 1 + nb * _BODY_LEN
    except DataError:
        _body_positions(tk, fpos, nbs)  # a bad joint count in an earlier frame is reported first
        raise
    return fpos, nbs, pos


def _check_values_c(tk: _CTokens, bpos: np.ndarray, body_frame: np.ndarray, bad: bool, nonfinite: bool) -> None:
    """Raise on the first non-number among the body fields, then among the joints (``bad``), and on
    the first body holding NaN or infinity (``nonfinite``). Called only when the tokeniser saw one:
    these index arrays are as large as the file."""
    fidx = bpos[:, None] + np.arange(1, len(BODY_FIELDS))
    jidx = bpos[:, None] + (len(BODY_FIELDS) + 1) + np.arange(_JOINT_BLOCK)
    if bad:
        for idx in (fidx, jidx):
            hit = np.flatnonzero(tk.kinds[idx.reshape(-1)] == _K_BAD)
            if hit.size:
                k = int(idx.reshape(-1)[hit[0]])
                raise tk.error(k, f"not a number: {tk.token(k)[:40]!r}")
    if nonfinite:
        ok = (tk.kinds[fidx] != _K_NONFINITE).all(1) & (tk.kinds[jidx] != _K_NONFINITE).all(1)
        if not ok.all():
            b = int(np.flatnonzero(~ok)[0])
            raise tk.error(int(bpos[b]), "NaN or infinite value in this body", int(body_frame[b]))


def _add_bodies(skel: NTUSkeleton, ids: np.ndarray, frame: np.ndarray, slot: np.ndarray, field_src: np.ndarray,
                field_at: np.ndarray, joint_src: np.ndarray, joint_at: np.ndarray) -> None:
    """Group the bodies of a file by bodyID (in order of first appearance). Body b's fields are
    ``field_src[field_at[b]]`` and its joints ``joint_src[joint_at[b]]``: each body's rows are
    copied once, straight from the parser's buffers into the body they belong to."""
    uniq, first, inverse = np.unique(ids.astype(str) if ids.dtype == object else ids,
                                     return_index=True, return_inverse=True)
    for u in np.argsort(first, kind="stable"):
        sel = np.flatnonzero(inverse == u)
        skel.bodies.append(NTUBody(
            body_id=int(ids[first[u]]), frames=frame[sel], slots=slot[sel], fields=field_src[field_at[sel]],
            joints=joint_src[joint_at[sel]].reshape(len(sel), NUM_JOINTS, -1)))


_XYZ_VALUES = len(BODY_FIELDS) - 1 + NUM_JOINTS * 3  # what walk_xyz keeps of a body


def _xyz_buffers(nbytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output buffers for ``walk_xyz``: per-frame counts and per-body values fit the tokeniser's
    reusable buffers (a body takes 311 tokens, 84 values); the bodyIDs get a small one of their own."""
    vals, starts, _ = _token_buffers(nbytes)
    bodies = len(vals) // _BODY_LEN + 1
    ids = getattr(_scratch, "ids", None)
    if ids is None or len(ids) < bodies:
        ids = np.empty(bodies, np.int64)
        if nbytes <= _SCRATCH_MAX:
            _scratch.ids = ids
    return starts, ids, vals


def _parse_xyz_c(data: bytes | memoryview, name: str) -> NTUSkeleton | None:
    """x, y, z only, every count walked in C (``walk_xyz``); None for any file that is not plain and
    well formed, which the full tokeniser then reads exactly or rejects with the precise reason."""
    counts, ids, vals = _xyz_buffers(len(data))
    status, num_frames, num_bodies = _ntu_fast.walk_xyz(data, counts, ids, vals)
    if status:
        return None
    per_frame = counts[:num_frames].copy()  # the buffers are reused by the next file
    skel = NTUSkeleton(name=name, num_frames=num_frames, bodies_per_frame=per_frame)
    if num_bodies == 0:
        return skel
    frame = np.repeat(np.arange(num_frames), per_frame)
    slot = np.arange(num_bodies) - np.repeat(np.cumsum(per_frame) - per_frame, per_frame)
    rows = vals[:num_bodies * _XYZ_VALUES].reshape(num_bodies, _XYZ_VALUES)
    at = np.arange(num_bodies)
    _add_bodies(skel, ids[:num_bodies].copy(), frame, slot, rows[:, :len(BODY_FIELDS) - 1], at,
                rows[:, len(BODY_FIELDS) - 1:].reshape(num_bodies, NUM_JOINTS, 3), at)
    return skel


def _body_positions(tk: _CTokens, fpos: list[int], nbs: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token position, frame and slot of every body of the frames walked; raises on the first body
    whose joint count is not 25 (checked for all bodies at once)."""
    counts = np.asarray(nbs, dtype=np.int64)
    frame = np.repeat(np.arange(len(counts)), counts)
    slot = np.arange(len(frame)) - np.repeat(np.cumsum(counts) - counts, counts)
    bpos = np.repeat(np.asarray(fpos, dtype=np.int64) + 1, counts) + slot * _BODY_LEN
    jc = bpos + len(BODY_FIELDS)
    bad = np.flatnonzero((tk.kinds[jc] != _K_INT) | (tk.vals[jc] != NUM_JOINTS))
    if bad.size:
        b = int(bad[0])
        nj = tk.int_at(int(jc[b]), "the joint count", frame=int(frame[b]))
        raise tk.error(int(jc[b]), f"body {int(slot[b])} has {nj} joints, expected {NUM_JOINTS}", int(frame[b]))
    return bpos, frame, slot


def read_ntu_skeleton(path: str | Path) -> NTUSkeleton:
    """Read a ``.skeleton`` file with every body and all 12 fields of all 25 joints."""
    return _load(path)


def _load(path: str | Path, xyz_only: bool = False) -> NTUSkeleton:
    path = Path(path)
    try:
        data = _read_file(path)
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror or exc}", file=str(path)) from None
    skel = None
    if _ntu_fast is not None:
        if xyz_only and hasattr(_ntu_fast, "walk_xyz"):  # built only with SSE2 (x86-64), see _ntu_fast.c
            skel = _parse_xyz_c(data, str(path))
        if skel is None:
            skel = _parse_c(data, str(path), xyz_only)
    if skel is None:
        skel = parse_ntu_skeleton(data, name=str(path))
    skel.name = path.name.split(".")[0]
    return skel


def _noise_body(body: NTUBody) -> bool:
    if len(body.frames) <= NOISE_MIN_FRAMES:
        return True
    xyz = body.xyz
    spread = xyz.max(axis=1) - xyz.min(axis=1)  # (n, 3)
    wide = spread[:, 0] > NOISE_SPREAD_RATIO * spread[:, 1]
    return bool(wide.mean() >= NOISE_SPREAD_FRAC)


def _motion(body: NTUBody) -> float:
    xyz = body.xyz
    tracked = np.abs(xyz).sum(axis=(1, 2)) > 0
    if tracked.sum() < 2:
        return 0.0
    return float(xyz[tracked].var(axis=0).sum())


BODY_SELECTIONS = ("official", "energy")  # reader option, checked by the dataset source before any file is read


def skeleton_to_sample(skel: NTUSkeleton, max_bodies: int = 2, body_selection: str = "official",
                       label: int | None = None) -> Sample:
    """Turn a parsed file into a (max_bodies, T, 25, 3) :class:`Sample`.

    ``official``: the first ``max_bodies`` bodies listed in each frame fill the person slots, as in
    the official ``ntu_gendata`` (a noise body listed first displaces a person). ``energy``: noise
    bodies are dropped (see ``NOISE_*``) and the ``max_bodies`` body IDs with the largest motion (sum
    of the variances of their coordinates over time) fill the slots, largest first.
    """
    if max_bodies < 1:
        raise DataError(f"max_bodies must be >= 1, found {max_bodies}", file=skel.name)
    if skel.num_frames == 0:
        raise DataError("file has no frame", file=skel.name, record="line 1")
    if not skel.bodies:
        raise DataError("no body in any frame (missing skeleton)", file=skel.name)
    kp = np.zeros((max_bodies, skel.num_frames, NUM_JOINTS, 3), dtype=np.float32)
    meta: dict = {"layout": "ntu-rgb+d", "body_selection": body_selection, "num_body_ids": len(skel.bodies),
                  "max_bodies_per_frame": skel.max_bodies_per_frame}
    if body_selection == "official":
        for body in skel.bodies:
            keep = body.slots < max_bodies
            kp[body.slots[keep], body.frames[keep]] = body.xyz[keep]
    elif body_selection == "energy":
        people = [b for b in skel.bodies if not _noise_body(b)]
        noise = [b for b in skel.bodies if _noise_body(b)]
        if not people:  # every body looks like noise: keeping them beats returning an empty clip
            people, noise = list(skel.bodies), []
        people.sort(key=_motion, reverse=True)
        for m, body in enumerate(people[:max_bodies]):
            kp[m, body.frames] = body.xyz
        # IDs as strings: 64-bit integers do not survive JSON readers that use doubles.
        meta["selected_body_ids"] = [str(b.body_id) for b in people[:max_bodies]]
        meta["noise_body_ids"] = [str(b.body_id) for b in noise]
    else:
        raise DataError(f"unknown body_selection {body_selection!r}; expected 'official' or 'energy'",
                        file=skel.name)
    info = parse_ntu_name(skel.name)
    if info is not None:
        meta.update(info)
        if label is None:
            label = info["action"] - 1
    return Sample(keypoint=kp, score=None, label=label, name=skel.name, meta=meta)


def read_ntu(path: str | Path, max_bodies: int = 2, body_selection: str = "official",
             label: int | None = None) -> Sample:
    """Read one ``.skeleton`` file as a :class:`Sample` (x, y, z in metres; label = action - 1)."""
    return skeleton_to_sample(_load(path, xyz_only=True), max_bodies=max_bodies,
                              body_selection=body_selection, label=label)


def synthesize_skeleton_text(num_frames: int, num_bodies: int, rng: np.random.Generator) -> str:
    """A realistic random ``.skeleton`` text (for tests and benchmarks; never real data).

    Values are printed the way the Kinect SDK writes them (7 significant digits, C# style
    exponents for tiny values), body IDs are 64-bit integers, every frame lists ``num_bodies``.
    """
    nb = max(num_bodies, 0)
    ids = rng.integers(72057594037927936, 72057594037999999, size=max(nb, 1))
    base = rng.normal(0.0, 0.3, size=(max(nb, 1), NUM_JOINTS, 3)) + np.array([0.0, 0.0, 3.0])
    scale = np.array([512, 424, 1920, 1080, 1, 1, 1, 1], dtype=np.float64)
    out = [f"{num_frames}\n"]
    for _ in range(num_frames):
        out.append(f"{nb}\n")
        for b in range(nb):
            lean = rng.normal(0.0, 0.1, 2)
            out.append(f"{ids[b]} 0 1 1 1 1 0 {lean[0]:.7g} {lean[1]:.7g} 2\n{NUM_JOINTS}\n")
            xyz = base[b] + rng.normal(0.0, 0.01, size=(NUM_JOINTS, 3))
            rest = rng.uniform(-1.0, 1.0, size=(NUM_JOINTS, 8)) * scale
            rest[rng.random((NUM_JOINTS, 8)) < 0.01] *= 1e-6  # tiny values force exponent notation
            state = rng.integers(1, 3, size=NUM_JOINTS)
            vals = np.hstack([xyz, rest])
            # One formatting call per frame-body block keeps the generator fast enough for benchmarks.
            fmt = " ".join(["{:.7g}"] * 11) + " {}\n"
            out.append("".join(fmt.format(*row, int(s)) for row, s in zip(vals, state, strict=True))
                       .replace("e", "E"))
    return "".join(out)
