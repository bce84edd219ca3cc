"""The oneDNN kernels of the fused units (stgcn.nn.onednn) against independent formulations, and
the cases where the plain ops must run instead."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import stgcn
from stgcn.models import optimize_for_inference
from stgcn.nn import onednn

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


def _ops(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


@needs_onednn
@pytest.mark.parametrize("rows, c_in, c_out", [(1, 3, 5), (97, 9, 64), (640, 64, 192), (300, 384, 256)])
def test_linear_equals_float64_matmul(rows, c_in, c_out):
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, c_in, generator=g)
    w = torch.randn(c_out, c_in, generator=g)
    assert onednn.onednn_runs(x)
    assert "mkldnn::_linear_pointwise" in _ops(lambda: onednn.linear(x, w))
    ref = (x.double() @ w.double().t()).float()
    torch.testing.assert_close(onednn.linear(x, w), ref, rtol=1e-5, atol=1e-5 * c_in ** 0.5)


def test_linear_bf16_is_the_plain_op():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(200, 64, generator=g), torch.randn(128, 64, generator=g)
    assert not onednn.onednn_runs(x.bfloat16())  # torch's own bf16 F.linear already goes to oneDNN
    got = onednn.linear(x.bfloat16(), w.bfloat16())
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), x.bfloat16().float() @ w.bfloat16().float().t(), rtol=2e-2, atol=5e-2)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:DeprecationWarning")
def test_plain_ops_where_onednn_does_not_apply(monkeypatch):
    x64 = torch.randn(4, 3, dtype=torch.float64)
    assert not onednn.onednn_runs(x64)  # float64: oneDNN has no such kernel
    torch.testing.assert_close(onednn.linear(x64, torch.eye(3, dtype=torch.float64)), x64)
    x = torch.randn(4, 3)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    assert not onednn.onednn_runs(x)  # ONNX has no mkldnn ops: export records F.linear
    monkeypatch.undo()
    traced = torch.jit.trace(lambda t: onednn.linear(t, torch.eye(3)), (x,))
    assert "mkldnn" not in str(traced.graph)
    torch.testing.assert_close(onednn.linear(x.t().contiguous().t(), torch.eye(3)), x)  # non-contiguous rows


@needs_onednn
@pytest.mark.parametrize("layout", ["openpose", "ntu-rgb+d"])
def test_fused_model_with_and_without_onednn_agree(layout, monkeypatch):
    """The fp32 fused model takes oneDNN's inner product and gives the plain-op result (float rounding)."""
    torch.manual_seed(0)
    model = stgcn.create_model("stgcn-official", layout=layout, num_classes=7).eval()
    fused = optimize_for_inference(model)
    x = torch.randn(2, 3, 20, model.layout.num_joints, 2)
    with torch.no_grad():
        assert "mkldnn::_linear_pointwise" in _ops(lambda: fused(x))
        got = fused(x)
        ref = model.double()(x.double()).float()
        monkeypatch.setattr(onednn, "onednn_runs", lambda t: False)
        assert "mkldnn::_linear_pointwise" not in _ops(lambda: fused(x))
        plain_ops = fused(x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got, plain_ops, rtol=1e-5, atol=1e-5)
