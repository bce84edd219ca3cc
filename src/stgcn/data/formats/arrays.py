"""Plain arrays for custom data: ``.npy`` files (one per clip) or one ``.npz``, plus a labels CSV.

Each array is (T, V, C) for one person or (M, T, V, C), C in {2, 3}. The labels CSV has a header
``name,label[,split...]``; ``label`` is an integer or a class name; every further column is a
split flag (1/0, true/false) or, for a column named ``split``, the split name itself.
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..npyfile import load_npy, load_npz_member
from ..sample import Sample

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


def _check_layout(sample: Sample, layout: str | None, file: str) -> None:
    if layout is None:
        return
    from ...graph import get_layout  # lazy: the graph module is not needed to read arrays

    v = get_layout(layout).num_joints
    if sample.num_joints != v:
        raise DataError(f"array has {sample.num_joints} joints but layout {layout!r} has {v}", file=file)


def array_to_sample(arr, name: str, file: str, label: int | None = None, layout: str | None = None) -> Sample:
    if (not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number)
            or np.issubdtype(arr.dtype, np.complexfloating)):
        raise DataError(f"expected a real numeric array, found {getattr(arr, 'dtype', type(arr).__name__)}",
                        file=file, record=name)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise DataError(f"expected shape (T, V, C) or (M, T, V, C), found {arr.shape}", file=file, record=name)
    try:
        s = Sample(keypoint=arr, label=label, name=name, meta={"source": "arrays"})
    except DataError as exc:
        raise DataError(exc.reason, file=file, record=name) from None
    _check_layout(s, layout, file)
    if layout is not None:
        s.meta["layout"] = layout
    return s


def read_npy(path: str | Path, *, label: int | None = None, layout: str | None = None) -> Sample:
    path = Path(path)
    try:
        # The header is checked against the file's size before numpy allocates what it claims.
        arr = load_npy(path)
    except OSError as exc:
        raise DataError(f"cannot read file: {exc}", file=str(path)) from None
    except ValueError as exc:
        raise DataError(f"not a plain .npy array: {exc}", file=str(path)) from None
    return array_to_sample(arr, path.stem, str(path), label, layout)


def read_npz(path: str | Path, key: str | None = None, *, label: int | None = None,
             layout: str | None = None) -> Sample:
    """The array ``key`` (default: the first) of an ``.npz`` archive."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX:
                # np.load would read it as one .npy array, allocating what its header claims
                raise ValueError("this is a .npy file, not an .npz archive")
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            if not keys:
                raise DataError("archive holds no array", file=str(path))
            k = keys[0] if key is None else key
            if k not in keys:
                raise DataError(f"no array named {k!r} (available: {keys[:10]})", file=str(path))
            # as NpzFile.__getitem__ does, but each member's header is checked against its size first
            member = k if k in z.zip.namelist() else f"{k}.npy"
            with z.zip.open(member) as f:
                is_npy = f.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX
            # a member that is not .npy: NpzFile gives its raw bytes, which array_to_sample refuses
            arr = load_npz_member(z.zip, member) if is_npy else b""
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, RuntimeError, zlib.error) as exc:
        raise DataError(f"not a readable .npz archive: {exc}", file=str(path)) from None
    return array_to_sample(arr, k, str(path), label, layout)


def _csv_rows(path: Path) -> list[list[str]]:
    """The CSV's rows, the first checked to be a ``name,label,...`` header."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read labels CSV: {exc}", file=file) from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", file=file) from None
    if not rows:
        raise DataError("empty labels CSV", file=file, record="line 1")
    header = [h.strip() for h in rows[0]]
    if len(header) < 2 or header[0].lower() != "name" or header[1].lower() != "label":
        raise DataError(f"header must start with 'name,label', found {rows[0][:3]}", file=file, record="line 1")
    return rows


def _row_splits(extra: list[str], values: list[str], file: str, ln: int) -> tuple[str, ...]:
    """The splits one row names: a ``split`` column's value, or each 1/true split column."""
    splits = []
    for col, val in zip(extra, values, strict=True):
        v = val.strip()
        if col.lower() == "split":
            if v:
                splits.append(v)
        elif v.lower() in _TRUE:
            splits.append(col)
        elif v.lower() not in _FALSE:
            raise DataError(f"split column {col!r} must be 1/0 or true/false, found {v!r}",
                            file=file, record=f"line {ln}")
    return tuple(splits)


def _label_index(lab: str, classes: list[str], file: str, ln: int) -> int | None:
    """One row's label as an index into ``classes`` (None: empty, unknown)."""
    if not lab:
        return None
    if _is_int(lab):
        label = int(lab)
        if label < 0 or (classes and label >= len(classes)):
            raise DataError(f"label {label} outside 0..{len(classes) - 1 if classes else 'inf'}",
                            file=file, record=f"line {ln}")
        return label
    if lab not in classes:
        raise DataError(f"label {lab!r} is not a known class", file=file, record=f"line {ln}")
    return classes.index(lab)


def read_labels_csv(path: str | Path, class_names: list[str] | None = None
                    ) -> tuple[list[tuple[str, int | None, tuple[str, ...]]], list[str]]:
    """Parse a labels CSV into ``[(name, label, splits)]`` and the class names.

    Integer labels are used as given; names become indices in order of ``class_names`` (or of first
    appearance when none are given, then sorted for a stable numbering). An empty label means unknown.
    """
    path = Path(path)
    file = str(path)
    rows = _csv_rows(path)
    header = [h.strip() for h in rows[0]]
    raw = []
    seen = set()
    for ln, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DataError(f"expected {len(header)} columns, found {len(row)}", file=file, record=f"line {ln}")
        name = row[0].strip()
        if not name:
            raise DataError("empty name", file=file, record=f"line {ln}")
        if name in seen:
            raise DataError(f"duplicate name {name!r}", file=file, record=f"line {ln}")
        seen.add(name)
        raw.append((ln, name, row[1].strip(), _row_splits(header[2:], row[2:], file, ln)))
    names_given = class_names is not None
    classes = list(class_names) if names_given else []
    textual = [lab for _, _, lab, _ in raw if lab and not _is_int(lab)]
    if textual and not names_given:
        classes = sorted(set(textual))
    out = [(name, _label_index(lab, classes, file, ln), splits) for ln, name, lab, splits in raw]
    if not classes:
        top = max((lab for _, lab, _ in out if lab is not None), default=-1)
        classes = [str(i) for i in range(top + 1)]
    return out, classes


def _is_int(s: str) -> bool:
    return s.lstrip("-").isdigit() and s.isascii()
