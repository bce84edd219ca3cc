"""The prepared store: every clip of a dataset in one memory-mapped float32 array.

One directory holds (see docs/data_format.md)::

    data.npy      float32 (total_frames, M, V, C): the frames of all clips, clip after clip
    offsets.npy   int64 (N + 1,): clip i is data[offsets[i]:offsets[i + 1]]
    labels.npy    int64 (N,): class index, -1 when unknown
    names.json    list of N sample names
    splits.json   {split name: [clip indices]}
    meta.json     layout (its name and table), class names, source, preprocessing options, channels,
                  format version, counts
    rejects.csv   file, record, reason of every input that was not used
    COMPLETE      written last: a directory without it is an interrupted build

Frames are stored frame-major so that a clip is one contiguous slice whatever its length: no padding
to 300 frames on disk (the official layout wastes about half of NTU's space on zeros), and opening a
60k-clip store reads only the small index files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError, LayoutError
from .npyfile import load_npy

FORMAT_NAME = "stgcn-store"
FORMAT_VERSION = 1
MARKER = "COMPLETE"
FILES = ("data.npy", "offsets.npy", "labels.npy", "names.json", "splits.json", "meta.json", "rejects.csv")


UNKNOWN_LAYOUTS = ("", "unknown")


def layout_fields(layout) -> dict:
    """The store meta entries of a source's layout (a name, a YAML path, a table or None): its name
    and its table (``layout_table``), so the store works from any folder; an unknown one by name."""
    from ..graph import get_layout

    if layout is None or str(layout) in UNKNOWN_LAYOUTS:
        return {"layout": "unknown" if layout is not None else None}
    lay = get_layout(layout)
    return {"layout": lay.name, "layout_table": lay.to_dict()}


class SkeletonStore:
    """Read access to a prepared store. The frame array is opened lazily (memory-mapped) and is not
    pickled: a copy sent to a DataLoader worker reopens it there, so workers share the page cache
    instead of each holding the data."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / MARKER).is_file():
            if self.path.is_dir() and (self.path / ".partial").is_dir():
                hint = ("an interrupted `stgcn prepare` left its work in .partial/; run the same "
                        "`stgcn prepare ... --out` command again to resume it")
            else:
                hint = "build it with `stgcn prepare FORMAT SOURCE --out DIR`"
            raise DataError(f"not a complete prepared store (no {MARKER} marker): {hint}",
                            file=str(self.path))
        try:
            self.meta: dict = json.loads((self.path / "meta.json").read_text())
            self.names: list[str] = json.loads((self.path / "names.json").read_text())
            splits = json.loads((self.path / "splits.json").read_text())
            # headers checked before loading: damaged bytes or a claimed size the file does not hold
            # give ValueError here, not a tokenizer error or a huge allocation
            self.offsets: np.ndarray = load_npy(self.path / "offsets.npy")
            self.labels: np.ndarray = load_npy(self.path / "labels.npy")
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the store's index files: {exc}", file=str(self.path)) from exc
        if self.meta.get("format") != FORMAT_NAME or self.meta.get("version") != FORMAT_VERSION:
            raise DataError(f"unsupported store format {self.meta.get('format')!r} version "
                            f"{self.meta.get('version')!r}; this stgcn reads {FORMAT_NAME!r} version "
                            f"{FORMAT_VERSION}: prepare the dataset again", file=str(self.path))
        n = len(self.names)
        if self.offsets.shape != (n + 1,) or self.labels.shape != (n,):
            raise DataError(f"index files disagree: {n} names, offsets {self.offsets.shape}, labels "
                            f"{self.labels.shape}", file=str(self.path))
        self.splits: dict[str, np.ndarray] = {k: np.asarray(v, dtype=np.int64) for k, v in splits.items()}
        self.class_names: list[str] = list(self.meta.get("class_names") or [])
        self.layout: str = self.meta.get("layout") or ""
        self.channels: list[str] = list(self.meta.get("channels") or [])
        self.lengths: np.ndarray = np.diff(self.offsets)
        self._data: np.ndarray | None = None

    # The memmap is reopened in each process rather than pickled (see the class docstring).
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_data"] = None
        return state

    @property
    def data(self) -> np.ndarray:
        """The raw frame array (total_frames, M, V, C), memory-mapped read-only."""
        if self._data is None:
            try:
                self._data = load_npy(self.path / "data.npy", mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot map data.npy: {exc}", file=str(self.path)) from exc
            if self._data.shape[0] != int(self.offsets[-1]):
                raise DataError(f"data.npy has {self._data.shape[0]} frames, offsets say "
                                f"{int(self.offsets[-1])}", file=str(self.path))
        return self._data

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, V, M) of every clip."""
        m, v, c = self.data.shape[1:]
        return c, v, m

    def __len__(self) -> int:
        return len(self.names)

    def get(self, i: int) -> np.ndarray:
        """Clip ``i`` as a new float32 array (C, T_i, V, M), safe to modify in place."""
        n = len(self.names)
        if not -n <= i < n:
            raise IndexError(f"clip index {i} out of range for a store of {n} clips")
        i = int(i) % n
        frames = self.data[self.offsets[i]:self.offsets[i + 1]]  # (T, M, V, C)
        return np.ascontiguousarray(frames.transpose(3, 0, 2, 1), dtype=np.float32)

    def joint_layout(self):
        """The store's :class:`~stgcn.graph.Layout` (from its table; a store written before tables
        were kept: from its name), or None when the data did not say (a pyskl pickle of unusual
        joint count, arrays without ``layout=``)."""
        from ..graph import get_layout

        table = self.meta.get("layout_table")
        if table:
            return get_layout(table)
        if self.layout in UNKNOWN_LAYOUTS:
            return None
        try:
            return get_layout(self.layout)
        except LayoutError as exc:
            raise LayoutError(f"{self.path}: the store's layout {self.layout!r} cannot be found ({exc}); "
                              "prepare the store again to record the layout's table") from None

    def split(self, name: str) -> np.ndarray:
        """Clip indices of split ``name``."""
        try:
            return self.splits[name]
        except KeyError:
            raise DataError(f"no split {name!r}; available: {sorted(self.splits)}",
                            file=str(self.path)) from None

    def __repr__(self) -> str:
        return f"SkeletonStore({str(self.path)!r}, clips={len(self)}, layout={self.layout!r})"


def open_store(path: str | Path) -> SkeletonStore:
    """Open a prepared store directory (raises :class:`DataError` when incomplete or unreadable)."""
    return SkeletonStore(path)
