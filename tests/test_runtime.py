"""stgcn.runtime: flush-to-zero is scoped to a run and never set at import; thread and worker
defaults from the machine."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
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
