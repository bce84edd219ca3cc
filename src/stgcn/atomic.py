"""Atomic file writes: a file is either absent, the previous version, or complete.

Every write goes to a temporary file in the same directory, is flushed and fsync'ed, then renamed
over the target (``os.replace`` is atomic on POSIX and Windows), and the directory is fsync'ed so
the rename survives a power cut. On any failure the temporary file is removed and the previous
file is left untouched. No torch import here: the data modules use it too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from .errors import StgcnError, WriteError

# mkstemp creates files readable by the owner only; finished files get the usual permissions.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def fsync_dir(path: str | Path) -> None:
    # Makes renames inside `path` durable; not every filesystem allows fsync on a directory.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file next to ``path`` (hidden ``.NAME.*.tmp``) for writers that need a file name
    (``torch.onnx.export``, ``onnx.save``); when the block ends without an error the file is fsync'ed,
    given the usual permissions and renamed over ``path``. On any error it is removed and ``path`` is
    untouched; an ``OSError`` (disk full, permissions, ...) becomes :class:`WriteError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        # Creating the temporary file is where a disk out of inodes or a read-only / missing directory
        # fails first; it used to escape as a bare OSError (a traceback on the command line).
        raise write_error(path, exc) from exc
    os.close(fd)
    try:
        yield Path(tmp)
        # data on disk before the rename, else a power cut can leave an empty file under the final name
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, StgcnError):
            raise write_error(path, exc) from exc
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temporary binary file, then move it over ``path`` atomically
    (see :func:`atomic_path`); an ``OSError`` becomes :class:`WriteError`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def write_error(path: str | Path, exc: OSError) -> WriteError:
    """The :class:`WriteError` for an ``OSError`` met while writing ``path`` atomically."""
    return WriteError(f"could not write {path}: {exc.strerror or exc}; the previous file (if any) is unchanged",
                      exc.errno)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npy(path: str | Path, array) -> None:
    import numpy as np

    atomic_write(path, lambda f: np.save(f, array))


def writable_dir(path: str | Path, *, what: str = "--out") -> Path:
    """Create the directory ``path`` if needed and check that a file can be written in it, before
    any work is done (so a bad ``--out`` fails at once, not after training or a whole video).
    Raises :class:`WriteError` naming ``what`` and the path."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise WriteError(f"{what} {p}: is a file, not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".stgcn-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise WriteError(f"{what} {p}: cannot write there ({exc.strerror or exc})", exc.errno) from None
    return p


def writable_file(path: str | Path, *, what: str = "--out") -> Path:
    """Check, before any work, that the file ``path`` can be written: its folder is writable (and
    created if needed) and the path is not a directory."""
    p = Path(path)
    if p.is_dir():
        raise WriteError(f"{what} {p}: is a directory, not a file")
    writable_dir(p.parent if str(p.parent) else ".", what=what)
    return p
