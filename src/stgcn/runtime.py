"""How this process runs models on the CPU: flush-to-zero for denormal floats, and thread and
worker counts chosen from the machine (the cores this process may use, not the cores it has)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np


def enable_flush_denormal() -> None:
    """Flush denormal floats to zero in the calling thread (5-15x faster CPU training on skeleton
    data, measured).

    The flag is per thread and torch's intra-op (OpenMP) worker threads copy it when they are
    created, at the first parallel torch op; so the entry points that run models call this (through
    :func:`flushing_denormals`) before their first op. numpy's float limits are computed first:
    computed under flush-to-zero they warn.
    """
    import torch

    for dt in (np.float16, np.float32, np.float64):
        np.finfo(dt).smallest_subnormal  # noqa: B018
    torch.set_flush_denormal(True)


def flushes_denormals() -> bool:
    """Whether the calling thread flushes float32 denormals to zero (FTZ or DAZ is on)."""
    tiny = np.array([1], dtype=np.uint32).view(np.float32)  # the smallest float32 denormal
    return bool((tiny * np.float32(1.0))[0] == 0)


@contextlib.contextmanager
def flushing_denormals() -> Iterator[None]:
    """Flush denormals to zero in the calling thread for the duration of the block, then put the
    thread's previous state back, so callers' numpy code (and hypothesis) keep IEEE subnormals.

    Not done at import: importing the package changes no floating-point state. Threads created
    inside the block (torch's intra-op pool, if this is its first parallel op) keep the flag.
    """
    import torch

    was_on = flushes_denormals()
    enable_flush_denormal()
    try:
        yield
    finally:
        if not was_on:
            torch.set_flush_denormal(False)


def set_threads(num_threads: int) -> None:
    """torch's intra-op threads: ``num_threads`` when > 0, else torch's default."""
    if num_threads > 0:
        import torch

        torch.set_num_threads(num_threads)


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a container's
    cpuset), not the cores the machine has."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """DataLoader workers when the config says null: see docs (measured, README "Results")."""
    return min(4, available_cores() // 2)
