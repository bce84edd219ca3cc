"""Fault injection shared by the tests of several modules: untrusted pickles, a child interpreter with
a memory bound, a full disk inside atomic writes, a kill -9 inside a rename."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

import stgcn
from stgcn import atomic


class Evil:
    """Unpickling this runs ``touch MARKER``: the canary of every untrusted-code test."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def child_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def npy_with_damaged_header(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    raw = bytearray(buf.getvalue())
    raw[10:11] = b"'"  # one byte of the header dict becomes an unterminated string
    return bytes(raw)


def evil_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"format": "stgcn", "version": 1, "model_config": {"name": "stgcn-tiny", "params": {}},
                "state_dict": Evil(marker), "meta": {}}, path)
    return path


_BOUNDED = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    from stgcn.data import load_sample
    from stgcn.data.formats.kinetics import read_kinetics
    from stgcn.data.formats.openpose import read_openpose
    from stgcn.errors import StgcnError
    used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + (LIMIT_MB << 20), resource.getrlimit(resource.RLIMIT_AS)[1]))
    try:
        CALL
        print("RESULT ok")
    except StgcnError as exc:
        print("RESULT StgcnError", exc)
    except BaseException as exc:
        print("RESULT", type(exc).__name__, exc)
""")


def bounded(call: str, path: Path, limit_mb: int = 512) -> str:
    """Run ``call`` (with ``p`` = path) in a fresh interpreter whose address space may grow by at most
    ``limit_mb``: a reader that sizes arrays from numbers in the file dies of MemoryError there."""
    code = _BOUNDED.replace("LIMIT_MB", str(limit_mb)).replace("CALL", f"p = Path({str(path)!r}); {call}")
    r = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")]
    assert lines, r.stderr[-2000:]
    return lines[-1]


def npy_claiming(shape) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64


def full_disk(monkeypatch, name: str) -> list[Path]:
    """Every atomic write of a file called ``name`` writes half of its bytes, then hits ENOSPC.

    The fault sits inside ``atomic_write``'s temporary file, as a real full disk would, so the test
    also sees what a half-written temporary file leaves behind. Returns the paths that failed.
    """
    real = atomic.atomic_write
    hits: list[Path] = []

    def faulty(path, write):
        if Path(path).name != name:
            return real(path, write)
        hits.append(Path(path))

        def half_then_enospc(f):
            buf = io.BytesIO()
            write(buf)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return real(path, half_then_enospc)

    monkeypatch.setattr(atomic, "atomic_write", faulty)
    return hits


def temp_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*.tmp"))


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Runs `stgcn ARGS...` in a child that stops for good inside the rename of TARGET, after touching MARKER:
# the temporary file is complete, the target not yet replaced. The test then kills it with SIGKILL.
_STALL_IN_RENAME = textwrap.dedent("""
    import os, sys, time
    target, marker = os.path.abspath(sys.argv[1]), sys.argv[2]
    real_replace = os.replace
    def stalled(src, dst, *a, **k):
        if os.path.abspath(dst) == target:
            open(marker, "w").close()
            time.sleep(600)
        return real_replace(src, dst, *a, **k)
    os.replace = stalled
    from stgcn.cli import main
    sys.exit(main(sys.argv[3:]))
""")


def kill_inside_rename(target: Path, args: list[str]) -> None:
    marker = target.parent / "stalled"
    proc = subprocess.Popen([sys.executable, "-c", _STALL_IN_RENAME, str(target), str(marker), *args],
                            env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists(), f"the command never reached the rename: {proc.stderr.read().decode()[-2000:]}"
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -9
    marker.unlink()


def official_checkpoint(path: Path) -> Path:
    m = stgcn.create_model("stgcn-official", layout="ntu-rgb+d", num_classes=4)
    torch.save(m.state_dict(), path)
    return path
