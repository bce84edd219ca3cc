"""The run lock (stgcn.engine.runlock) under concurrency: racing starts, a live holder, a killed
holder whose forked children live on."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from faults import child_env


def _contend(out: str, start, done, results) -> None:  # run in forked children
    from stgcn.engine.runlock import RunLock, RunLockedError

    lock = RunLock(Path(out))
    start.wait()
    try:
        lock.acquire()
        results.put("won")
    except RunLockedError:
        results.put("refused")
    done.wait()  # the winner holds the lock until everyone has tried
    lock.release()


@pytest.mark.parametrize("stale", [False, True], ids=["no-lock-file", "stale-lock-file"])
def test_simultaneous_starts_let_exactly_one_run_in(tmp_path, stale):
    # also the takeover race: several runs finding the lock file of a killed run at once
    if stale:
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / ".lock").write_text(f"{socket.gethostname()}:999999999\n")
    ctx = multiprocessing.get_context("fork")
    n = 4
    start, done, results = ctx.Barrier(n), ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(str(tmp_path / "run"), start, done, results)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert sorted(results.get(timeout=5) for _ in range(n)) == ["refused"] * (n - 1) + ["won"]


def test_lock_held_by_a_live_run_is_refused_whatever_its_file_says(tmp_path):
    from stgcn.engine.runlock import RunLock, RunLockedError

    out = tmp_path / "run"
    a = RunLock(out)
    a.acquire()
    try:
        (out / ".lock").write_text(f"{socket.gethostname()}:999999999\n")  # looks stale, but a holds the flock
        with pytest.raises(RunLockedError, match="in use"):
            RunLock(out).acquire()
    finally:
        a.release()
    b = RunLock(out)
    b.acquire()
    assert b.held
    b.release()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_lock_of_a_killed_run_is_free_while_its_forked_children_live(tmp_path):
    # DataLoader workers are forked children: they must not keep a killed run's lock alive
    from stgcn.engine.runlock import RunLock, RunLockedError

    out = tmp_path / "run"
    code = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from stgcn.engine.runlock import RunLock
        lock = RunLock(Path({str(out)!r}))
        lock.acquire()
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        print(child, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env=child_env(), stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    try:
        with pytest.raises(RunLockedError):  # held while its owner lives
            RunLock(out).acquire()
        proc.kill()
        proc.wait(30)
        lock = RunLock(out)
        lock.acquire()  # the owner is dead; its child closed its copy of the lock at fork
        assert lock.held
        lock.release()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, 9)
