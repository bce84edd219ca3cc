"""One training run per output directory: ``<out>/.lock``, held for the whole run.

The lock is `filelock <https://py-filelock.readthedocs.io>`_'s ``FileLock`` (already installed with
torch): an ``flock`` on POSIX, which the kernel drops when its process ends (``kill -9`` included),
so a lock left by a killed run is taken over by exactly one later run; filelock closes the
descriptor in forked children (DataLoader workers), so they do not keep a killed run's lock alive;
on a file system that refuses ``flock`` it falls back to a marker file with the owner's PID. The
file names its owner (``host:pid``) for the message a refused run prints; its content never
decides anything (a file left by a killed run holds no kernel lock and is simply taken over).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import StgcnError


class RunLockedError(StgcnError):
    """Another live process is writing the same output directory."""


def _write_owner(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{socket.gethostname()}:{os.getpid()}\n".encode(), 0)


class RunLock:
    """``with RunLock(out): ...`` or ``acquire()``/``release()``; raises :class:`RunLockedError` at
    once (no waiting) when another process holds it."""

    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory) / ".lock"
        self._lock = FileLock(self.path, timeout=0, thread_local=False, on_acquired=_write_owner)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise RunLockedError(
                f"{self.path.parent} is in use by another training run (process {self._owner()}); wait for "
                "it or choose another --out") from None

    def release(self) -> None:
        if self._lock.is_locked:
            # Removed while still locked, so a finished run leaves no .lock behind; a run that
            # opened the old file meanwhile sees it unlinked after locking and starts over
            # (filelock checks st_nlink after flock).
            self.path.unlink(missing_ok=True)
            self._lock.release()

    def _owner(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").strip() or "unknown"
        except OSError:
            return "unknown"

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
