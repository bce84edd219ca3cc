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


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a container's
    cpuset), not the cores the machine has."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_workers(cores: int | None = None) -> int:
    """DataLoader workers when the config says null: half the cores, at most 4 (skeleton clips are
    small; more workers only take cores from the model)."""
    cores = available_cores() if cores is None else cores
    return min(4, max(1, cores // 2))


def default_threads(workers: int, cores: int | None = None) -> int:
    """torch intra-op threads when the config says 0: the cores left after the workers and one core
    for the rest of the machine, at least 1.

    torch's own default (one thread per core) oversubscribes the cores as soon as workers or another
    program run too, and its OpenMP threads spin while they wait for a core. Measured on this
    project's 2-core machine shared with other work (README, "Results"): UTKinect ``--recipe small``,
    5 epochs, 139 s with torch's default and 2 workers against 10.6 s with 1 thread; Florence 3D 361 s
    against 21 s. On a quiet 2-core machine 2 threads are about 1.3x faster than 1 (issue 12): a loss
    several times smaller than the gain under load.
    """
    cores = available_cores() if cores is None else cores
    return max(1, cores - workers - 1)


@contextlib.contextmanager
def torch_threads(num_threads: int, workers: int) -> Iterator[int]:
    """torch's intra-op threads for the block: ``num_threads`` when > 0; else
    :func:`default_threads`, unless ``OMP_NUM_THREADS`` is set (the user's choice, which torch
    already follows). The previous count is restored after (it is process-wide)."""
    import torch

    before = torch.get_num_threads()
    if num_threads > 0:
        n = num_threads
    elif os.environ.get("OMP_NUM_THREADS"):
        n = before
    else:
        n = default_threads(workers)
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


# -- reduced precision: what this CPU can run natively ------------------------------------------

PRECISIONS = ("fp32", "bf16", "int8")

# precision -> (what it needs, torch's check, /proc/cpuinfo flags of which one suffices)
_NEEDS = {
    "bf16": ("avx512_bf16 or AMX-BF16", "_is_avx512_bf16_supported", ("avx512_bf16", "amx_bf16")),
    "int8": ("avx512_vnni, AVX-VNNI or AMX-INT8", "_is_vnni_supported", ("avx512_vnni", "avx_vnni", "amx_int8")),
}
_warned: set[str] = set()


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def missing_cpu_feature(precision: str) -> str | None:
    """What this CPU lacks to run ``precision`` natively ("avx512_bf16 or AMX-BF16"), None when it has
    it. torch's own dispatch checks (``torch.cpu._is_*_supported``) first, /proc/cpuinfo where this
    torch does not have them; fp32 needs nothing."""
    if precision not in _NEEDS:
        return None
    import torch

    name, check, flags = _NEEDS[precision]
    if not torch.backends.mkldnn.is_available():
        return f"{name} through oneDNN (this torch is built without oneDNN)"
    probe = getattr(torch.cpu, check, None)
    if probe is not None:
        has = bool(probe()) or (precision == "bf16" and bool(getattr(torch.cpu, "_is_amx_tile_supported", bool)()))
    else:
        has = bool(_cpu_flags() & set(flags))
    return None if has else name


def usable_precision(precision: str) -> str:
    """``precision`` if this CPU runs it natively, else "fp32" with a warning (once per process and
    precision) that names the missing feature. Raises ConfigError for an unknown name."""
    from .errors import ConfigError

    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    missing = missing_cpu_feature(precision)
    if missing is None:
        return precision
    if precision not in _warned:
        _warned.add(precision)
        import warnings

        warnings.warn(f"precision {precision} needs {missing}, which this CPU does not have; running in fp32",
                      RuntimeWarning, stacklevel=3)
    return "fp32"
