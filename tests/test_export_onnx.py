"""ONNX export: dynamic N and T, parity with torch on another shape, metadata, the export CLI."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.onnx
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import stgcn  # noqa: E402
from faults import kill_inside_rename, umask  # noqa: E402
from stgcn.checkpoint import save_model  # noqa: E402
from stgcn.errors import WriteError  # noqa: E402
from stgcn.export.onnx import export_onnx  # noqa: E402
from stgcn.models import create_model  # noqa: E402


def trained_looking(layout="kinect-v1", classes=5):
    """A tiny model with non-trivial BN statistics, so that logits are not all near zero."""
    torch.manual_seed(0)
    m = create_model("stgcn-tiny", layout=layout, num_classes=classes)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
    return m.eval()


def test_export_dynamic_axes_and_parity(tmp_path):
    m = trained_looking()
    r = export_onnx(m, tmp_path / "m.onnx", example_frames=32, check_frames=45, check_batch=3, repeat=2,
                    timing_frames=16, metadata={"class_names": ["a", "b", "c", "d", "e"]})
    assert r.max_abs_diff <= 1e-4 and r.max_abs_logit > 1e-3
    assert all(r.check_shape[i] != r.export_shape[i] for i in (0, 2, 4))  # N, T and M differ
    assert r.ort_ms > 0 and r.torch_ms > 0 and "max abs diff" in r.summary()
    proto = onnx.load(tmp_path / "m.onnx")
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[2].dim_param and dims[4].dim_param  # batch, frames, persons symbolic
    assert [d.dim_value for d in (dims[1], dims[3])] == [3, 20]
    assert proto.opset_import[0].version == 17
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["joints"] == "20" and '"e"' in props["class_names"]
    # a length the export never saw, one sample, one person
    x = torch.randn(1, 3, 101, 20, 1)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"skeleton": x.numpy()})[0]
    with torch.inference_mode():
        assert abs(got - m(x).numpy()).max() <= 1e-4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_export_cli(tmp_path, capsys):
    from stgcn.cli import main

    m = trained_looking("openpose", 4)
    save_model(tmp_path / "m.pt", m, {"class_names": list("abcd"), "layout": "openpose",
                                      "data": {"normalization": "kinetics", "num_persons": 2}})
    assert main(["export", str(tmp_path / "m.pt"), "--onnx", str(tmp_path / "out.onnx"), "--frames", "16"]) == 0
    out = capsys.readouterr().out
    assert "max abs diff" in out and "onnxruntime" in out
    assert (tmp_path / "out.onnx").is_file()
    assert main(["export", str(tmp_path / "missing.pt"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists()


def test_checkpoint_exports_at_its_contract_persons_and_runs_with_one(tmp_path):
    import json

    import numpy as np

    from stgcn.contract import DataContract
    from stgcn.export.onnx import export_checkpoint
    from stgcn.graph import get_layout

    m = trained_looking()
    contract = DataContract(layout=get_layout("kinect-v1"), num_persons=1, channels=("x", "y", "z"), in_channels=3,
                            test_pipeline=({"name": "center"},))
    save_model(tmp_path / "m.pt", m, {"class_names": list("abcde"), "data": contract.to_dict()})
    r = export_checkpoint(tmp_path / "m.pt", tmp_path / "m.onnx", repeat=1, timing_frames=8)
    assert r.export_shape[4] == 1
    proto = onnx.load(tmp_path / "m.onnx")
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["persons"] == "1"
    again = DataContract.from_meta({"data": json.loads(props["data"])})
    assert again == contract  # the contract travels with the file
    # a raw clip prepared by the contract (M = 1) runs and agrees with torch
    clip = np.random.default_rng(0).normal(size=(3, 17, 20, 1)).astype(np.float32) + 2
    x = again.prepare(clip)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"skeleton": x})[0]
    with torch.inference_mode():
        np.testing.assert_allclose(got, m(torch.from_numpy(x)).numpy(), atol=1e-4)


def test_full_disk_during_onnx_export_is_a_write_error(tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from stgcn.export.onnx import export_onnx

    model = stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=3).eval()
    kw = dict(example_frames=16, check_frames=12, check_batch=2, timing_frames=8, repeat=1)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, **kw)
    before = path.read_bytes()
    # exported files get the usual permissions, not mkstemp's owner-only 0600
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(onnx, "save", full)
    with pytest.raises(WriteError, match=rf"could not write {path}: No space left on device"):
        export_onnx(model, path, **kw)
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


@pytest.mark.parametrize("previous", [True, False], ids=["over-previous", "new-file"])
def test_sigkill_during_onnx_export_keeps_previous_file(tmp_path, previous):
    import re

    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from stgcn.cli import main
    from stgcn.export.onnx import export_onnx

    ckpt = tmp_path / "m.pt"
    save_model(ckpt, stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=5).eval(),
               {"class_names": list("abcde"), "layout": "kinect-v1"})
    target = tmp_path / "out" / "model.onnx"
    target.parent.mkdir()
    old = b""
    if previous:  # an earlier export, of a 3-class model
        export_onnx(stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=3).eval(), target,
                    example_frames=16, check_frames=12, check_batch=2, timing_frames=8, repeat=1)
        old = target.read_bytes()
    args = ["export", str(ckpt), "--onnx", str(target), "--frames", "8"]
    kill_inside_rename(target, args)

    assert target.read_bytes() == old if previous else not target.exists()
    left = [p.name for p in target.parent.iterdir() if p != target]
    assert len(left) == 1 and re.fullmatch(r"\.model\.onnx\..+\.tmp", left[0]), left

    assert main(args) == 0
    proto = onnx.load(target)
    onnx.checker.check_model(proto)
    assert json.loads({e.key: e.value for e in proto.metadata_props}["class_names"]) == list("abcde")
    sess = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    assert sess.run(["logits"], {"skeleton": np.zeros((2, 3, 10, 20, 2), np.float32)})[0].shape == (2, 5)
    assert [p.name for p in target.parent.iterdir() if p != target] == left


def test_int8_export_is_quantized_calibrated_and_checked_against_fp32(tmp_path):
    """``precision="int8"``: ONNX Runtime static QDQ quantisation of the checked fp32 graph, the
    dynamic axes kept, the top-1 agreement with torch fp32 measured on inputs not used to calibrate."""
    from stgcn.errors import ConfigError
    from stgcn.export.onnx import ExportError

    m = trained_looking()
    g = torch.Generator().manual_seed(5)
    calib = [torch.randn(2, 3, 24, 20, 1, generator=g).numpy() for _ in range(4)]
    real = [torch.randn(2, 3, 24, 20, 1, generator=g).numpy() for _ in range(8)]
    r = export_onnx(m, tmp_path / "q.onnx", example_frames=24, timing_frames=16, repeat=2, precision="int8",
                    calibration=calib, real_inputs=real, min_agreement=0.5)
    assert r.precision == "int8" and r.real_samples == 16 and r.real_agreement >= 0.5
    assert 0 < r.real_max_abs_diff < r.max_abs_logit and "top-1 agreement" in r.summary()
    proto = onnx.load(tmp_path / "q.onnx")
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert {p.key: p.value for p in proto.metadata_props}["precision"] == "int8"
    x = torch.randn(3, 3, 41, 20, 2)  # another N, T and M than calibrated on
    got = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"skeleton": x.numpy()})[0]
    assert got.shape == (3, 5)
    with pytest.raises(ExportError, match="agrees with fp32 on"):
        export_onnx(m, tmp_path / "never.onnx", precision="int8", calibration=calib, real_inputs=real,
                    min_agreement=1.01, repeat=1, timing_frames=16)
    assert not (tmp_path / "never.onnx").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(ConfigError, match="calibration"):
        export_onnx(m, tmp_path / "x.onnx", precision="int8")
    with pytest.raises(ConfigError, match="bf16"):
        export_onnx(m, tmp_path / "x.onnx", precision="bf16")


def test_int8_export_cli_calibrates_on_a_store(tmp_path, capsys):
    from stgcn.cli import main
    from test_train import make_store

    store = make_store(tmp_path / "store", n=24)
    save_model(tmp_path / "m.pt", trained_looking(classes=3), {"class_names": ["wave", "kick", "still"],
                                                               "layout": "kinect-v1"})
    argv = ["export", str(tmp_path / "m.pt"), "--onnx", str(tmp_path / "q.onnx"), "--frames", "16",
            "--precision", "int8"]
    assert main(argv) == 2 and not (tmp_path / "q.onnx").exists()  # int8 without --calibration
    assert main(argv + ["--calibration", str(store), "--calibration-samples", "8", "--min-agreement", "0"]) == 0
    out = capsys.readouterr().out
    assert "int8" in out and "16 real inputs not used to calibrate" in out
