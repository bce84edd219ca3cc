"""pyskl pickles as prepared stores: converted once into a cache directory, then reused; and
:func:`open_data`, which opens either (a store directory or a pickle) as a store."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataError

if TYPE_CHECKING:
    from .store import SkeletonStore


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir:
        return Path(cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stgcn"


def is_pickle(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix.lower() in (".pkl", ".pickle")


def pickle_cache_dir(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                     layout: Any = None) -> Path:
    """Where the store converted from a pyskl pickle lives (keyed by path, size, mtime and the
    layout asked for: its table, or "auto" for the guess by joint count)."""
    from ..graph import get_layout

    p = Path(path).resolve()
    st = p.stat()
    lay = "auto" if layout is None else json.dumps(get_layout(layout).to_dict(), sort_keys=True)
    key = hashlib.sha1(f"{p}:{st.st_size}:{st.st_mtime_ns}:{lay}".encode()).hexdigest()[:12]
    return _cache_root(cache_dir) / "pyskl" / f"{p.stem}-{key}"


def convert_pickle(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None, layout: Any = None) -> Path:
    """Convert a pyskl pickle into a prepared store once (in ``layout``: a name, YAML path or table;
    None: guessed from the joint count); later calls reuse the cache."""
    from .store import open_store

    out = pickle_cache_dir(path, cache_dir, layout)
    try:
        open_store(out)
        return out
    except Exception:  # noqa: BLE001 - no usable cache yet: (re)build it below
        pass
    from .prepare import prepare

    out.parent.mkdir(parents=True, exist_ok=True)
    prepare("pyskl", str(path), str(out), **({} if layout is None else {"layout": layout}))
    return out


def open_data(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
              layout: Any = None) -> SkeletonStore:
    """A store from a store directory or a pyskl pickle (converted once, in ``layout`` when given)."""
    from .store import open_store

    if not Path(path).exists():
        raise DataError("no such file or directory (expected a prepared store or a pyskl .pkl)", file=str(path))
    if is_pickle(path):
        return open_store(convert_pickle(path, cache_dir, layout))
    return open_store(path)
