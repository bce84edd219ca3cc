"""``optimize_for_inference(model, precision=...)``: the fused model in bf16 against the fused fp32
model (the fp32 fused form is checked against the plain official math in test_fuse.py), and the
fp32 fallback where the CPU lacks the feature."""

from __future__ import annotations

import warnings

import pytest
import torch

import stgcn
from stgcn import runtime
from stgcn.errors import ConfigError
from stgcn.inference.predictor import Predictor
from stgcn.models import optimize_for_inference
from test_fuse import randomize

BF16_MISSING = runtime.missing_cpu_feature("bf16")
needs_bf16 = pytest.mark.skipif(BF16_MISSING is not None, reason=f"this CPU lacks {BF16_MISSING}")
CASES = [("stgcn", "kinect-v1", {}), ("stgcn-official", "openpose", {}), ("stgcn-tiny", "ntu-rgb+d", {}),
         ("tcn", "kinect-v1", {})]


def _model(name, layout, kw, classes=12):
    torch.manual_seed(0)
    model = stgcn.create_model(name, layout=layout, num_classes=classes, **kw)
    randomize(model)
    return model.eval()


@needs_bf16
@pytest.mark.parametrize(("name", "layout", "kw"), CASES)
def test_bf16_agrees_with_fp32_and_keeps_the_signature(name, layout, kw):
    model = _model(name, layout, kw)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    v = model.layout.num_joints
    x = torch.randn(16, 3, 40, v, 2, generator=torch.Generator().manual_seed(1))
    fp32 = optimize_for_inference(model)
    bf16 = optimize_for_inference(model, "bf16")
    with torch.no_grad():
        ref, got = fp32(x), bf16(x)
        feat_ref, _ = fp32.extract_features(x)
        feat, logits = bf16.extract_features(x)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert feat.dtype == torch.float32 and feat.shape == feat_ref.shape
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    # bf16 keeps 8 mantissa bits: relative error ~2^-8 per op, a few e-2 of the logit scale overall
    scale = float(ref.abs().max())
    assert float((got - ref).abs().max()) < 0.05 * scale
    assert torch.equal(logits, got)
    assert (got.argmax(1) == ref.argmax(1)).float().mean() >= 0.9
    assert bf16.num_classes == model.num_classes and bf16.layout is not None
    # the source model (and so its checkpoint) is untouched: still fp32 and the same values
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@needs_bf16
def test_predictor_precision_bf16(tmp_path):
    from stgcn.checkpoint import save_model

    model = _model("stgcn", "kinect-v1", {}, classes=3)
    path = tmp_path / "m.pt"
    save_model(path, model, meta={"class_names": ["a", "b", "c"]})
    p32 = Predictor.from_checkpoint(path)
    p16 = Predictor.from_checkpoint(path, precision="bf16")
    assert (p32.precision, p16.precision) == ("fp32", "bf16")
    x = torch.randn(4, 3, 30, 20, 2, generator=torch.Generator().manual_seed(2))
    a, b = p32.logits_prepared(x), p16.logits_prepared(x)
    assert b.dtype == a.dtype and abs(a - b).max() < 0.05 * abs(a).max()


def test_missing_bf16_falls_back_to_fp32_and_says_so_once(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(runtime, "_warned", set())
    assert runtime.missing_cpu_feature("bf16") == "avx512_bf16 or AMX-BF16"
    model = _model("stgcn-tiny", "kinect-v1", {})
    with pytest.warns(RuntimeWarning, match="bf16 needs avx512_bf16 or AMX-BF16.*running in fp32"):
        fused = optimize_for_inference(model, "bf16")
    assert all(p.dtype == torch.float32 for p in fused.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second time: no warning
        optimize_for_inference(model, "bf16")


def test_cpu_flags_are_the_fallback_detection(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: {"avx2", "avx512f"})
    assert runtime.missing_cpu_feature("bf16") == "avx512_bf16 or AMX-BF16"
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: {"avx512f", "amx_bf16"})
    assert runtime.missing_cpu_feature("bf16") is None
    assert runtime.missing_cpu_feature("fp32") is None


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        optimize_for_inference(_model("stgcn-tiny", "kinect-v1", {}), "fp16")


@needs_bf16
def test_predict_cli_precision_bf16_gives_the_fp32_top1(tmp_path, capsys):
    from stgcn.checkpoint import save_model
    from stgcn.cli import main
    from test_predictor import write_openpose

    write_openpose(tmp_path / "op", 5, body25=False)
    names = ["walk", "wave", "clap"]
    save_model(tmp_path / "m.pt", _model("stgcn-tiny", "openpose", {}, classes=3),
               {"class_names": names, "layout": "openpose", "data": {"normalization": "kinetics"}})
    tops = []
    for precision in ("fp32", "bf16"):
        assert main(["predict", str(tmp_path / "op"), "--checkpoint", str(tmp_path / "m.pt"), "--topk", "1",
                     "--image-size", "340x256", "--precision", precision]) == 0
        tops.append(capsys.readouterr().out.splitlines()[1].split()[0])
    assert tops[0] == tops[1] and tops[0] in names
    with pytest.raises(SystemExit):  # argparse: invalid choice
        main(["predict", str(tmp_path / "op"), "--checkpoint", str(tmp_path / "m.pt"), "--precision", "fp16"])
