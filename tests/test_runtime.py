"""stgcn.runtime: flush-to-zero is scoped to a run and never set at import; thread and worker
defaults from the machine."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from faults import child_env


def test_importing_the_engine_leaves_float_semantics_alone():
    code = ("import numpy as np; import stgcn.engine; "
            "print(float(np.array([1e-310]) [0] * np.float64(1.0)) != 0.0)")
    r = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "True", r.stderr[-2000:]


def test_flush_to_zero_is_scoped_to_the_run_and_restored():
    from stgcn.runtime import flushes_denormals, flushing_denormals

    was = flushes_denormals()
    supported = torch.set_flush_denormal(True)  # False on CPUs without the flag: then nothing changes
    torch.set_flush_denormal(False)
    try:
        with flushing_denormals():
            assert flushes_denormals() == supported
            with flushing_denormals():
                pass
            assert flushes_denormals() == supported  # the inner block left it on
        assert not flushes_denormals()
        assert float(np.array([1e-310])[0] * np.float64(1.0)) != 0.0
    finally:
        torch.set_flush_denormal(was)


def test_thread_and_worker_defaults_leave_room_for_the_workers_and_the_machine():
    from stgcn.runtime import default_threads, default_workers

    assert [default_workers(c) for c in (1, 2, 4, 8, 16, 64)] == [1, 1, 2, 4, 4, 4]
    assert default_threads(workers=1, cores=2) == 1  # the shared 2-core machine: never oversubscribed
    assert default_threads(workers=4, cores=16) == 11
    assert default_threads(workers=8, cores=4) == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity")
def test_available_cores_follows_the_affinity_mask():
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from stgcn.runtime import available_cores, default_workers; "
            "print(available_cores(), default_workers())")
    r = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["1", "1"], r.stderr[-2000:]


def test_torch_threads_are_set_for_the_block_and_restored(monkeypatch):
    from stgcn.runtime import default_threads, torch_threads

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with torch_threads(3, workers=0) as n:
        assert n == torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
    with torch_threads(0, workers=1) as n:
        assert n == torch.get_num_threads() == default_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's choice wins over the default
    with torch_threads(0, workers=1) as n:
        assert n == before
    assert torch.get_num_threads() == before
