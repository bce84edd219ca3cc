"""load_official against an independent plain formulation of the official math (float64).

The reference forward below is written from the official code (yysijie/st-gcn ``net/st_gcn.py``:
block order, quirks), not from our model code: one einsum per partition, the graph-conv bias
before aggregation, data_bn over (V·C) channels shared by persons, residual convs in blocks 4
and 7, mean over persons.
"""

import json
import os
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

import stgcn
from faults import Evil, kill_inside_rename, official_checkpoint
from stgcn.checkpoint import load_model, safe_load, save_model
from stgcn.compat import convert_official, load_official
from stgcn.errors import CheckpointError
from stgcn.graph import Graph
from stgcn.models import optimize_for_inference

STRIDES = {4: 2, 7: 2}


def random_official_state_dict(key_list, layout, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.tensor(Graph(layout, "spatial").A, dtype=torch.float64)
    sd = OrderedDict()
    for name, shape, _dtype in key_list:
        if name == "A":
            sd[name] = A.clone()
        elif name.endswith("num_batches_tracked"):
            sd[name] = torch.tensor(7, dtype=torch.int64)
        elif (name.endswith("running_var") or name.startswith("edge_importance")
              or (name.endswith("weight") and len(shape) == 1)):  # BN variance, importance, gamma: positive
            sd[name] = 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 16
            sd[name] = torch.randn(shape, generator=g, dtype=torch.float64) / fan_in ** 0.5
    # values representable in float32, so that loading into the float32 model is lossless and the
    # float64 comparison measures the math, not the storage rounding
    return OrderedDict((k, v.float().double() if v.is_floating_point() else v) for k, v in sd.items())


def official_forward(sd, x):
    def bn(t, p):
        return F.batch_norm(t, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"],
                            False, 0.0, 1e-5)

    n, c, t, v, m = x.shape
    A = sd["A"]
    k = A.shape[0]
    x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
    x = bn(x, "data_bn.")
    x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
    for i in range(10):
        p = f"st_gcn_networks.{i}."
        stride = STRIDES.get(i, 1)
        if i == 0:
            res = 0
        elif p + "residual.0.weight" in sd:
            res = bn(F.conv2d(x, sd[p + "residual.0.weight"], sd[p + "residual.0.bias"], stride=(stride, 1)),
                     p + "residual.1.")
        else:
            res = x
        y = F.conv2d(x, sd[p + "gcn.conv.weight"], sd[p + "gcn.conv.bias"])
        y = y.view(y.shape[0], k, y.shape[1] // k, y.shape[2], y.shape[3])
        Ai = A * sd[f"edge_importance.{i}"]
        h = sum(torch.einsum("nctv,vw->nctw", y[:, j], Ai[j]) for j in range(k))
        h = F.relu(bn(h, p + "tcn.0."))
        h = F.conv2d(h, sd[p + "tcn.2.weight"], sd[p + "tcn.2.bias"], stride=(stride, 1), padding=(4, 0))
        h = bn(h, p + "tcn.3.")
        x = F.relu(h + res)
    x = F.avg_pool2d(x, x.shape[2:]).view(n, m, -1).mean(dim=1)
    return x @ sd["fcn.weight"][:, :, 0, 0].t() + sd["fcn.bias"]


@pytest.fixture(scope="module")
def kinetics_keys(shared):
    return json.loads((shared / "reference" / "official-model.json").read_text())["kinetics400_state_dict"]


def _ntu_keys(kinetics_keys):
    # the NTU model has the same keys; only V (25), C and the class count differ
    out = []
    for name, shape, dtype in kinetics_keys:
        shape = list(shape)
        if name == "A" or name.startswith("edge_importance"):
            shape = [3, 25, 25]
        elif name.startswith("data_bn") and shape:
            shape = [75]
        elif name == "fcn.weight":
            shape = [60, 256, 1, 1]
        elif name == "fcn.bias":
            shape = [60]
        out.append((name, shape, dtype))
    return out


@pytest.mark.parametrize("layout", ["openpose", "ntu-rgb+d"])
def test_load_official_logits_equal_plain_official_math(kinetics_keys, layout):
    keys = kinetics_keys if layout == "openpose" else _ntu_keys(kinetics_keys)
    sd = random_official_state_dict(keys, layout)
    model = load_official(sd, layout=layout).double()
    assert not model.training
    v = 18 if layout == "openpose" else 25
    x = torch.randn(2, 3, 40, v, 2, dtype=torch.float64)
    with torch.no_grad():
        ours = model(x)
        fused = optimize_for_inference(model)(x)
    expect = official_forward(sd, x)
    torch.testing.assert_close(ours, expect, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fused, expect, rtol=1e-10, atol=1e-10)
    with torch.no_grad():  # float32: the fused model's CPU kernels (oneDNN where it runs), same logits
        fused32 = optimize_for_inference(load_official(sd, layout=layout))(x.float())
    torch.testing.assert_close(fused32, expect.float(), rtol=1e-4, atol=1e-4)


def test_dataparallel_prefix_and_old_torch_keys(kinetics_keys):
    sd = random_official_state_dict(kinetics_keys, "openpose")
    old = OrderedDict(("module." + k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    m1 = load_official(sd, layout="openpose").double()
    m2 = load_official(old, layout="openpose").double()
    x = torch.randn(1, 3, 20, 18, 2, dtype=torch.float64)
    torch.testing.assert_close(m1(x), m2(x))


def test_missing_and_unexpected_keys_are_listed(kinetics_keys):
    sd = random_official_state_dict(kinetics_keys, "openpose")
    del sd["st_gcn_networks.3.tcn.2.weight"]
    sd["st_gcn_networks.3.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        load_official(sd, layout="openpose")
    assert "st_gcn_networks.3.tcn.2.weight" in str(info.value)
    assert "st_gcn_networks.3.extra.weight" in str(info.value)


def test_checkpoint_of_another_layout_is_refused(kinetics_keys):
    sd = random_official_state_dict(kinetics_keys, "openpose")
    with pytest.raises(CheckpointError, match=r"shape \(3, 18, 18\).*'ntu-rgb\+d'.*\(3, 25, 25\)"):
        load_official(sd, layout="ntu-rgb+d")
    with pytest.raises(CheckpointError, match="num_classes=60"):
        load_official(sd, layout="openpose", num_classes=60)


def test_convert_official_round_trip(tmp_path, kinetics_keys):
    sd = OrderedDict((k, v.float() if v.is_floating_point() else v)
                     for k, v in random_official_state_dict(kinetics_keys, "openpose").items())
    src = tmp_path / "st_gcn.kinetics.pt"
    torch.save(sd, src)
    dst = tmp_path / "converted.pt"
    convert_official(src, dst, layout="openpose")
    model, meta = load_model(dst)
    assert len(meta["class_names"]) == 400 and meta["class_names"][0] == "abseiling"
    assert meta["data"]["normalization"] == "kinetics"
    x = torch.randn(1, 3, 30, 18, 2)
    ref = load_official(src, layout="openpose")
    torch.testing.assert_close(model(x), ref(x))


def test_checkpoint_with_pickled_callable_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pt"
    torch.save({"state_dict": Evil()}, bad)
    with pytest.raises(CheckpointError, match="refused"):
        safe_load(bad)
    with pytest.raises(CheckpointError):
        load_official(bad, layout="openpose")
    assert not marker.exists()


def test_convert_official_cli(tmp_path, kinetics_keys):
    sd = OrderedDict((k, v.float() if v.is_floating_point() else v)
                     for k, v in random_official_state_dict(kinetics_keys, "openpose").items())
    src = tmp_path / "official.pt"
    torch.save(sd, src)
    out = tmp_path / "ours.pt"
    r = subprocess.run([sys.executable, "-m", "stgcn", "convert-official", str(src), str(out), "--layout", "openpose"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and "400 classes" in r.stdout


def test_official_checkpoint_path_refuses_pickled_callable(tmp_path):
    from stgcn.inference.predictor import Predictor

    marker = tmp_path / "pwned"
    evil = tmp_path / "official.pt"
    torch.save({"fcn.weight": Evil(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        Predictor.from_checkpoint(evil, official=True)
    assert not marker.exists()


@pytest.mark.parametrize("previous", [True, False], ids=["over-previous", "new-file"])
def test_sigkill_during_convert_official_keeps_previous_file(tmp_path, previous):
    import re

    from stgcn.cli import main
    from stgcn.compat import load_official

    src = official_checkpoint(tmp_path / "official.pth")
    dst = tmp_path / "out" / "converted.ckpt"
    dst.parent.mkdir()
    old = b""
    if previous:  # an earlier conversion, of another model
        tiny = stgcn.create_model("stgcn-tiny", layout="ntu-rgb+d", num_classes=4)
        save_model(dst, tiny, {"class_names": list("wxyz")})
        old = dst.read_bytes()
    args = ["convert-official", str(src), str(dst), "--layout", "ntu-rgb+d"]
    kill_inside_rename(dst, args)

    assert dst.read_bytes() == old if previous else not dst.exists()
    left = [p.name for p in dst.parent.iterdir() if p != dst]
    # the killed process cannot remove its temporary file; it is hidden and recognisable as one
    assert len(left) == 1 and re.fullmatch(r"\.converted\.ckpt\..+\.tmp", left[0]), left

    assert main(args) == 0  # the re-run is not confused by the leftover
    model, meta = load_model(dst)
    assert model.config["name"] == "stgcn-official" and meta["class_names"] == ["0", "1", "2", "3"]
    x = torch.randn(1, 3, 20, 25, 2)
    torch.testing.assert_close(model(x), load_official(src, layout="ntu-rgb+d")(x))
    assert [p.name for p in dst.parent.iterdir() if p != dst] == left  # no new temporary file
