"""pyskl pickles as prepared stores: converted once into a cache directory, then reused."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir:
        return Path(cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stgcn"


def is_pickle(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix.lower() in (".pkl", ".pickle")


def pickle_cache_dir(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the store converted from a pyskl pickle lives (keyed by path, size and mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    key = hashlib.sha1(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return _cache_root(cache_dir) / "pyskl" / f"{p.stem}-{key}"


def convert_pickle(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Convert a pyskl pickle into a prepared store once; later calls reuse the cache."""
    from .store import open_store

    out = pickle_cache_dir(path, cache_dir)
    try:
        open_store(out)
        return out
    except Exception:  # noqa: BLE001 - no usable cache yet: (re)build it below
        pass
    from .prepare import prepare

    out.parent.mkdir(parents=True, exist_ok=True)
    prepare("pyskl", str(path), str(out))
    return out
