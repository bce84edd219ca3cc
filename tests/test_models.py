import json

import pytest
import torch
import torch.nn.functional as F

import stgcn
from stgcn.errors import ConfigError, ShapeError
from stgcn.graph import Graph, list_layouts
from stgcn.nn import GraphConv, LocalGraphConv

STRATEGIES = ["uniform", "distance", "distance-star", "spatial"]


# Every layout x strategy with the tiny model; the full-size models on every layout with the spatial
# strategy and on two layouts with every strategy (keeps the suite fast, covers each code path); the
# TCN and the local conv (no strategy) on every layout.
CASES = [("stgcn-tiny", lay, s) for lay in list_layouts() for s in STRATEGIES] + [
    (name, lay, s)
    for name in ("stgcn", "stgcn-official")
    for lay in list_layouts()
    for s in STRATEGIES
    if s == "spatial" or lay in ("kinect-v1", "openpose")
] + [(name, lay, None) for name in ("tcn", "local-conv") for lay in list_layouts()]


@pytest.mark.parametrize("name, layout, strategy", CASES)
def test_every_model_layout_strategy_runs_forward_backward(name, layout, strategy):
    kw = {} if strategy is None else {"strategy": strategy}
    model = stgcn.create_model(name, layout=layout, num_classes=4, **kw)
    v = model.layout.num_joints
    x = torch.randn(2, 3, 12, v, 2)
    out = model(x)
    assert out.shape == (2, 4)
    out.logsumexp(1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, no_grad
    model.eval()  # dropout and batch statistics would make the two passes differ
    out = model(x)
    feat, logits = model.extract_features(x)
    assert feat.shape[0] == 2 and feat.shape[4] == 2 and feat.shape[3] in (v, 1)
    torch.testing.assert_close(logits, out)


def _trained_looking(model):
    """Non-trivial batch-norm statistics, so that eval and fusion are exercised."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.3)
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g))
    return model


@pytest.mark.parametrize("name", stgcn.list_models())
def test_registered_model_api(name):
    """Every registered model: forward shape, a gradient for every parameter, no NaN, the
    features/head split, reset_classifier, and fuse() computing the eval-mode function."""
    model = _trained_looking(stgcn.create_model(name, layout="openpose", num_classes=4))
    x = torch.randn(3, 3, 16, 18, 2)
    out = model(x)
    assert out.shape == (3, 4) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    model.eval()
    with torch.no_grad():
        feat = model.forward_features(x)                     # (N·M, C', T', V or 1)
        assert feat.shape[:2] == (6, model.feature_dim)
        pooled = model.forward_head(feat, 2, pre_logits=True)
        assert pooled.shape == (3, model.feature_dim)
        logits = model.forward_head(feat, 2)
        torch.testing.assert_close(logits, model(x))
        maps, logits2 = model.extract_features(x)
        torch.testing.assert_close(logits2, logits)
        assert maps.shape == (3, model.feature_dim, *feat.shape[2:], 2)
        fused = stgcn.models.optimize_for_inference(model)
        f_maps, f_logits = fused.extract_features(x)
    assert type(fused) is type(model)
    torch.testing.assert_close(f_logits, logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f_maps, maps, rtol=1e-5, atol=1e-5)

    model.reset_classifier(7)
    assert model.num_classes == 7 and model.config["params"]["num_classes"] == 7
    model.train()
    model.zero_grad()
    out = model(x)
    assert out.shape == (3, 7)
    out.sum().backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]


@pytest.mark.onnx
@pytest.mark.parametrize("name", stgcn.list_models())
def test_registered_model_exports_to_onnx_with_parity(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from stgcn.export.onnx import export_onnx

    model = _trained_looking(stgcn.create_model(name, layout="kinect-v1", num_classes=3)).eval()
    r = export_onnx(model, tmp_path / "m.onnx", example_frames=16, check_frames=23, check_batch=2, repeat=1,
                    timing_frames=8)
    assert r.max_abs_diff <= 1e-4
    x = torch.randn(1, 3, 29, 20, 2)  # against the unfused model, on a length the export never saw
    got = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"skeleton": x.numpy()})[0]
    with torch.no_grad():
        assert abs(got - model(x).numpy()).max() <= 1e-4


def test_paper_architecture_matches_section_3_6():
    m = stgcn.create_model("stgcn", layout="ntu-rgb+d", num_classes=60)
    blocks = m.st_gcn_networks
    assert [b.gcn.out_channels for b in blocks] == [64, 64, 64, 128, 128, 128, 256, 256, 256]
    assert [b.tcn[2].stride[0] for b in blocks] == [1, 1, 1, 2, 1, 1, 2, 1, 1]
    assert all(b.tcn[2].kernel_size == (9, 1) for b in blocks)
    assert all(b.has_residual for b in blocks)
    assert all(b.tcn[4].p == 0.5 for b in blocks)
    assert isinstance(m.data_bn, torch.nn.BatchNorm1d) and m.data_bn.num_features == 75
    x = torch.randn(1, 3, 40, 25, 2)
    feat, _ = m.extract_features(x)
    assert feat.shape == (1, 256, 10, 25, 2)  # two stride-2 units: T/4


def test_official_variant_matches_reference_blocks():
    m = stgcn.create_model("stgcn-official", layout="openpose", num_classes=400)
    blocks = m.st_gcn_networks
    assert [b.gcn.out_channels for b in blocks] == [64, 64, 64, 64, 128, 128, 128, 256, 256, 256]
    assert [b.tcn[2].stride[0] for b in blocks] == [1, 1, 1, 1, 2, 1, 1, 2, 1, 1]
    assert not blocks[0].has_residual and blocks[0].tcn[4].p == 0
    assert blocks[4].residual is not None and blocks[7].residual is not None


@pytest.mark.parametrize("key, layout", [("ntu60", "ntu-rgb+d"), ("ntu120", "ntu-rgb+d"), ("kinetics400", "openpose")])
def test_parameter_counts_equal_reference(shared, key, layout):
    ref = json.loads((shared / "reference" / "official-model.json").read_text())["models"][key]
    m = stgcn.create_model("stgcn-official", layout=layout, num_classes=ref["args"]["num_class"])
    assert sum(p.numel() for p in m.parameters()) == ref["num_parameters"]
    assert sum(p.numel() for p in m.edge_importance.parameters()) == ref["num_parameters_edge_importance"]
    assert len(m.state_dict()) == ref["state_dict_num_keys"]
    m2 = stgcn.create_model("stgcn-official", layout=layout, num_classes=ref["args"]["num_class"],
                            edge_importance=False)
    assert sum(p.numel() for p in m2.parameters()) == ref["num_parameters_without_edge_importance_model"]


def test_state_dict_keys_and_shapes_equal_official(shared):
    ref = json.loads((shared / "reference" / "official-model.json").read_text())["kinetics400_state_dict"]
    m = stgcn.create_model("stgcn-official", layout="openpose", num_classes=400)
    ours = [(k, list(v.shape)) for k, v in m.state_dict().items()]
    assert ours == [(k, s) for k, s, _ in ref]


def _eq10_plain(x, weight, bias, A):
    # Eq. 10 written plainly, one partition at a time: f_out[w] = Σ_k Σ_v A_k[v, w] (W_k f_in[v] + b_k)
    k = A.shape[0]
    c_out = weight.shape[0] // k
    out = 0
    for j in range(k):
        wj = weight[j * c_out:(j + 1) * c_out, :, 0, 0]
        fj = torch.einsum("oc,nctv->notv", wj, x) + bias[j * c_out:(j + 1) * c_out, None, None]
        out = out + torch.einsum("notv,vw->notw", fj, A[j])
    return out


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_graph_conv_equals_eq10(strategy):
    g = Graph("ntu-rgb+d", strategy)
    A = torch.tensor(g.A, dtype=torch.float64) * (1 + torch.rand(g.A.shape, dtype=torch.float64))
    conv = GraphConv(5, 7, g.K, tie=g.tie_weights).double()
    x = torch.randn(2, 5, 6, 25, dtype=torch.float64)
    w, b = conv.effective_weight()
    torch.testing.assert_close(conv(x, A), _eq10_plain(x, w, b, A), rtol=1e-12, atol=1e-12)


def test_graph_conv_gradcheck():
    g = Graph("kinect-v1", "spatial")
    A = torch.tensor(g.A, dtype=torch.float64, requires_grad=True)
    conv = GraphConv(2, 3, g.K).double()
    x = torch.randn(1, 2, 3, 20, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, A: conv(x, A), (x, A))


def test_local_conv_gradcheck_and_unshared_weights():
    A = torch.tensor(Graph("openni-15", "uniform").A[0], dtype=torch.float64)
    conv = LocalGraphConv(2, 3, A).double()
    assert conv.weight.shape[0] == int((A > 0).sum())  # one weight per (source, output) pair
    x = torch.randn(1, 2, 3, 15, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,))
    # independent formula: out[w] = Σ_v A[v,w] (W_vw x_v + b_vw)
    expect = torch.zeros(1, 3, 3, 15, dtype=torch.float64)
    for e, (v, w) in enumerate(zip(conv.src.tolist(), conv.dst.tolist(), strict=True)):
        y = torch.einsum("oc,nct->not", conv.weight[e], x[..., v]) + conv.bias[e][None, :, None]
        expect[..., w] += A[v, w] * y
    torch.testing.assert_close(conv(x), expect)


def test_distance_star_keeps_w0_equal_minus_w1_after_a_step():
    m = stgcn.create_model("stgcn-tiny", layout="openpose", strategy="distance-star", num_classes=3)
    opt = torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
    for _ in range(2):
        loss = F.cross_entropy(m(torch.randn(2, 3, 8, 18, 1)), torch.tensor([0, 2]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for block in m.st_gcn_networks:
        w, b = block.gcn.effective_weight()
        c = block.gcn.out_channels
        assert w.shape[0] == 2 * c
        torch.testing.assert_close(w[:c], -w[c:], rtol=0, atol=0)
        torch.testing.assert_close(b[:c], -b[c:], rtol=0, atol=0)


def test_edge_importance_starts_at_one_and_learns():
    m = stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=3)
    assert len(m.edge_importance) == len(m.st_gcn_networks)
    for M in m.edge_importance:
        assert M.shape == m.A.shape and M.requires_grad and torch.all(M == 1)
    before = [M.detach().clone() for M in m.edge_importance]
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    F.cross_entropy(m(torch.randn(2, 3, 8, 20, 1)), torch.tensor([0, 1])).backward()
    opt.step()
    changed = [not torch.equal(b, M) for b, M in zip(before, m.edge_importance, strict=True)]
    assert all(changed)
    # entries where A is zero have no effect and get no gradient
    for M in m.edge_importance:
        assert torch.all(M.grad[m.A == 0] == 0)
    without = stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=3, edge_importance=False)
    assert without.edge_importance is None


def test_model_rebuilds_from_its_config():
    m = stgcn.create_model("stgcn", layout="openpose", strategy="distance", num_classes=7, dropout=0.1)
    m2 = stgcn.create_model(**m.config)
    m2.load_state_dict(m.state_dict())
    m.eval(), m2.eval()
    x = torch.randn(1, 3, 10, 18, 2)
    torch.testing.assert_close(m(x), m2(x))


@pytest.mark.parametrize("shape, message", [
    ((2, 3, 10, 25), "rank 5"),
    ((2, 3, 10, 18, 2), "25 joints"),
    ((2, 2, 10, 25, 2), "3 input channels"),
])
def test_bad_input_shapes(shape, message):
    m = stgcn.create_model("stgcn-tiny", layout="ntu-rgb+d", num_classes=3)
    with pytest.raises(ShapeError, match=message):
        m(torch.randn(*shape))


def test_nan_input_is_rejected():
    m = stgcn.create_model("stgcn-tiny", layout="ntu-rgb+d", num_classes=3)
    x = torch.randn(1, 3, 10, 25, 1)
    x[0, 1, 3, 4, 0] = float("nan")
    with pytest.raises(ShapeError, match="NaN"):
        m(x)


def test_unknown_model_and_argument():
    with pytest.raises(ConfigError, match="available"):
        stgcn.create_model("resnet", layout="openpose", num_classes=3)
    with pytest.raises(ConfigError, match="unknown arguments"):
        stgcn.create_model("stgcn", layout="openpose", num_classes=3, colour="red")
    with pytest.raises(ConfigError, match="missing 1 required"):
        stgcn.create_model("stgcn", num_classes=3)


@pytest.mark.parametrize("name, kwargs", [
    ("tcn", {"strategy": "distance"}),
    ("tcn", {"edge_importance": False, "center": "joint"}),
    ("local-conv", {"strategy": "spatial"}),
    ("local-conv", {"edge_importance": True}),
])
def test_arguments_a_model_does_not_use_are_rejected_by_name(name, kwargs):
    with pytest.raises(ConfigError, match="unknown arguments") as info:
        stgcn.create_model(name, layout="openpose", num_classes=3, **kwargs)
    assert all(repr(k) in str(info.value) for k in kwargs)
    assert not set(kwargs) & stgcn.models.model_arguments(name)
    assert {"strategy", "edge_importance"} <= stgcn.models.model_arguments("stgcn")


def test_local_conv_rebuilds_from_its_config():
    m = stgcn.create_model("local-conv", layout="openpose", num_classes=3)
    m2 = stgcn.create_model(**m.config)  # its config carries the fields the model fixes itself
    assert m2.cfg.local and m2.edge_importance is None and m2.config == m.config


def _randomised_eval(model):
    """Eval mode with non-trivial batch-norm statistics, so that folding them is tested too."""
    torch.manual_seed(1)
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.running_mean.normal_(0, 0.3)
            mod.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _feature_steps(model, x):
    feat, _ = model.extract_features(x)  # (N, C', T', V, M)
    return feat


@pytest.mark.parametrize("name", ["stgcn", "stgcn-tiny"])
def test_causal_model_outputs_do_not_depend_on_later_frames(name):
    from stgcn.models import optimize_for_inference

    kw = {"channels": (8, 8, 16, 16), "strides": (1, 2, 1, 2)} if name == "stgcn" else {}
    model = _randomised_eval(stgcn.create_model(name, layout="kinect-v1", num_classes=4, causal=True, **kw))
    stride = 4 if name == "stgcn" else 2          # total temporal stride: feature step j ends at frame stride * j
    x = torch.randn(1, 3, 40, 20, 1)
    t = 21
    later = x.clone()
    later[:, :, t + 1:] = torch.randn_like(later[:, :, t + 1:]) * 3  # every frame after t changed
    fused = optimize_for_inference(model)
    for m in (model, fused):
        with torch.no_grad():
            a, b = _feature_steps(m, x), _feature_steps(m, later)
        keep = t // stride + 1                     # steps 0 .. t // stride read frames <= t only
        torch.testing.assert_close(a[:, :, :keep], b[:, :, :keep], rtol=0, atol=0)
        assert (a[:, :, keep:] - b[:, :, keep:]).abs().amax() > 1e-3  # ... and the later ones do change
    with torch.no_grad():
        torch.testing.assert_close(_feature_steps(fused, x), _feature_steps(model, x), rtol=1e-4, atol=1e-4)
    assert fused.config["params"]["causal"] and stgcn.create_model(**model.config).cfg.causal


def test_symmetric_model_looks_ahead():
    model = _randomised_eval(stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=4))
    x = torch.randn(1, 3, 40, 20, 1)
    later = x.clone()
    later[:, :, 22:] += 1.0
    with torch.no_grad():
        a, b = _feature_steps(model, x), _feature_steps(model, later)
    assert (a[:, :, :10] - b[:, :, :10]).abs().amax() > 1e-4  # step 10 ends at frame 20, it sees frame 22
    assert "causal" not in model.config["params"]  # a symmetric checkpoint is byte for byte what it was


def test_causal_conv_equals_a_sum_over_past_frames():
    from stgcn.nn.block import CausalConv2d

    torch.manual_seed(0)
    conv = CausalConv2d(3, 2, (5, 1), (2, 1))
    x = torch.randn(1, 3, 11, 4)
    w, bias = conv.weight, conv.bias           # (2, 3, 5, 1), (2,)
    want = torch.zeros(1, 2, 6, 4)
    for j in range(6):                         # output step j: frames 2j - 4 .. 2j (zeros before frame 0)
        for k in range(5):
            f = 2 * j - 4 + k
            if f >= 0:
                want[0, :, j] += torch.einsum("oc,cv->ov", w[:, :, k, 0], x[0, :, f])
        want[0, :, j] += bias[:, None]
    torch.testing.assert_close(conv(x), want, rtol=1e-5, atol=1e-5)
