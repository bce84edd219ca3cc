"""Readers of the Kinect v1 / OpenNI datasets in ``shared/data`` (formats in each PROVENANCE.md).

Every reader accepts ``.txt`` and ``.txt.gz`` (the bundled UTKinect copy is gzipped). Coordinates
are metres: KARD and Florence are stored in millimetres and are divided by 1000 so that every
dataset has the same scale; SBU keeps its normalised units (documented, not metric).
"""

from __future__ import annotations

import functools
import gzip
import io
import math
import re
import warnings
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..sample import Sample

MSR_CLASSES = ["high arm wave", "horizontal arm wave", "hammer", "hand catch", "forward punch", "high throw",
               "draw x", "draw tick", "draw circle", "hand clap", "two hand wave", "side-boxing", "bend",
               "forward kick", "side kick", "jogging", "tennis swing", "tennis serve", "golf swing",
               "pickup & throw"]
UTK_CLASSES = ["walk", "sitDown", "standUp", "pickUp", "carry", "throw", "push", "pull", "waveHands", "clapHands"]
KARD_CLASSES = ["horizontal arm wave", "high arm wave", "two hand wave", "catch cap", "high throw", "draw X",
                "draw tick", "toss paper", "forward kick", "side kick", "take umbrella", "bend", "hand clap",
                "walk", "phone call", "drink", "sit down", "stand up"]
FLORENCE_CLASSES = ["wave", "drink from a bottle", "answer phone", "clap", "tight lace", "sit down", "stand up",
                    "read watch", "bow"]
SBU_CLASSES = ["approaching", "departing", "kicking", "punching", "pushing", "hugging", "shaking hands",
               "exchanging"]

MSR_RE = re.compile(r"^a(\d\d)_s(\d\d)_e(\d\d)_skeleton3D\.txt(\.gz)?$")
KARD_RE = re.compile(r"^a(\d\d)_s(\d\d)_e(\d\d)_realworld\.txt(\.gz)?$")
FLORENCE_RE = re.compile(r"^a(\d\d)_s(\d+)_id(\d+)\.txt(\.gz)?$")
UTK_SEQ_RE = re.compile(r"^s(\d\d)_e(\d\d)$")
# UTKinect frame ids count camera frames at 30 fps; skeleton rows exist only for tracked frames
# (about 5-10 rows per second), so a row's time is its frame id / 30.
UTK_FPS = 30.0


# The largest real file here is ~1.5 MB of text; a compressed file that expands past this bound is a
# decompression bomb, refused before it can exhaust memory.
MAX_TEXT_BYTES = 256 * 1024 * 1024


def read_text(path: str | Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """Text of ``path``; ``x.txt`` falls back to ``x.txt.gz`` and ``.gz`` files are decompressed
    (at most ``max_bytes``: larger contents are refused with a DataError)."""
    path = Path(path)
    if not path.exists() and path.suffix != ".gz" and path.with_name(path.name + ".gz").exists():
        path = path.with_name(path.name + ".gz")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read(max_bytes + 1)
        else:
            if path.stat().st_size > max_bytes:
                raise DataError(f"file larger than {max_bytes} bytes", file=str(path))
            raw = path.read_bytes()
        if len(raw) > max_bytes:
            raise DataError(f"decompresses to more than {max_bytes} bytes (refused: a decompression bomb?)",
                            file=str(path))
        return raw.decode("ascii")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read file: {exc}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"not an ASCII text file (byte {exc.start})", file=str(path)) from None


def load_table(path: str | Path, columns: int, delimiter: str | None = None) -> np.ndarray:
    """A numeric text table (rows, columns) as float64, every row checked by numpy's C parser."""
    text = read_text(path)
    if not text.strip():
        raise DataError("empty file", file=str(path), record="line 1")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            arr = np.loadtxt(io.StringIO(text), dtype=np.float64, delimiter=delimiter, ndmin=2)
    except ValueError as exc:
        # numpy names the row ("... at row 12"); keep its words, they locate the problem.
        raise DataError(f"malformed numeric table: {exc}", file=str(path)) from None
    if arr.shape[1] != columns:
        raise DataError(f"expected {columns} values per line, found {arr.shape[1]}", file=str(path), record="line 1")
    if not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise DataError("NaN or infinite value", file=str(path), record=f"line {row + 1}")
    return arr


def _frames(arr: np.ndarray, joints: int, path: str | Path) -> np.ndarray:
    if arr.shape[0] % joints:
        raise DataError(f"{arr.shape[0]} lines is not a whole number of {joints}-joint frames "
                        f"(truncated file?)", file=str(path), record=f"line {arr.shape[0] - arr.shape[0] % joints + 1}")
    return arr.reshape(-1, joints, arr.shape[1])


def _drop_zero_frames(xyz: np.ndarray, score: np.ndarray | None, mode: str, file: str):
    """Handle untracked (all-zero) frames: ``drop`` removes them, ``keep`` leaves zeros."""
    zero = ~np.abs(xyz).any(axis=(1, 2))
    n = int(zero.sum())
    if mode not in ("drop", "keep"):
        raise DataError(f"unknown zero_frames {mode!r}; expected 'drop' or 'keep'", file=file)
    if zero.all():
        raise DataError("every frame is all-zero (skeleton never tracked)", file=file)
    if mode == "drop" and n:
        xyz = xyz[~zero]
        score = None if score is None else score[~zero]
    return xyz, score, n


def read_msr_action3d(path: str | Path, *, zero_frames: str = "drop", label: int | None = None) -> Sample:
    """MSR Action3D ``aAA_sSS_eEE_skeleton3D.txt``: 20 lines ``x y z c`` per frame (own joint order).

    The 4th column (a fractional tracking score) is kept as ``score``. All-zero (untracked) frames
    are dropped by default and counted in ``meta["zero_frames"]``.
    """
    path = Path(path)
    arr = _frames(load_table(path, 4), 20, path)
    xyz, score, nz = _drop_zero_frames(arr[..., :3], arr[..., 3], zero_frames, str(path))
    m = MSR_RE.match(path.name)
    meta: dict = {"layout": "msr-action3d", "zero_frames": nz, "zero_frames_mode": zero_frames}
    if m:
        a, s, e = (int(g) for g in m.groups()[:3])
        meta.update(action=a, subject=s, repetition=e)
        label = a - 1 if label is None else label
    name = path.name.split("_skeleton3D")[0]
    return Sample(keypoint=xyz[None], score=score[None], label=label, name=name, meta=meta)


def _read_15(path: Path, pattern: re.Pattern, scale: float, label: int | None, key: str, layout: str) -> Sample:
    arr = _frames(load_table(path, 3), 15, path) * scale
    m = pattern.match(path.name)
    meta: dict = {"layout": layout}
    if m:
        a, s, third = (int(g) for g in m.groups()[:3])
        meta.update({"action": a, "subject": s, key: third})
        label = a - 1 if label is None else label
    return Sample(keypoint=arr[None], label=label, name=path.name.split(".")[0], meta=meta)


def read_kard(path: str | Path, *, label: int | None = None) -> Sample:
    """KARD ``aAA_sSS_eEE_realworld.txt``: 15 lines ``x y z`` (mm -> m) per frame, KARD joint order."""
    return _read_15(Path(path), KARD_RE, 1e-3, label, "repetition", "kard")


def read_florence(path: str | Path, *, label: int | None = None) -> Sample:
    """Florence 3D ``aAA_sS_idN.txt``: 15 lines ``x y z`` (mm -> m) per frame, OpenNI-15 order."""
    return _read_15(Path(path), FLORENCE_RE, 1e-3, label, "video_id", "openni-15")


def read_sbu(path: str | Path, *, label: int | None = None) -> Sample:
    """SBU Kinect Interaction ``skeleton_pos.txt``: CSV ``frame_no`` + 2 persons x 15 joints x xyz.

    Coordinates stay in SBU's normalised units (they exceed [0, 1]; see PROVENANCE.md).
    """
    path = Path(path)
    arr = load_table(path, 91, delimiter=",")
    kp = arr[:, 1:].reshape(-1, 2, 15, 3).transpose(1, 0, 2, 3)
    parts = path.parts
    meta: dict = {"layout": "openni-15"}
    if len(parts) >= 4 and re.fullmatch(r"s\d\ds\d\d", parts[-4]) and parts[-3].isdigit():
        meta.update(set=parts[-4], action=int(parts[-3]), take=parts[-2])
        label = int(parts[-3]) - 1 if label is None else label
        name = f"{parts[-4]}_{parts[-3]}_{parts[-2]}"
    else:
        name = path.parent.name
    return Sample(keypoint=kp, label=label, name=name, meta=meta)


# --------------------------------------------------------------------------------------------
# UTKinect: continuous sequences cut into action segments by a label file


def read_utkinect_labels(path: str | Path) -> dict[str, dict[str, tuple[float, float]]]:
    """``actionLabel.txt``: sequence -> action -> (start, end) frame ids; NaN = action missing."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    cur = None
    for ln, line in enumerate(read_text(path).splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if UTK_SEQ_RE.match(line):
            cur = line
            out[cur] = {}
            continue
        if cur is None or ":" not in line:
            raise DataError(f"expected 'sSS_eEE' or 'action: start end', found {line[:40]!r}",
                            file=str(path), record=f"line {ln}")
        act, rng = line.split(":", 1)
        vals = rng.split()
        try:
            start, end = (float(v) for v in vals)
        except ValueError:
            raise DataError(f"expected two frame ids, found {rng.strip()[:40]!r}", file=str(path),
                            record=f"line {ln}") from None
        if act.strip() not in UTK_CLASSES:
            raise DataError(f"unknown action {act.strip()!r}", file=str(path), record=f"line {ln}")
        out[cur][act.strip()] = (start, end)
    return out


def _repeated_ids(ids: np.ndarray) -> np.ndarray:
    """Rows whose frame id repeats the previous row's (542 of the 15,860 UTKinect rows)."""
    dup = np.zeros(len(ids), dtype=bool)
    dup[1:] = ids[1:] == ids[:-1]
    return dup


def _utk_recording(file_name: str) -> dict[str, int]:
    """``subject`` and ``sequence`` from a ``joints_sSS_eEE.txt`` name (nothing for another name)."""
    m = re.search(r"s(\d\d)_e(\d\d)", file_name)
    return {"subject": int(m.group(1)), "sequence": int(m.group(2))} if m else {}


@functools.lru_cache(maxsize=32)
def _utk_sequence(path: str) -> np.ndarray:
    # Ten segments share one sequence file: parse it once per process.
    arr = load_table(path, 61)
    arr.setflags(write=False)
    return arr


def read_utkinect(path: str | Path, start: float, end: float, *, dedupe: bool = True,
                  label: int | None = None, name: str | None = None) -> Sample:
    """The rows of a ``joints_sSS_eEE.txt`` with ``start <= frame_id <= end`` (Kinect SDK v1 order).

    Rows repeating the previous frame id are dropped when ``dedupe`` (counted in ``meta``).
    """
    path = Path(path)
    if math.isnan(start) or math.isnan(end):
        raise DataError("the action is missing from the label file (NaN bounds)", file=str(path))
    arr = _utk_sequence(str(path))
    ids = arr[:, 0]
    sel = (ids >= start) & (ids <= end)
    dup = _repeated_ids(ids)
    n_dup = int((sel & dup).sum())
    if dedupe:
        sel &= ~dup
    if not sel.any():
        raise DataError(f"no skeleton row with frame id in [{start:g}, {end:g}]", file=str(path))
    kp = arr[sel, 1:].reshape(-1, 20, 3)
    meta = {"layout": "kinect-v1", "start": start, "end": end, "frame_ids": ids[sel].astype(int).tolist(),
            "repeated_frame_ids": n_dup, "deduplicated": dedupe}
    meta.update(_utk_recording(path.name))
    return Sample(keypoint=kp[None], label=label, name=name or path.stem, meta=meta)


def read_utkinect_sequence(path: str | Path, *, dedupe: bool = True) -> Sample:
    """A whole ``joints_sSS_eEE.txt`` recording, every row (the untrimmed stream; Kinect SDK v1 order).

    ``meta["frame_ids"]`` keeps each row's frame id (camera frames at :data:`UTK_FPS`); rows
    repeating the previous frame id are dropped when ``dedupe``.
    """
    path = Path(path)
    arr = _utk_sequence(str(path))
    keep = ~_repeated_ids(arr[:, 0]) if dedupe else np.ones(len(arr), dtype=bool)
    meta = {"frame_ids": arr[keep, 0].astype(int).tolist(), "repeated_frame_ids": int((~keep).sum()),
            "deduplicated": dedupe, "fps": UTK_FPS}
    meta.update(_utk_recording(path.name))
    return Sample(keypoint=arr[keep, 1:].reshape(1, -1, 20, 3), name=path.name.split(".")[0], meta=meta)
