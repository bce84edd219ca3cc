"""DDP: two CPU processes (gloo, torchrun) against one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from test_train import make_store

COMMON = ["--recipe", "small", "--model", "stgcn-tiny", "--epochs", "2", "--batch-size", "8",
          "--set", "data.num_workers=0", "--set", "train.progress=false", "--set", "train.tensorboard=false",
          "--set", "model.kwargs={}", "--set", "model.dropout=0.0", "--set", "optimizer.name=sgd",
          "--set", "optimizer.lr=0.05", "--set", "scheduler.name=constant", "--set", "scheduler.warmup_epochs=0"]


def test_two_process_gloo_matches_single_process(tmp_path):
    store = make_store(tmp_path / "store", n=44)  # 33 train clips -> padded to 34 by the sampler
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single"
    ddp = tmp_path / "ddp"
    subprocess.run([sys.executable, "-m", "stgcn", "train", "--data", str(store), "--out", str(single), *COMMON],
                   check=True, env=env, capture_output=True, timeout=300)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "stgcn", "train", "--data", str(store), "--out", str(ddp), *COMMON],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("final (epoch 2)") == 1  # only rank 0 reports and writes
    a = torch.load(single / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(ddp / "checkpoints" / "last.pt", weights_only=True)
    assert a["global_step"] == b["global_step"]
    # Same samples per global step, but BatchNorm normalises each process's half batch with its own
    # statistics, so the runs agree closely, not bit for bit.
    keys = [k for k, v in a["model"].items() if v.is_floating_point() and "running" not in k]
    diff = torch.cat([(a["model"][k] - b["model"][k]).flatten() for k in keys]).norm()
    norm = torch.cat([a["model"][k].flatten() for k in keys]).norm()
    assert diff / norm < 0.1, float(diff / norm)
    assert (ddp / "metrics.json").is_file() and not (ddp / ".lock").exists()


def test_device_that_this_machine_lacks_is_a_config_error():
    import pytest

    from stgcn.engine.distributed import resolve_device
    from stgcn.errors import ConfigError

    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cpu"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="cuda:99"):
        resolve_device("cuda:99")
